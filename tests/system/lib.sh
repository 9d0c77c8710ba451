#!/usr/bin/env bash
# Booted-systemd container harness for the system tests (sourced by
# tests/system/run, scaleout and service, tests/containers/run and bench/lib.sh).
#
# A Debian bookworm rootfs is built once with debootstrap and cached; each test
# run copies it, boots it with systemd-nspawn (real systemd as the container's
# PID 1, private network), and runs commands inside with nsenter. Containers
# are powered off and removed on exit, also on failure.

CACHE=${COREPOOL_TEST_CACHE:-/var/cache/corepool-test}
WORK=${COREPOOL_TEST_WORK:-/var/tmp/corepool-system}
# A Debian mirror for debootstrap; empty: debootstrap's default (the Debian archive).
MIRROR=${COREPOOL_TEST_MIRROR:-}
# In the rootfs from the start: what a minimal Debian server has.
BASE_INCLUDE="systemd,systemd-sysv,dbus,curl,ca-certificates,procps,iproute2,util-linux"
# Test tools, installed after debootstrap (python packages fail in --include):
# certbot and the local ACME server pebble; openssl for certificates;
# Debian's prometheus (with promtool) for the observability tests;
# python3-websockets for the WebSocket client of the stream tests;
# redis-server for the shared-state tests (installed but disabled: a test
# that wants it configures and starts it, as an operator would).
BASE_EXTRA="certbot pebble openssl python3 prometheus python3-websockets redis-server"
# From bookworm-backports: the test clients' curl. bookworm's curl 7.88 fails
# HTTP/2 requests that nginx refused with GOAWAY on a reload instead of
# retrying them (exit 16; fixed in curl 8.4), which would count a client bug
# as requests lost by the server (docs/reliability.md, "Clients").
BASE_BACKPORTS="curl"
BASE_KEY=$(printf '%s|%s|%s|v2' "$BASE_INCLUDE" "$BASE_EXTRA" "$BASE_BACKPORTS" | sha256sum | cut -c1-12)
BASE="$CACHE/bookworm-$BASE_KEY"

# Container state lives in files ($STATE/NAME.pid: its systemd, $STATE/NAME.nspawn-pid:
# systemd-nspawn), so tests running in subshells (a reboot) keep it current.
# (Not DIR.nspawn beside the rootfs: nspawn reads that as a settings file.)
STATE="$WORK/state"
ct_pid() { cat "$STATE/$1.pid" 2>/dev/null || true; }

# (Inside run_test, also appended to TEST_LOG: the failed test's own lines,
# written before the test ends, for finish.)
log() {
    printf '%s %s\n' "$(date +%T)" "$*" >&2
    if [[ -n ${TEST_LOG:-} ]]; then printf '%s %s\n' "$(date +%T)" "$*" >>"$TEST_LOG"; fi
}
die() {
    log "FATAL: $*"
    ASSERTED=1 # (a test's EXIT trap need not name it again)
    exit 1
}

# need_tools INSTALLER TOOL...: dies naming the first TOOL that is not on
# PATH, and INSTALLER, the script that installs it (tests/run, bench/run).
need_tools() {
    local installer=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "missing tool: $tool ($installer installs it)"
    done
}

# build_debs DIR [UPGRADES]: builds the package under test and UPGRADES
# (default 1) version-bumped copies (0.1.0-2, -3, ...; for the upgrade tests)
# into DIR; sets DEB, DEB_NEXT (0.1.0-2) and their basenames DEB_NAME,
# DEB_NEXT_NAME, and DEB_UPGRADES (every copy, oldest first).
build_debs() {
    local dir=$1 upgrades=${2:-1} k
    log "building packages"
    rm -rf "$dir" && mkdir -p "$dir"
    packaging/build-deb --output "$dir" >/dev/null
    DEB_UPGRADES=()
    for ((k = 2; k <= upgrades + 1; k++)); do
        packaging/build-deb --output "$dir" --deb-version "0.1.0-$k" >/dev/null
        DEB_UPGRADES+=("$(ls "$dir"/corepool_0.1.0-"$k"_*.deb)")
    done
    DEB=$(ls "$dir"/corepool_*-1_*.deb)
    DEB_NEXT=$(ls "$dir"/corepool_0.1.0-2_*.deb)
    [[ -f $DEB && -f $DEB_NEXT ]] || die "package build failed"
    # shellcheck disable=SC2034 # used by the scripts that source this one
    DEB_NAME=$(basename "$DEB") DEB_NEXT_NAME=$(basename "$DEB_NEXT")
}

