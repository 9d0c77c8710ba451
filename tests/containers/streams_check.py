#!/usr/bin/env python3
"""WebSockets and SSE through the compose layout's nginx (Debian's python3-websockets).

  streams_check.py reach BASE N      N WebSockets and N SSE streams: which hosts
                                     answered (JSON on stdout), every echo checked
  streams_check.py stop BASE N CMD.. N WebSockets open, then CMD (stop a replica):
                                     the close codes seen, and each closed socket
                                     reconnected and echoing again
BASE is ws://HOST:PORT (SSE goes to http:// on the same address). Bounded:
every wait has a timeout; loopback only.
"""
import asyncio
import json
import subprocess
import sys
import urllib.request

import websockets

TIMEOUT = 10


async def open_ws(base):
    ws = await asyncio.wait_for(websockets.connect(base + "/ws/echo", open_timeout=TIMEOUT), TIMEOUT)
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["hello"]
    return ws, hello["host"]


async def echo(ws, text):
    await ws.send(text)
    got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    if got != text:
        raise AssertionError(f"echo: sent {text!r}, got {got!r}")


def sse_host(base):
    url = base.replace("ws://", "http://", 1) + "/events?interval_ms=200"
    req = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        if not r.headers.get("Content-Type", "").startswith("text/event-stream"):
            raise AssertionError(f"not an event stream: {r.headers}")
        event, host, stats = None, None, 0
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "hello":
                host = json.loads(line[6:])["host"]
            elif line.startswith("data: ") and event == "stats":
                stats += 1
                if stats == 2:
                    return host


async def reach(base, n):
    sockets = [await open_ws(base) for _ in range(n)]
    for k, (ws, _) in enumerate(sockets):
        await echo(ws, f"m{k}")
    hosts = sorted({h for _, h in sockets})
    for ws, _ in sockets:
        await ws.close()
    sse = sorted({await asyncio.to_thread(sse_host, base) for _ in range(n)})
    print(json.dumps({"websocket_hosts": hosts, "sse_hosts": sse}))


async def stop(base, n, cmd):
    sockets = [await open_ws(base) for _ in range(n)]
    closes = {}

    async def watch(ws):
        try:
            await asyncio.wait_for(ws.recv(), 60)
            return "message"
        except websockets.exceptions.ConnectionClosed as e:
            return str(e.rcvd.code) if e.rcvd else "1006"
        except asyncio.TimeoutError:
            return "open"

    watchers = [asyncio.create_task(watch(ws)) for ws, _ in sockets]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL)
    await proc.wait()
    # The stopped replica's sockets have ended by now; the others stay open.
    done, _ = await asyncio.wait(watchers, timeout=TIMEOUT)
    reconnected = 0
    for t in done:
        code = t.result()
        closes[code] = closes.get(code, 0) + 1
        ws, host = await open_ws(base)
        await echo(ws, "again")
        reconnected += 1
        await ws.close()
    for t in watchers:
        t.cancel()
    for ws, _ in sockets:
        await ws.close()
    print(json.dumps({"closes": closes, "reconnected": reconnected, "still_open": n - len(done), "stop_status": proc.returncode}))


def main():
    mode, base, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "reach":
        asyncio.run(reach(base, n))
    elif mode == "stop":
        asyncio.run(stop(base, n, sys.argv[4:]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
