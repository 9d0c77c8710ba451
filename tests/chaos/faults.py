"""Applying the schedule's faults to the booted containers, and the containers' access.

Each fault runs in a thread of its own at its time, so faults overlap as the
schedule says. What happened is kept per fault: when it really started and
ended, what it hit (the pid killed, the host switched off), whether the
operator command it ran succeeded, and its output's tail. Host-level faults
(drain, partition, power-off) wait for an earlier one still under way, so at
most one host is impaired even when one takes longer than the schedule
allowed (a slow boot): the order of faults is the seed's, their times may
slip, and both are recorded.
"""

import os
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Lab:
    """The containers of one layout: names, addresses, how to run commands in them."""

    def __init__(self, env):
        self.work = env["COREPOOL_TEST_WORK"]
        self.net = env["CHAOS_NET"]
        self.front = env["CHAOS_FRONT"]
        self.hosts = env["CHAOS_HOSTS"].split()
        self.ip = dict(kv.split("=") for kv in env["CHAOS_IPS"].split())
        self.ncpu = int(env["CHAOS_NCPU"])
        self.service = env.get("CHAOS_SERVICE", "corepool")
        # Upgrades install 0.1.0-(base + the schedule's version): a later soak on
        # the same containers goes on from the versions an earlier one installed.
        self.version_base = int(env.get("CHAOS_VERSION_BASE", "0"))
        self.down = set()
        self.lock = threading.Lock()
        # Only one host-level fault at a time (see the module's doc).
        self.host_level = threading.Lock()

    def pid(self, name):
        try:
            with open(os.path.join(self.work, "state", name + ".pid")) as f:
                return f.read().strip()
        except OSError:
            return ""

    def ct(self, name, *cmd, timeout=120, check=False):
        """Runs CMD in container NAME (a clean environment, as tests/system/lib.sh's ct);
        returns (exit code, output)."""
        pid = self.pid(name)
        if not pid:
            return 255, "container %s is not running" % name
        full = ["nsenter", "-t", pid, "-a", "--", "env", "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
        try:
            p = subprocess.run(full + list(cmd), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return 124, "timed out after %ss: %s" % (timeout, (e.stdout or b"")[-300:])
        out = (p.stdout + p.stderr).strip()
        if check and p.returncode != 0:
            raise RuntimeError("%s: %s failed (%d): %s" % (name, " ".join(cmd), p.returncode, out[-500:]))
        return p.returncode, out

    def sh(self, name, script, **kw):
        return self.ct(name, "bash", "-c", "set -euo pipefail; " + script, **kw)

    def lib(self, script, timeout=300):
        """Runs SCRIPT on this host with tests/system/lib.sh and net.sh sourced."""
        p = subprocess.run(["bash", "-c", "set -euo pipefail; source tests/system/lib.sh; source tests/system/net.sh; " + script],
                           cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()

    def main_pid(self, host, i):
        rc, out = self.ct(host, "systemctl", "show", "-p", "MainPID", "--value", "%s@%d.service" % (self.service, i))
        return out if rc == 0 else "0"

    def wait_up(self, host, seconds=180):
        """Until HOST is on again (a fault that slipped may overlap its power-off)."""
        deadline = time.time() + seconds
        while host in self.down and time.time() < deadline:
            time.sleep(0.5)

    def wait_ready(self, host, seconds=60):
        """Every enabled instance of HOST answers /readyz on its socket."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            enabled = [i for i in range(self.ncpu)
                       if self.ct(host, "systemctl", "is-enabled", "-q", "%s@%d.socket" % (self.service, i))[0] == 0]
            ok = enabled and all(self.ct(host, "curl", "-sf", "-o", "/dev/null", "--max-time", "2", "--unix-socket",
                                         "/run/%s/%d.sock" % (self.service, i), "http://x/readyz")[0] == 0 for i in enabled)
            if ok:
                return True
            time.sleep(0.5)
        return False


def wait_new_pid(lab, host, i, old, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        new = lab.main_pid(host, i)
        if new not in ("0", "", old):
            return new
        time.sleep(0.05)
    return None


def apply(lab, f, rec):
    """Applies fault F; fills REC (started, ended, ok, detail)."""
    kind, target = f["kind"], f["target"]
    host, _, inst = target.partition("/")
    if kind == "disk_full":
        host = target.split(":")[0]
    svc = lab.service
    if host in lab.hosts and host in lab.down:
        rec.update(ok=True, skipped="host %s is switched off" % host)
        return
    if kind in ("kill9", "sigstop", "memory"):
        i = int(inst)
        pid = rec["pid"] = lab.main_pid(host, i)
        if pid in ("0", ""):
            rec.update(ok=True, skipped="instance not running")
            return
    if kind == "kill9":
        lab.ct(host, "kill", "-9", pid)
        new = wait_new_pid(lab, host, i, pid, 20)
        rec.update(ok=new is not None, detail="pid %s -> %s" % (pid, new))
    elif kind == "sigstop":
        lab.ct(host, "kill", "-STOP", pid)
        # The unit's watchdog (WatchdogSec=5s) must replace it.
        new = wait_new_pid(lab, host, i, pid, 30)
        if new is None:
            lab.ct(host, "kill", "-CONT", pid)
        rec.update(ok=new is not None, detail="hung pid %s -> %s (watchdog)" % (pid, new))
    elif kind == "memory":
        rc, out = lab.ct(host, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-X", "POST",
                         "--unix-socket", "/run/%s/%d.sock" % (svc, i), "http://x/debug/alloc?mb=1024&ms=2000")
        new = wait_new_pid(lab, host, i, pid, 20)
        rec.update(ok=new is not None, detail="1 GiB job: HTTP %s; pid %s -> %s" % (out, pid, new))
    elif kind == "reload_one":
        rc, out = lab.ct(host, svc, "reload", "--instance", inst)
        rec.update(ok=rc == 0, detail=out[-300:])
    elif kind == "reload_all":
        rc, out = lab.ct(host, svc, "reload")
        rec.update(ok=rc == 0, detail=out[-300:])
    elif kind == "scale":
        rc, out = lab.ct(host, svc, "scale", "1")
        time.sleep(f["duration"])
        lab.wait_up(host)
        rc2, out2 = lab.ct(host, svc, "scale", "max")
        rec.update(ok=rc == 0 and rc2 == 0, detail=(out[-200:] + " | " + out2[-200:]))
    elif kind == "upgrade":
        version = lab.version_base + f["version"]
        deb = "/var/tmp/%s_0.1.0-%d_amd64.deb" % (svc, version)
        rc, out = lab.sh(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s" % deb, timeout=300)
        rc2, ver = lab.ct(host, "dpkg-query", "-W", "-f", "${Version}", svc)
        rec.update(ok=rc == 0 and ver == "0.1.0-%d" % version, detail="installed %s; %s" % (ver, out[-200:]))
    elif kind == "nginx_reload":
        rc, out = lab.ct(lab.front, "systemctl", "reload", "nginx")
        rec.update(ok=rc == 0, detail=out[-300:])
    elif kind == "disk_full":
        path = target.split(":", 1)[1]
        fill = path + "/chaos-fill"
        rc, out = lab.sh(host, "cat /dev/zero > %s 2>/dev/null || true; df -h %s | tail -n1" % (fill, path))
        rec["detail"] = "full: " + out
        time.sleep(f["duration"])
        lab.wait_up(host)
        rc, _ = lab.ct(host, "rm", "-f", fill)
        rec.update(ok=rc == 0)
    else:
        with lab.host_level:
            rec["started"] = time.time()
            host_level(lab, f, rec, host)


def host_level(lab, f, rec, host):
    kind = f["kind"]
    svc = lab.service
    if kind == "drain":
        rc, out = lab.ct(lab.front, svc, "front", "drain", host, "--timeout", "30")
        time.sleep(f["duration"])
        rc2, out2 = lab.ct(lab.front, svc, "front", "undrain", host)
        rec.update(ok=rc == 0 and rc2 == 0, detail=out[-200:] + " | " + out2[-200:])
    elif kind == "partition":
        # Both ways, at the front: nothing from the host comes in, nothing to it goes out.
        table = "chaos_" + host
        ip = lab.ip[host]
        ns = "%s-%s" % (lab.net, lab.front)
        nft = ["ip", "netns", "exec", ns, "nft"]
        rules = ("add table inet {t}; add chain inet {t} in {{ type filter hook input priority 0; }}; "
                 "add chain inet {t} out {{ type filter hook output priority 0; }}; "
                 "add rule inet {t} in ip saddr {ip} drop; add rule inet {t} out ip daddr {ip} drop").format(t=table, ip=ip)
        p = subprocess.run(nft + [rules], capture_output=True, text=True)
        time.sleep(f["duration"])
        q = subprocess.run(nft + ["delete table inet " + table], capture_output=True, text=True)
        rec.update(ok=p.returncode == 0 and q.returncode == 0, detail=(p.stderr + q.stderr).strip() or "dropped both ways")
    elif kind == "poweroff":
        with lab.lock:
            lab.down.add(host)
        rc, out = lab.lib("ct_poweroff %s; net_cable %s %s down" % (host, lab.net, host))
        time.sleep(f["duration"])
        rc2, out2 = lab.lib("net_cable {n} {h} up; ct_boot {h} --network-namespace-path=/run/netns/{n}-{h}".format(n=lab.net, h=host))
        ready = rc2 == 0 and lab.wait_ready(host)
        with lab.lock:
            lab.down.discard(host)
        rec.update(ok=rc == 0 and ready, detail="off: %s; boot: %s; ready: %s" % (out[-150:], out2[-200:], ready))
    else:
        raise ValueError("unknown fault kind " + kind)


def run_schedule(lab, faults, t_start, records):
    """Starts every fault at t_start + its t, each in a thread; returns the threads."""
    threads = []

    def one(f, rec):
        delay = t_start + f["t"] - time.time()
        if delay > 0:
            time.sleep(delay)
        rec["started"] = time.time()
        try:
            apply(lab, f, rec)
        except Exception as e:  # recorded as a failed fault, the soak goes on
            rec.update(ok=False, detail="%s: %s" % (type(e).__name__, e))
        rec["ended"] = time.time()
        print("%s fault #%d %s %s: %s%s" % (time.strftime("%H:%M:%S"), f["seq"], f["kind"], f["target"],
                                              "ok" if rec.get("ok") else "FAILED",
                                              " (skipped: %s)" % rec["skipped"] if rec.get("skipped") else
                                              " (%s)" % rec.get("detail", "")[:160]), flush=True)

    for f in faults:
        rec = dict(f)
        records.append(rec)
        t = threading.Thread(target=one, args=(f, rec), daemon=True)
        t.start()
        threads.append(t)
    return threads