# Builds the cached rootfs if it is not there yet.
ensure_base() {
    if [[ -f $BASE/.complete ]]; then
        return
    fi
    mkdir -p "$CACHE"
    local tmp="$BASE.tmp"
    rm -rf "$tmp"
    log "building rootfs $BASE (debootstrap, about a minute)"
    # shellcheck disable=SC2086 # no mirror argument at all when MIRROR is empty
    debootstrap --variant=minbase --include="$BASE_INCLUDE" bookworm "$tmp" ${MIRROR} >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $CACHE/debootstrap.log"
    # shellcheck disable=SC2086
    systemd-nspawn -q -D "$tmp" --register=no --keep-unit \
        sh -c "sed -n 's/^deb \([^ ]*\) bookworm main.*/deb \1 bookworm-backports main/p' /etc/apt/sources.list > /etc/apt/sources.list.d/backports.list &&
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $BASE_EXTRA >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports $BASE_BACKPORTS >/dev/null &&
            systemctl disable -q redis-server.service" ||
        die "installing test tools into the rootfs failed"
    systemd-nspawn -q -D "$tmp" --register=no --keep-unit curl --version | head -n1 | grep -Eq '^curl ([89]|[1-9][0-9])\.' ||
        die "the rootfs's curl is not from bookworm-backports (8.x)"
    # Nothing of the host's leaks in; the containers have no network to resolve with anyway.
    touch "$tmp/.complete"
    mv "$tmp" "$BASE"
}

# ct_create NAME [DEB...]: a fresh copy of the rootfs, with the given .debs in
# /var/tmp and their dependencies downloaded (the container itself is offline).
ct_create() {
    local name=$1
    shift
    local dir="$WORK/$name"
    rm -rf "$dir"
    mkdir -p "$WORK"
    cp -a --reflink=auto "$BASE" "$dir"
    # Its own name (debootstrap copied this machine's); a plain file, not a symlink.
    rm -f "$dir/etc/hostname" && echo "$name" >"$dir/etc/hostname"
    local deb
    for deb in "$@"; do
        cp "$deb" "$dir/var/tmp/"
    done
    if (($#)); then
        # Not booted, host network: fetch what `apt install ./corepool.deb` will want.
        systemd-nspawn -q -D "$dir" --register=no --keep-unit \
            sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only /var/tmp/$(basename "$1") >/dev/null" ||
            die "downloading the package's dependencies failed"
    fi
}

# ct_cgroups NAME: the cgroups (one per hierarchy systemd uses: the unified
# one, and name=systemd on a v1 or hybrid host) container NAME runs in. With
# --keep-unit --register=no nspawn keeps the cgroup it was started in and
# gives the container's systemd that subtree as its root: containers started
# from one shell would share one, and their systemds the same unit cgroups
# (app2's corepool@0.socket failed to start at a boot with "Failed to join
# unit cgroup /system.slice/system-corepool.slice/corepool@0.socket: No such
# file or directory": app1's systemd had removed the directory they shared).
# Keyed by $WORK too, so runs side by side with the same names stay apart.
ct_cgroups() {
    local mnt pattern own
    for mnt in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
        case $(stat -f -c %T "$mnt" 2>/dev/null) in
            cgroup2fs) pattern='^0::' ;;
            cgroupfs) pattern='^[0-9]*:name=systemd:' ;; # only /sys/fs/cgroup/systemd of these
            *) continue ;;
        esac
        own=$(sed -n "s/$pattern//p" /proc/self/cgroup)
        printf '%s%s/corepool-test%s/%s\n' "$mnt" "${own%/}" "${WORK//\//_}" "$1"
    done
}

