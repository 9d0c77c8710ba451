"""What the soak checks: samples during it (every SAMPLE_S, checked every
minute) and the accounting at its end.

Every request is accounted for (and every WebSocket and event stream, see
streams()): idempotent requests (GETs, cached or not,
heavy or light) must all be answered 200; a POST may be lost only when it was
in flight on an instance that a fault killed or hung at that moment (kill -9,
SIGSTOP, memory limit) or on a host switched off or cut off from the front,
matched by time and by the instance nginx sent it to (nginx's log of the
request id). At the end: every unit that should run is active and none is
failed, every instance of every host answers through the front, no host is
left drained, RSS and open fds of every instance and of nginx within the band
below of their values at the start, no process, socket or temporary file
left over, and every error line of each host's journal explained by a fault
on that host (or, for the front, on any host) at that time.
"""

import json
import statistics
import time

SAMPLE_S = 20
# The band: at the end, an instance's RSS at most RSS_BAND_KB above its value
# at the start (or RSS_BAND_RATIO of it, whichever is larger), its open fds at
# most FD_BAND above; nginx (all its processes) the same, on its private
# memory (RssAnon): its RSS also counts the pages of the cache's shared keys
# zone, which grow as entries are added (a 30-minute soak: 18 -> 29 MB).
RSS_BAND_KB = 4096
RSS_BAND_RATIO = 0.5
FD_BAND = 8
# A fault explains what happens from its start until this long after its end
# (nginx marks a failing server down for fail_timeout, restarts settle).
GRACE_S = 15
# Faults that kill what an instance had in flight, or cut a host off.
LOSSY_INSTANCE = {"kill9", "sigstop", "memory"}
LOSSY_HOST = {"poweroff", "partition"}


def sample(lab):
    """One reading: per instance (host, i) -> pid, rss_kb, fds, restarts; nginx; failed units."""
    out = {"t": time.time(), "instances": {}, "nginx": [], "failed": {}}
    svc = lab.service
    for h in lab.hosts + ([lab.front] if lab.front not in lab.hosts else []):
        if h in lab.down:
            continue
        rc, text = lab.sh(h, (
            "for i in $(seq 0 %d); do p=$(systemctl show -p MainPID --value %s@$i.service); "
            "if [ \"$p\" != 0 ] && [ -r /proc/$p/status ]; then echo inst $i $p $(awk '/VmRSS/ {print $2}' /proc/$p/status) "
            "$(ls /proc/$p/fd | wc -l) $(systemctl show -p NRestarts --value %s@$i.service); fi; done; "
            "for p in $(pgrep -x nginx || true); do echo nginx $p $(awk '/VmRSS/ {r = $2} /RssAnon/ {a = $2} END {print r, a}' /proc/$p/status) "
            "$(ls /proc/$p/fd | wc -l) "
            "$(tr '\\0' ' ' </proc/$p/cmdline); done; "
            "systemctl --failed --plain --no-legend | sed 's/^/failed /'") % (lab.ncpu - 1, svc, svc), timeout=30)
        for line in text.splitlines():
            w = line.split()
            if w[:1] == ["inst"] and len(w) == 6 and h in lab.hosts:
                out["instances"]["%s/%s" % (h, w[1])] = {"pid": w[2], "rss_kb": int(w[3]), "fds": int(w[4]),
                                                         "restarts": int(w[5])}
            elif w[:1] == ["nginx"] and len(w) >= 5 and h == lab.front:
                role = " ".join(w[5:])
                # The cache loader exits by itself a minute after nginx starts.
                if "cache loader" not in role:
                    out["nginx"].append({"pid": w[1], "rss_kb": int(w[2]), "anon_kb": int(w[3]), "fds": int(w[4]), "role": role})
            elif w[:1] == ["failed"]:
                out["failed"].setdefault(h, []).append(" ".join(w[1:]))
    return out


def lossy_faults_for(records, host, inst, t0, t1):
    """The faults that explain losing a request sent to HOST/INST during [t0, t1]."""
    found = []
    for r in records:
        if "started" not in r or r.get("skipped"):
            continue
        s, e = r["started"] - 1, r.get("ended", time.time()) + 1
        if e < t0 or s > t1:
            continue
        if r["kind"] in LOSSY_INSTANCE and r["target"] == "%s/%s" % (host, inst):
            found.append(r)
        elif r["kind"] in LOSSY_HOST and r["target"] == host:
            found.append(r)
    return found


