#!/usr/bin/env python3
"""Hostile input through the public nginx site, run inside the test container:
request smuggling pairs, oversize head and body, and slowloris. Prints one
JSON object with what each got; the caller asserts on it."""

import json
import socket
import ssl
import sys
import time

HOST = sys.argv[1]  # the site's name; nginx listens on 127.0.0.1
CA = sys.argv[2]
SLOW = int(sys.argv[3]) if len(sys.argv) > 3 else 50


def tls():
    ctx = ssl.create_default_context(cafile=CA)
    s = socket.create_connection(("127.0.0.1", 443), timeout=15)
    return ctx.wrap_socket(s, server_hostname=HOST)


def exchange(raw):
    """Sends raw bytes over TLS; returns the status codes of every response until close."""
    s = tls()
    s.sendall(raw)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    s.close()
    text = data.decode("latin-1")
    return [int(text[i + 9:i + 12]) for i in range(len(text)) if text.startswith("HTTP/1.1 ", i)]


def get_ok():
    s = tls()
    s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    head = s.recv(64).decode("latin-1")
    s.close()
    return head.startswith("HTTP/1.1 200")


out = {}
h = f"Host: {HOST}\r\n"
out["cl_te"] = exchange(f"POST /v1/hash HTTP/1.1\r\n{h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{h}\r\n".encode())
out["two_cl"] = exchange(f"POST /v1/hash HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".encode())
out["bad_chunk"] = exchange(f"POST /v1/hash HTTP/1.1\r\n{h}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".encode())
out["big_header"] = exchange(f"GET / HTTP/1.1\r\n{h}X-Big: {'a' * 65536}\r\nConnection: close\r\n\r\n".encode())
body = b"x" * (2 * 1024 * 1024)
out["big_body"] = exchange(f"POST /v1/hash HTTP/1.1\r\n{h}Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
out["bad_utf8_path"] = exchange(f"GET /\xff\xfe HTTP/1.1\r\n{h}Connection: close\r\n\r\n".encode("latin-1"))

# Slowloris: SLOW connections trickle a head one byte per second.
t0 = time.monotonic()
slow = []
for _ in range(SLOW):
    s = tls()
    s.sendall(f"GET / HTTP/1.1\r\n{h}".encode())
    slow.append(s)
served, open_ = 0, SLOW
closed_at = None
while time.monotonic() - t0 < 25 and open_:
    for s in slow:
        if s.fileno() >= 0:
            try:
                s.sendall(b"X")
            except OSError:
                s.close()
    served += get_ok()
    time.sleep(1)
    open_ = 0
    for s in slow:
        if s.fileno() < 0:
            continue
        s.setblocking(False)
        try:
            # Anything at all (a 408, or EOF) means nginx gave up on this connection.
            s.recv(1)
            s.close()
            continue
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except OSError:
            s.close()
            continue
        finally:
            if s.fileno() >= 0:
                s.setblocking(True)
        open_ += 1
    if not open_ and closed_at is None:
        closed_at = time.monotonic() - t0
out["slowloris"] = {"connections": SLOW, "still_open": open_, "all_closed_after_s": closed_at and round(closed_at, 1),
                    "ordinary_requests_served": served}
print(json.dumps(out))
