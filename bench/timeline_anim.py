#!/usr/bin/env python3
"""Animated request timeline, with and without workers: records real request
spans (debug.spans) through nginx and turns them into one self-contained HTML
page (docs/timeline.html) where requests move through nginx, each instance's
event loop, its pool queue and its pool thread, the two recordings side by side.

  bench/timeline_anim.py record [--bin target/release/corepool] [--out FILE.jsonl.gz]
  bench/timeline_anim.py html FILE.jsonl.gz [--out docs/timeline.html]

record runs the same load twice on this machine, each time on two fresh
socket-activated instances of the demo (one per core, each in its own session,
as bench/run starts them) behind a private nginx with bench/nginx.conf.in's
proxy settings: once as shipped (/compute on the pool, 1 thread per instance)
and once with compute.inline = true (the loop run on the event loop, as a Node
app without workers does). The load, from this script (asyncio, one connection
per request, each tagged with ?r=ID): --heavy-clients clients (4) each sending
heavy /compute?n=N again once answered, and light GET / at a fixed rate (open loop: they keep coming
whatever the server does). It keeps, per side, the client's send and receive
times (µs), nginx's access-log line of each request (its upstream: which
instance) and every instance's spans, all in one gzipped JSONL file.

html joins them: a request's ID gives its client times and its instance
(nginx's log); spans carry no request ID, so each span of an instance and
route is given, in the order the spans began, the request still free whose
times fit around it (sent before the span began, answered after it ended) that
was answered first. Prints a JSON summary.
"""

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDES = {
    "pool": {"title": "With workers", "set": []},
    "inline": {"title": "Without workers", "set": ["compute.inline=true"]},
}

# The private nginx: bench/nginx.conf.in's proxy settings (its map and proxy_
# lines, read from it), two instances on unix sockets, and an access log that
# names each request's upstream.
NGINX_CONF = """\
user root;
worker_processes auto;
pid {t}/nginx.pid;
error_log {t}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format tl '$request_uri $upstream_addr $status $msec $request_time $upstream_response_time';
    access_log {t}/access.log tl;
{proxy}
    upstream corepool {{ least_conn; server unix:{t}/i0.sock max_fails=0; server unix:{t}/i1.sock max_fails=0; keepalive 64; }}
    server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://corepool; }} }}
}}
"""


def proxy_settings():
    lines = (ROOT / "bench/nginx.conf.in").read_text().splitlines()
    return "\n".join(ln for ln in lines if re.match(r"\s*(map |proxy_)", ln))


def cpu_busy(seconds=0.5):
    """CPUs' worth of work on this machine over the next `seconds` (from /proc/stat)."""
    def read():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(t1 - t0, 1))