# ct_cgroup_enter NAME: moves this shell into container NAME's cgroups; dies
# if there are none, or if a process of an earlier boot is still in them.
ct_cgroup_enter() {
    local cg n=0
    while read -r cg; do
        [[ -z $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null) ]] ||
            die "cgroup $cg of container $1 still holds processes of an earlier boot"
        { mkdir -p "$cg" && echo "$BASHPID" >"$cg/cgroup.procs"; } || die "cannot make cgroup $cg for container $1"
        n=$((n + 1))
    done < <(ct_cgroups "$1")
    ((n > 0)) || die "no cgroup hierarchy found under /sys/fs/cgroup for container $1"
}

# ct_cgroup_remove NAME: removes container NAME's cgroups (and what nspawn
# and the container's systemd left below them) once they are empty: the last
# processes may take a moment to leave after nspawn has exited.
ct_cgroup_remove() {
    local cg i
    while read -r cg; do
        for ((i = 0; i < 50; i++)); do
            [[ -d $cg ]] || break
            find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || sleep 0.1
        done
        # (An if, not `[[ ]] && log`: the loop's last status is the function's,
        # and a false test there made every poweroff fail an EXIT trap under set -e.)
        if [[ -d $cg ]]; then log "cgroup $cg of container $1 is still there (processes left in it?)"; fi
    done < <(ct_cgroups "$1")
}

# ct_boot NAME [NETWORK]: boots the container and waits for systemd to finish
# starting. NETWORK is nspawn's network option (default --private-network: no
# network but loopback; the scale-out test gives each container a namespace of
# the network it builds with --network-namespace-path=).
ct_boot() {
    local name=$1 dir="$WORK/$1" network=${2:---private-network}
    # In cgroups of its own (ct_cgroups), then nspawn, in the same process.
    (
        ct_cgroup_enter "$name"
        exec systemd-nspawn -D "$dir" --register=no --keep-unit -b --console=passive "$network" -M "$name"
    ) >"$WORK/$name.console" 2>&1 &
    local nspawn=$!
    mkdir -p "$STATE"
    echo "$nspawn" >"$STATE/$name.nspawn-pid"
    local pid="" i
    for ((i = 0; i < 300; i++)); do
        pid=$(pgrep -P "$nspawn" -x systemd || true)
        [[ -n $pid ]] && break
        kill -0 "$nspawn" 2>/dev/null || die "systemd-nspawn exited; console: $(tail -n 20 "$WORK/$name.console")"
        sleep 0.1
    done
    [[ -n $pid && $pid != 0 ]] || die "container $name: no systemd process appeared"
    echo "$pid" >"$STATE/$name.pid"
    # Its systemd below its own cgroups (nspawn adds payload/), in every hierarchy.
    local want
    want=$(ct_cgroups "$name" | wc -l)
    ((want > 0 && $(grep -cF "/corepool-test${WORK//\//_}/$name/" <(sed 's|$|/|' "/proc/$pid/cgroup")) >= want)) ||
        die "container $name's systemd is not in its own cgroups: $(tr '\n' ' ' <"/proc/$pid/cgroup")"
    # Until its bus is up, systemctl inside answers nothing: ask again.
    local state="" deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        state=$(timeout 60 nsenter -t "$pid" -a systemctl is-system-running --wait 2>/dev/null || true)
        [[ $state == running || $state == degraded ]] && break
        kill -0 "$nspawn" 2>/dev/null || break
        sleep 0.2
    done
    case $state in
        running | degraded) ;;
        *) die "container $name did not boot (state: '$state'); console: $(tail -n 20 "$WORK/$name.console")" ;;
    esac
    if [[ $state == degraded ]]; then
        log "container $name is degraded: $(ct "$name" systemctl --failed --no-legend --plain | tr '\n' ' ')"
    fi
}

# ct NAME CMD...: runs a command inside the container.
ct() {
    local name=$1
    shift
    local pid
    pid=$(ct_pid "$name")
    [[ -n $pid && $pid != 0 ]] || die "container $name is not running"
    # A clean environment, as a login on that machine would have: nothing of
    # this shell's (a COREPOOL_* variable here would configure corepool there).
    nsenter -t "$pid" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}

# ct_sh NAME SCRIPT: runs a bash script inside the container.
ct_sh() {
    ct "$1" bash -c "set -euo pipefail; $2"
}

