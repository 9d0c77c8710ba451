"""Markdown tables of chaos soaks, for docs/reliability.md.

usage: report.py RESULT_DIR...  (each a soak's directory: summary.json, faults.json)
Faults applied by kind, requests by kind and status, the WebSockets and
event streams, the POSTs lost and the faults that explain them, the RSS and fd bands, the journal's error lines.
"""

import json
import os
import sys


def load(d):
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    s["dir"] = d
    return s


def name(s):
    return "seed %d" % s["seed"] if s.get("seed") is not None else os.path.basename(s["schedule"] or s["dir"])


def main(dirs):
    soaks = [load(d) for d in dirs]
    kinds = sorted({k for s in soaks for k in s["faults"]})
    print("| fault | " + " | ".join(name(s) for s in soaks) + " |")
    print("|---|" + "---|" * len(soaks))
    for k in kinds:
        cells = []
        for s in soaks:
            v = s["faults"].get(k)
            cells.append("%d" % v["applied"] + (" (+%d skipped)" % v["skipped"] if v and v["skipped"] else "")
                         + (" **%d failed**" % v["failed"] if v and v["failed"] else "") if v else "0")
        print("| `%s` | %s |" % (k, " | ".join(cells)))
    print("| **all** | %s |" % " | ".join("%d in %d min" % (sum(v["applied"] for v in s["faults"].values()),
                                                             round(s["seconds"] / 60)) for s in soaks))
    print()
    print("| requests | " + " | ".join(name(s) for s in soaks) + " |")
    print("|---|" + "---|" * len(soaks))
    for k in ("get", "cached", "heavy", "post"):
        cells = []
        for s in soaks:
            v = s["requests"].get(k)
            if not v:
                cells.append("-")
                continue
            bad = sum(n for st, n in v["status"].items() if st != "200")
            cells.append("%s sent, %d not 200; p50 %.1f ms, p99 %.1f ms, max %.2f s" % (
                format(v["total"], ","), bad, v["p50_ms"], v["p99_ms"], v["max_ms"] / 1000))
        method = next(s["requests"][k]["method"] for s in soaks if k in s["requests"])
        print("| %s `%s` | %s |" % (method, k, " | ".join(cells)))
    print()
    for s in soaks:
        losses = s["losses"]
        # By the kind of the fault that explains each (the first, where several do).
        by = {}
        for x in losses:
            k = x["explained_by"][0].split()[1] if x["explained_by"] else "UNEXPLAINED"
            by[k] = by.get(k, 0) + 1
        print("- %s: %d POSTs lost, in flight on an instance or host hit by: %s%s" % (
            name(s), len(losses), ", ".join("%s %d" % kv for kv in sorted(by.items())) or "-",
            "".join("; unexplained: %s (HTTP %s via %s)" % (x["id"], x["status"] or "none", ", ".join(x["upstream"]) or "-")
                    for x in losses if not x["explained_by"])))
    if any(s.get("streams") for s in soaks):
        print()
        print("| streams held through the faults | " + " | ".join(name(s) for s in soaks) + " |")
        print("|---|" + "---|" * len(soaks))
        for k, what in (("ws", "WebSockets (`/ws/echo`)"), ("sse", "event streams (`/events`)")):
            cells = []
            for s in soaks:
                v = s.get("streams", {}).get(k)
                if not v:
                    cells.append("-")
                    continue
                ends = ", ".join("%s %d" % kv for kv in sorted(v["ends"].items()))
                cells.append("%d slots, %d connections (ends: %s), %d failed connects, %s %s, %d not right, back within %.1f s" % (
                    v["slots"], v["connections"], ends, v["connect_errors"], format(v["messages"], ","),
                    "echoes" if k == "ws" else "events", v["bad"], v["reconnect_s_max"]))
            print("| %s | %s |" % (what, " | ".join(cells)))
    print()
    print("| RSS kB / open fds, start → end (max) | " + " | ".join(name(s) for s in soaks) + " |")
    print("|---|" + "---|" * len(soaks))
    whats = []
    for s in soaks:
        for r in s["bands"]:
            w = r["what"].split(" (")[0]
            if w not in whats:
                whats.append(w)
    for w in whats:
        cells = []
        for s in soaks:
            r = next((r for r in s["bands"] if r["what"].split(" (")[0] == w), None)
            cells.append("%s → %s (%s) / %s → %s (%s)" % (r["rss_kb_start"], r["rss_kb_end"], r["rss_kb_max"],
                                                         r["fds_start"], r["fds_end"], r["fds_max"]) if r else "-")
        print("| %s | %s |" % (w, " | ".join(cells)))
        # nginx is banded on its private memory (RssAnon), not its RSS.
        anon = [next((r for r in s["bands"] if r["what"].split(" (")[0] == w and "anon_kb_start" in r), None) for s in soaks]
        if any(anon):
            print("| %s, private (RssAnon, the band) | %s |" % (w, " | ".join(
                "%s → %s (%s)" % (r["anon_kb_start"], r["anon_kb_end"], r["anon_kb_max"]) if r else "-" for r in anon)))
    print()
    print("| | " + " | ".join(name(s) for s in soaks) + " |")
    print("|---|" + "---|" * len(soaks))
    print("| journal lines of priority err or worse / unexplained | %s |" % " | ".join(
        "%d / %d" % (s["journal_errors"], s["journal_unexplained"]) for s in soaks))
    print("| verdict | %s |" % " | ".join("passed" if s["passed"] else "**failed** (%d problems)" % len(s["problems"])
                                          for s in soaks))


if __name__ == "__main__":
    main(sys.argv[1:])
