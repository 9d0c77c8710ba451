#!/usr/bin/python3
"""WebSocket and server-sent-event clients for tests/system/streams.sh.

Runs inside the booted container, with Debian's python3 and python3-websockets
(10.4) and nothing else, against the packaged nginx site over HTTPS:
wss://HOST/ws/echo and https://HOST/events, connecting to --addr (loopback)
with HOST as SNI and Host header, trusting --cafile.

  reach --ncpu N
      Opens WebSockets (kept open, so nginx's least_conn spreads them) until
      every instance 0..N-1 has said hello, echoing one message on each; then
      SSE streams the same way, each read until its hello and 3 stats events.
      Prints a JSON summary.
  hold --ws N --sse M --dir D
      N WebSockets, each sending an echo message about every second and
      checking the answer, and M SSE streams; a closed one reconnects (a
      WebSocket after 0.5 to 1.5 s, as socket.io does by default, an SSE
      stream after its retry: hint, as EventSource does). The shell says what it is doing in D/phase
      ("K running" or "K done": reload or kill K); D/status.json is rewritten
      every 0.2 s; once D/stop exists every WebSocket is closed with
      1000, every stream dropped, and D/summary.json written.
  idle --seconds S
      One WebSocket and one SSE stream that carry no data for S seconds (no
      client pings, an SSE interval past S), then are used again; beside
      them a WebSocket whose client answers no ping (a dead peer), which the
      server is to cut. Prints a JSON summary.

Everything is bounded by timeouts. The exit status is 0 once a summary is
written: the shell judges the figures.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import re
import resource
import ssl
import sys
import time

import websockets.exceptions
from websockets.frames import Opcode
from websockets.legacy.client import WebSocketClientProtocol, connect

OPEN_TIMEOUT = 10
ECHO_TIMEOUT = 10
# How long the client waits for the server to close TCP after the closing
# handshake; a close_wait near it means the handshake did not complete.
CLOSE_TIMEOUT = 10
MAX_ERRORS_KEPT = 30


class Counting(WebSocketClientProtocol):
    """The library's client, noting what it does not report: pings received,
    when the close frame came and when the connection was gone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pings_received = 0
        self.close_frame_at = None
        self.lost_at = None

    async def read_frame(self, max_size):
        frame = await super().read_frame(max_size)
        if frame.opcode == Opcode.PING:
            self.pings_received += 1
        elif frame.opcode == Opcode.CLOSE and self.close_frame_at is None:
            self.close_frame_at = time.monotonic()
        return frame

    def connection_lost(self, exc):
        self.lost_at = time.monotonic()
        super().connection_lost(exc)


class Target:
    """Where the clients connect: TLS to ADDR:PORT, named HOST."""

    def __init__(self, args):
        self.host = args.host
        self.addr = args.addr
        self.port = args.port
        self.tls = ssl.create_default_context(cafile=args.cafile)
        # Handshakes (TLS, then HTTP) in flight at once: one process opening
        # 500 at a time would time its own handshakes out; waiting here is
        # not counted in the open timeout, but is in the reconnect times.
        self.opening = asyncio.Semaphore(32)

    async def ws_open(self, protocol=Counting):
        """A WebSocket to /ws/echo and its hello ({"instance", "pid", "host"})."""
        async with self.opening:
            return await self._ws_open(protocol)

    async def _ws_open(self, protocol):
        ws = await connect(
            f"wss://{self.host}/ws/echo",
            ssl=self.tls,
            host=self.addr,
            port=self.port,
            server_hostname=self.host,
            create_protocol=protocol,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
        )
        try:
            first = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT)
            return ws, json.loads(first)["hello"]
        except BaseException:
            ws.transport.abort()
            raise

    async def sse_open(self, path):
        """An SSE request for PATH; returns an SseStream once the 200 head is read."""
        async with self.opening:
            return await self._sse_open(path)

    async def _sse_open(self, path):
        return await sse_request(self.addr, self.port, self.host, path, tls=self.tls)