def cpu_ticks():
    """(machine's busy ticks, ticks of this process and everything under it)."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    machine = sum(v) - v[3] - v[4]
    parent, ticks = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d)], ticks[int(d)] = int(f[1]), int(f[11]) + int(f[12])
    mine, me = 0, os.getpid()
    for pid in ticks:
        p = pid
        while p and p != me:
            p = parent.get(p, 0)
        if p == me:
            mine += ticks[pid]
    return machine, mine


def others_during(before, after, seconds):
    """CPUs the rest of the machine used between two cpu_ticks()."""
    hz = os.sysconf("SC_CLK_TCK")
    return round(max(0, (after[0] - before[0]) - (after[1] - before[1])) / hz / seconds, 2)


def wait_quiet(limit, patience):
    """Waits up to `patience` s for the rest of the machine to use < `limit` CPUs; returns what it used."""
    end = time.monotonic() + patience
    busy = cpu_busy()
    while busy >= limit and time.monotonic() < end:
        print(f"timeline_anim: the machine is busy ({busy:.2f} CPUs), waiting", file=sys.stderr)
        time.sleep(2)
        busy = cpu_busy()
    return round(busy, 2)


def now_us():
    return time.time_ns() // 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def request(port, path, rid):
    """One request on its own connection: (sent µs, answered µs, status)."""
    sent = now_us()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    sep = "&" if "?" in path else "?"
    w.write(f"GET {path}{sep}r={rid} HTTP/1.1\r\nHost: timeline\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    try:
        data = await asyncio.wait_for(r.read(), 10)
    except asyncio.TimeoutError:
        data = b""
    done = now_us()
    w.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return sent, done, status


async def load(port, args):
    """The recorded load: heavy clients from 0, light at a fixed rate from
    --light-after; returns the client's records and the load's start."""
    recs = []
    t0 = time.monotonic()
    start_us = now_us()
    heavy_end = args.light_after + args.seconds

    async def one(kind, path, rid, due):
        sent, done, status = await request(port, path, rid)
        recs.append({"kind": "client", "id": rid, "route": kind, "due_us": due, "sent_us": sent, "recv_us": done, "status": status})

    async def heavy(c):
        k = 0
        while time.monotonic() - t0 < heavy_end:
            await one("heavy", f"/compute?n={args.n}", f"h{c}-{k}", None)
            k += 1

    async def light():
        tasks, k = [], 0
        while True:
            due = args.light_after + k / args.light_rate
            if due >= args.light_after + args.seconds:
                break
            delay = due - (time.monotonic() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one("light", "/", f"l{k}", start_us + int(due * 1e6))))
            k += 1
        await asyncio.gather(*tasks)

    await asyncio.gather(light(), *(heavy(c) for c in range(args.heavy_clients)))
    return recs, start_us


async def warm_up(port):
    # Both instances (least_conn alternates while idle), light and heavy.
    for k in range(4):
        await request(port, "/", f"w{k}")
    await asyncio.gather(*(request(port, "/compute?n=1000000", f"wh{k}") for k in range(2)))


def wait_http(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            asyncio.run(request(port, "/", "probe"))
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"timeline_anim: nginx on port {port} did not answer")


def record_side(side, args, out):
    t = tempfile.mkdtemp(prefix=f"corepool-tl-{side}.")
    spans_dir = Path(t) / "spans"
    port = free_port()
    procs = []
    try:
        for i in (0, 1):
            cmd = ["systemd-socket-activate", "-l", f"{t}/i{i}.sock", args.bin, "serve", "--instance", str(i),
                   "--set", "log.access=false", "--set", "pool.queue=1024", "--set", f"debug.spans={spans_dir}"]
            for s in SIDES[side]["set"]:
                cmd += ["--set", s]
            log = open(f"{t}/i{i}.log", "w")
            # A session of its own, as systemd (and bench/run) start each instance.
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
        Path(f"{t}/nginx.conf").write_text(NGINX_CONF.format(t=t, port=port, proxy=proxy_settings()))
        procs.append(subprocess.Popen(["nginx", "-c", f"{t}/nginx.conf", "-p", t, "-g", "daemon off;"],
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        wait_http(port)
        asyncio.run(warm_up(port))
        time.sleep(0.3)
        quiet_before = wait_quiet(args.quiet, 120)
        before, t_load = cpu_ticks(), time.monotonic()
        recs, start_us = asyncio.run(load(port, args))
        others = others_during(before, cpu_ticks(), time.monotonic() - t_load)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    meta = {"kind": "meta", "side": side, "title": SIDES[side]["title"], "settings": SIDES[side]["set"],
            "load_start_us": start_us, "n": args.n, "heavy_clients": args.heavy_clients,
            "light_rate": args.light_rate, "light_after_s": args.light_after, "seconds": args.seconds,
            "machine_busy_before_cpus": quiet_before, "others_during_cpus": others}
    out.append(meta)
    for r in recs:
        out.append({"side": side, **r})
    for line in Path(f"{t}/access.log").read_text().splitlines():
        uri, upstream, status, msec, rt, urt = line.split(" ")
        m = re.search(r"[?&]r=([^&]+)", uri)
        if m and not m.group(1).startswith(("w", "probe")):
            u = re.search(r"/i(\d+)\.sock", upstream)
            out.append({"side": side, "kind": "nginx", "id": m.group(1), "upstream": upstream.replace(t, "$T"),
                        "instance": int(u.group(1)) if u else None, "status": int(status),
                        "end_ms": float(msec), "request_time_s": float(rt), "upstream_time_s": urt})
    files = sorted(spans_dir.glob("spans-*.jsonl"))
    if len(files) != 2:
        sys.exit(f"timeline_anim: {side}: expected two span files in {spans_dir}, found {len(files)}")
    for f in files:
        for line in f.read_text().splitlines():
            s = json.loads(line)
            if s["accepted_us"] >= start_us - 1000:  # not the warm-up's
                out.append({"side": side, "kind": "span", **s})
    shutil.rmtree(t, ignore_errors=True)


def cmd_record(args):
    for tool in ("nginx", "systemd-socket-activate"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode:
            sys.exit(f"timeline_anim: {tool} is missing")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"timeline_anim: no executable {args.bin} (cargo build --release)")
    head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    binary = Path(args.bin).read_bytes()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    out = [{"kind": "recording", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "kernel": platform.release(), "checkout": head, "binary_sha256": hashlib.sha256(binary).hexdigest()[:16],
            "binary_built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(args.bin).st_mtime)), "nginx": nginx,
            "python": platform.python_version()}]
    for side in SIDES:
        record_side(side, args, out)
        time.sleep(0.5)
    with gzip.open(args.out, "wt") as f:
        for o in out:
            f.write(json.dumps(o, separators=(",", ":")) + "\n")
    print(json.dumps({"out": args.out, "records": len(out)}))


TOL_US = 200  # clocks: the client's and the instances' wall clocks, read on one machine


def read_recording(path):
    recs = [json.loads(ln) for ln in gzip.open(path, "rt") if ln.strip()]
    recording = next(r for r in recs if r["kind"] == "recording")
    by_side = defaultdict(list)
    for r in recs:
        if "side" in r:
            by_side[r["side"]].append(r)
    return recording, by_side


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None


def join(records):
    """Each client request with its instance (nginx's log) and its span: per
    instance and route, spans in the order they began, each given, of the
    requests still free whose times fit around it (sent before the span
    began, answered after it ended), the one answered first. Returns the
    joined requests (times in µs from the load's start) and what the join
    found."""
    meta = next(r for r in records if r["kind"] == "meta")
    t0 = meta["load_start_us"]
    clients = {r["id"]: r for r in records if r["kind"] == "client"}
    nginx = {r["id"]: r for r in records if r["kind"] == "nginx"}
    route_of = {"light": "/", "heavy": "/compute"}
    reqs = defaultdict(list)
    for rid, c in clients.items():
        inst = nginx.get(rid, {}).get("instance")
        reqs[(inst, route_of[c["route"]])].append(c)
    spans = defaultdict(list)
    for s in records:
        if s["kind"] == "span":
            spans[(s["instance"], s["route"])].append(s)
    out, stats = [], {"requests": len(clients), "spans": sum(len(v) for v in spans.values()),
                      "no_nginx_line": sum(1 for rid in clients if rid not in nginx),
                      "matched": 0, "ambiguous": 0, "unmatched_requests": 0, "unmatched_spans": 0}
    for key in sorted(set(reqs) | set(spans), key=str):
        free = sorted(reqs.get(key, []), key=lambda c: c["sent_us"])
        for s in sorted(spans.get(key, []), key=lambda s: s["accepted_us"]):
            fits = [c for c in free if c["sent_us"] <= s["accepted_us"] + TOL_US and c["recv_us"] >= s["finished_us"] - TOL_US
                    and c["status"] == s["status"]]
            if not fits:
                stats["unmatched_spans"] += 1
                continue
            stats["matched"] += 1
            stats["ambiguous"] += len(fits) > 1
            # The one answered first: never leaves a later span without a request.
            c = min(fits, key=lambda c: (c["recv_us"], c["sent_us"]))
            free.remove(c)
            out.append((c, s))
        stats["unmatched_requests"] += len(free)
        out += [(c, None) for c in free]
    rel = lambda v: -1 if v is None else int(v - t0)  # noqa: E731
    rows = []
    for c, s in sorted(out, key=lambda cs: cs[0]["sent_us"]):
        s = s or {}
        inst = s.get("instance", nginx.get(c["id"], {}).get("instance"))
        rows.append([1 if c["route"] == "heavy" else 0, -1 if inst is None else inst, rel(c["sent_us"]), rel(s.get("accepted_us")),
                     rel(s.get("queued_us")), rel(s.get("started_us")), rel(s.get("job_done_us")),
                     s.get("thread", -1), rel(s.get("finished_us")), rel(c["recv_us"]), c["status"]])
    return meta, rows, stats


def side_summary(meta, rows):
    """The recording's figures, from the client's times and the spans."""
    light = [r for r in rows if r[0] == 0]
    heavy = [r for r in rows if r[0] == 1]
    lat = [(r[9] - r[2]) / 1000 for r in light]
    a, b = meta["light_after_s"] * 1e6, (meta["light_after_s"] + meta["seconds"]) * 1e6
    done = [r for r in heavy if a <= r[9] < b]
    late = [(r[3] - r[2]) / 1000 for r in light if r[3] >= 0]
    return {"light_requests": len(light), "heavy_requests": len(heavy),
            "light_ms": {"p50": round(statistics.median(lat), 2), "p99": round(pct(lat, 0.99), 2), "max": round(max(lat), 2)},
            "light_wait_for_loop_ms": {"p50": round(statistics.median(late), 2), "p99": round(pct(late, 0.99), 2)},
            "heavy_per_s_during_light": round(len(done) / meta["seconds"], 1),
            "errors": sum(1 for r in rows if r[10] != 200)}


def cmd_html(args):
    recording, by_side = read_recording(args.recording)
    sides, summary = [], {"recording": args.recording}
    for key in SIDES:
        meta, rows, stats = join(by_side[key])
        sm = side_summary(meta, rows)
        threads = sorted({r[7] for r in rows if r[7] >= 0}) or [0]
        sides.append({"key": key, "title": meta["title"], "settings": meta["settings"], "reqs": rows, "threads": threads,
                      "summary": sm, "join": stats, "meta": meta})
        summary[key] = {**sm, "join": stats}
    meta = sides[0]["meta"]
    data = {"recording": recording, "file": os.path.relpath(args.recording, ROOT) if os.path.isabs(args.recording) else args.recording,
            "sides": sides, "duration_us": max(r[9] for s in sides for r in s["reqs"]),
            "light_after_us": int(meta["light_after_s"] * 1e6)}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    html = PAGE.replace("__DATA__", blob)
    Path(args.out).write_text(html)
    summary["out"] = args.out
    summary["bytes"] = len(html)
    json.dump(summary, sys.stdout)
    print()


# The page: everything inline (no script, style, font or image from elsewhere); __DATA__ is the joined recording.
PAGE = r'''<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>corepool request timeline</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px; color: #222; background: #fff; max-width: 1260px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 0; }
  .sub { color: #555; margin: 2px 0 6px; min-height: 2.9em; }
  .bar { display: flex; gap: 14px; align-items: center; margin: 8px 0 10px; flex-wrap: wrap; }
  .clock { font: 600 15px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; min-width: 19em; }
  .panels { display: flex; gap: 16px; flex-wrap: wrap; }
  .panel { width: 600px; }
  canvas { display: block; border: 1px solid #ddd; background: #fff; }
  .counts { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 4px 0; white-space: pre; }
  .legend span { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin: 0 4px 0 10px; vertical-align: -1px; }
  table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
  td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
  th { background: #f4f4f4; }
  code { font-size: 12.5px; background: #f4f4f4; padding: 0 3px; }
  .notes { max-width: 1220px; }
  button, select, input { font: inherit; }
</style>
</head>
<body>
<h1>corepool request timeline: with and without workers</h1>
<div>Real requests, replayed from recorded spans: through nginx, each instance's event loop, its pool queue and its pool thread.
Both recordings play on one clock, slowed down.</div>
<div class="bar">
  <button id="play" type="button">pause</button>
  <label>speed <select id="speed">
    <option value="100">100× slower</option>
    <option value="20" selected>20× slower</option>
    <option value="5">5× slower</option>
  </select></label>
  <input id="scrub" type="range" min="0" max="1000" value="0" style="width: 320px" aria-label="position in the recording">
  <span class="clock" id="clock">t = 0.0 ms</span>
  <span class="legend"><span style="background:#2ca02c"></span>light <code>GET /</code><span style="background:#1f77b4"></span>heavy <code>GET /compute</code></span>
</div>
<div class="panels" id="panels"></div>
<div class="notes" id="notes"></div>
<script>
"use strict";
const DATA = __DATA__;
const LIGHT = "#2ca02c", HEAVY = "#1f77b4", QUEUE = "#ff7f0e";
const W = 600, H = 660, LANE_Y = [66, 286], LANE_H = 160;
const BOX = { client: [8, 50], nginx: [66, 150], loop: [240, 84], queue: [350, 96], pool: [472, 118] };
const CHART = { x: 52, y: 492, w: 530, h: 140 };
const DOT = 3.6, STEP = 9, TAU_MS = 55, FADE_MS = 700;

function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
function fmt(v, d) { return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }); }

// Where a request is at data time t (µs from the load's start), from its times:
// [kind, instance, sent, accepted, queued, started, job_done, thread, finished, recv, status].
function stage(r, t) {
  if (t < r[2]) return null;
  if (t >= r[9]) return "done";
  if (r[3] < 0 || t < r[3]) return "nginx";
  if (r[4] >= 0) {
    if (t < r[4]) return "loop";
    if (t < r[5]) return "queue";
    if (t < r[6]) return "pool";
  }
  if (t < r[8]) return "loop";
  return "back";
}
// When it entered that place (the order of the dots in a box).
function entered(r, st, t) {
  if (st === "loop") return (r[6] >= 0 && t >= r[6]) ? r[6] : r[3];
  return { nginx: r[2], queue: r[4], pool: r[5], back: r[8] }[st];
}

const panels = [];
for (const side of DATA.sides) {
  const el = document.createElement("div");
  el.className = "panel";
  const how = side.key === "pool"
    ? "As shipped: <code>GET /compute</code>'s loop goes to the pool (<code>ctx.run</code>), one pool thread per instance; the event loop only routes and answers."
    : "<code>compute.inline = true</code> (a benchmark-only switch): the same loop runs on the event loop, as a Node app without worker threads does; the pool sits idle.";
  el.innerHTML = `<h2>${esc(side.title)}</h2><div class="sub">${how}</div>` +
    `<canvas width="${W}" height="${H}"></canvas><div class="counts"></div>`;
  document.getElementById("panels").appendChild(el);
  const cv = el.querySelector("canvas");
  panels.push({ side, cv, g: cv.getContext("2d"), counts: el.querySelector(".counts"), pos: new Map() });
}

let slow = 20;                  // visual ms per data ms
const START = Math.max(0, DATA.light_after_us - 60000);
const END = DATA.duration_us + 20000;
let t = START, playing = true, last = performance.now(), snap = true, frames = 0, holdUntil = 0;

function boxRect(name, lane, thread, nthreads) {
  const [x, w] = BOX[name];
  let y = LANE_Y[lane], h = LANE_H;
  if (name === "pool" && nthreads > 1) { h = (LANE_H - 6 * (nthreads - 1)) / nthreads; y += thread * (h + 6); }
  return { x, y, w, h };
}
function slot(rect, k, fromRight) {
  const cols = Math.max(1, Math.floor((rect.w - 6) / STEP)), rows = Math.max(1, Math.floor((rect.h - 6) / STEP));
  k = Math.min(k, cols * rows - 1);
  let c = k % cols; const row = Math.floor(k / cols);
  if (fromRight) c = cols - 1 - c;
  return [rect.x + 3 + STEP / 2 + c * STEP, rect.y + 3 + STEP / 2 + row * STEP];
}

function drawBox(g, rect, label, fill, stroke, sub) {
  g.fillStyle = fill; g.fillRect(rect.x, rect.y, rect.w, rect.h);
  g.strokeStyle = stroke; g.lineWidth = 1; g.strokeRect(rect.x + 0.5, rect.y + 0.5, rect.w - 1, rect.h - 1);
  g.fillStyle = "#333"; g.font = "11px system-ui, sans-serif"; g.textAlign = "left";
  g.fillText(label, rect.x + 2, rect.y - 4);
  if (sub) { g.fillStyle = "#777"; g.fillText(sub, rect.x + 2, rect.y + rect.h + 12); }
}
function inside(g, rect, lines) {
  g.fillStyle = "#999"; g.font = "11px system-ui, sans-serif"; g.textAlign = "center";
  lines.forEach((s, k) => g.fillText(s, rect.x + rect.w / 2, rect.y + rect.h / 2 + 4 + (k - (lines.length - 1) / 2) * 14));
  g.textAlign = "left";
}
function arrow(g, x1, y1, x2, y2) {
  g.strokeStyle = "#bbb"; g.lineWidth = 1; g.beginPath(); g.moveTo(x1, y1); g.lineTo(x2, y2); g.stroke();
  const a = Math.atan2(y2 - y1, x2 - x1);
  g.beginPath(); g.moveTo(x2, y2); g.lineTo(x2 - 6 * Math.cos(a - 0.4), y2 - 6 * Math.sin(a - 0.4));
  g.lineTo(x2 - 6 * Math.cos(a + 0.4), y2 - 6 * Math.sin(a + 0.4)); g.closePath(); g.fillStyle = "#bbb"; g.fill();
}

function render(p, dtv) {
  const { side, g } = p, inline = side.key === "inline", nth = side.threads.length;
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  // Who is where now.
  const groups = new Map(), count = { nginx: 0, loop: 0, queue: 0, pool: 0, back: 0 };
  let answered = 0, answeredLight = 0, inflight = 0;
  const lat = [];
  for (let i = 0; i < side.reqs.length; i++) {
    const r = side.reqs[i], st = stage(r, t);
    if (st === null) continue;
    if (st === "done") {
      answered++; if (r[0] === 0) { answeredLight++; lat.push((r[9] - r[2]) / 1000); }
      continue;
    }
    inflight++; count[st]++;
    const key = st + ":" + Math.max(r[1], 0) + ":" + (st === "pool" ? r[7] : 0);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(i);
  }
  // Boxes.
  g.font = "12px system-ui, sans-serif"; g.fillStyle = "#333";
  g.fillText("clients", 4, LANE_Y[0] - 14);
  const ng = { x: BOX.nginx[0], y: LANE_Y[0] - 10, w: BOX.nginx[1], h: LANE_Y[1] + LANE_H - LANE_Y[0] + 20 };
  drawBox(g, ng, "nginx (least_conn, keepalive)", "#f7f7f7", "#999");
  for (let lane = 0; lane < 2; lane++) {
    const y0 = LANE_Y[lane];
    g.fillStyle = "#333"; g.font = "bold 12px system-ui, sans-serif";
    g.fillText("instance " + lane + " (one process, one event loop)", BOX.loop[0], y0 - 24);
    const nr = { x: ng.x + 4, y: y0 + 4, w: ng.w - 8, h: LANE_H - 8 };
    g.strokeStyle = "#ddd"; g.setLineDash([3, 3]); g.strokeRect(nr.x + 0.5, nr.y + 0.5, nr.w - 1, nr.h - 1); g.setLineDash([]);
    g.fillStyle = "#777"; g.font = "11px system-ui, sans-serif";
    const waiting = (groups.get("nginx:" + lane + ":0") || []).length;
    g.fillText("to instance " + lane + ": " + waiting + " not yet read", nr.x + 3, nr.y + nr.h - 4);
    const lp = boxRect("loop", lane, 0, 1);
    const loopBusy = (groups.get("loop:" + lane + ":0") || []).length > 0;
    let blocked = "";
    if (loopBusy) {
      const on = groups.get("loop:" + lane + ":0").map(i => side.reqs[i]).filter(r => r[0] === 1 && r[4] < 0);
      if (on.length) blocked = "blocked " + fmt((t - on[0][3]) / 1000, 1) + " ms";
    }
    let note = blocked;
    if (!blocked) {
      // What the loop got done lately: light requests whose span ended in the last 10 ms.
      let n = 0;
      for (const r of side.reqs) if (r[0] === 0 && r[1] === lane && r[8] <= t && r[8] > t - 10000) n++;
      note = n + " light done in the last 10 ms";
    }
    drawBox(g, lp, "event loop", loopBusy ? (blocked ? "#fde2e2" : "#e6f4ea") : "#fafafa", blocked ? "#d62728" : "#888", note);
    const qu = boxRect("queue", lane, 0, 1);
    drawBox(g, qu, "pool queue", inline ? "#fbfbfb" : "#fff6ec", inline ? "#ddd" : QUEUE, "");
    if (inline) inside(g, qu, ["unused"]);
    for (let k = 0; k < nth; k++) {
      const pr = boxRect("pool", lane, k, nth);
      const busy = (groups.get("pool:" + lane + ":" + side.threads[k]) || []).length > 0;
      let sub = "";
      if (busy) {
        const r = side.reqs[groups.get("pool:" + lane + ":" + side.threads[k])[0]];
        sub = "job " + fmt((t - r[5]) / 1000, 1) + " ms";
      }
      drawBox(g, pr, "pool thread " + side.threads[k], busy ? "#e3eef9" : (inline ? "#fbfbfb" : "#fafafa"), inline ? "#ddd" : "#1f77b4", sub);
      if (inline && !busy) inside(g, pr, ["idle: the event loop", "runs /compute itself"]);
    }
    const cy = y0 + LANE_H / 2;
    arrow(g, ng.x + ng.w, cy, lp.x - 2, cy);
    if (!inline) { arrow(g, lp.x + lp.w, cy, qu.x - 2, cy); arrow(g, qu.x + qu.w, cy, BOX.pool[0] - 2, cy); }
  }
  // Dots.
  const alpha = 1 - Math.exp(-dtv / TAU_MS);
  const seen = new Set();
  for (const [key, idx] of groups) {
    const [st, laneS, thS] = key.split(":"), lane = +laneS;
    idx.sort((a, b) => entered(side.reqs[a], st, t) - entered(side.reqs[b], st, t) || a - b);
    let rect, fromRight = false;
    if (st === "nginx") { rect = { x: ng.x + 4, y: LANE_Y[lane] + 4, w: ng.w - 8, h: LANE_H - 24 }; fromRight = true; }
    else if (st === "back") rect = { x: ng.x + 4, y: LANE_Y[lane] + 4, w: 20, h: LANE_H - 24 };
    else if (st === "pool") rect = boxRect("pool", lane, side.threads.indexOf(+thS), nth);
    else rect = boxRect(st, lane, 0, 1);
    idx.forEach((i, k) => {
      const [tx, ty] = slot(rect, k, fromRight);
      seen.add(i);
      let q = p.pos.get(i);
      if (!q) { q = [BOX.client[0] + 20, LANE_Y[lane] + LANE_H / 2]; p.pos.set(i, q); }
      if (snap) { q[0] = tx; q[1] = ty; } else { q[0] += (tx - q[0]) * alpha; q[1] += (ty - q[1]) * alpha; }
      const r = side.reqs[i];
      g.globalAlpha = 1; g.fillStyle = r[0] ? HEAVY : LIGHT;
      g.beginPath(); g.arc(q[0], q[1], r[0] ? DOT + 1 : DOT, 0, 2 * Math.PI); g.fill();
    });
  }
  // Answers going back to their clients (fading out: drawing only, after the answer arrived).
  const fadeUs = FADE_MS * 1000 / slow;
  for (const [i, q] of p.pos) {
    if (seen.has(i)) continue;
    const r = side.reqs[i];
    const since = t - r[9];
    if (since < 0 || since > fadeUs) { p.pos.delete(i); continue; }
    const tx = BOX.client[0] + 12, ty = LANE_Y[Math.max(r[1], 0)] + LANE_H / 2;
    q[0] += (tx - q[0]) * alpha; q[1] += (ty - q[1]) * alpha;
    g.globalAlpha = Math.max(0, 1 - since / fadeUs); g.fillStyle = r[0] ? HEAVY : LIGHT;
    g.beginPath(); g.arc(q[0], q[1], DOT, 0, 2 * Math.PI); g.fill();
  }
  g.globalAlpha = 1;
  // Latency of every answer so far (the client's view), against when it arrived.
  const c = CHART, x = v => c.x + (v - START) / (END - START) * c.w;
  const lo = Math.log10(0.1), hi = Math.log10(1000), y = ms => c.y + c.h - (Math.log10(Math.max(ms, 0.1)) - lo) / (hi - lo) * c.h;
  g.fillStyle = "#333"; g.font = "12px system-ui, sans-serif";
  g.fillText("latency of each answer at its client (ms, log) against when it arrived", c.x, c.y - 10);
  g.strokeStyle = "#ccc"; g.strokeRect(c.x + 0.5, c.y + 0.5, c.w, c.h);
  g.font = "10px system-ui, sans-serif"; g.textAlign = "right";
  for (const v of [0.1, 1, 10, 100, 1000]) {
    g.fillStyle = "#777"; g.fillText(v >= 1 ? String(v) : "0.1", c.x - 4, y(v) + 3);
    g.strokeStyle = "#eee"; g.beginPath(); g.moveTo(c.x, y(v) + 0.5); g.lineTo(c.x + c.w, y(v) + 0.5); g.stroke();
  }
  g.textAlign = "center";
  for (let ms = Math.ceil(START / 250000) * 250; ms * 1000 <= END; ms += 250) {
    g.fillStyle = "#777"; g.fillText(ms + " ms", x(ms * 1000), c.y + c.h + 13);
  }
  g.textAlign = "left";
  for (const r of side.reqs) {
    if (r[9] > t || r[9] < START) continue;
    g.fillStyle = r[0] ? HEAVY : LIGHT;
    g.fillRect(x(r[9]) - 1.5, y((r[9] - r[2]) / 1000) - 1.5, r[0] ? 4 : 3, r[0] ? 4 : 3);
  }
  g.strokeStyle = "#d62728"; g.beginPath(); g.moveTo(x(t) + 0.5, c.y); g.lineTo(x(t) + 0.5, c.y + c.h); g.stroke();
  lat.sort((a, b) => a - b);
  const q = f => lat.length ? fmt(lat[Math.min(lat.length - 1, Math.floor(lat.length * f))], 2) : "-";
  p.counts.textContent =
    `in flight ${String(inflight).padStart(3)}: at nginx ${count.nginx + count.back}, on the event loops ${count.loop}, ` +
    `queued ${count.queue}, on pool threads ${count.pool}\n` +
    `answered ${answered} (light ${answeredLight}: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms so far)`;
  p.counts.dataset.inflight = inflight;
  return inflight;
}

function frame() {
  const now = performance.now(), dtv = Math.min(now - last, 250);
  last = now;
  if (playing && now >= holdUntil) {
    t += dtv * 1000 / slow;
    if (t > END) { t = START; snap = true; holdUntil = now + 800; for (const p of panels) p.pos.clear(); }
  }
  let total = 0;
  const per = {};
  for (const p of panels) { per[p.side.key] = render(p, dtv); total += per[p.side.key]; }
  snap = false;
  frames++;
  const root = document.documentElement.dataset;
  root.tUs = Math.round(t); root.inflight = total; root.frames = frames;
  for (const k in per) root["inflight" + k[0].toUpperCase() + k.slice(1)] = per[k];
  document.getElementById("clock").textContent =
    `t = ${fmt((t - START) / 1000, 1)} ms of ${fmt((END - START) / 1000, 0)} ms · ${total} in flight`;
  document.title = `corepool request timeline · t=${fmt((t - START) / 1000, 1)} ms · ${total} in flight`;
  const sc = document.getElementById("scrub");
  if (document.activeElement !== sc) sc.value = Math.round((t - START) / (END - START) * 1000);
}

document.getElementById("play").onclick = e => { playing = !playing; e.target.textContent = playing ? "pause" : "play"; };
document.getElementById("speed").onchange = e => { slow = +e.target.value; };
document.getElementById("scrub").oninput = e => { t = START + (END - START) * e.target.value / 1000; snap = true; };

// Notes: what each side is and how it was recorded, from the recording itself.
(function notes() {
  const R = DATA.recording, s = DATA.sides, m = s[0].meta;
  const row = (label, f) => `<tr><td>${label}</td>` + s.map(x => `<td>${f(x)}</td>`).join("") + "</tr>";
  const j = x => x.join;
  document.getElementById("notes").innerHTML = `
<h2 style="margin-top:14px">What this shows</h2>
<p>Each dot is one recorded request: green a light <code>GET /</code>, blue a heavy <code>GET /compute?n=${m.n.toLocaleString("en-US")}</code>
(the sum of 0..n, one addition at a time). A dot sits in nginx from the moment its client sent it until the instance's event loop
took it up (nginx forwards at once: the wait is for the event loop), then on the event loop, in the pool queue, on a pool thread,
back on the event loop, and in nginx again until its client had the answer. The box a dot is in comes from the recorded times;
the glide between boxes and the fading of answered dots at the left are drawing. The chart under each side puts every answer so
far at its latency as its client measured it.</p>
<p><b>${esc(s[0].title)}</b>: the event loop hands each <code>/compute</code> to its pool thread, so light requests are answered
while the jobs run (queued jobs wait in the queue, not in front of anyone). <b>${esc(s[1].title)}</b>: a <code>/compute</code>
occupies its instance's event loop for the whole loop (red box); every light request nginx passes to that instance waits until it
ends, and nginx's <code>least_conn</code> can only send them to the other instance when that one is not blocked too.</p>
<h2>How it was recorded</h2>
<p>${esc(R.date)}, ${R.cpus} CPUs, kernel ${esc(R.kernel)}, ${esc(R.nginx)}; the demo's release binary
(sha256 ${esc(R.binary_sha256)}…, built ${esc(R.binary_built)}; the checkout was at ${esc(R.checkout)} when recording). For each side, two fresh instances
(one per core, each in its own session, socket-activated on a unix socket by <code>systemd-socket-activate</code>,
<code>log.access = false</code>, <code>pool.queue = 1024</code>, <code>debug.spans</code> on) behind a private nginx with
<code>bench/nginx.conf.in</code>'s proxy settings. The same load for both, from <code>bench/timeline_anim.py record</code> on the
same two cores (Python asyncio, a new connection per request): ${m.heavy_clients} clients each sending <code>/compute</code> again as soon as
it is answered, from t = 0; light <code>GET /</code> at ${m.light_rate} per second for ${m.seconds} s from t = ${m.light_after_s * 1000} ms
(open loop: they keep coming whatever the server does). The two sides were recorded one after the other, not at once; the
page plays them on one clock from 60 ms before the light load began.</p>
<p>Times: the client's send and receive (µs), nginx's access log (which instance each request went to, by its <code>?r=</code>
tag), and each instance's spans (<code>runtime/src/trace.rs</code>: handed to the handler, queued, started on pool thread N,
job done, response ready; µs on the same wall clock). Spans carry no request ID, so each is given, per instance and route and in
the order the spans began, the request still free that was sent before the span began and answered after it ended and was
answered first (200 µs allowed between the clocks): the boxes and waits are the spans', the pairing of two light requests that were
waiting on the same instance at the same moment is a choice. How many dots are in each box at each moment does not depend on
it: that is requests sent minus spans begun, and so on, per instance.</p>
<table>
<tr><th></th>${s.map(x => `<th>${esc(x.title)}</th>`).join("")}</tr>
${row("light requests / heavy requests", x => `${x.summary.light_requests} / ${x.summary.heavy_requests}`)}
${row("light latency at the client, p50 / p99 / max (ms)", x => `${x.summary.light_ms.p50} / ${x.summary.light_ms.p99} / ${x.summary.light_ms.max}`)}
${row("light: from sent to taken up by the event loop, p50 / p99 (ms)", x => `${x.summary.light_wait_for_loop_ms.p50} / ${x.summary.light_wait_for_loop_ms.p99}`)}
${row("heavy answers per second during the light load", x => x.summary.heavy_per_s_during_light)}
${row("answers other than 200", x => x.summary.errors)}
${row("CPUs the rest of the machine used just before / during the load", x => `${x.meta.machine_busy_before_cpus} / ${x.meta.others_during_cpus}`)}
${row("spans paired with requests / ambiguous (more than one fit) / left unpaired", x => `${j(x).matched} of ${j(x).spans} / ${j(x).ambiguous} / ${j(x).unmatched_spans} spans, ${j(x).unmatched_requests} requests`)}
</table>
<p>One recording on a ${R.cpus}-CPU machine with the load generator, nginx and both instances on the same cores: a picture of what
happens, not a benchmark (<code>docs/benchmarks.md</code>, W: with and without workers, has measured figures). The tail of the
light latency with workers is waiting for a CPU: the client, nginx and the event loops share the cores with busy pool threads
(<code>bench/notes.md</code>: what stops M).
Data: <code>${esc(DATA.file)}</code>. Regenerate the page: <code>bench/timeline_anim.py html ${esc(DATA.file)}</code>;
record anew: <code>cargo build --release && bench/timeline_anim.py record</code> (about 10 s once the machine is quiet: it waits
for that), then <code>bench/timeline_anim.py html</code> on the file it wrote.</p>`;
})();

frame();
setInterval(frame, 33);
</script>
</body>
</html>
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record both sides' requests and spans")
    r.add_argument("--bin", default=str(ROOT / "target/release/corepool"))
    r.add_argument("--out", default=str(ROOT / f"bench/results/{time.strftime('%Y-%m-%dT%H%M%SZ', time.gmtime())}-timeline-anim.jsonl.gz"))
    r.add_argument("--n", type=int, default=100_000_000, help="heavy /compute?n= (about 30 ms here)")
    r.add_argument("--heavy-clients", type=int, default=4)
    r.add_argument("--light-rate", type=float, default=200, help="light requests per second")
    r.add_argument("--light-after", type=float, default=0.2, help="seconds of heavy load before the light load")
    r.add_argument("--seconds", type=float, default=1.5, help="length of the light load")
    r.add_argument("--quiet", type=float, default=0.3, help="wait (up to 2 min) until the rest of the machine uses fewer CPUs than this")
    h = sub.add_parser("html", help="draw the page from a recording")
    h.add_argument("recording")
    h.add_argument("--out", default=str(ROOT / "docs/timeline.html"))
    args = ap.parse_args()
    if args.cmd == "record":
        cmd_record(args)
    else:
        cmd_html(args)


if __name__ == "__main__":
    main()
