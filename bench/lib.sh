#!/usr/bin/env bash
# The benchmarks' shared helpers (sourced by every bench/ script): the
# processes a benchmark starts and their cleanup, waiting for a server, the
# .deb booted in a container, and the R/K measurement shared by bench/run
# (Node, on this host) and bench/rk (corepool, in a systemd container), so
# both stacks get the very same load. Built on the system tests' harness
# (`load`, `on`, `ms_since`, `ct*`, `log`, `die`, `need_tools`) and
# tests/lib/install.sh (`install_missing`, for the tools).
# shellcheck source=tests/system/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/system/lib.sh"
# shellcheck source=tests/lib/install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib/install.sh"

# The script's name for its messages: bench/run, bench/router, ...
BENCH_NAME=bench/${0##*/}

# ---- what a benchmark starts on this host
# A benchmark keeps its scratch files in $T (nginx's pid file in
# $T/nginx.pid) and the pid of every process it starts in PIDS.
PIDS=()

# kill_pids: SIGTERM to every process in PIDS (empty and 0 entries
# skipped, the dead ignored).
kill_pids() {
    local p
    for p in "${PIDS[@]}"; do
        if [[ -n $p && $p != 0 ]]; then kill "$p" 2>/dev/null || true; fi
    done
}

# stop_pids: kill_pids, then reaps them all and empties PIDS.
stop_pids() {
    kill_pids
    local p
    for p in "${PIDS[@]}"; do
        if [[ -n $p && $p != 0 ]]; then wait "$p" 2>/dev/null || true; fi
    done
    PIDS=()
}

# bench_cleanup: the EXIT trap (`trap bench_cleanup EXIT`, or called from
# the script's own trap): stops the nginx of $T/nginx.pid and everything in
# PIDS, then removes $T.
bench_cleanup() {
    if [[ -n ${T:-} && -f $T/nginx.pid ]]; then kill "$(cat "$T/nginx.pid")" 2>/dev/null || true; fi
    kill_pids
    if [[ -n ${T:-} ]]; then rm -rf "$T"; fi
}

# wait_http CURL-ARGS...: waits up to 10 s for curl CURL-ARGS to get an
# answer below 400; otherwise fails with the last lines of the logs in $T.
wait_http() {
    local i
    for ((i = 0; i < 200; i++)); do
        curl -sf -o /dev/null "$@" && return 0
        sleep 0.05
    done
    echo "$BENCH_NAME: $* did not come up; logs:" >&2
    tail -n 5 "$T"/*.log >&2 || true
    return 1
}

# ---- the .deb under systemd
# boot_with_package NAME [TOOL...]: needs root and the container tools (and
# TOOL...); builds corepool's .deb (DEB), boots container NAME
# (tests/system/lib.sh), destroyed on exit (it sets the EXIT trap), and
# installs the .deb there with apt; dies if any of it fails.
boot_with_package() {
    local name=$1
    shift
    [[ $(id -u) -eq 0 ]] || die "$BENCH_NAME needs root (it boots a container)"
    need_tools bench/run debootstrap systemd-nspawn nsenter dpkg-deb dpkg-shlibdeps "$@"
    trap ct_destroy_all EXIT
    DEB=$(packaging/build-deb)
    ensure_base
    ct_create "$name" "$DEB"
    ct_boot "$name"
    ct_sh "$name" "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /var/tmp/$(basename "$DEB")" >"$WORK/install.log" 2>&1 ||
        die "apt install failed: $(tail -n 20 "$WORK/install.log")"
}

# ---- R/K under load
# rk_event STACK WHERE BASE_URL KIND CMD...: RK_REQS light requests (curl
# --parallel 16, keepalive) to BASE_URL/ and 40 heavy /compute?n=$N ones (4 at
# a time) from WHERE ("host" or a container name), CMD run 0.5 s in; prints
# one JSON line for the results file and logs a summary with status counts.
rk_event() {
    local stack=$1 where=$2 base=$3 kind=$4
    shift 4
    local tmp
    tmp=$(mktemp -d)
    load "$where" "${RK_REQS:?}" 16 "$base/" >"$tmp/light" &
    local l=$!
    load "$where" 40 4 "$base/compute?n=${N:?}" --max-time 60 >"$tmp/heavy" &
    local h=$!
    sleep 0.5
    local t0 ms
    t0=$(date +%s%N)
    # (Run in a command substitution, where errexit is not inherited: fail explicitly.)
    "$@" >/dev/null || { log "$kind $stack: '$*' failed"; return 1; }
    ms=$(ms_since "$t0")
    wait "$l" "$h"
    local total failed max_s ht hf hmax light_codes heavy_codes
    read -r total failed max_s light_codes <"$tmp/light"
    read -r ht hf hmax heavy_codes <"$tmp/heavy"
    rm -rf "$tmp"
    log "$kind $stack: $total requests, $failed failed ${light_codes:-}, max ${max_s}s; heavy $ht, $hf failed ${heavy_codes:-} (max ${hmax}s); event ${ms} ms"
    printf '{"kind":"%s","stack":"%s","requests":%d,"failed":%d,"max_ms":%s,"heavy":%d,"heavy_failed":%d,"heavy_codes":"%s","event_ms":%d}\n' \
        "$kind" "$stack" "$total" "$failed" "$(awk -v s="$max_s" 'BEGIN{printf "%.1f", s*1000}')" "$ht" "$hf" "${heavy_codes:-}" "$ms"
}