def parse_access_log(text, ip_to_host, local, port_base=7000):
    """nginx's chaos log: request id -> (status, [(host, instance, upstream status)], times logged).
    A unix socket upstream is an instance of LOCAL, the front itself."""
    out = {}
    for line in text.splitlines():
        w = line.split(" ", 3)
        if len(w) < 4:
            continue
        _, rid, status, rest = w
        addrs, _, ups = rest.partition('" "')
        tries = []
        for a, st in zip(addrs.strip('"').replace(" : ", ", ").split(", "), ups.split('"')[0].replace(" : ", ", ").split(", ")):
            ip, _, port = a.rpartition(":")
            if ip in ip_to_host and port.isdigit():
                tries.append((ip_to_host[ip], int(port) - port_base, st))
            elif a.startswith("unix:"):
                tries.append((local, int(a.rsplit("/", 1)[-1].split(".")[0]), st))
        # A request id logged twice reached nginx twice (a client's retry).
        prev = out.get(rid)
        out[rid] = (status, tries, (prev[2] + 1) if prev else 1)
    return out


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def account(requests, records, access):
    """Requests by kind and status, the failures, and whether each is explained."""
    by_kind = {}
    problems = []
    losses = []
    for q in requests:
        k = by_kind.setdefault(q["kind"], {"method": q["method"], "total": 0, "status": {}, "lat": [], "echo_missing": 0})
        k["total"] += 1
        k["status"][str(q["status"])] = k["status"].get(str(q["status"]), 0) + 1
        k["lat"].append(q["t1"] - q["t0"])
        ok = q["status"] == 200 and q.get("ok_body", True)
        if q["status"] == 200 and not q.get("echo"):
            k["echo_missing"] += 1
        if q.get("retried"):
            k["client_retries"] = k.get("client_retries", 0) + 1
            # Retried because the connection was found closed: nginx must not
            # have seen the first try (a POST would then have been sent twice).
            if access.get(q["id"], (None, [], 0))[2] > 1:
                problems.append("%s %s retried by the client after nginx had it: %s" % (q["kind"], q["id"], q["retried"]))
        if ok:
            continue
        if q["method"] != "POST":
            problems.append("%s %s failed: status %s %s" % (q["kind"], q["id"], q["status"], q.get("err", "")))
            continue
        status, tries, _ = access.get(q["id"], (None, [], 0))
        why = []
        if tries:
            host, inst, _ = tries[-1]
            why = lossy_faults_for(records, host, inst, q["t0"], q["t1"])
        loss = {"id": q["id"], "status": q["status"], "err": q.get("err", ""), "nginx": status,
                "upstream": ["%s/%s:%s" % t for t in tries],
                "explained_by": ["#%d %s %s" % (r["seq"], r["kind"], r["target"]) for r in why]}
        losses.append(loss)
        if not why:
            problems.append("POST %s lost and not explained by any fault: %s" % (q["id"], json.dumps(loss)))
    for k in by_kind.values():
        lat = k.pop("lat")
        k["p50_ms"] = round(1000 * statistics.median(lat), 1) if lat else 0
        k["p99_ms"] = round(1000 * pct(lat, 99), 1)
        k["max_ms"] = round(1000 * max(lat), 1) if lat else 0
        if k["echo_missing"]:
            problems.append("%d answers without their X-Request-Id echoed" % k["echo_missing"])
    return by_kind, losses, problems


# Faults that end a stream cleanly (a WebSocket closed with 1001 or 1012, an
# event stream ended after its retry: hint): its instance, or every instance
# of its host, is stopped or restarted gracefully.
GRACEFUL_INSTANCE = {"reload_one"}
GRACEFUL_HOST = {"reload_all", "scale", "upgrade", "poweroff"}
CLEAN_ENDS = {"1000", "1001", "1012", "clean"}
# Faults that reload the front's nginx: its old workers cut the streams they
# still carry worker_shutdown_timeout (10 s, tests/chaos/run) later. Those
# aimed at a host reload the front's nginx only where the host is the front
# (one host), but drain's always does.
FRONT_RELOAD_ANY = {"nginx_reload", "drain"}
FRONT_RELOAD_ON_FRONT = {"scale", "upgrade"}
# A stream's client is connected again within this long of losing its
# connection (nginx may try a handshake for proxy_next_upstream_timeout, 30 s).
RECONNECT_S = 45
# How long before the client noticed it a stall began (streams.py's STALL_S,
# and a second for the echo in flight).
STALL_S = 11
# An nginx reload's old workers cut what they carry this long after it
# (worker_shutdown_timeout, tests/chaos/run), give or take GRACE_S.
SHUTDOWN_S = 10


