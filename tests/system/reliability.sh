#!/usr/bin/env bash
# Reliability and hardening tests, sourced by tests/system/run after HTTPS is
# up: faults under load through the public path (nginx, TLS), memory limit,
# unwritable /etc, socket and file permissions. Each records its figures.
# Uses run's helpers: ct, ct_sh, load, record, main_pids, wait_new_pid, curl_sock,
# field, journal_shows.

PUBLIC_URL="https://$PEBBLE_DOMAIN/"
PUBLIC_TLS=(--cacert /var/tmp/pebble-root.pem --resolve "$PEBBLE_DOMAIN:443:127.0.0.1")

# kill9_each: kill -9 of every instance in turn, each back before the next.
kill9_each() {
    local i pid new t0
    for ((i = 0; i < NCPU; i++)); do
        pid=$(main_pid "$i")
        t0=$(date +%s%N)
        ct app kill -9 "$pid"
        new=$(wait_new_pid "$i" "$pid")
        echo "restart_ms $(ms_since "$t0")"
        [[ $new != "$pid" && $new != 0 ]] || { echo "instance $i was not restarted"; return 1; }
        sleep 0.3
    done
}

# mixed_lost OUT WHAT MAX: GETs and heavy GETs lost nothing; POSTs lost at most
# MAX (a kill can lose the POSTs an instance was executing: nginx retries
# only what it has not sent). Records what was lost.
mixed_lost() {
    local kind total failed
    while read -r kind total failed _; do
        ((total > 0)) || fail "$2: no $kind request was sent"
        # The rounds with failures: their status counts (000: no answer).
        [[ $failed == 0 ]] || awk '$2 != 0' "$1.$kind" >&2
        case $kind in
            post) ((failed <= $3)) || fail "$2: $failed of $total POSTs failed (at most $3: the ones in flight)" ;;
            *) [[ $failed == 0 ]] || fail "$2: $failed of $total $kind requests failed" ;;
        esac
    done <"$1.summary"
}

test_kill9_every_instance_through_nginx() {
    mixed_event app "$MIXED_BASE" "$WORK/k9all" 1 kill9_each
    record kill9_each_restart_ms "$(grep -o 'restart_ms [0-9]*' "$WORK/k9all.cmd" | cut -d' ' -f2 | tr '\n' ' ')"
    record kill9_each_mixed "$(tr '\n' ';' <"$WORK/k9all.summary")"
    # The POST load has 8 in flight at most, shared by the instances: each
    # kill can lose what its instance was executing, at most those 8.
    mixed_lost "$WORK/k9all" "kill -9 of every instance in turn" $((8 * NCPU))
}

# sigstop_0: SIGSTOP instance 0; returns once the watchdog has replaced it.
sigstop_0() {
    local pid new t0
    pid=$(main_pid 0)
    t0=$(date +%s%N)
    ct app kill -STOP "$pid"
    new=$(wait_new_pid 0 "$pid" 20)
    echo "recovery_ms $(ms_since "$t0")"
    [[ $new != "$pid" && $new != 0 ]]
}

test_sigstop_under_load_through_nginx() {
    mixed_event app "$MIXED_BASE" "$WORK/stop" 1 sigstop_0 || fail "hung instance 0 was not restarted by the watchdog"
    record sigstop_recovery_ms "$(grep -o 'recovery_ms [0-9]*' "$WORK/stop.cmd" | cut -d' ' -f2)"
    record sigstop_mixed "$(tr '\n' ';' <"$WORK/stop.summary")"
    # What the hung instance had accepted is lost with it when the watchdog
    # kills it; GETs are retried elsewhere after proxy_read_timeout, POSTs not.
    mixed_lost "$WORK/stop" "SIGSTOP of instance 0" 8
    journal_shows corepool@0.service '[Ww]atchdog timeout' || fail "journal does not show the watchdog"
}

test_nginx_reload_under_load() {
    mixed_event app "$MIXED_BASE" "$WORK/ngx" 5 ct app systemctl reload nginx
    record nginx_reload_x5_mixed "$(tr '\n' ';' <"$WORK/ngx.summary")"
    mixed_ok "$WORK/ngx" "5 nginx reloads"
}

# ---- HTTP caching: Cache-Control from the instances, nginx's proxy_cache

