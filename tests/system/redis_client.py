#!/usr/bin/python3
"""Chat clients for tests/system/redis.sh: N WebSockets in one room of the
demo's chat (wss://HOST/chat/ROOM/ws?hello=1) through the packaged nginx
site, spread over the instances by nginx, with Debian's python3-websockets.

  chat --clients N --room R --dir D
      Opens N WebSockets and keeps them open: a closed one (1012 on a
      reload, 1013 when its message could not be sent, 1006 cut) reconnects
      after 0.5 to 1.5 s, and a refused handshake (503 while Redis is down)
      is retried the same way. The shell asks for messages by writing
      "BATCH COUNT RATE" to D/send: COUNT messages "BATCH:SEQ:SENT_AT" from
      random open clients at RATE a second. A batch is done 5 s after its
      last message was sent or once every client that was open before it
      began has all of it. D/status.json is rewritten every 0.2 s; once
      D/stop exists everything is closed and D/summary.json written.

Per batch the summary says, for the clients open (on the same connection)
from before the batch's first message to its end ("eligible"), how many
messages each received, which were missing, duplicates (none may be), and
publish-to-delivery latencies. The exit status is 0 once a summary is
written: the shell judges the figures.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streams_client  # noqa: E402  (Target: TLS to the site; raise_nofile)
import websockets.exceptions  # noqa: E402
from websockets.legacy.client import connect  # noqa: E402

DONE_AFTER_S = 5.0


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 2)


class Chat:
    def __init__(self, args):
        self.args = args
        self.target = streams_client.Target(args)
        self.dir = args.dir
        self.open = {}  # slot -> (ws, instance, opened_at)
        self.closes = collections.Counter()
        # close code -> slot -> how many times that slot was closed with it
        self.closes_by_slot = collections.defaultdict(collections.Counter)
        self.refused = collections.Counter()
        self.reconnects = 0
        self.gaps = 0
        self.errors = []
        # batch -> {"count", "started", "last_sent", "sent", "not_sent", "done"}
        self.batches = {}
        # (slot, connection no) -> batch -> set of seqs; and latencies per batch
        self.received = collections.defaultdict(lambda: collections.defaultdict(set))
        self.dups = collections.Counter()
        self.latency = collections.defaultdict(list)
        self.conn_no = collections.Counter()
        self.opened_at = {}  # (slot, conn no) -> time
        self.closed_at = {}

    def error(self, text):
        if len(self.errors) < 30:
            self.errors.append(text)

    async def open_ws(self):
        async with self.target.opening:
            ws = await connect(
                f"wss://{self.target.host}/chat/{self.args.room}/ws?hello=1",
                ssl=self.target.tls,
                host=self.target.addr,
                port=self.target.port,
                server_hostname=self.target.host,
                open_timeout=streams_client.OPEN_TIMEOUT,
                ping_interval=None,
                close_timeout=streams_client.CLOSE_TIMEOUT,
                max_size=2**20,
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))["hello"]
            # Across hosts instance 0 exists on each: "host/instance" then.
            return ws, f"{hello['host']}/{hello['instance']}" if self.args.by_host else hello["instance"]

    async def slot(self, slot):
        first = True
        while not os.path.exists(os.path.join(self.dir, "stop")):
            if not first:
                await asyncio.sleep(random.uniform(0.5, 1.5))
            first = False
            try:
                ws, instance = await self.open_ws()
            except websockets.exceptions.InvalidStatusCode as e:
                self.refused[str(e.status_code)] += 1
                continue
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
                self.refused[type(e).__name__] += 1
                continue
            except Exception as e:  # a slot never dies: what happened is reported
                self.refused[type(e).__name__] += 1
                self.error(f"slot {slot} connecting: {e!r}")
                continue
            self.conn_no[slot] += 1
            key = (slot, self.conn_no[slot])
            if self.conn_no[slot] > 1:
                self.reconnects += 1
            self.opened_at[key] = time.monotonic()
            self.open[slot] = (ws, instance)
            try:
                async for text in ws:
                    now = time.time()
                    if text.startswith("{"):
                        if json.loads(text).get("gap"):
                            self.gaps += 1
                        continue
                    batch, seq, sent = text.split(":")
                    got = self.received[key][batch]
                    if seq in got:
                        self.dups[batch] += 1
                    got.add(seq)
                    self.latency[batch].append((now - float(sent)) * 1000)
            except websockets.exceptions.ConnectionClosed as e:
                code = str(streams_client.close_code(e))
                self.closes[code] += 1
                self.closes_by_slot[code][str(slot)] += 1
            except Exception as e:
                self.error(f"slot {slot} receiving: {e!r}")
                ws.transport.abort()
            finally:
                self.open.pop(slot, None)
                self.closed_at[key] = time.monotonic()
        ws = self.open.pop(slot, (None,))[0]
        if ws is not None:
            await ws.close()

    async def send_batch(self, batch, count, rate):
        b = {"count": count, "started": time.monotonic(), "last_sent": None, "sent": 0, "not_sent": 0, "done": False}
        self.batches[batch] = b
        for seq in range(count):
            due = b["started"] + seq / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            live = list(self.open.values())
            if not live:
                b["not_sent"] += 1
                continue
            ws = random.choice(live)[0]
            try:
                await ws.send(f"{batch}:{seq}:{time.time():.6f}")
                b["sent"] += 1
            except websockets.exceptions.ConnectionClosed:
                b["not_sent"] += 1
        b["last_sent"] = time.monotonic()

    def eligible(self, batch):
        """Connections open from before the batch began to now (or its end)."""
        b = self.batches[batch]
        return [k for k, t in self.opened_at.items() if t < b["started"] and self.closed_at.get(k, float("inf")) > (b["last_sent"] or time.monotonic())]

    def batch_view(self, batch):
        b = self.batches[batch]
        keys = self.eligible(batch)
        counts = [len(self.received[k][batch]) for k in keys]
        return {
            "count": b["count"],
            "sent": b["sent"],
            "not_sent": b["not_sent"],
            "eligible": len(keys),
            "min_received": min(counts) if counts else None,
            "max_received": max(counts) if counts else None,
            "missing": sum(b["sent"] - c for c in counts),
            "duplicates": self.dups[batch],
            "latency_ms_p50": pct(self.latency[batch], 0.5),
            "latency_ms_p99": pct(self.latency[batch], 0.99),
            "latency_ms_max": pct(self.latency[batch], 1.0),
            "done": b["done"],
        }

    def status(self):
        by_instance = collections.Counter(str(i) for _, i in self.open.values())
        return {
            "open": len(self.open),
            "open_by_instance": dict(by_instance),
            "batches": {k: self.batch_view(k) for k in self.batches},
            "closes": dict(self.closes),
            "closes_by_slot": {c: dict(v) for c, v in self.closes_by_slot.items()},
            "refused": dict(self.refused),
            "reconnects": self.reconnects,
            "gaps": self.gaps,
            "errors": self.errors,
        }

    def write(self, name, doc):
        tmp = os.path.join(self.dir, name + ".new")
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
        os.replace(tmp, os.path.join(self.dir, name))

    async def watch(self):
        sending = []
        while not os.path.exists(os.path.join(self.dir, "stop")):
            req = os.path.join(self.dir, "send")
            if os.path.exists(req):
                with open(req) as f:
                    batch, count, rate = f.read().split()
                os.remove(req)
                sending.append(asyncio.create_task(self.send_batch(batch, int(count), float(rate))))
            for k, b in self.batches.items():
                if b["done"] or b["last_sent"] is None:
                    continue
                v = self.batch_view(k)
                if time.monotonic() - b["last_sent"] > DONE_AFTER_S or (v["eligible"] and v["min_received"] == b["sent"]):
                    b["done"] = True
            self.write("status.json", self.status())
            await asyncio.sleep(0.2)
        for t in sending:
            t.cancel()

    async def run(self):
        streams_client.raise_nofile(self.args.clients + 256)
        slots = [asyncio.create_task(self.slot(i)) for i in range(self.args.clients)]
        await self.watch()
        await asyncio.gather(*(ws.close() for ws, _ in list(self.open.values())), return_exceptions=True)
        await asyncio.wait(slots, timeout=15)
        for t in slots:
            t.cancel()
        self.write("summary.json", self.status())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cafile", required=True)
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("chat")
    c.add_argument("--clients", type=int, required=True)
    c.add_argument("--room", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--max-seconds", type=float, default=300)
    c.add_argument("--by-host", action="store_true", help="count the clients by host/instance (several hosts)")
    args = p.parse_args()
    chat = Chat(args)

    async def bounded():
        try:
            await asyncio.wait_for(chat.run(), args.max_seconds)
        except asyncio.TimeoutError:
            chat.error(f"ran past --max-seconds {args.max_seconds}")
            chat.write("summary.json", chat.status())

    asyncio.run(bounded())


if __name__ == "__main__":
    main()