def stream_faults_for(records, inst, t0, t1, clean, front):
    """The faults that explain a stream of INST (host/i) ending during [t0, t1]
    (the moment it ended, or for a stall the STALL_S before): for a clean end, a
    graceful stop or restart of it, in progress then; otherwise one that kills
    or hangs it or cuts its host off, in progress then, or a reload of the
    front's nginx (host FRONT) whose old workers' cut falls then."""
    host = inst.split("/")[0]
    found = []
    for r in records:
        if "started" not in r or r.get("skipped"):
            continue
        end = r.get("ended", time.time())
        if r["kind"] in FRONT_RELOAD_ANY or r["target"] == front and r["kind"] in FRONT_RELOAD_ON_FRONT:
            # A reload's cut: SHUTDOWN_S after it (drain: after it or its undrain).
            reload_cut = not clean and any(abs(t - (at + SHUTDOWN_S)) <= GRACE_S for at in (r["started"], end)
                                           for t in (t0, t1))
        else:
            reload_cut = False
        if reload_cut:
            found.append(r)
            continue
        if end + GRACE_S < t0 or r["started"] - 1 > t1:
            continue
        instance_hit, host_hit = r["target"] == inst, r["target"] == host
        if instance_hit and r["kind"] in LOSSY_INSTANCE or host_hit and r["kind"] in LOSSY_HOST:
            found.append(r)
        elif clean and (instance_hit and r["kind"] in GRACEFUL_INSTANCE or host_hit and r["kind"] in GRACEFUL_HOST):
            found.append(r)
    return found


def streams(conns, records, front):
    """The WebSockets and event streams of tests/chaos/streams.py: every end
    before the soak's own explained by a fault on that instance or host, no
    failed connect (a handshake is a GET: nginx tries the next instance), no
    echo or event that is not right, every slot back within RECONNECT_S and
    still carrying data at the end."""
    summary = {}
    problems = []
    by_slot = {}
    for c in conns:
        by_slot.setdefault((c["kind"], c["slot"]), []).append(c)
    for (kind, slot), cs in sorted(by_slot.items()):
        k = summary.setdefault(kind, {"slots": 0, "connections": 0, "connect_errors": 0, "ends": {}, "messages": 0,
                                      "bad": 0, "reconnect_s_max": 0.0, "explained_by": {}})
        k["slots"] += 1
        lost_at = None
        for c in sorted(cs, key=lambda c: c.get("opened", c.get("t"))):
            if "connect_error" in c:
                k["connect_errors"] += 1
                problems.append("%s %d: connect failed at %.0f: %s" % (kind, slot, c["t"], c["connect_error"]))
                continue
            k["connections"] += 1
            k["messages"] += c["n"]
            k["bad"] += c["bad"]
            k["ends"][c["end"]] = k["ends"].get(c["end"], 0) + 1
            if c["bad"]:
                problems.append("%s %d on %s: %d echoes or events not right" % (kind, slot, c["inst"], c["bad"]))
            if lost_at is not None:
                k["reconnect_s_max"] = round(max(k["reconnect_s_max"], c["opened"] - lost_at), 1)
                if c["opened"] - lost_at > RECONNECT_S:
                    problems.append("%s %d: %.0f s without a connection (from %.0f)" % (kind, slot, c["opened"] - lost_at, lost_at))
            lost_at = None
            if c["end"] == "stop":
                continue
            lost_at = c["ended"]
            # Judged at its end (a stall: from when it began), not over its life.
            t0 = c["ended"] - (STALL_S if c["end"] == "stall" else 1)
            why = stream_faults_for(records, c["inst"], t0, c["ended"], c["end"] in CLEAN_ENDS, front)
            for r in why:
                k["explained_by"][r["kind"]] = k["explained_by"].get(r["kind"], 0) + 1
            if not why:
                problems.append("%s %d on %s ended (%s) at %.0f, explained by no fault" % (kind, slot, c["inst"], c["end"], c["ended"]))
        last = [c for c in cs if "connect_error" not in c][-1:]
        if not last or last[0]["end"] != "stop" or last[0]["n"] == 0:
            problems.append("%s %d: not carrying data at the end of the soak (last: %s)" % (kind, slot, json.dumps(last[:1])))
    return summary, problems