# ct_poweroff NAME: clean shutdown, bounded; killed if it hangs.
ct_poweroff() {
    local name=$1
    local nspawn
    nspawn=$(cat "$STATE/$name.nspawn-pid" 2>/dev/null || true)
    [[ -n $nspawn && $nspawn != 0 ]] || return 0
    if kill -0 "$nspawn" 2>/dev/null; then
        ct "$name" systemctl poweroff --no-block >/dev/null 2>&1 || true
        local i
        for ((i = 0; i < 300; i++)); do
            kill -0 "$nspawn" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$nspawn" 2>/dev/null; then
            log "container $name did not power off; killing it"
            kill -9 "$nspawn" 2>/dev/null || true
        fi
    fi
    # Reap it if it is our child, never with a bare `wait` (that would wait for every container).
    wait "$nspawn" 2>/dev/null || true
    rm -f "$STATE/$name.nspawn-pid" "$STATE/$name.pid"
    ct_cgroup_remove "$name"
}

ct_destroy_all() {
    local f
    for f in "$STATE"/*.nspawn-pid; do
        [[ -e $f ]] && ct_poweroff "$(basename "$f" .nspawn-pid)"
    done
    # This run's cgroup directories (each container's went with its poweroff).
    local cg
    while read -r cg; do rmdir "${cg%/*}" 2>/dev/null || true; done < <(ct_cgroups any)
    if [[ -z ${COREPOOL_TEST_KEEP:-} ]]; then
        rm -rf "$WORK"
    fi
}

# pebble_start NAME: a local ACME server in container NAME (never a real CA):
# pebble with a throwaway CA for its API on 127.0.0.1:14000, validating
# HTTP-01 against port 80 there; pebble-challtestsrv answers its DNS with 127.0.0.1.
pebble_start() {
    local name=$1 i
    ct_sh "$name" "mkdir -p /etc/pebble && cd /etc/pebble &&
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null &&
        openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out api.csr 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1\n' > san.ext &&
        openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out cert.pem 2>/dev/null &&
        cat > config.json <<'JSON'
{\"pebble\": {\"listenAddress\": \"127.0.0.1:14000\", \"managementListenAddress\": \"127.0.0.1:15000\",
 \"certificate\": \"/etc/pebble/cert.pem\", \"privateKey\": \"/etc/pebble/key.pem\",
 \"httpPort\": 80, \"tlsPort\": 5001, \"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false}}
JSON"
    ct "$name" systemd-run -q --unit pebble-dns pebble-challtestsrv -http01 "" -https01 "" -tlsalpn01 "" \
        -dns01 127.0.0.1:8053 -defaultIPv4 127.0.0.1 -defaultIPv6 ""
    # NONCEREJECT=0: pebble otherwise rejects 5% of nonces on purpose.
    ct "$name" systemd-run -q --unit pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 pebble -config /etc/pebble/config.json -dnsserver 127.0.0.1:8053
    for ((i = 0; i < 100; i++)); do
        ct "$name" curl -s --cacert /etc/pebble/ca.pem -o /dev/null https://127.0.0.1:14000/dir && return 0
        sleep 0.1
    done
    fail "pebble did not start in container $name"
}

# pebble_root NAME: saves pebble's issuing root (what clients trust) as /var/tmp/pebble-root.pem.
pebble_root() {
    ct_sh "$1" "curl -s --cacert /etc/pebble/ca.pem https://127.0.0.1:15000/roots/0 > /var/tmp/pebble-root.pem"
}

# ---- assertions and bookkeeping ----

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
# Per failed test, its assertion messages and last log lines: finish prints
# them after the names, at the very end of the output, which is the part a
# CI log shows when it shows only its tail.
FAILED_TAILS=()
RESULTS_FILE=${COREPOOL_TEST_RESULTS:-$WORK.results}

# run_test NAME FUNCTION: runs one test in a subshell with errexit; a failure
# is recorded and the run goes on.
run_test() {
    local name=$1 fn=$2
    # COREPOOL_TEST_ONLY=ERE runs only the tests whose name matches (while
    # debugging one; say which ran). The full suite never sets it.
    if [[ -n ${COREPOOL_TEST_ONLY:-} && ! $name =~ $COREPOOL_TEST_ONLY ]]; then
        log "skip $name (COREPOOL_TEST_ONLY)"
        SKIPPED=$((SKIPPED + 1))
        return 0
    fi
    log "--- $name"
    # COREPOOL_TEST_REPEAT=ERE:N runs the tests whose name matches N times in
    # a row, each run counted (to show that one is not flaky).
    local times=1 k
    if [[ -n ${COREPOOL_TEST_REPEAT:-} && $name =~ ${COREPOOL_TEST_REPEAT%:*} ]]; then
        times=${COREPOOL_TEST_REPEAT##*:}
    fi
    for ((k = 1; k <= times; k++)); do
        ((times == 1)) || log "--- run $k of $times"
        # Each run's own file of its log lines (log writes them as they come;
        # not the test's whole stderr through a tee: a process substitution
        # would be a child of the test, and a test's bare `wait` waits for it).
        local start=$SECONDS tlog="$WORK/tests/$((PASSED + FAILED)).log"
        mkdir -p "$WORK/tests"
        rm -f "$tlog"
        # Not as an `if` condition: errexit is ignored there, even inside the subshell.
        local rc=0
        set +e
        (
            set -euo pipefail
            TEST_LOG=$tlog
            # A command that failed outside an assertion (errexit) is named too.
            ASSERTED=
            trap 'rc=$?; ((rc == 0)) || [[ -n $ASSERTED ]] || log "stopped: exit $rc at: $BASH_COMMAND"' EXIT
            "$fn"
        )
        rc=$?
        set -e
        if ((rc == 0)); then
            PASSED=$((PASSED + 1))
            log "ok   $name ($((SECONDS - start))s)"
        else
            FAILED=$((FAILED + 1))
            FAILED_NAMES+=("$name")
            log "FAIL $name ($((SECONDS - start))s)"
            FAILED_TAILS+=("$(failure_tail "$tlog" || true)")
        fi
    done
}

# finish SUITE: "SUITE: N passed, M failed" (and how many COREPOOL_TEST_ONLY
# skipped); exits 1 if any failed.
finish() {
    echo "$1: $PASSED passed, $FAILED failed${SKIPPED:+, $SKIPPED skipped (COREPOOL_TEST_ONLY)}" | sed 's/, 0 skipped.*//'
    if ((FAILED)); then
        local k
        for k in "${!FAILED_NAMES[@]}"; do
            printf 'failed: %s\n%s\n' "${FAILED_NAMES[k]}" "${FAILED_TAILS[k]}"
        done
        exit 1
    fi
}

