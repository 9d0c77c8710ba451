"""The fault schedule: from a seed, the faults of a soak and when they start.

A pure function of (seed, soak length, layout): the same seed gives the same
schedule, which is how `tests/chaos/run --seed S` replays a failure. The
generator keeps what corepool claims to survive: at most one backend host
impaired (drained, partitioned or switched off) at a time, at least one
instance of every host left to serve, and no fault aimed at a host while it is
switched off. Faults may overlap otherwise; fault starts are at least
MIN_GAP_S apart.
"""

import json
import random

# Seconds between two fault starts, at least; the rest of the gap is drawn
# from an exponential distribution of mean MEAN_EXTRA_S, cut at 3 times that
# (so a fault about every MIN_GAP_S + MEAN_EXTRA_S seconds).
MIN_GAP_S = 4.0
MEAN_EXTRA_S = 4.0
# The first fault waits for the load to warm up; the last ends before the
# soak does, so the end checks see a settled system.
START_S = 10.0
SETTLE_S = 25.0
# How long a switched-off host takes to come back, at most (boot and the
# instances' start): no other host-level fault is drawn before that.
BOOT_ALLOWANCE_S = 30.0

# kind -> (copies per round, what it targets, (min, max) duration in s or None).
# Kinds are drawn in rounds: each round is every kind, as many times as its
# copies, shuffled; so a soak of a round's length (about 2 minutes) meets
# every kind, in an order the seed decides.
KINDS = {
    "kill9": (3, "instance", None),
    "sigstop": (1, "instance", None),
    "memory": (1, "instance", None),
    "reload_one": (1, "instance", None),
    "reload_all": (1, "host", None),
    "scale": (1, "host", (5, 15)),
    "upgrade": (1, "host", None),
    "nginx_reload": (2, "front", None),
    "drain": (1, "host_exclusive", (5, 15)),
    "poweroff": (1, "host_exclusive", (5, 15)),
    "partition": (1, "host_exclusive", (3, 12)),
    "disk_full": (1, "disk", (8, 20)),
}
# How long a fault without a duration keeps its host busy, about: a host is
# not switched off under one (nor one started on a host that will be off
# before it ends), so that what it changed is undone (the soak found a
# scale-down left in place by a power-off in the middle of it).
BUSY_S = {"upgrade": 30, "reload_all": 15, "reload_one": 8, "kill9": 5, "sigstop": 15, "memory": 10}
# Host-level faults of the three-host layout only (one host is its own front).
THREE_HOST_ONLY = {"drain", "poweroff", "partition"}


def generate(seed, seconds, hosts, ncpu, upgrades_per_host, disks):
    """The schedule: a list of fault dicts sorted by start time `t` (seconds
    from the soak's start), each with `seq`, `kind`, `target` and, for faults
    that last, `duration`. `hosts`: the backend hosts; `disks`: the
    "host:path" filesystems that may be filled."""
    rng = random.Random(seed)
    kinds = [k for k in KINDS if len(hosts) > 1 or k not in THREE_HOST_ONLY]
    upgrades = {h: 0 for h in hosts}
    # (start, end, host): host-level impairments, switched-off hosts,
    # scale-downs, and every fault's time on its host.
    impaired, off, scaled, busy = [], [], [], []

    def during(spans, t, host=None, end=None):
        end = t if end is None else end
        return any(s <= end and t <= e for s, e, h in spans if host is None or h == host)

    def place(kind, t):
        """The fault KIND at T, or None where it does not fit now."""
        _, aim, span = KINDS[kind]
        duration = round(rng.uniform(*span), 1) if span else None
        end = t + (duration or 0) + (BOOT_ALLOWANCE_S if kind == "poweroff" else 0)
        busy_end = t + (duration or 0) + BUSY_S.get(kind, 0)
        # Hosts that stay on while this fault lasts.
        up = [h for h in hosts if not during(off, t, h, busy_end)]
        if end > seconds - SETTLE_S or not up:
            return None
        f = {"t": round(t, 1), "kind": kind}
        if duration is not None:
            f["duration"] = duration
        if aim == "instance":
            host = rng.choice(up)
            # Not an instance a scale-down has stopped.
            n = 1 if during(scaled, t, host) else ncpu
            f["target"] = "%s/%d" % (host, rng.randrange(n))
        elif aim == "host":
            if kind == "upgrade":
                up = [h for h in up if upgrades[h] < upgrades_per_host]
            if kind == "scale" and ncpu < 2 or not up:
                return None
            host = f["target"] = rng.choice(up)
            if kind == "upgrade":
                upgrades[host] += 1
                f["version"] = upgrades[host] + 1
            if kind == "scale":
                scaled.append((t, end, host))
        elif aim == "host_exclusive":
            # One host impaired at a time, and 2 s between two such faults.
            if any(s <= t <= e + 2 for s, e, _ in impaired):
                return None
            if kind == "poweroff":
                up = [h for h in up if not during(busy, t, h, end)]
                if not up:
                    return None
            host = f["target"] = rng.choice(up)
            impaired.append((t, end, host))
            if kind == "poweroff":
                off.append((t, end, host))
        elif aim == "disk":
            f["target"] = rng.choice([d for d in disks if d.split(":")[0] not in set(hosts) - set(up)])
        else:
            f["target"] = "front"
        busy.append((t, busy_end, f["target"].split("/")[0].split(":")[0]))
        return f

    faults = []
    bag = []
    t = START_S
    while True:
        t += MIN_GAP_S + min(rng.expovariate(1.0 / MEAN_EXTRA_S), 3 * MEAN_EXTRA_S)
        if t > seconds - SETTLE_S:
            break
        if not bag:
            bag = [k for k in kinds for _ in range(KINDS[k][0])]
            rng.shuffle(bag)
        # The first kind of the bag that fits now is taken out; one that
        # does not (a host already impaired, no upgrade left) waits for a
        # later slot.
        for kind in list(bag):
            f = place(kind, t)
            if f is not None:
                bag.remove(kind)
                faults.append(f)
                break
    for k, f in enumerate(faults):
        f["seq"] = k + 1
    return faults


def describe(faults):
    """One line per fault, as printed at the start of a soak."""
    out = []
    for f in faults:
        extra = " for %.1fs" % f["duration"] if "duration" in f else ""
        version = " to 0.1.0-%d" % f["version"] if "version" in f else ""
        out.append("  #%-3d t=%6.1fs %-12s %s%s%s" % (f["seq"], f["t"], f["kind"], f["target"], version, extra))
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    print(json.dumps(generate(int(sys.argv[1]), float(sys.argv[2]), ["app1", "app2"], 2, 3,
                              ["front:/var/log", "front:/var/cache/corepool", "app1:/var/log", "app2:/var/log"]),
                     indent=1))
