#!/usr/bin/env python3
"""Request timeline: turns corepool's recorded spans (debug.spans, one JSONL
file per instance) into an SVG with one lane per instance event loop and per
pool thread, over a window of the recording around the moment the light load began
(heavy jobs already running), so both phases show.

  bench/timeline.py SPANS.jsonl[.gz]... [--svg OUT.svg] [--window-ms 1000]
                    [--keep WINDOW.jsonl.gz]

Lanes, per instance: light requests completed per 2 ms (the event loop's
output: a blocked loop shows as a gap), heavy jobs waiting in the pool queue,
and each pool thread's jobs (start to finish). --keep writes the window's
spans so the picture can be redrawn from the repository. Prints a JSON
summary (per instance: light requests, longest gap between them, pool busy
fraction) on stdout."""

import argparse
import gzip
import json
import sys
from collections import defaultdict

W, LANE, GAP, LEFT, TOP = 960, 30, 6, 150, 50
BIN_MS = 2.0


def read(paths):
    """Spans of every file, and the window a --keep file was cut to (if any)."""
    spans, window = [], None
    for p in paths:
        op = gzip.open if p.endswith(".gz") else open
        with op(p, "rt") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    if "window_us" in obj:
                        window = tuple(obj["window_us"])
                    else:
                        spans.append(obj)
    return spans, window


def is_job(s):
    return "started_us" in s


def light_onset(spans):
    """When light requests started arriving after heavy jobs were already running."""
    first_job = min(s["started_us"] for s in spans if is_job(s))
    later = [s["accepted_us"] for s in spans if not is_job(s) and s["accepted_us"] > first_job]
    return min(later) if later else None


def pick_window(spans, window_ms):
    """window_ms around the onset of the light load (a quarter before, the rest
    after), so both phases show; else the middle of the recording."""
    onset = light_onset(spans)
    if onset is not None:
        return onset - window_ms * 250, onset + window_ms * 750
    t0 = min(s["accepted_us"] for s in spans)
    t1 = max(s["finished_us"] for s in spans)
    mid = (t0 + t1) / 2
    return mid - window_ms * 500, mid + window_ms * 500


def job_rates(spans):
    """Heavy jobs finished per second before the light load began, and while it ran."""
    onset = light_onset(spans)
    done = sorted(s["job_done_us"] for s in spans if is_job(s) and "job_done_us" in s)
    light = [s["finished_us"] for s in spans if not is_job(s)]
    if onset is None or not done or not light:
        return None
    t_first, light_end = min(s["started_us"] for s in spans if is_job(s)), max(light)
    rate = lambda lo, hi: round(sum(1 for d in done if lo <= d < hi) / ((hi - lo) / 1e6), 1) if hi > lo else None  # noqa: E731
    return {"before_light_per_s": rate(t_first, onset), "during_light_per_s": rate(onset, light_end)}


def overlaps(lo, hi, a, b):
    """Whether the time span lo..hi meets the window a..b."""
    return hi >= a and lo <= b


