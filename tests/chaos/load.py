"""The soak's load: what users send, bounded and local, every request accounted for.

Runs in the client's network namespace (tests/chaos/run) against the front's
nginx, until SECONDS have passed: light GETs of / (not cacheable), GETs of a
cacheable /compute?n=1000, POSTs of a 4 KiB body to /v1/hash and heavy GETs of
/compute with a fresh n each (always a pool job). Each worker keeps its
connection alive and paces itself; each request carries an X-Request-Id
(also in its query string, so nginx's error log names it) and is written as
one JSON line: id, kind, method, start and end (epoch seconds), status (0: no
answer, with the error), the instance that answered (the body of /, or the
X-Request-Id echoed) and the body's check (a POST's sha256 must be the
body's).
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import threading
import time

BODY = random.Random(7).randbytes(4096)
BODY_SHA = hashlib.sha256(BODY).hexdigest()
# kind -> (method, path, workers, requests per second per worker)
KINDS = {
    "get": ("GET", "/", 3, 10.0),
    "cached": ("GET", "/compute?n=1000", 1, 10.0),
    "post": ("POST", "/v1/hash?alg=sha256", 3, 6.0),
    "heavy": ("GET", "/compute?n=20000000", 2, 2.0),
}
# Above nginx's proxy_read_timeout (60 s) and its retries: nginx answers first.
TIMEOUT_S = 120


# A kept-alive connection found closed before any answer came.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def send(conn, kind, method, url, rid, args, rec):
    """One request and its answer, into REC."""
    headers = {"X-Request-Id": rid, "Host": args.host_header}
    body = None
    if method == "POST":
        body = BODY
        headers["Content-Type"] = "application/octet-stream"
    conn.request(method, url, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    rec["status"] = resp.status
    rec["echo"] = resp.getheader("X-Request-Id") == rid
    rec["cache"] = resp.getheader("X-Cache-Status")
    if kind == "get" and resp.status == 200:
        j = json.loads(data)
        rec["inst"] = "%s/%s" % (j.get("host"), j.get("instance"))
    if kind == "post" and resp.status == 200:
        rec["ok_body"] = BODY_SHA in data.decode()
    rec["close"] = resp.getheader("Connection", "").lower() == "close"


def worker(kind, k, args, out, lock, stop_at):
    method, path, _, rate = KINDS[kind]
    conn = None
    seq = 0
    next_t = time.time() + random.random() / rate
    while time.time() < stop_at:
        now = time.time()
        if next_t > now:
            time.sleep(next_t - now)
        next_t = max(next_t + 1.0 / rate, time.time() - 1.0)
        seq += 1
        rid = "%s-%s-%d-%d" % (args.tag, kind, k, seq)
        url = path + ("&" if "?" in path else "?") + "rid=" + rid
        if kind == "heavy":
            # A fresh n: never in the cache, always a pool job.
            url = "/compute?n=%d&rid=%s" % (20000000 + int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16) % 10000000, rid)
        rec = {"id": rid, "kind": kind, "method": method, "t0": time.time()}
        for attempt in (1, 2):
            reused = conn is not None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(args.host, args.port, timeout=TIMEOUT_S)
                send(conn, kind, method, url, rid, args, rec)
                if rec.pop("close", False):
                    conn.close()
                    conn = None
                break
            except Exception as e:  # a connection error is a result, not a crash
                if conn is not None:
                    conn.close()
                conn = None
                # What every HTTP client does (curl, browsers; RFC 9112 9.3.1):
                # a kept-alive connection the server closed before any answer
                # (nginx closes idle ones when it reloads, or on
                # keepalive_timeout) is retried once on a new one. The server
                # never read that request, so this holds for a POST too.
                if attempt == 1 and reused and isinstance(e, STALE):
                    rec["retried"] = "%s: %s" % (type(e).__name__, e)
                    continue
                rec["status"] = 0
                rec["err"] = "%s: %s" % (type(e).__name__, e)
                break
        rec["t1"] = time.time()
        with lock:
            out.write(json.dumps(rec) + "\n")
            out.flush()


def add_target_args(p):
    """The options load.py and streams.py share: the front to reach, the
    name to send it, and how long to go on."""
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--host-header", default="localhost")
    p.add_argument("--seconds", type=float, required=True)


def main():
    p = argparse.ArgumentParser()
    add_target_args(p)
    p.add_argument("--tag", required=True, help="request ids start with it (the seed)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    stop_at = time.time() + args.seconds
    lock = threading.Lock()
    with open(args.out, "a") as out:
        threads = [threading.Thread(target=worker, args=(kind, k, args, out, lock, stop_at))
                   for kind, (_, _, n, _) in KINDS.items() for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    os.sync()


if __name__ == "__main__":
    main()
