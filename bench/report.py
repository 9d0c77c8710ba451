#!/usr/bin/env python3
"""Turns a bench/results/*.json run into docs/benchmarks.md and its plots
(docs/bench-*.svg; the request timeline from the spans file the run kept).

Every figure is the median of the run's repetitions, with the spread
(min-max) beside it; ratios are computed from those medians. Nothing here is
typed in by hand: rerun bench/run to refresh it.
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import svg  # noqa: E402  (bench/svg.py)

STACKS = ["corepool", "node", "plain"]
LABEL = {
    "corepool": "corepool",
    "node": "Node (Express+workerpool, PM2 -i max)",
    "plain": "plain tokio + spawn_blocking",
    "proxy_ceiling": "nginx proxy ceiling",
    "static": "nginx static",
}
SHORT = {"corepool": "corepool", "node": "Node/PM2", "plain": "plain tokio",
         "proxy_ceiling": "nginx proxy ceiling", "static": "nginx static"}
DOCS = Path("docs")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    return f"{fmt(min(xs))}–{fmt(max(xs))}" if xs else "-"


def n0(v):
    return f"{v:,.0f}"


def open_section(w, rows, key, groups, labels, svg_name, title, hvals, heading="## O"):
    """The open-loop rows: a table per group (stack or variant) and a plot of
    p99 against the offered rate, idle and loaded."""
    def sel(g, rate, load, client):
        return [x for x in rows if key(x) == g and x["rate"] == rate and x["load"] == load and x["client"] == client]
    def p99(xs):
        return med([x["oha"]["p99_us"] / 1000 for x in xs])
    ms = lambda v: f"{v:.2f}"
    w(f"{heading}: open loop, light `GET /` at a fixed rate (p99 ms)\n")
    w("oha `-q RATE --latency-correction -c 64` (each request's latency counted from when it was due, "
      "whatever the server was doing): idle, and while 16 heavy `/compute` connections saturate the pools "
      "(\"loaded\"); at 2,000 req/s and at 25 % and 50 % of corepool's idle light capacity measured in the "
      "same run. \"client rt\": the same with oha under `chrt -f 1`, so it runs as soon as it wakes; "
      "the difference is the client's own wait for a CPU on these shared cores. A rate not sustained "
      "(< 99 % delivered, or errors) is marked \"not sustained\".\n")
    w("| stack | offered req/s | idle p50 / p99 | loaded p50 / p99 | loaded / idle p99 (≤ 1.5) | client rt: idle p99 | client rt: loaded p99 | client rt: ratio | heavy tasks/s while loaded (ratio to H, ≥ 0.9) |")
    w("|---|---|---|---|---|---|---|---|---|")
    series = {}
    for g in groups:
        rates = sorted({x["rate"] for x in rows if key(x) == g})
        for rate in rates:
            lab = next(x["label"] for x in rows if key(x) == g and x["rate"] == rate)
            i, l = sel(g, rate, "idle", "normal"), sel(g, rate, "loaded", "normal")
            ri, rl = sel(g, rate, "idle", "rt"), sel(g, rate, "loaded", "rt")
            if not (i and l):
                continue
            def cell(xs):
                c = f"{ms(med([x['oha']['p50_us'] / 1000 for x in xs]))} / {ms(p99(xs))} ({spread([x['oha']['p99_us'] / 1000 for x in xs], ms)})"
                return c if all(x["oha"]["sustained"] for x in xs) else c + ", not sustained"
            heavy = [x["heavy"]["rps"] for x in l + rl if "heavy" in x]
            hv = hvals.get(g)
            hcell = f"{med(heavy):.1f} ({med(heavy) / hv:.2f})" if heavy and hv else "-"
            rcells = [ms(p99(ri)) if ri else "-", ms(p99(rl)) if rl else "-", f"{p99(rl) / p99(ri):.2f}" if ri and rl else "-"]
            w(f"| {labels.get(g, g)} | {rate:,}{'' if lab == 'absolute' else f' ({lab})'} | {cell(i)} | {cell(l)} | {p99(l) / p99(i):.2f} | "
              + " | ".join(rcells) + f" | {hcell} |")
            for load, xs in (("idle", i), ("loaded", l)):
                series.setdefault(f"{SHORT.get(g, g)}, {load}", []).append((rate, p99(xs)))
    w("")
    if series:
        svg.line_chart(DOCS / svg_name, title, "offered rate, req/s (log)", "p99 ms (log)",
                       {k: sorted(v) for k, v in series.items()}, logx=True, logy=True)
        w(f"![open loop]({svg_name})\n")


def main(path):
    doc = json.load(open(path))
    s = doc["samples"]
    cpus = doc["machine"]["cpus"]
    n = doc["settings"]["n"]
    out = []
    w = out.append

    def pick(kind, stack, key=None, **match):
        xs = [x for x in s if x["kind"] == kind and x["stack"] == stack and all(x.get(k) == v for k, v in match.items())]
        return [x["wrk"][key] for x in xs] if key else xs

    def run_cdf(kind, stack, **match):
        """The run with the median p99, as [(percentile, µs)]."""
        xs = sorted(pick(kind, stack, **match), key=lambda x: x["wrk"]["p99_us"])
        if not xs or "cdf" not in xs[0]["wrk"]:
            return []
        x = xs[len(xs) // 2]["wrk"]
        # wrk's percentile(100) reads 0; the maximum is max_us.
        return [(p, x["max_us"] if p == 100 else us) for p, us in x["cdf"]]

    w("# Benchmarks\n")
    w(f"Generated by `bench/report.py` from `bench/results/{Path(path).name}` ({doc['date']}): "
      f"{cpus} CPUs, kernel {doc['machine']['kernel']}, {doc['tools']['wrk']}, {doc['tools']['nginx']}, "
      f"node {doc['tools']['node']}, {doc['tools']['corepool']}. Each figure: median of "
      f"{doc['settings']['runs']} runs of {doc['settings']['duration_s']} s (spread in brackets). "
      "Unless marked *direct*, all traffic goes through the same nginx settings (HTTP/1.1 upstream "
      "keepalive 64, `bench/nginx.conf.in`). The load generator (wrk, 2 threads) shares the same "
      f"{cpus} cores with nginx and the servers, as it would for any stack here: on a machine this "
      "small, every figure is a three-way split of the same CPUs.\n")

    def rate_table(kind, stacks, cs, p99_head="p99", p999=False):
        """One row per stack: requests/s (median and spread), median p99 (and
        p99.9) in µs, at each connection count in CS."""
        cols = ["req/s", p99_head] + (["p99.9"] if p999 else [])
        w("| stack | " + " | ".join(f"c={c} {h}" for c in cs for h in cols) + " |")
        w("|---|" + "---|" * (len(cols) * len(cs)))
        for st in stacks:
            cells = []
            for c in cs:
                rps = pick(kind, st, "rps", conns=c)
                cells += [f"{n0(med(rps))} ({spread(rps, n0)})", n0(med(pick(kind, st, "p99_us", conns=c)))]
                if p999:
                    cells.append(n0(med(pick(kind, st, "p999_us", conns=c))))
            w(f"| {LABEL[st]} | " + " | ".join(cells) + " |")

    # ---- L ----
    conns = sorted({x["conns"] for x in s if x["kind"] == "light"})
    w("## L: light `GET /` through nginx (requests/s; latency µs)\n")
    rate_table("light", STACKS + ["proxy_ceiling", "static"], conns, p999=True)
    w("")
    lr = lambda a, b, c, k="light": med(pick(k, a, "rps", conns=c)) / med(pick(k, b, "rps", conns=c))
    w("| ratio (medians) | " + " | ".join(f"c={c}" for c in conns) + " | target |")
    w("|---|" + "---|" * len(conns) + "---|")
    w("| corepool / nginx proxy ceiling | " + " | ".join(f"{lr('corepool', 'proxy_ceiling', c):.2f}" for c in conns) + " | ≥ 0.85 |")
    w("| corepool / Node | " + " | ".join(f"{lr('corepool', 'node', c):.2f}" for c in conns) + " | ≥ 5 |")
    w("| corepool / plain tokio | " + " | ".join(f"{lr('corepool', 'plain', c):.2f}" for c in conns) + " | |")
    w("")
    svg.line_chart(DOCS / "bench-light-throughput.svg", "L: GET / through nginx", "connections", "requests/s",
                   {SHORT[st]: [(c, med(pick("light", st, "rps", conns=c))) for c in conns]
                    for st in STACKS + ["proxy_ceiling"]}, logx=True, xticks=conns)
    w("![L throughput](bench-light-throughput.svg)\n")

    # ---- L on equal work: GET /fixed ----
    fconns = sorted({x["conns"] for x in s if x["kind"] == "light_fixed"})
    if fconns:
        fst = ["corepool", "plain", "proxy_ceiling"]
        w("### L on equal work: `GET /fixed` through nginx (requests/s; latency µs)\n")
        w("The same fixed JSON body with the same headers (`Content-Type`, `X-Request-Id`, "
          "`Cache-Control: no-store`) from corepool's demo and from plain tokio (`examples/plain_tokio.rs`), "
          "so the two frameworks do the same work; the proxy ceiling answers its own fixed body.\n")
        rate_table("light_fixed", fst, fconns)
        w("")
        w("| ratio (medians) | " + " | ".join(f"c={c}" for c in fconns) + " | target |")
        w("|---|" + "---|" * len(fconns) + "---|")
        w("| corepool / nginx proxy ceiling | " + " | ".join(f"{lr('corepool', 'proxy_ceiling', c, 'light_fixed'):.2f}" for c in fconns) + " | ≥ 0.85 |")
        w("| corepool / plain tokio | " + " | ".join(f"{lr('corepool', 'plain', c, 'light_fixed'):.2f}" for c in fconns) + " | ≥ 1.1 |")
        w("")
        dfc = sorted({x["conns"] for x in s if x["kind"] == "light_direct_fixed"})
        if dfc:
            w("Direct (no nginx), `GET /fixed`:\n")
            rate_table("light_direct_fixed", ["corepool", "plain"], dfc, p99_head="p99 µs")
            w("| corepool / plain tokio, req/s (target ≥ 1.1) | " + " | ".join(f"{lr('corepool', 'plain', c, 'light_direct_fixed'):.2f} | " for c in dfc) + " |")
            w("")

    dconns = sorted({x["conns"] for x in s if x["kind"] == "light_direct"})
    if dconns:
        w("### L direct (no nginx)\n")
        rate_table("light_direct", STACKS, dconns, p99_head="p99 µs")
        w("")
        w("| direct ratio | " + " | ".join(f"c={c}" for c in dconns) + " |")
        w("|---|" + "---|" * len(dconns))
        w("| corepool / Node | " + " | ".join(f"{lr('corepool', 'node', c, 'light_direct'):.2f}" for c in dconns) + " |")
        w("| corepool / plain tokio | " + " | ".join(f"{lr('corepool', 'plain', c, 'light_direct'):.2f}" for c in dconns) + " |")
        w("")

    # ---- H ----
    w(f"## H: heavy `/compute?n={n}` (tasks/s vs the physical limit `cores / single-task time`)\n")
    w("Single-task time: one client sending one task at a time for the whole duration, through "
      "the same nginx (so it includes each stack's per-request overhead); the server's own job "
      "time is beside it. Throughput: 8 connections.\n")
    w("| stack | single task ms (sequential) | server job ms | limit tasks/s | measured tasks/s | ratio | target |")
    w("|---|---|---|---|---|---|---|")
    hvals, hlimit = {}, {}
    for st in STACKS:
        seq = [1000 / r for r in pick("task_seq", st, "rps")]
        ms = [x["ms"] for x in s if x["kind"] == "task_ms" and x["stack"] == st]
        rps = pick("heavy", st, "rps")
        t = med(seq) if seq else med(ms)
        limit = cpus / (t / 1000)
        hvals[st], hlimit[st] = med(rps), limit
        w(f"| {LABEL[st]} | {t:.1f} ({spread(seq, lambda v: f'{v:.1f}')}) | {med(ms):.1f} | {limit:.1f} | "
          f"{med(rps):.1f} ({spread(rps, lambda v: f'{v:.1f}')}) | {med(rps) / limit:.2f} | ≥ 0.97 |")
    w("")
    svg.bar_chart(DOCS / "bench-heavy.svg", "H: heavy tasks/s vs each stack's physical limit", "tasks/s",
                  [SHORT[st] for st in STACKS], ["measured"],
                  {"measured": {SHORT[st]: hvals[st] for st in STACKS}},
                  lines={SHORT[st]: (f"limit {hlimit[st]:.1f}", hlimit[st]) for st in STACKS})
    w("![H tasks/s](bench-heavy.svg)\n")

    # ---- M ----
    w("## M: light `GET /` (16 connections) while 8 heavy connections saturate the pools\n")
    w("| stack | path | idle p99 µs | p99 µs under heavy | p99 ratio (≤ 1.5) | idle req/s | req/s under heavy | throughput ratio (≥ 0.5) |")
    w("|---|---|---|---|---|---|---|---|")
    for kind, idle_kind, path_label in (("mixed", "light", "nginx"), ("mixed_direct", "light_direct", "direct")):
        for st in STACKS:
            m99, mrps = pick(kind, st, "p99_us"), pick(kind, st, "rps")
            if not m99:
                continue
            i99, irps = pick(idle_kind, st, "p99_us", conns=16), pick(idle_kind, st, "rps", conns=16)
            w(f"| {LABEL[st]} | {path_label} | {n0(med(i99))} | {n0(med(m99))} ({spread(m99, n0)}) | "
              f"{med(m99) / med(i99):.2f} | {n0(med(irps))} | {n0(med(mrps))} | {med(mrps) / med(irps):.2f} |")
    c99 = pick("mixed_control", "corepool", "p99_us")
    if c99:
        crps = pick("mixed_control", "corepool", "rps")
        i99 = pick("light", "corepool", "p99_us", conns=16)
        w(f"| control: corepool light only, beside two SCHED_IDLE busy loops (not corepool) | nginx | "
          f"{n0(med(i99))} | {n0(med(c99))} ({spread(c99, n0)}) | {med(c99) / med(i99):.2f} | "
          f"{n0(med(pick('light', 'corepool', 'rps', conns=16)))} | {n0(med(crps))} | "
          f"{med(crps) / med(pick('light', 'corepool', 'rps', conns=16)):.2f} |")
    w("")
    series = {}
    for st in STACKS:
        for kind, lab in (("light", "idle"), ("mixed", "under heavy")):
            cdf = run_cdf(kind, st, **({"conns": 16} if kind == "light" else {}))
            if cdf:
                series[f"{SHORT[st]}, {lab}"] = [(p, us / 1000) for p, us in cdf if p >= 50]
    if series:
        svg.line_chart(DOCS / "bench-latency-cdf.svg", "L and M: light GET / latency by percentile (through nginx)",
                       "100 − percentile (log): 50 = median, 1 = p99, 0.01 = p99.99, leftmost = max", "latency ms (log)",
                       {k: [(100 - p if p < 100 else 0.001, v) for p, v in pts] for k, pts in series.items()},
                       logx=True, logy=True, xticks=[50, 10, 1, 0.1, 0.01])
        w("![latency CDF](bench-latency-cdf.svg)\n")
        w("(x axis: 100 − percentile, log: 50 is the median, 1 is p99, 0.1 is p99.9, 0.01 is p99.99; "
          "the median-p99 run of each kind.)\n")

    mh = {st: pick("mixed_heavy", st, "rps") for st in STACKS}
    if any(mh.values()):
        w("Heavy work during M: tasks/s of the 8 heavy connections while the light load ran "
          "(through nginx), against the same stack's heavy throughput alone (H).\n")
        w("| stack | heavy tasks/s alone | heavy tasks/s during M | ratio |")
        w("|---|---|---|---|")
        for st in STACKS:
            if mh[st]:
                w(f"| {LABEL[st]} | {hvals[st]:.1f} | {med(mh[st]):.1f} ({spread(mh[st], lambda v: f'{v:.1f}')}) | "
                  f"{med(mh[st]) / hvals[st]:.2f} |")
        w("")

    # ---- O: open loop ----
    op = [x for x in s if x["kind"] == "open"]
    if op:
        open_section(w, op, lambda x: x["stack"], [st for st in STACKS if any(x["stack"] == st for x in op)],
                     LABEL, "bench-open-loop.svg", "O: light GET / through nginx, open loop (oha)", hvals)

    # ---- W: with and without workers ----
    wst = [("corepool", "corepool (pool)"), ("corepool_inline", "corepool, loop inline on the event loop"),
           ("node", "Node + workerpool"), ("node_naive", "Node, naive (loop on the event loop)")]
    if any(pick("workers_mixed", st) for st, _ in wst):
        w("## W: with and without workers\n")
        w("The seed's comparison: light `GET /` (16 connections) through nginx while 8 connections send "
          f"heavy `/compute?n={n}`, each stack with its heavy work on a worker pool and run inline on the "
          "event loop (corepool: `compute.inline = true`, a benchmark-only switch; Node: the seed's "
          "`app-naive.js`, also one process per core under PM2). Light alone first, same stack, same run.\n")
        w("| stack | light req/s alone | light req/s during heavy | light p99 ms alone | light p99 ms during heavy | p99 ratio | heavy tasks/s | light errors (timeouts) |")
        w("|---|---|---|---|---|---|---|---|")
        bars = {"alone": {}, "during heavy": {}}
        for st, lab in wst:
            i99, irps = pick("workers_idle", st, "p99_us"), pick("workers_idle", st, "rps")
            m99, mrps = pick("workers_mixed", st, "p99_us"), pick("workers_mixed", st, "rps")
            herr = pick("workers_mixed", st, "errors")
            hr = pick("workers_mixed_heavy", st, "rps")
            if not m99:
                continue
            short = {"corepool": "corepool pool", "corepool_inline": "corepool inline", "node": "Node workerpool", "node_naive": "Node naive"}[st]
            bars["alone"][short] = med(i99) / 1000
            bars["during heavy"][short] = med(m99) / 1000
            w(f"| {lab} | {n0(med(irps))} | {n0(med(mrps))} | {med(i99) / 1000:.1f} | {med(m99) / 1000:.1f} ({spread(m99, lambda v: f'{v / 1000:.1f}')}) | "
              f"{med(m99) / med(i99):.1f} | {med(hr):.1f} | {sum(herr)} |")
        w("")
        svg.bar_chart(DOCS / "bench-workers.svg", "W: light p99 (ms) alone and while heavy requests run", "p99 ms",
                      list(bars["alone"].keys()), ["alone", "during heavy"], bars)
        w("![with and without workers](bench-workers.svg)\n")

    # ---- as shipped ----
    sh = [x for x in s if x["kind"] == "shipped"]
    if sh:
        variants = list(dict.fromkeys(x["variant"] for x in sh))
        VDESC = {"shipped": "as shipped (`pool.sched = \"normal\"`, nice 10, `min_share = 0.3`, `log.access = false`, `pin = false`)",
                 "access_on": "`log.access = true`", "idle": "`pool.sched = \"idle\"` (SCHED_IDLE, with `min_share`)",
                 "strict_idle": "`pool.sched = \"idle\"`, `min_share = 0` (strict priority: the previous default)",
                 "pin": "`pin = true` (event loop and pool threads pinned to CPU N: the previous default)",
                 "autogroup10": "each instance's CPU group at autogroup nice 10 (weight 110 against nginx's 1024; on cgroup v2, `CPUWeight=` about 11)",
                 "nginx_boost": "nginx's CPU group at autogroup nice -5 (weight 3121: three times each instance's)",
                 "no_syscall_filter": "the unit's `SystemCallFilter=` off (a drop-in; the rest of the sandbox as shipped)"}
        def sv(v, load, key):
            return [x["wrk"][key] for x in sh if x["variant"] == v and x["load"] == load]
        w("## As shipped: the .deb under systemd, the packaged nginx site\n")
        w("`bench/shipped`: the package installed in a booted Debian container (systemd 252 as PID 1; each "
          "instance its own unit, so its own session and autogroup; cgroup v1 here, without the cpu "
          "controller), `corepool enable max`, `corepool nginx enable`; wrk on the host, entering only the "
          "container's network namespace. idle: light alone (16 connections); L: light alone (64); H: heavy "
          "alone (8); M: light (16) while heavy (8) saturates the pools; S: heavy (8) while light (64) keeps "
          "every CPU busy. Every heavy URL is unique, so the site's cache answers none.\n")
        w("| configuration | idle p99 ms | idle req/s | L req/s (ratio to the ceiling, ≥ 0.85) | H tasks/s | M light p99 ms (ratio, ≤ 1.5) | M light req/s (ratio, ≥ 0.5) | M heavy tasks/s (ratio to H, ≥ 0.3) | S heavy tasks/s (ratio to H, ≥ 0.3) | S light req/s |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for v in variants:
            i99, irps, lrps, hr = med(sv(v, "idle", "p99_us")), med(sv(v, "idle", "rps")), med(sv(v, "L", "rps")), med(sv(v, "H", "rps"))
            m99, mrps, mh = med(sv(v, "M_light", "p99_us")), med(sv(v, "M_light", "rps")), med(sv(v, "M_heavy", "rps"))
            shv, slr = med(sv(v, "S_heavy", "rps")), med(sv(v, "S_light", "rps"))
            ceil = med(sv(v, "ceiling", "rps"))
            w(f"| {VDESC.get(v, v)} | {i99 / 1000:.2f} | {n0(irps)} | {n0(lrps)} ({lrps / ceil:.2f} of {n0(ceil)}) | {hr:.1f} | {m99 / 1000:.2f} ({m99 / i99:.1f}) | "
              f"{n0(mrps)} ({mrps / irps:.2f}) | {mh:.1f} ({mh / hr:.2f}) | {shv:.1f} ({shv / hr:.2f}) | {n0(slr)} |")
        w("")

    shf = [x for x in sh if x["load"] == "L_fixed"]
    if shf:
        w("As shipped, equal work: light `GET /fixed` (64 connections) against the same nginx's ceiling.\n")
        w("| configuration | L `/` req/s | L `/fixed` req/s | `/fixed` / ceiling (≥ 0.8) |")
        w("|---|---|---|---|")
        for v in variants:
            lf, ceil = med(sv(v, "L_fixed", "rps")), med(sv(v, "ceiling", "rps"))
            w(f"| {VDESC.get(v, v)} | {n0(med(sv(v, 'L', 'rps')))} | {n0(lf)} ({spread(sv(v, 'L_fixed', 'rps'), n0)}) | {lf / ceil:.2f} of {n0(ceil)} |")
        w("")
    sop = [x for x in s if x["kind"] == "shipped_open"]
    if sop:
        shh = {x["variant"]: med(sv(x["variant"], "H", "rps")) for x in sop}
        open_section(w, sop, lambda x: x["variant"], list(dict.fromkeys(x["variant"] for x in sop)),
                     {v: f"as shipped ({v})" for v in shh}, "bench-shipped-open-loop.svg",
                     "O as shipped: light GET / through the packaged site, open loop (oha)", shh, heading="### O as shipped")

    # ---- request timeline ----
    tl = [x for x in s if x["kind"] == "timeline"]
    if tl and Path(tl[0]["kept"]).exists():
        t = tl[0]
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "timeline.py"), t["kept"],
                        "--svg", str(DOCS / "bench-timeline.svg"),
                        "--title", "corepool: M through nginx, 2 instances x 1 pool thread"],
                       check=True, stdout=subprocess.DEVNULL)
        sm = t["summary"]
        w("## Request timeline (corepool, M through nginx)\n")
        w("Two instances recording per-request spans (`debug.spans`): 8 heavy connections from the "
          "start, 16 light connections joining after a second. The picture is the "
          f"{sm['window_ms']:g} ms around the light load's onset, drawn by `bench/timeline.py` from "
          f"`{t['kept']}` (that window's spans; {sm['recorded_spans']:,} were recorded in all).\n")
        w("![request timeline](bench-timeline.svg)\n")
        jd = sm.get("jobs_done") or {}
        w("| | value |")
        w("|---|---|")
        if jd:
            w(f"| heavy jobs finished per second, before the light load | {jd['before_light_per_s']} |")
            w(f"| heavy jobs finished per second, while it ran | {jd['during_light_per_s']} |")
        for inst, v in sm["instances"].items():
            w(f"| instance {inst}: light responses in the window / longest gap between two (ms) | "
              f"{v['light_requests']:,} / {v['longest_light_gap_ms']} |")
        w("")

    # ---- R / K ----
    rk = [x for x in s if x["kind"] in ("reload", "kill9")]
    if rk:
        w("## R and K: rolling reload and `kill -9` under load\n")
        w("Load: curl `--parallel` 16, keepalive, a fixed number of light requests through nginx, "
          "plus 40 heavy `/compute` requests (4 at a time) in flight during the event. corepool: "
          "the .deb under real systemd in a container (`bench/rk`), `corepool reload` / `kill -9` "
          "of instance 0's main process; Node: `pm2 reload` / `kill -9` of one PM2 worker.\n")
        w("| event | stack | light requests | failed | max latency ms | heavy requests | heavy failed |")
        w("|---|---|---|---|---|---|---|")
        for kind in ("reload", "kill9"):
            for st in STACKS:
                xs = [x for x in rk if x["kind"] == kind and x["stack"] == st]
                if xs:
                    w(f"| {kind} | {LABEL[st]} | {sum(x['requests'] for x in xs):,} ({len(xs)} runs) | "
                      f"{sum(x['failed'] for x in xs)} | {med([x['max_ms'] for x in xs]):,.0f} "
                      f"({spread([x['max_ms'] for x in xs], n0)}) | {sum(x['heavy'] for x in xs)} | "
                      f"{sum(x['heavy_failed'] for x in xs)} |")
        w("")

    # ---- cold start ----
    cold = [x for x in s if x["kind"] == "cold_start"]
    if cold:
        w("## Cold start: start to first response (ms)\n")
        w("| stack | how | median | spread |")
        w("|---|---|---|---|")
        for how in sorted({(x["stack"], x["how"]) for x in cold}):
            v = [x["ms"] for x in cold if (x["stack"], x["how"]) == how]
            w(f"| {LABEL[how[0]]} | {how[1]} | {med(v):.1f} | {spread(v, lambda z: f'{z:.1f}')} |")
        w("")

    # ---- memory ----
    w("## Memory: RSS per process (MB)\n")
    w("| stack | processes | idle (each) | after the load runs (each) |")
    w("|---|---|---|---|")
    rss = {"idle": {}, "after load": {}}
    for st in STACKS:
        idle = [x["kb"] / 1024 for x in s if x["kind"] == "rss_idle" and x["stack"] == st]
        loaded = [x["kb"] / 1024 for x in s if x["kind"] == "rss_loaded" and x["stack"] == st]
        rss["idle"][SHORT[st]], rss["after load"][SHORT[st]] = max(idle), max(loaded)
        w(f"| {LABEL[st]} | {len(idle)} | {', '.join(f'{v:.1f}' for v in idle)} | {', '.join(f'{v:.1f}' for v in loaded)} |")
    w("")
    svg.bar_chart(DOCS / "bench-rss.svg", "RSS per process, largest of each stack (MB)", "MB",
                  [SHORT[st] for st in STACKS], ["idle", "after load"], rss)
    w("![RSS](bench-rss.svg)\n")

    notes = Path("bench/notes.md")
    if notes.exists():
        w(notes.read_text())
    text = "\n".join(out)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1])