def summary(spans, a, b):
    out = {}
    for inst in sorted({s["instance"] for s in spans}):
        mine = [s for s in spans if s["instance"] == inst]
        light = sorted(s["finished_us"] for s in mine if not is_job(s) and a <= s["finished_us"] <= b)
        gaps = [y - x for x, y in zip(light, light[1:])]
        busy = defaultdict(float)
        for s in mine:
            if is_job(s) and "job_done_us" in s:
                lo, hi = max(s["started_us"], a), min(s["job_done_us"], b)
                if hi > lo:
                    busy[s["thread"]] += hi - lo
        out[str(inst)] = {
            "light_requests": len(light),
            "longest_light_gap_ms": round(max(gaps) / 1000, 2) if gaps else None,
            "jobs_run": sum(1 for s in mine if is_job(s) and a <= s["started_us"] <= b),
            "pool_busy_fraction": {str(t): round(v / (b - a), 3) for t, v in sorted(busy.items())},
        }
    return out


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def draw(spans, a, b, title):
    insts = sorted({s["instance"] for s in spans})
    threads = {i: sorted({s["thread"] for s in spans if s["instance"] == i and is_job(s)}) for i in insts}
    lanes = []  # (label, kind, instance, thread)
    for i in insts:
        lanes.append((f"instance {i}: light req/2ms", "light", i, None))
        lanes.append((f"instance {i}: jobs queued", "queue", i, None))
        lanes += [(f"instance {i}: pool thread {t}", "pool", i, t) for t in threads[i]]
    height = TOP + len(lanes) * (LANE + GAP) + 60
    span_us = b - a
    x = lambda t: LEFT + (min(max(t, a), b) - a) / span_us * (W - LEFT - 20)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{esc(title)}</text>',
    ]
    nbins = int(span_us / 1000 / BIN_MS)
    light_bins = {i: [0] * nbins for i in insts}
    for s in spans:
        if not is_job(s) and a <= s["finished_us"] < b:
            k = int((s["finished_us"] - a) / 1000 / BIN_MS)
            if k < nbins:
                light_bins[s["instance"]][k] += 1
    peak = max([max(v) for v in light_bins.values() if v] + [1])
    for n, (label, kind, inst, thr) in enumerate(lanes):
        y = TOP + n * (LANE + GAP)
        out.append(f'<text x="{LEFT - 6}" y="{y + LANE / 2 + 4}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{W - LEFT - 20}" height="{LANE}" fill="#f4f4f4"/>')
        if kind == "light":
            bw = (W - LEFT - 20) / max(nbins, 1)
            for k, c in enumerate(light_bins[inst]):
                if c:
                    h = c / peak * LANE
                    out.append(f'<rect x="{LEFT + k * bw:.1f}" y="{y + LANE - h:.1f}" width="{max(bw - 0.3, 0.5):.1f}" height="{h:.1f}" fill="#2ca02c"/>')
        elif kind == "queue":
            events = []
            for s in spans:
                if s["instance"] == inst and is_job(s) and "queued_us" in s:
                    events += [(s["queued_us"], 1), (s["started_us"], -1)]
            events.sort()
            depth, prev, steps = 0, a, []
            for t, d in events:
                if t > a and depth:
                    steps.append((prev, min(t, b), depth))
                prev = max(t, a)
                depth += d
            qmax = max([d for _, _, d in steps] + [1])
            for t0, t1, d in steps:
                if t1 > t0:
                    h = d / qmax * LANE
                    out.append(f'<rect x="{x(t0):.1f}" y="{y + LANE - h:.1f}" width="{max(x(t1) - x(t0), 0.3):.1f}" height="{h:.1f}" fill="#ff7f0e" opacity="0.7"/>')
            out.append(f'<text x="{W - 22}" y="{y + 10}" text-anchor="end" fill="#888">max {qmax}</text>')
        else:
            jobs = sorted((s for s in spans if s["instance"] == inst and is_job(s) and s["thread"] == thr and "job_done_us" in s
                           and overlaps(s["started_us"], s["job_done_us"], a, b)),
                          key=lambda s: s["started_us"])
            for k, s in enumerate(jobs):
                color = "#1f77b4" if k % 2 == 0 else "#6baed6"
                out.append(f'<rect x="{x(s["started_us"]):.1f}" y="{y + 3}" width="{max(x(s["job_done_us"]) - x(s["started_us"]), 0.5):.1f}" '
                           f'height="{LANE - 6}" fill="{color}"><title>{s["route"]} {s["status"]}, ran {(s["job_done_us"] - s["started_us"]) / 1000:.1f} ms, '
                           f'queued {(s["started_us"] - s.get("queued_us", s["started_us"])) / 1000:.1f} ms</title></rect>')
    # Time axis.
    y = TOP + len(lanes) * (LANE + GAP) + 4
    out.append(f'<line x1="{LEFT}" y1="{y}" x2="{W - 20}" y2="{y}" stroke="black"/>')
    step = 50 if span_us / 1000 <= 500 else 100 if span_us / 1000 <= 1000 else 500
    t = 0
    while t <= span_us / 1000 + 1e-9:
        xx = x(a + t * 1000)
        out.append(f'<line x1="{xx:.1f}" y1="{y}" x2="{xx:.1f}" y2="{y + 4}" stroke="black"/>')
        out.append(f'<text x="{xx:.1f}" y="{y + 16}" text-anchor="middle">{t:g}</text>')
        t += step
    out.append(f'<text x="{LEFT + (W - LEFT - 20) / 2}" y="{y + 34}" text-anchor="middle">ms (green: light requests answered per {BIN_MS:g} ms; '
               'orange: heavy jobs waiting; blue: a job running on a pool thread)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spans", nargs="+")
    ap.add_argument("--svg", help="draw the window here (without it: only --keep and the summary)")
    ap.add_argument("--window-ms", type=float, default=1000)
    ap.add_argument("--keep")
    ap.add_argument("--title", default="corepool request timeline")
    args = ap.parse_args()
    spans, kept = read(args.spans)
    if not spans:
        sys.exit("timeline: no spans in " + " ".join(args.spans))
    if not any(is_job(s) for s in spans):
        sys.exit("timeline: no heavy jobs among the spans: not a mixed-workload recording")
    a, b = kept or pick_window(spans, args.window_ms)
    args.window_ms = (b - a) / 1000
    # accepted..finished covers a job's queueing and run too.
    window = [s for s in spans if overlaps(s["accepted_us"], s["finished_us"], a, b)]
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(draw(window, a, b, f"{args.title} ({args.window_ms:g} ms)"))
    if args.keep:
        with gzip.open(args.keep, "wt") as f:
            json.dump({"window_us": [a, b]}, f)
            f.write("\n")
            for s in window:
                json.dump(s, f)
                f.write("\n")
    json.dump({"window_ms": args.window_ms, "recorded_spans": len(spans), "jobs_done": job_rates(spans),
               "instances": summary(spans, a, b)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