# pool_jobs: pool jobs completed by every instance together.
pool_jobs() {
    local i sum=0 v
    for ((i = 0; i < NCPU; i++)); do
        v=$(curl_sock "$i" /metrics | awk '/^corepool_pool_jobs_completed_total / {print $2}')
        sum=$((sum + ${v%.*}))
    done
    echo "$sum"
}

# url_cfg COUNT URL [OUT]: a curl config in the container (/var/tmp/same.cfg):
# COUNT requests for the very same URL, bodies to OUT.1 .. OUT.COUNT (default: dropped).
url_cfg() {
    local k
    for ((k = 1; k <= $1; k++)); do
        printf 'url = "%s"\noutput = "%s"\n' "$2" "${3:-/dev/null}${3:+.$k}"
    done | ct app sh -c 'cat > /var/tmp/same.cfg'
}

# same_url PARALLEL: runs /var/tmp/same.cfg through nginx over HTTPS, PARALLEL
# at a time; prints "status cache-status" per request.
same_url() {
    ct app curl -s --parallel --parallel-max "$1" --max-time 60 "${MIXED_CURL[@]}" \
        -w '%{http_code} %header{x-cache-status}\n' -K /var/tmp/same.cfg
}

test_identical_heavy_requests_cost_one_pool_job() {
    # A fresh n: not in the cache yet.
    local n=$((40000000 + RANDOM)) before mid after
    local url="$MIXED_BASE/compute?n=$n"
    before=$(pool_jobs)
    url_cfg 20 "$url" /var/tmp/burst1
    same_url 20 >"$WORK/burst1.codes"
    mid=$(pool_jobs)
    expect_eq "$(cut -d' ' -f1 "$WORK/burst1.codes" | sort | uniq -c | tr -s ' ')" " 20 200" "statuses of 20 identical heavy requests"
    expect_eq "$(ct app sh -c 'cat /var/tmp/burst1.[0-9]* | sort -u | wc -l')" 1 "distinct bodies among the 20"
    expect_eq "$((mid - before))" 1 "pool jobs for 20 identical requests (proxy_cache_lock)"
    record cache_burst_first "$(cut -d' ' -f2 "$WORK/burst1.codes" | sort | uniq -c | tr -s ' \n' ' '); jobs +$((mid - before))"
    # Again: every one from the cache, no job.
    url_cfg 20 "$url" /var/tmp/burst2
    same_url 20 >"$WORK/burst2.codes"
    after=$(pool_jobs)
    expect_eq "$(sort -u "$WORK/burst2.codes")" "200 HIT" "second round: statuses and cache"
    expect_eq "$((after - mid))" 0 "pool jobs for the second round"
    ct app cmp -s /var/tmp/burst1.1 /var/tmp/burst2.7 || fail "the cached body differs from the computed one"
    # Health, readiness, status and metrics: never from the cache; the
    # first three (proxied, not declared cacheable) not even looked up.
    local path k status
    for path in /healthz /readyz / /metrics; do
        for k in 1 2 3; do
            status=$(ct app curl -s -o /dev/null -w '%{http_code} %header{x-cache-status} %header{cache-control}' "${MIXED_CURL[@]}" "$MIXED_BASE$path")
            [[ $status == *HIT* ]] && fail "$path answered from the cache: $status"
            [[ $status == *no-store* ]] || fail "$path is not no-store: $status"
            [[ $path == /metrics || $status == *BYPASS* ]] || fail "$path used the cache (not declared cacheable): $status"
        done
    done
    # 20 identical uncacheable GETs at once: none waits for the cache's lock
    # (behind it they took 500 ms steps; here each is a plain proxied request).
    url_cfg 20 "$MIXED_BASE/" /var/tmp/burst3
    same_url 20 >"$WORK/burst3.codes"
    expect_eq "$(sort "$WORK/burst3.codes" | uniq -c | tr -s ' ')" " 20 200 BYPASS" "20 identical uncacheable GETs: statuses and cache"
    true
}

