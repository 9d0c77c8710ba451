#!/usr/bin/env bash
# Sticky routing (issue 26, item 5; docs/sticky.md), sourced by
# tests/system/run once the packaged site serves HTTPS; registers its own
# tests (run_test, at the end). `corepool nginx balance cookie` and `client`:
# every client's 50 GETs of / through nginx reach one instance (the JSON of
# GET / says which), different clients reach more than one, and each client
# keeps its instance across `scale 1` / `scale max` and `reload` (the same
# servers make the same hash ring); `least-conn` spreads again. (The [redis]
# drop-in is tested on a real Redis in tests/system/redis.sh.) Every test puts
# back least-conn and every core, also when it fails.
# Uses run's helpers: ct, record, expect_eq, fail, NCPU, MIXED_BASE, MIXED_CURL.

STICKY_CLIENTS=12
STICKY_COOKIE=corepool_session
STICKY_UPSTREAM=/etc/corepool/nginx/upstream.conf

# sticky_get CURL-ARGS...: 50 GETs of / through the HTTPS site on one
# connection (the arguments add a cookie or a source address); prints which
# instances answered, with how many each: "0:50", "0:25 1:25".
sticky_get() {
    ct app curl -s --max-time 30 "${MIXED_CURL[@]}" -w '\n' "$@" "$MIXED_BASE/?sticky=[1-50]" |
        python3 -c 'import collections, json, sys
c = collections.Counter(json.loads(l)["instance"] for l in sys.stdin if l.strip())
print(" ".join(f"{k}:{v}" for k, v in sorted(c.items())))'
}

# sticky_map cookie|client: for STICKY_CLIENTS clients (cookie values
# client-K, or source addresses 127.0.0.(10+K) on the container's loopback),
# the instance each one's 50 GETs reached: "1=0 2=1 ...", or "K=mixed(0:26 1:24)"
# for a client whose requests reached several.
sticky_map() {
    local k r out=""
    for ((k = 1; k <= STICKY_CLIENTS; k++)); do
        case $1 in
            cookie) r=$(sticky_get -b "$STICKY_COOKIE=client-$k") ;;
            client) r=$(sticky_get --interface "127.0.0.$((10 + k))") ;;
        esac
        if [[ $r =~ ^([0-9]+):50$ ]]; then out+="$k=${BASH_REMATCH[1]} "; else out+="$k=mixed($r) "; fi
    done
    echo "${out% }"
}

# sticky_spread MAP: how many instances the clients of a sticky_map reached.
sticky_spread() {
    tr ' ' '\n' <<<"$1" | cut -d= -f2 | sort -u | wc -l
}

# sticky_expect_sticky MAP WHAT: every client reached one instance, and the
# clients together more than one (on a machine with more than one core).
sticky_expect_sticky() {
    [[ $1 != *mixed* ]] || fail "$2: a client's requests reached several instances: $1"
    if ((NCPU > 1 && $(sticky_spread "$1") < 2)); then fail "$2: every client on one instance: $1"; fi
}

# sticky_reset: least-conn and every core again (a trap: also after a failure).
sticky_reset() {
    ct app corepool nginx balance least-conn >/dev/null || true
    ct app corepool scale max >/dev/null || true
}

# sticky_method METHOD: sets the balance; the command's, nginx's and the
# files' word for it; nginx -t passes.
sticky_method() {
    local out
    out=$(ct app corepool nginx balance "$1") || fail "corepool nginx balance $1 failed: $out"
    echo "$out"
    grep -q "^nginx balance: now $1: " <<<"$out" || fail "nginx balance $1 said: $out"
    expect_eq "$(ct app corepool nginx balance | head -n1 | cut -d: -f2 | tr -d ' ')" "$1" "nginx balance (shown)"
    ct app grep -qx "balance = \"$1\"" /etc/corepool/upstream.toml || fail "upstream.toml does not say $1: $(ct app cat /etc/corepool/upstream.toml)"
    ct app nginx -t -q || fail "nginx -t failed with balance $1"
}