def bands(first, last, samples):
    """RSS and fd of each instance and of nginx: start, end, max over the soak, and whether the end is in the band."""
    rows = []
    problems = []
    for key, a in sorted(first["instances"].items()):
        b = last["instances"].get(key)
        seen = [s["instances"][key] for s in samples if key in s["instances"]]
        row = {"what": key, "rss_kb_start": a["rss_kb"], "rss_kb_end": b and b["rss_kb"],
               "rss_kb_max": max(x["rss_kb"] for x in seen), "fds_start": a["fds"], "fds_end": b and b["fds"],
               "fds_max": max(x["fds"] for x in seen), "restarts_end": b and b["restarts"]}
        rows.append(row)
        if b is None:
            problems.append("%s: not running at the end" % key)
            continue
        if b["rss_kb"] > a["rss_kb"] + max(RSS_BAND_KB, RSS_BAND_RATIO * a["rss_kb"]):
            problems.append("%s: RSS %d kB at the end, %d at the start: outside the band" % (key, b["rss_kb"], a["rss_kb"]))
        if b["fds"] > a["fds"] + FD_BAND:
            problems.append("%s: %d open fds at the end, %d at the start: outside the band" % (key, b["fds"], a["fds"]))
    if first["nginx"]:
        tot = lambda s, f: sum(p[f] for p in s["nginx"])  # noqa: E731
        row = {"what": "nginx (%d processes at the start, %d at the end)" % (len(first["nginx"]), len(last["nginx"])),
               "rss_kb_start": tot(first, "rss_kb"), "rss_kb_end": tot(last, "rss_kb"),
               "rss_kb_max": max(tot(s, "rss_kb") for s in samples if s["nginx"]),
               "anon_kb_start": tot(first, "anon_kb"), "anon_kb_end": tot(last, "anon_kb"),
               "anon_kb_max": max(tot(s, "anon_kb") for s in samples if s["nginx"]),
               "fds_start": tot(first, "fds"), "fds_end": tot(last, "fds"),
               "fds_max": max(tot(s, "fds") for s in samples if s["nginx"])}
        rows.append(row)
        old = [p for p in last["nginx"] if "shutting down" in p["role"]]
        if old:
            problems.append("nginx: %d old workers still shutting down at the end" % len(old))
        if len(last["nginx"]) != len(first["nginx"]):
            problems.append("nginx: %d processes at the end, %d at the start (old workers left?)" %
                            (len(last["nginx"]), len(first["nginx"])))
        a, b = row["anon_kb_start"], row["anon_kb_end"]
        if b > a + max(RSS_BAND_KB, RSS_BAND_RATIO * a):
            problems.append("nginx: private memory (RssAnon) %d kB at the end, %d at the start: outside the band" % (b, a))
        if row["fds_end"] > row["fds_start"] + FD_BAND * len(first["nginx"]):
            problems.append("nginx: %d fds at the end, %d at the start" % (row["fds_end"], row["fds_start"]))
    return rows, problems


def journal_errors(lab, host, since, records):
    """HOST's journal lines of priority err and worse since SINCE, each with the fault that explains it."""
    rc, text = lab.ct(host, "journalctl", "-q", "-p", "err", "--since", "@%d" % int(since), "-o", "json",
                      "--output-fields=MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER", timeout=60)
    lines = []
    for raw in text.splitlines():
        try:
            j = json.loads(raw)
        except ValueError:
            continue
        t = int(j.get("__REALTIME_TIMESTAMP", "0")) / 1e6
        msg = j.get("MESSAGE")
        if isinstance(msg, list):  # a message that is not UTF-8: journald gives its bytes
            msg = bytes(msg).decode("utf-8", "replace")
        why = [r for r in records if "started" in r and not r.get("skipped")
               and r["started"] - 2 <= t <= r.get("ended", time.time()) + GRACE_S
               and (host == lab.front or r["target"].split("/")[0].split(":")[0] == host)]
        lines.append({"host": host, "t": round(t, 3), "unit": j.get("_SYSTEMD_UNIT") or j.get("SYSLOG_IDENTIFIER"),
                      "message": str(msg)[:300], "explained_by": ["#%d %s %s" % (r["seq"], r["kind"], r["target"])
                                                                  for r in why]})
    return lines