async def sse_request(addr, port, host, path, tls=None, timeout=OPEN_TIMEOUT):
    """An SSE request for PATH to ADDR:PORT, named HOST (the Host header, and
    the TLS server name when TLS, an SSL context, is given; plain TCP
    otherwise); returns an SseStream once the 200 head is read. Connecting
    and reading the head are each bounded by TIMEOUT seconds."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(addr, port, ssl=tls, server_hostname=host if tls is not None else None),
        timeout,
    )
    try:
        # What a browser's EventSource sends.
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                "Cache-Control: no-cache\r\nUser-Agent: corepool-streams-test\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if len(status) < 2 or status[1] != "200":
            raise SseError(f"status {lines[0]!r}")
        if not headers.get("content-type", "").startswith("text/event-stream"):
            raise SseError(f"content-type {headers.get('content-type')!r}")
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise SseError(f"not chunked (headers {headers}): a clean end cannot be told from a cut")
        return SseStream(reader, writer, headers)
    except BaseException:
        writer.transport.abort()
        raise


class SseError(Exception):
    pass


class SseStream:
    """One event stream's chunked body, read as SSE fields."""

    def __init__(self, reader, writer, headers):
        self.reader = reader
        self.writer = writer
        self.headers = headers
        self.buf = b""
        self.ended = False
        self.last_bytes_at = time.monotonic()
        self.longest_gap = 0.0

    async def _chunk(self):
        """The next chunk's bytes; b"" after the last chunk (a clean end)."""
        line = await self.reader.readline()
        if not line.endswith(b"\n"):
            raise SseError("connection closed before the last chunk")
        size = int(line.split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while True:
                trailer = await self.reader.readline()
                if not trailer.endswith(b"\n"):
                    raise SseError("connection closed in the trailer")
                if trailer in (b"\r\n", b"\n"):
                    self.ended = True
                    return b""
        data = await self.reader.readexactly(size)
        if await self.reader.readexactly(2) != b"\r\n":
            raise SseError("bad chunk framing")
        now = time.monotonic()
        self.longest_gap = max(self.longest_gap, now - self.last_bytes_at)
        self.last_bytes_at = now
        return data

    async def events(self):
        """Yields (kind, value): ("event", (name, data)), ("comment", text),
        ("retry", ms); returns at a clean end, raises on anything else."""
        name, data = "message", []
        while True:
            while b"\n" not in self.buf:
                chunk = await self._chunk()
                if not chunk:
                    if self.buf.strip():
                        raise SseError(f"stream ended inside an event: {self.buf[:80]!r}")
                    return
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\n", 1)
            line = raw.rstrip(b"\r").decode()
            if line == "":
                if data:
                    yield "event", (name, "\n".join(data))
                name, data = "message", []
            elif line.startswith(":"):
                yield "comment", line[1:]
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "retry":
                    yield "retry", int(value)

    def close(self):
        self.writer.transport.abort()


def close_code(exc):
    """1006 when no close frame came (the library's code for it)."""
    return exc.rcvd.code if exc.rcvd is not None else 1006


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


# ---- reach: every instance, one WebSocket and one SSE stream at a time, held open


async def reach(args):
    target = Target(args)
    want = set(range(args.ncpu))
    out = {"ws": {"instances": {}, "connections": 0, "echo_ok": 0, "errors": []},
           "sse": {"instances": {}, "connections": 0, "stats_events": 0, "hello_ms_max": 0,
                   "three_stats_ms_max": 0, "errors": []}}
    deadline = time.monotonic() + args.timeout
    held = []
    ws = out["ws"]
    while want - {int(k) for k in ws["instances"]} and time.monotonic() < deadline and ws["connections"] < 8 * args.ncpu:
        try:
            sock, hello = await target.ws_open()
            held.append(sock)
            ws["connections"] += 1
            msg = json.dumps({"reach": ws["connections"], "pad": "x" * random.randint(1, 200)})
            await sock.send(msg)
            reply = await asyncio.wait_for(sock.recv(), ECHO_TIMEOUT)
            if reply == msg:
                ws["echo_ok"] += 1
            else:
                ws["errors"].append(f"echo mismatch: sent {msg[:60]!r}, got {str(reply)[:60]!r}")
            key = str(hello["instance"])
            ws["instances"][key] = ws["instances"].get(key, 0) + 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            ws["errors"].append(f"websocket: {e!r}")
            await asyncio.sleep(0.2)
    for sock in held:
        await sock.close(1000)

    sse = out["sse"]
    held = []
    while want - {int(k) for k in sse["instances"]} and time.monotonic() < deadline and sse["connections"] < 8 * args.ncpu:
        t0 = time.monotonic()
        try:
            stream = await target.sse_open(f"/events?interval_ms={args.interval_ms}")
            held.append(stream)
            sse["connections"] += 1
            instance, stats = None, 0
            events = stream.events()
            while stats < 3:
                kind, value = await asyncio.wait_for(events.__anext__(), 5)
                if kind != "event":
                    continue
                name, data = value
                if name == "hello":
                    instance = json.loads(data)["instance"]
                    sse["hello_ms_max"] = max(sse["hello_ms_max"], round((time.monotonic() - t0) * 1000))
                elif name == "stats":
                    if json.loads(data)["instance"] != instance:
                        sse["errors"].append(f"stats of instance {data[:40]} on a stream of {instance}")
                    stats += 1
            sse["stats_events"] += stats
            sse["three_stats_ms_max"] = max(sse["three_stats_ms_max"], round((time.monotonic() - t0) * 1000))
            key = str(instance)
            sse["instances"][key] = sse["instances"].get(key, 0) + 1
        except Exception as e:  # noqa: BLE001
            sse["errors"].append(f"sse after {time.monotonic() - t0:.1f}s: {e!r}")
            await asyncio.sleep(0.2)
    for stream in held:
        stream.close()
    print(json.dumps(out, sort_keys=True))


# ---- hold: many streams across reloads and kills


class Hold:
    def __init__(self, args):
        self.args = args
        self.target = Target(args)
        self.dir = args.dir
        self.phase = "0 done"
        self.stopping = False
        self.t0 = time.monotonic()
        self.errors = []
        self.error_count = 0
        self.errors_by_kind = collections.Counter()
        # WebSockets
        self.ws_open_by = collections.Counter()
        self.ws_connects = 0
        self.ws_reconnects = 0
        self.ws_closes = collections.Counter()
        self.ws_closes_by_phase = collections.defaultdict(collections.Counter)
        self.ws_closes_by_instance = collections.Counter()
        self.ws_closes_without_frame = 0
        self.ws_closes_not_replied = 0
        self.ws_slots_closed = collections.defaultdict(set)
        self.ws_close_frames = collections.defaultdict(dict)
        self.ws_close_wait_max = 0.0
        self.ws_unanswered_at_close = 0
        self.ws_reconnected_and_echoed = set()
        self.ws_closed_slots = set()
        self.echo = 0
        self.echo_by_phase = collections.defaultdict(collections.Counter)
        self.echo_rtt_max = 0.0
        self.reconnect_ms_max = 0
        # SSE
        self.sse_open_by = collections.Counter()
        self.sse_connects = 0
        self.sse_reconnects = 0
        self.sse_ends_clean = 0
        self.sse_ends_unclean = 0
        self.sse_ends_by_phase = collections.Counter()
        self.sse_slots_ended = collections.defaultdict(set)
        self.sse_retry = collections.Counter()
        self.sse_events = 0
        self.sse_events_by_phase = collections.defaultdict(collections.Counter)
        self.sse_reconnected_and_evented = set()
        self.sse_ended_slots = set()

    def error(self, text):
        self.error_count += 1
        # The same failure on another slot, stream or attempt is the same kind.
        self.errors_by_kind[re.sub(r"\d+", "N", text)[:160]] += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{time.monotonic() - self.t0:.2f}s [{self.phase}] {text}")

    def reload_no(self):
        return self.phase.split()[0]

    async def ws_slot(self, slot):
        closed_at = None
        failures = 0
        while not self.stopping:
            try:
                ws, hello = await self.target.ws_open()
            except Exception as e:  # noqa: BLE001
                failures += 1
                self.error(f"ws {slot}: connect attempt {failures}: {e!r}")
                await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            failures = 0
            self.ws_connects += 1
            if closed_at is not None:
                self.ws_reconnects += 1
                self.reconnect_ms_max = max(self.reconnect_ms_max, round((time.monotonic() - closed_at) * 1000))
            instance = str(hello["instance"])
            self.ws_open_by[instance] += 1
            seq = 0
            pending = False
            try:
                while not self.stopping:
                    seq += 1
                    msg = json.dumps({"slot": slot, "seq": seq, "t": round(time.time(), 3)})
                    sent = time.monotonic()
                    pending = True
                    await ws.send(msg)
                    reply = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT)
                    pending = False
                    if reply != msg:
                        self.error(f"ws {slot}: echo mismatch: sent {msg!r}, got {str(reply)[:80]!r}")
                        continue
                    self.echo += 1
                    self.echo_by_phase[self.phase][instance] += 1
                    self.echo_rtt_max = max(self.echo_rtt_max, time.monotonic() - sent)
                    if slot in self.ws_closed_slots:
                        self.ws_reconnected_and_echoed.add(slot)
                    # About a second until the next one; a close or a stray
                    # message meanwhile is seen at once (cancelling recv is safe).
                    try:
                        stray = await asyncio.wait_for(ws.recv(), random.uniform(0.8, 1.2))
                        self.error(f"ws {slot}: unexpected message {str(stray)[:80]!r}")
                    except asyncio.TimeoutError:
                        pass
                if self.stopping:
                    await ws.close(1000)
            except websockets.exceptions.ConnectionClosed as e:
                closed_at = time.monotonic()
                code = close_code(e)
                proto = ws
                if proto.lost_at is None:
                    await asyncio.wait([asyncio.ensure_future(ws.wait_closed())], timeout=CLOSE_TIMEOUT + 1)
                if proto.close_frame_at is not None and proto.lost_at is not None:
                    self.ws_close_wait_max = max(self.ws_close_wait_max, proto.lost_at - proto.close_frame_at)
                if e.rcvd is None:
                    self.ws_closes_without_frame += 1
                elif e.sent is None:
                    self.ws_closes_not_replied += 1
                if proto.close_frame_at is not None:
                    # When the instance's close frames came, first and last.
                    span = self.ws_close_frames[self.reload_no()].setdefault(instance, [proto.close_frame_at] * 2)
                    span[0] = min(span[0], proto.close_frame_at)
                    span[1] = max(span[1], proto.close_frame_at)
                self.ws_closes[str(code)] += 1
                self.ws_closes_by_phase[self.reload_no()][str(code)] += 1
                self.ws_closes_by_instance[instance] += 1
                self.ws_slots_closed[self.reload_no()].add(slot)
                self.ws_closed_slots.add(slot)
                self.ws_reconnected_and_echoed.discard(slot)
                if pending:
                    self.ws_unanswered_at_close += 1
                # A client's reconnect delay: socket.io's default (1 s,
                # randomized by half), so that reconnects spread out.
                await asyncio.sleep(random.uniform(0.5, 1.5))
            except Exception as e:  # noqa: BLE001 - a timeout or anything else: a failure
                if isinstance(e, asyncio.TimeoutError):
                    self.error(f"ws {slot}: no echo within {ECHO_TIMEOUT}s (instance {instance})")
                else:
                    self.error(f"ws {slot}: {e!r}")
                ws.transport.abort()
                closed_at = time.monotonic()
                self.ws_closed_slots.add(slot)
                self.ws_reconnected_and_echoed.discard(slot)
            finally:
                self.ws_open_by[instance] -= 1

    async def sse_slot(self, slot):
        path = f"/events?interval_ms={self.args.interval_ms}"
        reconnect = False
        failures = 0
        wait = 1.0
        while not self.stopping:
            try:
                stream = await self.target.sse_open(path)
            except Exception as e:  # noqa: BLE001
                failures += 1
                self.error(f"sse {slot}: connect attempt {failures}: {e!r}")
                await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            failures = 0
            self.sse_connects += 1
            if reconnect:
                self.sse_reconnects += 1
            instance = None
            retry = None
            ended = False
            try:
                async for kind, value in stream.events():
                    if kind == "retry":
                        retry = value
                    elif kind == "event":
                        name, data = value
                        if name == "hello":
                            instance = str(json.loads(data)["instance"])
                            self.sse_open_by[instance] += 1
                        elif name == "stats":
                            self.sse_events += 1
                            self.sse_events_by_phase[self.phase][instance] += 1
                            if slot in self.sse_ended_slots:
                                self.sse_reconnected_and_evented.add(slot)
                    if self.stopping:
                        break
                else:
                    # The end of the body: clean only after a retry: hint.
                    ended = True
                    if retry is None:
                        self.error(f"sse {slot}: stream of instance {instance} ended without a retry: hint")
                    else:
                        self.sse_ends_clean += 1
                        self.sse_retry[str(retry)] += 1
                        self.sse_ends_by_phase[self.reload_no()] += 1
                        self.sse_slots_ended[self.reload_no()].add(slot)
                        wait = retry / 1000
            except Exception as e:  # noqa: BLE001
                ended = True
                self.sse_ends_unclean += 1
                self.error(f"sse {slot}: stream of instance {instance} failed: {e!r}")
            finally:
                if ended:
                    # However it ended, it has to be back with events.
                    reconnect = True
                    self.sse_ended_slots.add(slot)
                    self.sse_reconnected_and_evented.discard(slot)
                stream.close()
                if instance is not None:
                    self.sse_open_by[instance] -= 1
            if not self.stopping:
                # EventSource waits the retry: time before reconnecting.
                await asyncio.sleep(wait)

    def status(self):
        return {
            "seconds": round(time.monotonic() - self.t0, 1),
            "phase": self.phase,
            "ws_open": sum(self.ws_open_by.values()),
            "ws_open_by_instance": {k: v for k, v in sorted(self.ws_open_by.items()) if v},
            "ws_closes": dict(self.ws_closes),
            "ws_closes_by_instance": dict(self.ws_closes_by_instance),
            "ws_reconnected_and_echoed": len(self.ws_reconnected_and_echoed),
            "ws_closed_slots": len(self.ws_closed_slots),
            "echo_by_phase": {p: dict(c) for p, c in self.echo_by_phase.items()},
            "sse_open": sum(self.sse_open_by.values()),
            "sse_open_by_instance": {k: v for k, v in sorted(self.sse_open_by.items()) if v},
            "sse_reconnected_and_evented": len(self.sse_reconnected_and_evented),
            "sse_ended_slots": len(self.sse_ended_slots),
            "sse_events_by_phase": {p: dict(c) for p, c in self.sse_events_by_phase.items()},
            "error_count": self.error_count,
        }

    def summary(self):
        s = self.status()
        s.update({
            "ws_slots": self.args.ws,
            "ws_connects": self.ws_connects,
            "ws_reconnects": self.ws_reconnects,
            "ws_closes_total": sum(self.ws_closes.values()),
            "ws_closes_by_phase": {p: dict(c) for p, c in self.ws_closes_by_phase.items()},
            "ws_slots_closed_by_phase": {p: len(v) for p, v in self.ws_slots_closed.items()},
            "ws_closes_without_frame": self.ws_closes_without_frame,
            "ws_closes_not_replied": self.ws_closes_not_replied,
            "ws_close_wait_ms_max": round(self.ws_close_wait_max * 1000),
            "ws_close_frames_spread_ms": {p: {i: round((b - a) * 1000) for i, (a, b) in v.items()}
                                          for p, v in self.ws_close_frames.items()},
            "ws_unanswered_at_close": self.ws_unanswered_at_close,
            "ws_reconnect_ms_max": self.reconnect_ms_max,
            "echo_round_trips": self.echo,
            "echo_rtt_ms_max": round(self.echo_rtt_max * 1000),
            "sse_slots": self.args.sse,
            "sse_connects": self.sse_connects,
            "sse_reconnects": self.sse_reconnects,
            "sse_ends_clean": self.sse_ends_clean,
            "sse_ends_unclean": self.sse_ends_unclean,
            "sse_ends_by_phase": dict(self.sse_ends_by_phase),
            "sse_slots_ended_by_phase": {p: len(v) for p, v in self.sse_slots_ended.items()},
            "sse_retry_ms": dict(self.sse_retry),
            "sse_events": self.sse_events,
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind.most_common(20)),
        })
        return s

    def write(self, name, doc):
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
        os.replace(tmp, os.path.join(self.dir, name))

    async def watch(self):
        """Follows D/phase and D/stop; writes D/status.json."""
        deadline = self.t0 + self.args.max_seconds
        while True:
            try:
                with open(os.path.join(self.dir, "phase")) as f:
                    self.phase = f.read().strip() or self.phase
            except FileNotFoundError:
                pass
            self.write("status.json", self.status())
            if os.path.exists(os.path.join(self.dir, "stop")):
                return
            if time.monotonic() > deadline:
                self.error(f"no stop file after {self.args.max_seconds}s: stopping")
                return
            await asyncio.sleep(0.2)

    async def run(self):
        raise_nofile(2 * (self.args.ws + self.args.sse) + 256)
        tasks = []
        # A few at a time, as many users arriving: not 500 TLS handshakes at once.
        for k in range(self.args.ws):
            tasks.append(asyncio.ensure_future(self.ws_slot(k)))
            if k % 25 == 24:
                await asyncio.sleep(0.05)
        for k in range(self.args.sse):
            tasks.append(asyncio.ensure_future(self.sse_slot(k)))
        await self.watch()
        self.stopping = True
        done, pending = await asyncio.wait(tasks, timeout=ECHO_TIMEOUT + CLOSE_TIMEOUT)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                self.error(f"a client task failed: {t.exception()!r}")
        self.write("summary.json", self.summary())


