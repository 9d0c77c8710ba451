"""The soak's long-lived clients: WebSockets and event streams held open through every fault.

Runs beside load.py, in the client's network namespace (tests/chaos/chaos.py
starts it), against the front's nginx over plain HTTP, until SECONDS have
passed: --ws slots on ws://FRONT/ws/echo, each sending a message about every
second and checking that the same message comes back, and --sse slots on
/events?interval_ms=1000, each reading its instance's stats events. A slot
whose connection ends reconnects as browsers' clients do: a WebSocket after
0.5 to 1.5 s (socket.io's default), a stream after its retry: hint
(EventSource). A connection with no echo or event for STALL_S (its instance
hung, or its host cut off) is dropped by the client ("stall"). A slot whose
last connection ended just before the end reconnects after it (up to LATE_S)
until a connection has carried data, so every slot's last line says whether
it came back.

Every connection is written as one JSON line when it ends: kind, slot, the
instance its hello named (host/i), when it opened and ended, how it ended
("stop": closed by this client at the end; a WebSocket's close code, "1006"
when no close frame came; an event stream's "clean" end after a retry: hint,
or "cut"; "stall"), its echoes or events, and the mismatches (an echo not the
message sent, a stats event of another instance). A failed connect is a line
too ("connect_error"). tests/chaos/check.py's streams() judges them.

The chunked SSE reader and the WebSocket protocol that notes close frames
are tests/system/streams_client.py's, shared.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import websockets.exceptions  # noqa: E402
from load import add_target_args  # noqa: E402
from streams_client import Counting, SseError, close_code, sse_request  # noqa: E402
from websockets.legacy.client import connect  # noqa: E402

# nginx tries a handshake on the next instance for up to
# proxy_next_upstream_timeout (30 s, nginx/proxy.conf): a client waits longer.
OPEN_TIMEOUT = 40
# No echo, or no event at an interval of 1 s, for this long: the client gives
# the connection up (a hung instance, a cut host) and opens another.
STALL_S = 10
CLOSE_TIMEOUT = 5
# A slot whose connection ended just before the end reconnects for up to this
# long after it, so that its last connection shows it came back.
LATE_S = 45


class Streams:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.stop_at = time.time() + args.seconds

    def write(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def left(self):
        return self.stop_at - time.time()

    def going_on(self, stopped):
        """Another connection for a slot: until the end, and after it until
        one has carried data and been closed by us (within LATE_S)."""
        return self.left() > 0 or not stopped and self.left() > -LATE_S

    async def ws_slot(self, slot):
        a = self.args
        stopped = False
        while self.going_on(stopped):
            t_try = time.time()
            ws = None
            try:
                ws = await connect("ws://%s/ws/echo" % a.host_header, host=a.host, port=a.port, create_protocol=Counting,
                                   open_timeout=OPEN_TIMEOUT, ping_interval=None, close_timeout=CLOSE_TIMEOUT)
                hello = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))["hello"]
            except Exception as e:  # noqa: BLE001 - a failed connect is a result
                if ws is not None:
                    ws.transport.abort()
                self.write({"kind": "ws", "slot": slot, "t": t_try, "connect_error": "%s: %s" % (type(e).__name__, e)})
                await asyncio.sleep(1)
                continue
            rec = {"kind": "ws", "slot": slot, "inst": "%s/%s" % (hello["host"], hello["instance"]), "opened": time.time(),
                   "n": 0, "bad": 0}
            seq = 0
            try:
                while self.left() > 0 or rec["n"] == 0:
                    seq += 1
                    msg = json.dumps({"slot": slot, "seq": seq, "pad": "x" * random.randint(0, 200)})
                    await ws.send(msg)
                    reply = await asyncio.wait_for(ws.recv(), STALL_S)
                    if reply == msg:
                        rec["n"] += 1
                        rec["last_ok"] = time.time()
                    else:
                        rec["bad"] += 1
                    await asyncio.sleep(min(random.uniform(0.8, 1.2), max(0.0, self.left())))
                rec["end"] = "stop"
            except websockets.exceptions.ConnectionClosed as e:
                rec["end"] = str(close_code(e))
            except asyncio.TimeoutError:
                rec["end"] = "stall"
            except Exception as e:  # noqa: BLE001 - judged as an unexplained end
                rec["end"] = "error"
                rec["err"] = "%s: %s" % (type(e).__name__, e)
            rec["ended"] = time.time()
            if rec["end"] == "stop":
                try:
                    await ws.close(1000)
                except Exception:  # noqa: BLE001 - the soak is over for it
                    ws.transport.abort()
            else:
                ws.transport.abort()
            self.write(rec)
            stopped = rec["end"] == "stop"
            if not stopped:
                await asyncio.sleep(random.uniform(0.5, 1.5))

    async def sse_open(self):
        a = self.args
        return await sse_request(a.host, a.port, a.host_header, "/events?interval_ms=1000", timeout=OPEN_TIMEOUT)

    async def sse_slot(self, slot):
        stopped = False
        while self.going_on(stopped):
            t_try = time.time()
            stream = None
            try:
                stream = await self.sse_open()
                events = stream.events()
                kind, (name, data) = await asyncio.wait_for(events.__anext__(), OPEN_TIMEOUT)
                if (kind, name) != ("event", "hello"):
                    raise SseError("first event %r %r" % (kind, name))
                hello = json.loads(data)
            except Exception as e:  # noqa: BLE001
                if stream is not None:
                    stream.close()
                self.write({"kind": "sse", "slot": slot, "t": t_try, "connect_error": "%s: %s" % (type(e).__name__, e)})
                await asyncio.sleep(1)
                continue
            rec = {"kind": "sse", "slot": slot, "inst": "%s/%s" % (hello["host"], hello["instance"]), "opened": time.time(),
                   "n": 0, "bad": 0}
            retry = None
            try:
                while True:
                    wait = STALL_S if rec["n"] == 0 else min(STALL_S, max(0.1, self.left()))
                    kind, value = await asyncio.wait_for(events.__anext__(), wait)
                    if kind == "retry":
                        retry = value
                    elif kind == "event" and value[0] == "stats":
                        if json.loads(value[1]).get("instance") == hello["instance"]:
                            rec["n"] += 1
                            rec["last_ok"] = time.time()
                        else:
                            rec["bad"] += 1
            except StopAsyncIteration:
                # The body's last chunk: an end the server chose, after its hint.
                rec["end"] = "clean" if retry is not None else "clean-without-retry"
            except asyncio.TimeoutError:
                rec["end"] = "stop" if self.left() <= 0 and rec["n"] > 0 else "stall"
            except (SseError, OSError, asyncio.IncompleteReadError) as e:
                rec["end"] = "cut"
                rec["err"] = "%s: %s" % (type(e).__name__, e)
            except Exception as e:  # noqa: BLE001 - judged as an unexplained end
                rec["end"] = "error"
                rec["err"] = "%s: %s" % (type(e).__name__, e)
            stream.close()
            rec["ended"] = time.time()
            self.write(rec)
            stopped = rec["end"] == "stop"
            if not stopped:
                await asyncio.sleep(min(retry / 1000.0, 3.0) if retry is not None else random.uniform(0.5, 1.5))

    async def run(self):
        await asyncio.gather(*[self.ws_slot(k) for k in range(self.args.ws)], *[self.sse_slot(k) for k in range(self.args.sse)])


def main():
    p = argparse.ArgumentParser()
    add_target_args(p)
    p.add_argument("--ws", type=int, default=4)
    p.add_argument("--sse", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.out, "a") as out:
        asyncio.run(Streams(args, out).run())


if __name__ == "__main__":
    main()
