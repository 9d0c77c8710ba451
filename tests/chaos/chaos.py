"""One soak: a seed's fault schedule under the mixed load, then the checks.

Run by tests/chaos/run (which boots the containers and exports the layout in
CHAOS_* variables); usage: chaos.py --seed S --seconds N --out DIR. Prints
the seed and the schedule first, progress every minute, and the verdict;
writes DIR/schedule.json, faults.json, requests.jsonl, streams.jsonl, samples.jsonl,
journal.json and summary.json. Exits 1 when a check failed.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
import faults  # noqa: E402
import schedule  # noqa: E402


def leftovers(lab, host):
    """What should not outlive the soak on HOST: processes of the service's user
    that are no unit's main process, its runtime files and temporary files."""
    svc = lab.service
    rc, text = lab.sh(host, (
        "for p in $(pgrep -u %s || true); do u=$(sed -n 's|^0::.*/||p; s|^[0-9]*:name=systemd:.*/||p' /proc/$p/cgroup | head -n1); "
        "m=$(systemctl show -p MainPID --value \"$u\" 2>/dev/null || echo 0); "
        "[ \"$m\" = \"$p\" ] || echo \"process $p ($(tr '\\0' ' ' </proc/$p/cmdline)) in $u\"; done; "
        "ls -1 /run/%s 2>/dev/null | sed 's|^|run /run/%s/|'; "
        "find /tmp /var/tmp /dev/shm -user %s 2>/dev/null | sed 's|^|file |'; "
        "ls -d /var/log/chaos-fill /var/cache/%s/chaos-fill 2>/dev/null | sed 's|^|fill |'") % (svc, svc, svc, svc, svc),
        timeout=60)
    return sorted(line for line in text.splitlines() if line.strip())


def through_front(lab, n=40):
    """The host/instance of N answers to GET / through the front."""
    rc, text = lab.ct(lab.front, "curl", "-s", "--max-time", "10", "-w", "\\n", "http://127.0.0.1/?n=[1-%d]" % n)
    seen = set()
    for line in text.splitlines():
        try:
            j = json.loads(line)
            seen.add("%s/%s" % (j["host"], j["instance"]))
        except (ValueError, KeyError):
            pass
    return seen


