# shellcheck shell=bash
# Reliability and hardening tests, sourced by tests/system/run after HTTPS is
# up: faults under load through the public path (nginx, TLS), memory limit,
# unwritable /etc, socket and file permissions. Each records its figures.
# Uses run's helpers: ct, ct_sh, load, record, main_pid, curl_sock, field.

PUBLIC_URL="https://$PEBBLE_DOMAIN/"
PUBLIC_TLS=(--cacert /var/tmp/pebble-root.pem --resolve "$PEBBLE_DOMAIN:443:127.0.0.1")

# wait_new_pid I OLD: waits (10 s at most) until instance I runs a process other than OLD; prints it.
wait_new_pid() {
    local i=$1 old=$2 k new=0
    for ((k = 0; k < 500; k++)); do
        new=$(main_pid "$i")
        [[ $new != 0 && $new != "$old" ]] && break
        sleep 0.02
    done
    echo "$new"
}

# check_load FILE WHAT: the load in FILE had no failed request.
check_load() {
    local total failed max rest
    read -r total failed max rest <"$1"
    [[ $failed == 0 && $total -gt 0 ]] || fail "$2: $total requests, $failed failed ($max s max; ${rest:-})"
}

test_kill9_every_instance_through_nginx() {
    load app 20000 16 "$PUBLIC_URL" "${PUBLIC_TLS[@]}" >"$WORK/k9all.load" &
    local l=$! i pid new t0 times=()
    sleep 0.5
    for ((i = 0; i < NCPU; i++)); do
        pid=$(main_pid "$i")
        t0=$(date +%s%N)
        ct app kill -9 "$pid"
        new=$(wait_new_pid "$i" "$pid")
        times+=("$(ms_since "$t0")")
        [[ $new != "$pid" && $new != 0 ]] || fail "instance $i was not restarted"
        sleep 0.3
    done
    kill -0 "$l" 2>/dev/null || fail "the load ended before every instance was killed: raise its count"
    wait "$l"
    record kill9_each_restart_ms "${times[*]}"
    record kill9_each_load "total,failed,max_s=$(cat "$WORK/k9all.load")"
    check_load "$WORK/k9all.load" "kill -9 of every instance in turn"
}

test_sigstop_under_load_through_nginx() {
    load app 20000 16 "$PUBLIC_URL" "${PUBLIC_TLS[@]}" >"$WORK/stop.load" &
    local l=$! pid new t0
    sleep 0.5
    pid=$(main_pid 0)
    t0=$(date +%s%N)
    ct app kill -STOP "$pid"
    new=$(wait_new_pid 0 "$pid")
    [[ $new != "$pid" && $new != 0 ]] || fail "hung instance 0 was not restarted by the watchdog"
    record sigstop_recovery_ms "$(ms_since "$t0")"
    wait "$l"
    record sigstop_load "total,failed,max_s=$(cat "$WORK/stop.load")"
    check_load "$WORK/stop.load" "SIGSTOP of instance 0"
    ct app journalctl -q -u corepool@0.service | grep -qi 'watchdog timeout' || fail "journal does not show the watchdog"
}

test_memory_limit_kills_only_that_instance() {
    # A test-only drop-in: a 128 MiB limit and the fault-injection endpoints.
    ct_sh app "mkdir -p /etc/systemd/system/corepool@0.service.d &&
        printf '[Service]\nMemoryMax=128M\nMemorySwapMax=0\nEnvironment=COREPOOL_DEBUG_ENDPOINTS=true\n' \
            > /etc/systemd/system/corepool@0.service.d/90-test-memory.conf &&
        systemctl daemon-reload && systemctl restart corepool@0.service"
    local pid0 pid1 before new code
    pid0=$(main_pid 0)
    pid1=$(main_pid 1)
    before=$(ct app systemctl show -p NRestarts --value corepool@0.service)
    # 512 MiB, held 2 s: past MemoryMax.
    code=$(ct app curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST \
        --unix-socket /run/corepool/0.sock 'http://c/debug/alloc?mb=512&ms=2000' || true)
    new=$(wait_new_pid 0 "$pid0")
    record memory_limit "alloc 512 MiB under MemoryMax=128M: HTTP $code, pid $pid0 -> $new"
    [[ $code != 200 ]] || fail "the allocation succeeded: MemoryMax not enforced"
    [[ $new != "$pid0" && $new != 0 ]] || fail "instance 0 was not restarted"
    expect_eq "$(ct app systemctl show -p NRestarts --value corepool@0.service)" "$((before + 1))" "NRestarts"
    ct app journalctl -q -u corepool@0.service | grep -Eqi 'oom|out of memory' || fail "journal does not show the OOM kill"
    expect_eq "$(main_pid 1)" "$pid1" "instance 1 untouched"
    expect_eq "$(curl_sock 0 / | field "['pid']")" "$new" "instance 0 serves again"
    ct_sh app "rm -r /etc/systemd/system/corepool@0.service.d && systemctl daemon-reload && systemctl restart corepool@0.service"
}

test_unwritable_etc_is_an_error_not_an_outage() {
    local pids before out rc how
    pids=$(for ((i = 0; i < NCPU; i++)); do main_pid "$i"; done | tr '\n' ' ')
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
    expect_eq "$(for ((i = 0; i < NCPU; i++)); do main_pid "$i"; done | tr '\n' ' ')" "$pids" "instances kept running"
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