# ---- idle: one WebSocket and one SSE stream with nothing to say


async def idle_ws(target, seconds):
    out = {"open_after_idle": False, "echo_before": False, "echo_after": False, "pings": 0, "close": None}
    ws, hello = await target.ws_open()
    out["instance"] = hello["instance"]
    try:
        await ws.send("before")
        out["echo_before"] = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT) == "before"
        t0 = time.monotonic()
        try:
            # Nothing may arrive (the server's pings are answered by the library).
            stray = await asyncio.wait_for(ws.recv(), seconds)
            out["stray"] = str(stray)[:80]
        except asyncio.TimeoutError:
            pass
        out["idle_s"] = round(time.monotonic() - t0, 1)
        out["pings"] = ws.pings_received
        out["open_after_idle"] = ws.open
        await ws.send("after")
        out["echo_after"] = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT) == "after"
        await ws.close(1000)
    except websockets.exceptions.ConnectionClosed as e:
        out["close"] = close_code(e)
        out["pings"] = ws.pings_received
    return out


class Silent(Counting):
    """A dead peer as the server sees it: it answers no ping."""

    async def pong(self, data=b""):
        return


async def silent_ws(target, seconds):
    """A WebSocket whose client stops sending anything, pongs included: the
    server is to cut it after two ping intervals."""
    out = {"cut": False, "close": None}
    ws, hello = await target.ws_open(Silent)
    out["instance"] = hello["instance"]
    t0 = time.monotonic()
    try:
        stray = await asyncio.wait_for(ws.recv(), seconds)
        out["stray"] = str(stray)[:80]
    except websockets.exceptions.ConnectionClosed as e:
        out["cut"] = True
        out["close"] = close_code(e)
    except asyncio.TimeoutError:
        pass
    out["after_s"] = round(time.monotonic() - t0, 1)
    out["pings"] = ws.pings_received
    ws.transport.abort()
    return out