def wait_for(what, fn, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(1)
    print("  (waited %ds for %s)" % (seconds, what), flush=True)
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, help="draw the schedule from this seed")
    p.add_argument("--schedule", help="or replay this schedule (a regression: tests/chaos/regressions/*.json)")
    p.add_argument("--seconds", type=float, help="the soak's length (a schedule file gives its own)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    env = os.environ
    lab = faults.Lab(env)
    os.makedirs(args.out, exist_ok=True)
    disks = ["%s:/var/log" % h for h in [lab.front] + [h for h in lab.hosts if h != lab.front]]
    disks.insert(1, "%s:/var/cache/%s" % (lab.front, lab.service))
    if args.schedule:
        with open(args.schedule) as f:
            doc = json.load(f)
        plan, args.seconds = doc["faults"], doc["seconds"]
        name = os.path.splitext(os.path.basename(args.schedule))[0]
        replay = "tests/chaos/run --schedule " + args.schedule
        print("chaos: schedule %s, %d s, %d faults: %s" % (name, args.seconds, len(plan), doc.get("about", "")), flush=True)
    elif args.seed is not None and args.seconds:
        plan = schedule.generate(args.seed, args.seconds, lab.hosts, lab.ncpu, int(env["CHAOS_UPGRADES"]), disks)
        name = "seed %d" % args.seed
        replay = "tests/chaos/run --seed %d --seconds %d" % (args.seed, args.seconds)
        print("chaos: seed %d, %d s, %d faults (layout: front %s, hosts %s, %d instances each; fault starts >= %.0f s apart)"
              % (args.seed, args.seconds, len(plan), lab.front, " ".join(lab.hosts), lab.ncpu, schedule.MIN_GAP_S), flush=True)
    else:
        p.error("give --seed and --seconds, or --schedule")
    print(schedule.describe(plan), flush=True)
    print("  replay: " + replay, flush=True)
    with open(os.path.join(args.out, "schedule.json"), "w") as f:
        json.dump({"seed": args.seed, "schedule": args.schedule, "seconds": args.seconds, "faults": plan}, f, indent=1)

    # Request ids name the soak (nginx's log is emptied for each).
    tag = "s%d" % args.seed if args.seed is not None else "r-" + name
    lab.ct(lab.front, "truncate", "-s", "0", "/var/tmp/chaos-access.log")
    every = lab.hosts + ([lab.front] if lab.front not in lab.hosts else [])
    before = {h: leftovers(lab, h) for h in every}
    reqs = os.path.join(args.out, "requests.jsonl")
    open(reqs, "w").close()
    t_start = time.time()
    load = subprocess.Popen(["ip", "netns", "exec", env["CHAOS_CLIENT_NS"], "/usr/bin/python3",
                             os.path.join(faults.ROOT, "tests/chaos/load.py"), "--host", lab.ip[lab.front],
                             "--seconds", str(args.seconds), "--tag", tag, "--out", reqs])
    # Beside it, WebSockets and event streams held open through the faults.
    conns = os.path.join(args.out, "streams.jsonl")
    open(conns, "w").close()
    streams = subprocess.Popen(["ip", "netns", "exec", env["CHAOS_CLIENT_NS"], "/usr/bin/python3",
                                os.path.join(faults.ROOT, "tests/chaos/streams.py"), "--host", lab.ip[lab.front],
                                "--seconds", str(args.seconds), "--out", conns])
    records = []
    threads = faults.run_schedule(lab, plan, t_start, records)

    samples = []
    violations = []
    stop = threading.Event()

    def sampler():
        last_report = t_start
        while not stop.is_set():
            s = check.sample(lab)
            samples.append(s)
            for h, units in s["failed"].items():
                violations.append("%.0fs: failed units on %s: %s" % (s["t"] - t_start, h, ", ".join(units)))
            if time.time() - last_report >= 60:
                last_report = time.time()
                done = [json.loads(line) for line in open(reqs) if line.strip()]
                bad = sum(1 for q in done if q["status"] != 200)
                print("%s   minute %d: %d requests, %d not 200 so far, %d faults started, failed units: %s"
                      % (time.strftime("%H:%M:%S"), round((time.time() - t_start) / 60), len(done), bad,
                         sum(1 for r in records if "started" in r), s["failed"] or "none"), flush=True)
            stop.wait(check.SAMPLE_S)

    # The first reading after the load has warmed up: the band's start.
    time.sleep(schedule.START_S - 3)
    first = check.sample(lab)
    samples.append(first)
    sam = threading.Thread(target=sampler, daemon=True)
    sam.start()
    load.wait()
    try:
        # Bounded in itself (a last reconnect after the end included).
        streams.wait(timeout=180)
    except subprocess.TimeoutExpired:
        streams.kill()
        streams.wait()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    sam.join(timeout=60)

    problems = list(violations)
    if load.returncode != 0:
        problems.append("the load generator exited %d" % load.returncode)
    if streams.returncode != 0:
        problems.append("the stream clients exited %d" % streams.returncode)
    unfinished = [r for r in records if "ended" not in r]
    problems += ["fault #%d %s %s did not finish" % (r["seq"], r["kind"], r["target"]) for r in unfinished]
    problems += ["fault #%d %s %s failed: %s" % (r["seq"], r["kind"], r["target"], r.get("detail", ""))
                 for r in records if "ended" in r and not r.get("ok")]

    # Settle: every host up, every instance back behind the front, nginx's old workers gone.
    want = {"%s/%d" % (h, i) for h in lab.hosts for i in range(lab.ncpu)}
    seen = set()

    def all_back():
        seen.clear()
        seen.update(through_front(lab))
        return want <= seen
    if not wait_for("every instance through the front", all_back, 90):
        problems.append("instances not answering through the front at the end: %s" % " ".join(sorted(want - seen)))
    wait_for("nginx's old workers to exit", lambda: len(check.sample(lab)["nginx"]) <= len(first["nginx"]), 45)
    last = check.sample(lab)
    samples.append(last)
    svc = lab.service
    for h in lab.hosts:
        for i in range(lab.ncpu):
            rc, state = lab.ct(h, "systemctl", "is-active", "%s@%d.service" % (svc, i))
            if state != "active":
                problems.append("%s: %s@%d.service is %s at the end" % (h, svc, i, state))
    rc, state = lab.ct(lab.front, "systemctl", "is-active", "nginx")
    if state != "active":
        problems.append("front: nginx is %s at the end" % state)
    for h, units in last["failed"].items():
        problems.append("failed units on %s at the end: %s" % (h, ", ".join(units)))
    if lab.front not in lab.hosts:
        rc, text = lab.ct(lab.front, svc, "front", "list", "--json")
        try:
            drained = [x["name"] for x in json.loads(text) if x.get("drained")]
        except (ValueError, TypeError, KeyError) as e:
            drained = ["(front list --json unreadable: %s: %s)" % (e, text[:200])]
        if drained:
            problems.append("hosts left drained: %s" % ", ".join(drained))
    after = {h: leftovers(lab, h) for h in every}
    for h in every:
        extra = sorted(set(after[h]) - set(before[h]))
        if extra:
            problems.append("left over on %s: %s" % (h, "; ".join(extra)))

    requests = [json.loads(line) for line in open(reqs) if line.strip()]
    rc, text = lab.ct(lab.front, "cat", "/var/tmp/chaos-access.log", timeout=60)
    access = check.parse_access_log(text, {v: k for k, v in lab.ip.items()}, lab.front)
    with open(os.path.join(args.out, "nginx-access.log"), "w") as f:
        f.write(text)
    rc, text = lab.ct(lab.front, "cat", "/var/log/nginx/error.log", timeout=60)
    with open(os.path.join(args.out, "nginx-error.log"), "w") as f:
        f.write(text)
    # Every request's instance: the one nginx's log names last for its id.
    for q in requests:
        tries = access.get(q["id"], (None, [], 0))[1]
        if tries:
            q["inst"] = "%s/%s" % tries[-1][:2]
            q["tries"] = len(tries)
    with open(reqs, "w") as f:
        for q in requests:
            f.write(json.dumps(q) + "\n")
    by_kind, losses, req_problems = check.account(requests, records, access)
    problems += req_problems
    stream_summary, stream_problems = check.streams([json.loads(line) for line in open(conns) if line.strip()], records,
                                                    lab.front)
    problems += stream_problems
    band_rows, band_problems = check.bands(first, last, samples)
    problems += band_problems
    journal = []
    for h in every:
        journal += check.journal_errors(lab, h, t_start, records)
    unexplained = [j for j in journal if not j["explained_by"]]
    problems += ["journal error on %s not explained by any fault: %s: %s" % (j["host"], j["unit"], j["message"])
                 for j in unexplained]

    applied = {}
    for r in records:
        k = applied.setdefault(r["kind"], {"scheduled": 0, "applied": 0, "skipped": 0, "failed": 0})
        k["scheduled"] += 1
        k["skipped" if r.get("skipped") else "applied" if r.get("ok") else "failed"] += 1
    summary = {"seed": args.seed, "schedule": args.schedule, "seconds": args.seconds, "started": t_start, "faults": applied,
               "requests": by_kind, "streams": stream_summary, "answered_by": dict(sorted(collections.Counter(
                   q.get("inst", "?") for q in requests if q["status"] == 200).items())), "losses": losses, "bands": band_rows,
               "journal_errors": len(journal), "journal_unexplained": len(unexplained),
               "problems": problems, "passed": not problems}
    for file, doc in (("faults.json", records), ("journal.json", journal), ("summary.json", summary)):
        with open(os.path.join(args.out, file), "w") as f:
            json.dump(doc, f, indent=1)
    with open(os.path.join(args.out, "samples.jsonl"), "w") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")

    print("== %s: faults by kind (scheduled/applied/skipped/failed)" % name)
    for k, v in sorted(applied.items()):
        print("  %-12s %d/%d/%d/%d" % (k, v["scheduled"], v["applied"], v["skipped"], v["failed"]))
    print("== requests by kind")
    for k, v in sorted(by_kind.items()):
        print("  %-7s %-4s %6d  status %s  p50 %.1f ms  p99 %.1f ms  max %.1f ms  (client retries on a closed kept-alive connection: %d)"
              % (k, v["method"], v["total"], v["status"], v["p50_ms"], v["p99_ms"], v["max_ms"], v.get("client_retries", 0)))
    print("== streams held through the faults (%d s at most without one after an end)" % check.RECONNECT_S)
    for k, v in sorted(stream_summary.items()):
        print("  %-3s %d slots, %d connections, %d connect errors, %d echoes/events, %d not right, ends %s, "
              "reconnected within %.1f s, ends explained by %s" % (k, v["slots"], v["connections"], v["connect_errors"], v["messages"],
                                                                  v["bad"], v["ends"], v["reconnect_s_max"], v["explained_by"]))
    print("== answered by: " + ", ".join("%s %d" % kv for kv in summary["answered_by"].items()))
    print("== POSTs lost: %d, each explained by: %s" % (len(losses), "; ".join(
        "%s -> %s" % (x["id"], ", ".join(x["explained_by"]) or "NOTHING") for x in losses) or "-"))
    print("== RSS / fds (start -> end, max; band: +%d kB or +%d%%, +%d fds)"
          % (check.RSS_BAND_KB, 100 * check.RSS_BAND_RATIO, check.FD_BAND))
    for r in band_rows:
        print("  %-40s rss %s -> %s kB (max %s), fds %s -> %s (max %s)%s" % (
            r["what"], r["rss_kb_start"], r["rss_kb_end"], r["rss_kb_max"], r["fds_start"], r["fds_end"], r["fds_max"],
            ", private %s -> %s kB (max %s)" % (r["anon_kb_start"], r["anon_kb_end"], r["anon_kb_max"]) if "anon_kb_start" in r else ""))
    print("== journal: %d error lines, %d unexplained" % (len(journal), len(unexplained)))
    if problems:
        print("== %s FAILED:" % name)
        for x in problems:
            print("  - " + x)
        print("  replay: " + replay)
        sys.exit(1)
    print("== %s passed" % name)


if __name__ == "__main__":
    main()