# failure_tail LOG: what a failed test logged, for finish: its assertion
# messages and the command it stopped at (up to 6), then its last 10 other
# lines, each indented and cut to 300 characters.
failure_tail() {
    local stops='assertion failed|FATAL|stopped: exit'
    {
        grep -aE "$stops" "$1" | tail -n 6
        echo '... its last other lines:'
        grep -avE "$stops" "$1" | tail -n 10
    } 2>/dev/null |
        cut -c1-300 | sed 's/^/  | /'
}

# fail MESSAGE: fails the current test.
fail() {
    log "assertion failed: $*"
    ASSERTED=1
    return 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    [[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

# field PYTHON-SUBSCRIPT: the JSON document on stdin, subscripted and printed
# by Python: `field "['instance']" <<<"$j"`, `field "[0]['pid']"`.
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# expect_purged CONTAINER NAME [PATH...]: `apt purge NAME` in CONTAINER
# succeeds and leaves nothing of service NAME: no unit (loaded or as a file),
# no user or group, none of its directories, binary, nginx site, certbot hook
# (nor PATH...), and nginx's configuration still loads.
expect_purged() {
    local c=$1 name=$2
    shift 2
    ct_sh "$c" "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $name" >"$WORK/purge.log" 2>&1 ||
        { tail -n 20 "$WORK/purge.log"; fail "purge failed"; }
    # systemd unloads a unit whose file is gone once nothing refers to it any
    # more (a job still running, a start a scraper's connection asked for
    # while apt removed it): up to 10 s for that, then whatever is left fails.
    # (Seen once in a full run, right after the Prometheus tests: the units
    # "not-found inactive dead" at once, gone in an isolated run.)
    local left="" k
    for ((k = 0; k < 50; k++)); do
        left=$(ct "$c" systemctl list-units --all --plain --no-legend "$name*")
        [[ -z $left ]] && break
        sleep 0.2
    done
    [[ -z $left ]] || fail "$name units left: $left"
    [[ -z $(ct_sh "$c" "ls /usr/lib/systemd/system/ /etc/systemd/system/ | grep $name || true") ]] || fail "$name unit files left"
    ct "$c" getent passwd "$name" >/dev/null && fail "$name user left"
    ct "$c" getent group "$name" >/dev/null && fail "$name group left"
    local p
    for p in "/etc/$name" "/var/lib/$name" "/run/$name" "/usr/bin/$name" "/etc/nginx/sites-available/$name.conf" \
        "/etc/nginx/sites-enabled/$name.conf" "/etc/letsencrypt/renewal-hooks/deploy/$name" "$@"; do
        ct "$c" test -e "$p" && fail "$p left behind"
    done
    ct "$c" nginx -t -q || fail "nginx config broken after purging $name"
}

# record KEY VALUE: a measured figure, printed at the end and kept in $RESULTS_FILE.
record() {
    printf '%s=%s\n' "$1" "$2" >>"$RESULTS_FILE"
    log "measured: $1 = $2"
}

# on NAME CMD...: runs CMD inside container NAME, or here when NAME is "host".
on() {
    if [[ $1 == host ]]; then
        shift
        "$@"
    else
        ct "$@"
    fi
}

# load NAME COUNT PARALLEL URL [CURL ARGS...]: bounded load from inside the
# container (or from this host: NAME "host"); prints "<total> <failed>
# <max_time_s> [<status>:<count>...]" (failed = any status but 200; curl's 000
# is a connection failure). URL may carry a query already.
load() {
    local name=$1 count=$2 par=$3 url=$4 sep='?'
    shift 4
    [[ $url == *\?* ]] && sep='&'
    # A failure is counted by status, or "000/eN" for curl's exit code N when
    # no answer came (e.g. 56: the connection was reset); the first one's
    # request and curl's message follow, to find it in the logs.
    on "$name" curl -s --no-progress-meter -o /dev/null --max-time 30 \
        -w '%{http_code} %{time_total} %{exitcode} %{url_effective} %{errormsg}\n' \
        --parallel --parallel-max "$par" "$@" "$url${sep}load=[1-$count]" 2>/dev/null |
        awk '{ n++; if ($2 > m) m = $2 }
             $1 != "200" { f++; c[$1 == "000" ? "000/e" $3 : $1]++; if (!first) { first = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", first) } }
             END { printf "%d %d %.3f", n, f + 0, m + 0; for (k in c) printf " %s:%d", k, c[k]; if (first) printf " first: %s", first; printf "\n" }'
}

# load_rounds NAME STOPFILE OUT URL [CURL ARGS...]: `load` in rounds of
# ROUND_N (2000) requests, ROUND_PAR (16) at a time, until STOPFILE exists,
# one result line per round in OUT: a load that lasts as long as the operation
# under test, and never more than LOAD_ROUNDS_MAX_S (120) seconds, even if
# nobody creates STOPFILE.
load_rounds() {
    local name=$1 stop=$2 out=$3 deadline=$((SECONDS + ${LOAD_ROUNDS_MAX_S:-120}))
    shift 3
    : >"$out"
    while [[ ! -e $stop ]] && ((SECONDS < deadline)); do
        # A failed request fails curl, and then this pipeline; it is counted in OUT.
        load "$name" "${ROUND_N:-2000}" "${ROUND_PAR:-16}" "$@" >>"$out" || true
    done
}

# load_total OUT: "<total> <failed> <max_s>" over the rounds in OUT.
load_total() {
    awk '{ t += $1; f += $2; if ($3 > m) m = $3 } END { printf "%d %d %.3f\n", t, f, m + 0 }' "$1"
}

# mixed_load NAME STOPFILE OUT BASE [CURL ARGS...]: what users send, in rounds
# until STOPFILE exists, from NAME to BASE (e.g. https://app.test): light
# GETs of / (16 at a time), POSTs of a 4 KiB body to /v1/hash (8 at a time)
# and heavy GETs of /compute (2 at a time). nginx retries a failed GET on
# another server but never a POST it has sent, so only the POSTs show what a
# client loses. Results per kind in OUT.get, OUT.post, OUT.heavy.
mixed_load() {
    local name=$1 stop=$2 out=$3 base=$4
    shift 4
    on "$name" sh -c '[ -s /var/tmp/body4k ] || head -c 4096 /dev/urandom > /var/tmp/body4k'
    load_rounds "$name" "$stop" "$out.get" "$base/" "$@" &
    local g=$!
    ROUND_N=500 ROUND_PAR=8 load_rounds "$name" "$stop" "$out.post" "$base/v1/hash?alg=sha256" "$@" \
        -H 'Content-Type: application/octet-stream' --data-binary @/var/tmp/body4k &
    local p=$!
    ROUND_N=20 ROUND_PAR=2 load_rounds "$name" "$stop" "$out.heavy" "$base/compute?n=20000000" "$@"
    wait "$g" "$p"
}

# mixed_event NAME BASE OUT REPEAT CMD...: runs CMD REPEAT times (0.5 s
# apart) during a mixed_load from NAME to BASE (curl arguments from the
# MIXED_CURL array); prints "<kind> <total> <failed> <max_s>" for get, post
# and heavy, and keeps them in OUT.summary. Where MIXED_NGINX names the
# container whose nginx BASE is, the length of its error log is kept in
# OUT.nginx-from, so that mixed_ok can show what nginx logged meanwhile.
mixed_event() {
    local name=$1 base=$2 out=$3 repeat=$4 k
    shift 4
    rm -f "$out.stop" "$out.cmd" "$out.nginx-from"
    if [[ -n ${MIXED_NGINX:-} ]]; then
        on "$MIXED_NGINX" sh -c 'wc -l </var/log/nginx/error.log' >"$out.nginx-from" || rm -f "$out.nginx-from"
    fi
    mixed_load "$name" "$out.stop" "$out" "$base" "${MIXED_CURL[@]}" &
    local l=$!
    sleep 0.5
    for ((k = 1; k <= repeat; k++)); do
        "$@" >>"$out.cmd" 2>&1 || { echo "event $k failed: $(tail -n 5 "$out.cmd")" >&2; touch "$out.stop"; wait "$l"; return 1; }
        sleep 0.5
    done
    touch "$out.stop"
    wait "$l"
    local kind
    for kind in get post heavy; do
        echo "$kind $(load_total "$out.$kind")"
    done | tee "$out.summary"
}

# mixed_ok OUT WHAT: every request of the mixed_event in OUT was answered
# (a total above 0, 0 failed, for each kind).
mixed_ok() {
    local kind total failed
    while read -r kind total failed _; do
        ((total > 0)) || fail "$2: no $kind request was sent"
        if [[ $failed != 0 ]]; then
            # The rounds with failures: their status counts (000: no answer)
            # and the first failed request, logged (so in a failed test's tail).
            # (awk stops itself: a head closing the pipe early would fail it, under pipefail.)
            awk '$2 != 0 && ++n <= 4' "$1.$kind" | while read -r round; do log "failed $kind round: $round"; done
            mixed_nginx_errors "$1"
            fail "$2: $failed of $total $kind requests failed"
        fi
    done <"$1.summary"
}

# mixed_nginx_errors OUT: logs the kinds of warning and error nginx wrote
# during the mixed_event in OUT (at most 6 kinds, each with its count and
# first line; see MIXED_NGINX), e.g. "768 worker_connections are not enough".
mixed_nginx_errors() {
    [[ -n ${MIXED_NGINX:-} && -s $1.nginx-from ]] || return 0
    on "$MIXED_NGINX" tail -n +"$(($(cat "$1.nginx-from") + 1))" /var/log/nginx/error.log |
        awk '/\[(warn|error|crit|alert|emerg)\]/ { k = $0; sub(/^[^]]*\] [0-9]+#[0-9]+: (\*[0-9]+ )?/, "", k); sub(/, client: .*/, "", k)
                 if (!(k in n)) { order[++kinds] = k; first[k] = $0 } n[k]++ }
             END { for (i = 1; i <= kinds && i <= 6; i++) print n[order[i]] " x " substr(first[order[i]], 1, 240) }' |
        while read -r line; do log "nginx logged meanwhile: $line"; done || true
}

# ms_since START_NS: milliseconds since a `date +%s%N` reading.
ms_since() {
    echo $((($(date +%s%N) - $1) / 1000000))
}