test_kill9_under_cacheable_load() {
    # The same n over and over (answers from the cache, refreshed every
    # minute); every instance killed in turn meanwhile.
    local url="$MIXED_BASE/compute?n=12345678" stop="$WORK/cachek9.stop"
    rm -f "$stop"
    url_cfg 500 "$url"
    ( while [[ ! -e $stop ]]; do same_url 16 || true; done ) >"$WORK/cachek9.codes" &
    local l=$!
    sleep 0.5
    kill9_each >"$WORK/cachek9.cmd" || fail "kill: $(cat "$WORK/cachek9.cmd")"
    sleep 0.5
    touch "$stop"
    wait "$l"
    local total failed
    total=$(wc -l <"$WORK/cachek9.codes")
    failed=$(grep -vc '^200 ' "$WORK/cachek9.codes" || true)
    record cache_kill9_each "$failed of $total failed"
    ((total > 0)) || fail "no load ran"
    expect_eq "$failed" 0 "failed requests for a cached route while every instance was killed"
}

test_cache_throughput_with_and_without() {
    # Measured, not asserted: heavy throughput through nginx for a repeated n,
    # answered from the cache, against the same n on distinct URLs (each a
    # miss, a pool job).
    local n=30000000 t0 hit_ms miss_ms
    url_cfg 2000 "$MIXED_BASE/compute?n=$n"
    ct app curl -s -o /dev/null "${MIXED_CURL[@]}" "$MIXED_BASE/compute?n=$n"
    t0=$(date +%s%N)
    same_url 16 >"$WORK/hit.codes"
    hit_ms=$(ms_since "$t0")
    t0=$(date +%s%N)
    load app 200 16 "$MIXED_BASE/compute?n=$n" "${MIXED_CURL[@]}" >"$WORK/miss.load"
    miss_ms=$(ms_since "$t0")
    local hits misses
    hits=$(grep -c '^200 HIT$' "$WORK/hit.codes" || true)
    read -r misses _ <"$WORK/miss.load"
    record cache_heavy_throughput "n=$n: cached $((hits * 1000 / hit_ms)) req/s ($hits in $hit_ms ms), uncached $((misses * 1000 / miss_ms)) req/s ($misses in $miss_ms ms); ratio $((hits * miss_ms / (hit_ms * misses)))x"
}

# redbot_notes URL [ENV...]: REDbot's text report for URL (run where told by REDBOT).
REDBOT_DIR="$WORK/redbot"
redbot_install() {
    [[ -x $REDBOT_DIR/bin/redbot ]] && return 0
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --target "$REDBOT_DIR" redbot ||
        fail "pip install redbot failed"
}

# redbot_check WHERE URL WANT: REDbot on URL, from this host (WHERE=host) or
# inside the container (WHERE=app); WANT is "no-store" (never stored, no
# heuristic freshness) or "fresh" (an explicit freshness lifetime).
redbot_check() {
    local where=$1 url=$2 want=$3 out
    if [[ $where == host ]]; then
        out=$(PYTHONPATH=$REDBOT_DIR timeout 60 python3 "$REDBOT_DIR/bin/redbot" -o text "$url" 2>&1)
    else
        out=$(ct app env PYTHONPATH=/var/tmp/redbot SSL_CERT_FILE=/var/tmp/pebble-root.pem timeout 60 python3 /var/tmp/redbot/bin/redbot -o text "$url" 2>&1)
    fi
    echo "== REDbot $where $url" >&2
    sed -n '/^\* Caching:/,/^$/p' <<<"$out" >&2
    grep -q '^\* Caching:' <<<"$out" || { echo "$out" >&2; fail "REDbot gave no caching report for $url"; }
    grep -q "assign their own freshness lifetimes" <<<"$out" && fail "$url: REDbot: heuristic freshness"
    case $want in
        no-store)
            grep -q "can't be stored by caches" <<<"$out" || fail "$url: REDbot does not say it can't be stored"
            grep -q "allows all caches to store it" <<<"$out" && fail "$url: REDbot: cacheable by accident"
            ;;
        fresh) grep -Eq "is fresh for [0-9]+ (seconds|minute)" <<<"$out" || fail "$url: REDbot sees no freshness lifetime" ;;
    esac
    true
}