async def idle_sse(target, seconds):
    # The first stats event comes at once, the next one interval_ms later:
    # until then the stream carries only corepool's keep-alive comments.
    interval_ms = int((seconds + 2) * 1000)
    out = {"comments": 0, "events": [], "event_after_idle": False, "error": None}
    stream = await target.sse_open(f"/events?interval_ms={interval_ms}")
    t0 = time.monotonic()
    try:
        events = stream.events()
        while True:
            kind, value = await asyncio.wait_for(events.__anext__(), seconds + 6)
            if kind == "comment":
                out["comments"] += 1
            elif kind == "event":
                out["events"].append(value[0])
                if value[0] == "hello":
                    out["instance"] = json.loads(value[1])["instance"]
                elif value[0] == "stats" and len(out["events"]) > 2:
                    out["event_after_idle"] = True
                    break
    except Exception as e:  # noqa: BLE001
        out["error"] = repr(e)
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["longest_gap_ms"] = round(stream.longest_gap * 1000)
    stream.close()
    return out


async def idle(args):
    target = Target(args)
    results = await asyncio.gather(idle_ws(target, args.seconds), idle_sse(target, args.seconds),
                                   silent_ws(target, args.seconds), return_exceptions=True)
    out = {k: r if isinstance(r, dict) else {"error": repr(r)} for k, r in zip(("ws", "sse", "silent"), results)}
    print(json.dumps(out, sort_keys=True))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="app.test")
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cafile", default="/var/tmp/pebble-root.pem")
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("reach")
    r.add_argument("--ncpu", type=int, required=True)
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--interval-ms", type=int, default=200)
    h = sub.add_parser("hold")
    h.add_argument("--ws", type=int, required=True)
    h.add_argument("--sse", type=int, required=True)
    h.add_argument("--dir", required=True)
    h.add_argument("--interval-ms", type=int, default=1000)
    h.add_argument("--max-seconds", type=float, default=300)
    i = sub.add_parser("idle")
    i.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    if args.mode == "reach":
        asyncio.run(reach(args))
    elif args.mode == "hold":
        asyncio.run(Hold(args).run())
    else:
        asyncio.run(idle(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