# sticky_survives METHOD MAP: after `scale 1` (every client on instance 0),
# `scale max` and `reload`, METHOD is still set and every client reaches the
# instance of MAP again; nginx -t passes.
sticky_survives() {
    local method=$1 before=$2 one
    ct app corepool scale 1 >/dev/null || fail "scale 1 failed"
    grep -q "^nginx balance: $method: " <(ct app corepool status) || fail "status does not show balance $method after scale 1"
    one=$(sticky_map "$method")
    expect_eq "$one" "$(sed -E 's/=[0-9]+/=0/g' <<<"$before")" "$method: clients after scale 1"
    ct app corepool scale max >/dev/null || fail "scale max failed"
    expect_eq "$(sticky_map "$method")" "$before" "$method: clients after scale 1, scale max"
    ct app corepool reload >/dev/null || fail "reload failed"
    expect_eq "$(sticky_map "$method")" "$before" "$method: clients after reload"
    ct app grep -qx "balance = \"$method\"" /etc/corepool/upstream.toml || fail "upstream.toml lost $method"
    ct app nginx -t -q || fail "nginx -t failed after scale and reload with balance $method"
}

test_sticky_by_cookie() {
    trap sticky_reset EXIT
    expect_eq "$(ct app corepool nginx balance | head -n1)" \
        "nginx balance: least-conn: each request to the server with the fewest active connections (least_conn)" "balance before"
    sticky_method cookie
    # shellcheck disable=SC2016 # nginx's variables, not the shell's
    ct app grep -qxF 'map $cookie_corepool_session $corepool_balance_key {' "$STICKY_UPSTREAM" || fail "no cookie map in the upstream"
    # shellcheck disable=SC2016
    ct app grep -qxF '    hash $corepool_balance_key consistent;' "$STICKY_UPSTREAM" || fail "no hash line in the upstream"
    ct app grep -q 'least_conn' "$STICKY_UPSTREAM" && fail "least_conn still in the upstream"
    local map
    map=$(sticky_map cookie)
    record sticky_cookie_clients "$map"
    sticky_expect_sticky "$map" "cookie"
    # Without the cookie (a first visit): spread, not all on one instance.
    local first
    first=$(sticky_get)
    record sticky_cookie_without_cookie "$first"
    if ((NCPU > 1)) && [[ $first =~ ^[0-9]+:50$ ]]; then fail "requests without the cookie all reached one instance: $first"; fi
    # Another cookie of the same client changes nothing: only the session cookie is the key.
    expect_eq "$(sticky_get -b "other=1; $STICKY_COOKIE=client-1")" "$(cut -d' ' -f1 <<<"$map" | cut -d= -f2):50" "client 1 with another cookie beside"
    grep -q "^nginx balance: cookie: by the session cookie corepool_session" <(ct app corepool status) || fail "status does not show the balance"
    sticky_survives cookie "$map"
}

test_sticky_by_client_address() {
    trap sticky_reset EXIT
    local out
    out=$(sticky_method client)
    grep -q "no set_real_ip_from" <<<"$out" || fail "nginx balance client did not say what the client address is: $out"
    # shellcheck disable=SC2016 # nginx's variable, not the shell's
    ct app grep -qxF '    hash $remote_addr consistent;' "$STICKY_UPSTREAM" || fail "no hash line in the upstream"
    ct app grep -q 'balance_key' "$STICKY_UPSTREAM" && fail "the cookie map is still in the upstream"
    local map
    map=$(sticky_map client)
    record sticky_client_addresses "$map"
    sticky_expect_sticky "$map" "client"
    # The address is the key, not the cookie: client 1 with any cookie stays.
    expect_eq "$(sticky_get --interface 127.0.0.11 -b "$STICKY_COOKIE=x")" "$(cut -d' ' -f1 <<<"$map" | cut -d= -f2):50" "client 1 with a cookie"
    sticky_survives client "$map"
    # Back to least-conn: one client's requests reach every instance again.
    sticky_method least-conn >/dev/null
    ct app grep -qxF '    least_conn;' "$STICKY_UPSTREAM" || fail "least_conn not back"
    local spread
    spread=$(sticky_get --interface 127.0.0.11)
    record sticky_least_conn_one_client "$spread"
    expect_eq "$(wc -w <<<"$spread")" "$NCPU" "instances one client reached with least-conn"
}

run_test "sticky: balance cookie: each session cookie's 50 GETs on one instance, cookies spread, kept by scale and reload, nginx -t" test_sticky_by_cookie
run_test "sticky: balance client: each client address's 50 GETs on one instance, addresses spread, kept by scale and reload; least-conn spreads again" test_sticky_by_client_address
