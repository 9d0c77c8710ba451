#!/usr/bin/env bash
# R/K measurement shared by bench/run (Node, on this host) and bench/rk
# (corepool, in a systemd container), so both stacks get the very same load.
# Built on the system tests' harness (`load`, `on`, `ms_since`).
# shellcheck source=tests/system/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/system/lib.sh"

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