test_redbot_on_every_builtin_route() {
    redbot_install
    # Directly: a corepool on this host, the release binary the package holds.
    local port=$((20000 + RANDOM % 10000)) pid
    # In a clean environment: corepool reads COREPOOL_* variables as its
    # settings, and this suite's own (COREPOOL_TEST_RESULTS, ...) are none.
    env -i PATH="$PATH" "$(pwd)/target/release/corepool" serve --listen "127.0.0.1:$port" --set pin=false >"$WORK/redbot-direct.log" 2>&1 &
    pid=$!
    # Ready within 30 s (a contended machine starts it slowly), or the test
    # says so with the server's log, instead of REDbot's connection errors.
    local k
    for ((k = 0; k < 300; k++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" ||
        { kill "$pid" 2>/dev/null || true; fail "corepool on port $port not ready (or exited): $(tail -n 5 "$WORK/redbot-direct.log")"; }
    local path
    for path in / /healthz /readyz /metrics; do
        redbot_check host "http://127.0.0.1:$port$path" no-store
    done
    redbot_check host "http://127.0.0.1:$port/compute?n=10" fresh
    kill "$pid"
    wait "$pid" || true
    # Through the packaged nginx over HTTPS.
    ct app mkdir -p /var/tmp/redbot
    tar -C "$REDBOT_DIR" -c . | ct app tar -C /var/tmp/redbot -x
    # REDbot resolves names itself (DNS, not /etc/hosts): a test DNS server
    # answering 127.0.0.1 for every name, pebble's own, on port 53.
    ct app systemd-run -q --unit redbot-dns pebble-challtestsrv -dns01 127.0.0.1:53 -http01 "" -https01 "" -tlsalpn01 "" \
        -management 127.0.0.1:8056 -defaultIPv4 127.0.0.1 -defaultIPv6 ""
    ct_sh app "cp /etc/resolv.conf /var/tmp/resolv.conf.saved 2>/dev/null || true; rm -f /etc/resolv.conf; echo 'nameserver 127.0.0.1' > /etc/resolv.conf"
    for path in / /healthz /readyz /metrics; do
        redbot_check app "$MIXED_BASE$path" no-store
    done
    redbot_check app "$MIXED_BASE/compute?n=10" fresh
    ct_sh app "systemctl stop redbot-dns; rm -f /etc/resolv.conf; cp /var/tmp/resolv.conf.saved /etc/resolv.conf 2>/dev/null || true"
    record redbot "no heuristic freshness or accidental cacheability on /, /healthz, /readyz, /metrics (direct and via nginx HTTPS); /compute fresh for its max-age"
}

test_memory_limit_kills_only_that_instance() {
    # A test-only drop-in: a memory limit and the fault-injection endpoints.
    # MemoryMax= needs the memory cgroup controller; a container on a host
    # with cgroup v1 (like this workplace's machines) is not given it, and
    # systemd then ignores MemoryMax= silently. There the limit is LimitAS=
    # (address space): the kernel refuses the allocation, the process aborts.
    local limit mech
    if ct app grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        limit='MemoryMax=128M\nMemorySwapMax=0'
        mech="MemoryMax=128M (cgroup OOM kill)"
    else
        limit='LimitAS=512M'
        mech="LimitAS=512M (no memory cgroup controller in this container)"
    fi
    ct_sh app "mkdir -p /etc/systemd/system/corepool@0.service.d &&
        printf '[Service]\n$limit\nEnvironment=COREPOOL_DEBUG_ENDPOINTS=true\n' \
            > /etc/systemd/system/corepool@0.service.d/90-test-memory.conf &&
        systemctl daemon-reload && systemctl restart corepool@0.service"
    local pid0 pid1 before new code restarts journal served
    pid0=$(main_pid 0)
    pid1=$(main_pid 1)
    before=$(ct app systemctl show -p NRestarts --value corepool@0.service)
    # 1 GiB, held 2 s: past either limit.
    code=$(ct app curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST \
        --unix-socket /run/corepool/0.sock 'http://c/debug/alloc?mb=1024&ms=2000' || true)
    new=$(wait_new_pid 0 "$pid0")
    restarts=$(ct app systemctl show -p NRestarts --value corepool@0.service)
    journal=no
    journal_shows corepool@0.service '[Oo][Oo][Mm]|[Oo]ut of memory|memory allocation of [0-9]+ bytes failed' && journal=yes
    # For the log when it did not: what the unit's journal held instead.
    [[ $journal == yes ]] || ct app journalctl -q -u corepool@0.service -n 25 --no-pager >&2 || true
    served=$(curl_sock 0 / | field "['pid']" || true)
    # Undo the drop-in before judging, so later tests see the packaged unit.
    ct_sh app "rm -r /etc/systemd/system/corepool@0.service.d && systemctl daemon-reload && systemctl restart corepool@0.service"
    record memory_limit "$mech: 1 GiB job got HTTP $code, pid $pid0 -> $new, NRestarts $before -> $restarts"
    [[ $code != 200 ]] || fail "the allocation succeeded: the limit is not enforced"
    [[ $new != "$pid0" && $new != 0 ]] || fail "instance 0 was not restarted"
    expect_eq "$restarts" "$((before + 1))" "NRestarts"
    expect_eq "$journal" yes "journal shows the memory failure"
    expect_eq "$(main_pid 1)" "$pid1" "instance 1 untouched"
    expect_eq "$served" "$new" "instance 0 serves again after its restart"
}

test_unwritable_etc_is_an_error_not_an_outage() {
    local pids before out rc how
    pids=$(main_pids)
    before=$(ct app md5sum /etc/corepool/nginx/upstream.conf)
    for how in full read-only; do
        if [[ $how == full ]]; then
            # A tiny filesystem over the generated nginx files, filled up.
            ct_sh app "cp -a /etc/corepool/nginx /var/tmp/nginx-saved &&
                mount -t tmpfs -o size=64k tmpfs /etc/corepool/nginx &&
                cp -a /var/tmp/nginx-saved/. /etc/corepool/nginx/ &&
                { dd if=/dev/zero of=/etc/corepool/nginx/fill bs=4k 2>/dev/null || true; }"
        else
            ct_sh app "mount --bind /etc/corepool /etc/corepool && mount -o remount,bind,ro /etc/corepool"
        fi
        rc=0
        out=$(ct app corepool scale 1 2>&1) || rc=$?
        if [[ $how == full ]]; then
            ct_sh app "umount /etc/corepool/nginx && rm -rf /var/tmp/nginx-saved"
        else
            ct app umount /etc/corepool
        fi
        record "unwritable_etc_$how" "exit $rc: $(head -n1 <<<"$out")"
        ((rc != 0)) || fail "corepool scale 1 succeeded with /etc $how"
        grep -q '/etc/corepool/nginx/upstream' <<<"$out" || fail "error does not name the file: $out"
        grep -Eqi 'no space left|read-only' <<<"$out" || fail "error does not say why: $out"
    done
    expect_eq "$(ct app md5sum /etc/corepool/nginx/upstream.conf)" "$before" "upstream.conf unchanged"
    expect_eq "$(main_pids)" "$pids" "instances kept running"
    ct app nginx -t -q || fail "nginx config broken"
    local seen
    seen=$(for _ in $(seq 1 20); do ct app curl -s "${PUBLIC_TLS[@]}" "$PUBLIC_URL" | field "['instance']"; done | sort -u | tr '\n' ' ')
    expect_eq "$seen" "$(seq -s ' ' 0 $((NCPU - 1))) " "every instance still serves"
}

test_sockets_and_files_are_private() {
    # nginx's user may connect to an instance socket; any other user may not.
    expect_eq "$(ct app setpriv --reuid=www-data --regid=www-data --init-groups curl -s -o /dev/null -w '%{http_code}' \
        --unix-socket /run/corepool/0.sock http://c/healthz)" 200 "www-data connects"
    local rc=0
    ct app setpriv --reuid=nobody --regid=nogroup --clear-groups curl -s -o /dev/null \
        --unix-socket /run/corepool/0.sock http://c/metrics || rc=$?
    record socket_as_nobody "curl exit $rc"
    expect_eq "$rc" 7 "nobody's connection refused (curl: couldn't connect)"
    # Nothing the package installs or generates is world-writable; the config
    # and the instances' state are not world-readable.
    local ww
    ww=$(ct_sh app "dpkg -L corepool | while read -r f; do
        if [ -e \"\$f\" ] && [ ! -L \"\$f\" ] && [ -n \"\$(find \"\$f\" -maxdepth 0 -perm -o+w)\" ]; then echo \"\$f\"; fi; done")
    [[ -z $ww ]] || fail "world-writable: $ww"
    ww=$(ct app find /etc/corepool /usr/lib/systemd/system -path '*corepool*' -perm -o+w ! -type l)
    [[ -z $ww ]] || fail "world-writable: $ww"
    expect_eq "$(ct app stat -c '%a' /etc/corepool/corepool.toml)" 640 "config mode"
    # /metrics is for local scrapers: not on the public site, on either port.
    expect_eq "$(ct app curl -s -o /dev/null -w '%{http_code}' "${PUBLIC_TLS[@]}" "${PUBLIC_URL}metrics")" 404 "/metrics over HTTPS"
    expect_eq "$(ct app curl -s -o /dev/null -w '%{http_code}' -H "Host: $PEBBLE_DOMAIN" http://127.0.0.1/metrics)" 301 "/metrics over HTTP redirects"
}

test_hostile_input_through_nginx() {
    ct app tee /var/tmp/hostile_nginx.py <tests/system/hostile_nginx.py >/dev/null
    local j
    j=$(ct app python3 /var/tmp/hostile_nginx.py "$PEBBLE_DOMAIN" /var/tmp/pebble-root.pem 50)
    record hostile_through_nginx "$j"
    local k
    for k in cl_te two_cl bad_chunk big_header bad_utf8_path; do
        expect_eq "$(field "['$k']" <<<"$j")" "[400]" "$k through nginx"
    done
    expect_eq "$(field "['big_body']" <<<"$j")" "[413]" "2 MiB body through nginx"
    expect_eq "$(field "['slowloris']['still_open']" <<<"$j")" 0 "slowloris connections left open"
    (($(field "['slowloris']['ordinary_requests_served']" <<<"$j") >= 5)) || fail "ordinary requests starved during slowloris"
    ct app systemctl is-active --quiet nginx || fail "nginx down"
}

# gixy (PyPI) audits the installed nginx configuration; the container has
# no network, so it is installed here and run with the container's Python.
test_gixy_nginx_audit() {
    rm -rf "$WORK/gixy"
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
        --target "$WORK/gixy" gixy==0.1.21 || fail "pip install gixy failed"
    ct app mkdir -p /var/tmp/gixy
    tar -C "$WORK/gixy" -c . | ct app tar -C /var/tmp/gixy -x
    local out rc=0
    out=$(ct app env PYTHONPATH=/var/tmp/gixy python3 -c \
        'import sys; from gixy.cli.main import main; sys.argv = ["gixy", "/etc/nginx/nginx.conf"]; sys.exit(main())' 2>&1) || rc=$?
    echo "$out" | sed -n '/Summary/,$p' >&2
    record gixy "exit $rc; $(echo "$out" | sed -n '/Summary/,$p' | grep -E 'Low|Medium|High' | tr -s ' \n' ' ')"
    grep -Eq 'High: 0' <<<"$out" || { echo "$out"; fail "gixy reports high-severity problems"; }
    grep -Eq 'Medium: 0' <<<"$out" || { echo "$out"; fail "gixy reports medium-severity problems"; }
}

# testssl (Debian package testssl.sh) against the pebble-issued certificate: run from this
# host inside the container's network namespace, trusting pebble's root.
test_testssl_tls_audit() {
    ct app cat /var/tmp/pebble-root.pem >"$WORK/pebble-root.pem"
    local json="$WORK/testssl.json" rc=0
    rm -f "$json"
    nsenter -t "$(ct_pid app)" -n -- testssl --quiet --color 0 --nodns none --ip 127.0.0.1 \
        --add-ca "$WORK/pebble-root.pem" --protocols --server-defaults --server-preference --vulnerable \
        --jsonfile "$json" "https://$PEBBLE_DOMAIN/" >"$WORK/testssl.out" 2>&1 || rc=$?
    [[ -s $json ]] || { tail -n 30 "$WORK/testssl.out"; fail "testssl produced no results (exit $rc)"; }
    local summary
    summary=$(python3 - "$json" <<'PY'
import collections, json, sys
# A property of the test CA, not of the site: pebble puts no CRL or OCSP URI in
# its certificates (Let's Encrypt's carry a CRL distribution point).
TEST_CA_ONLY = {"cert_revocation"}
findings = json.load(open(sys.argv[1]))
count = collections.Counter(f["severity"] for f in findings)
print(" ".join(f"{k}={v}" for k, v in sorted(count.items())) + "; below OK/INFO: "
      + ", ".join(f"{f['id']} ({f['severity']})" for f in findings if f["severity"] not in ("OK", "INFO")))
for f in findings:
    if f["severity"] in ("HIGH", "CRITICAL") and f["id"] not in TEST_CA_ONLY:
        print(f"BAD {f['id']}: {f['finding']}")
PY
)
    record testssl "exit $rc; $(head -n1 <<<"$summary")"
    if grep -q '^BAD ' <<<"$summary"; then
        grep '^BAD ' <<<"$summary" >&2
        fail "testssl reports high or critical findings"
    fi
}
