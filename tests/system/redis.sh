#!/usr/bin/env bash
# State shared by every instance on Debian's redis-server (issue 26), sourced
# by tests/system/run after the stream tests (HTTPS served, the stream client
# installed): Redis configured as an operator would (a unix socket 0770,
# requirepass, the password as a systemd credential), the service's [redis]
# pointing at it; a login over HTTPS seen by every instance; 200 chat
# WebSockets (tests/system/redis_client.py) receiving every message; Redis
# restarted under the mixed load and the chat; a rolling reload during the chat.
# Uses run's and streams.sh's helpers: ct, ct_sh, record, field, curl_sock,
# mixed_event, mixed_ok, load, MIXED_BASE, MIXED_CURL, NCPU, streams_install,
# all_instances, instances_in, expect_below, expect_at_least.

REDIS_CLIENT=/var/tmp/redis_client.py
REDIS_DIR=/var/tmp/redis-chat
REDIS_SOCK=/run/redis/redis-server.sock
REDIS_CHAT_CLIENTS=200

# redis_client MODE ARGS...: the chat client in the container, in a session of
# its own (its own CPU group, as streams_client), bounded.
redis_client() {
    ct app setsid -w timeout 600 /usr/bin/python3 "$REDIS_CLIENT" "${STREAMS_TARGET[@]}" "$@"
}

# https_curl ARGS...: curl to the packaged site over HTTPS, from the container.
https_curl() {
    ct app curl -s --max-time 10 "${MIXED_CURL[@]}" "$@"
}

# ready_everywhere: every instance's /readyz answers 200 (Redis up: required).
ready_everywhere() {
    local i
    for ((i = 0; i < NCPU; i++)); do
        [[ $(ct app curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket "/run/corepool/$i.sock" http://corepool/readyz) == 200 ]] || return 1
    done
}

# wait_ready_everywhere WHAT: ready_everywhere within 30 s.
wait_ready_everywhere() {
    local k
    for ((k = 0; k < 150; k++)); do
        ready_everywhere && return 0
        sleep 0.2
    done
    fail "$1: not every instance ready within 30 s"
}

test_redis_configured_as_an_operator_would() {
    streams_install
    ct app tee "$REDIS_CLIENT" <tests/system/redis_client.py >/dev/null
    # Debian's redis-server: a unix socket for the redis group, a password.
    ct_sh app "set -e
        pw=\$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        sed -i -E 's|^#? *unixsocket .*|unixsocket $REDIS_SOCK|; s|^#? *unixsocketperm .*|unixsocketperm 770|' /etc/redis/redis.conf
        printf 'requirepass %s\n' \"\$pw\" >> /etc/redis/redis.conf
        install -d -m 0700 /etc/corepool/credentials
        (umask 077 && printf '%s\n' \"\$pw\" > /etc/corepool/credentials/redis-password)
        systemctl enable -q --now redis-server
        sed -i '/^\[redis\]/,/^\[/{s|^url = .*|url = \"$REDIS_SOCK\"|; s|^required = .*|required = true|}' /etc/corepool/corepool.toml
        corepool config check --quiet" || fail "configuring Redis failed"
    ct app corepool reload >/dev/null || fail "reload with [redis] failed"
    wait_ready_everywhere "after the reload with [redis]" || return 1
    local i h
    for ((i = 0; i < NCPU; i++)); do
        h=$(curl_sock "$i" /healthz)
        expect_eq "$(field "['redis']['state']" <<<"$h")" up "instance $i's Redis link" || return 1
    done
    # The drop-in the commands wrote: ordered after Redis, in its group, the password a credential.
    local unit
    unit=$(ct app systemctl cat corepool@0.service)
    grep -q '^After=.*redis-server.service' <<<"$unit" || fail "no After=redis-server.service in: $unit"
    grep -q '^SupplementaryGroups=redis' <<<"$unit" || fail "no SupplementaryGroups=redis in: $unit"
    grep -q '^LoadCredential=redis-password:' <<<"$unit" || fail "no LoadCredential for the password in: $unit"
    # The password is nowhere world-readable: not in the TOML, not in the unit.
    ct_sh app "! grep -rq \"\$(cat /etc/corepool/credentials/redis-password)\" /etc/corepool/corepool.toml /etc/systemd/system /lib/systemd/system" ||
        fail "the Redis password appears in a readable file"
    record redis_status "$(ct app corepool status 2>&1 | tr '\n' ';')"
}

test_redis_session_seen_by_every_instance() {
    local login cookie i j users
    login=$(https_curl -D - -o /dev/null -H 'Content-Type: application/json' -d '{"user":"alice"}' "$MIXED_BASE/session") || fail "login failed"
    cookie=$(grep -i '^set-cookie: corepool_session=' <<<"$login" | sed -E 's/^[^:]+: ([^;]+);.*/\1/' | tr -d '\r')
    [[ $cookie == corepool_session=* ]] || fail "no session cookie in: $login"
    grep -i '^set-cookie:' <<<"$login" | grep -q 'Secure' || fail "the cookie over HTTPS is not Secure: $login"
    # 100 requests (a fresh connection each: nginx spreads them) all see alice.
    users=$(for ((i = 0; i < 100; i++)); do https_curl -H "Cookie: $cookie" "$MIXED_BASE/session"; echo; done)
    expect_eq "$(python3 -c 'import json,sys; print(sorted({json.loads(l)["user"] for l in sys.stdin if l.strip()}))' <<<"$users")" "['alice']" "users seen by 100 requests"
    j=$(python3 -c 'import json,sys; print(" ".join(sorted({str(json.loads(l)["instance"]) for l in sys.stdin if l.strip()}, key=int)))' <<<"$users")
    record redis_session_instances "$j"
    expect_eq "$j" "$(all_instances)" "instances that answered the session's requests"
    echo "$cookie" >"$WORK/redis-cookie"
}

# redis_chat_start: the chat client in the background (REDIS_CHAT_PID), its
# clients all open, on every instance. (Each test starts and stops its own:
# a test runs in a subshell of its own.)
redis_chat_start() {
    ct app sh -c "rm -rf $REDIS_DIR && mkdir -p $REDIS_DIR"
    redis_client chat --clients "$REDIS_CHAT_CLIENTS" --room lobby --dir "$REDIS_DIR" --max-seconds 400 </dev/null >"$WORK/redis-chat.out" 2>&1 &
    REDIS_CHAT_PID=$!
    redis_chat_wait_open "the chat clients' first connections"
}

# redis_chat_status: the client's status document.
redis_chat_status() { ct app cat "$REDIS_DIR/status.json" 2>/dev/null; }

# redis_chat_wait_open WHAT: every client open, on every instance, within 60 s.
redis_chat_wait_open() {
    local k s
    for ((k = 0; k < 300; k++)); do
        s=$(redis_chat_status) || { sleep 0.2; continue; }
        if [[ $(field "['open']" <<<"$s") == "$REDIS_CHAT_CLIENTS" &&
            $(instances_in "['open_by_instance']" <<<"$s") == "$(all_instances)" ]]; then
            return 0
        fi
        sleep 0.2
    done
    echo "chat client's output: $(tail -n 20 "$WORK/redis-chat.out")" >&2
    fail "$1: not all $REDIS_CHAT_CLIENTS chat clients open on every instance: $(redis_chat_status)"
}

# redis_chat_send NAME COUNT RATE: asks the client for a batch of messages.
redis_chat_send() {
    ct app sh -c "echo '$1 $2 $3' > $REDIS_DIR/send.new && mv $REDIS_DIR/send.new $REDIS_DIR/send"
}

# redis_chat_batch NAME COUNT RATE: sends a batch and waits until it is done
# (bounded); prints its view.
redis_chat_batch() {
    redis_chat_send "$@"
    redis_chat_wait_batch "$1"
}

# redis_chat_wait_batch NAME: waits until batch NAME is done (120 s at most);
# prints its view.
redis_chat_wait_batch() {
    local k
    for ((k = 0; k < 600; k++)); do
        if [[ $(redis_chat_status | field "['batches'].get('$1', {}).get('done')") == True ]]; then
            redis_chat_status | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['batches']['$1'], sort_keys=True))"
            return 0
        fi
        sleep 0.2
    done
    echo "batch $1 not done in 120 s: $(redis_chat_status)" >&2
    return 1
}

# redis_chat_stop: ends the client, its summary in $WORK/redis-chat.json.
redis_chat_stop() {
    ct app touch "$REDIS_DIR/stop"
    wait "$REDIS_CHAT_PID" || echo "chat client exited with $?: $(tail -n 5 "$WORK/redis-chat.out")" >&2
    ct app cat "$REDIS_DIR/summary.json" >"$WORK/redis-chat.json"
}

# expect_complete VIEW WHAT: every message of the batch sent, and received by
# every client open throughout, exactly once.
expect_complete() {
    expect_eq "$(field "['not_sent']" <<<"$1")" 0 "$2: messages not sent" &&
        expect_eq "$(field "['eligible']" <<<"$1")" "$REDIS_CHAT_CLIENTS" "$2: clients open throughout" &&
        expect_eq "$(field "['min_received']" <<<"$1")" "$(field "['sent']" <<<"$1")" "$2: fewest messages a client received" &&
        expect_eq "$(field "['missing']" <<<"$1")" 0 "$2: deliveries missing" &&
        expect_eq "$(field "['duplicates']" <<<"$1")" 0 "$2: deliveries twice"
}

test_redis_chat_reaches_every_client() {
    redis_chat_start || { redis_chat_stop; return 1; }
    local v
    v=$(redis_chat_batch steady 1000 200) || { redis_chat_stop; fail "the batch did not finish"; }
    record redis_chat_steady "$v; on instances $(redis_chat_status | field "['open_by_instance']")"
    redis_chat_stop
    expect_complete "$v" "1,000 messages from random clients to $REDIS_CHAT_CLIENTS clients"
}

# redis_restart_event: what runs beside the mixed load: messages to the chat
# and requests to the routes that need Redis, while redis-server restarts.
redis_restart_event() {
    local cookie t0
    cookie=$(cat "$WORK/redis-cookie")
    redis_chat_send outage 600 100
    load app 1200 4 "$MIXED_BASE/counter" "${MIXED_CURL[@]}" -X POST >"$WORK/redis-counter.out" &
    local c=$!
    load app 1200 4 "$MIXED_BASE/session" "${MIXED_CURL[@]}" -H "Cookie: $cookie" >"$WORK/redis-session.out" &
    local s=$!
    sleep 1
    t0=$(date +%s%N)
    ct app systemctl restart redis-server || return 1
    echo "restart_ms $(ms_since "$t0")"
    wait_ready_everywhere "after systemctl restart redis-server" || return 1
    echo "ready_ms $(ms_since "$t0")"
    # (Their failures are judged from their output.)
    wait "$c" "$s" || true
}

test_redis_restart_under_load_and_chat() {
    local cookie
    cookie=$(cat "$WORK/redis-cookie")
    redis_chat_start || { redis_chat_stop; return 1; }
    mixed_event app "$MIXED_BASE" "$WORK/redis-restart" 1 redis_restart_event || { redis_chat_stop; fail "the restart under load failed: $(tail -n 5 "$WORK/redis-restart.cmd")"; }
    record redis_restart_mixed "$(tr '\n' ';' <"$WORK/redis-restart.summary")"
    record redis_restart_times "$(tr '\n' ' ' <"$WORK/redis-restart.cmd")"
    record redis_restart_counter "$(cat "$WORK/redis-counter.out")"
    record redis_restart_session "$(cat "$WORK/redis-session.out")"
    # The routes that do not need Redis: nothing failed.
    mixed_ok "$WORK/redis-restart" "systemctl restart redis-server" || { redis_chat_stop; return 1; }
    # Those that do: only 503s, and only during the outage: the same load
    # once every instance is ready again has no failure at all.
    local out total failed statuses after
    for out in counter session; do
        read -r total failed _ statuses <"$WORK/redis-$out.out"
        statuses=${statuses%% first:*}
        [[ $failed == 0 || $statuses =~ ^503:[0-9]+$ ]] || { redis_chat_stop; fail "/$out during the restart: failures other than 503: $statuses"; }
        expect_below "$failed" "$total" "/$out requests answered 503 during the restart" || { redis_chat_stop; return 1; }
    done
    after=$(load app 400 4 "$MIXED_BASE/counter" "${MIXED_CURL[@]}" -X POST) || true
    record redis_after_restart_counter "$after"
    expect_eq "$(cut -d' ' -f2 <<<"$after")" 0 "POST /counter failures after the restart" || { redis_chat_stop; return 1; }
    local r
    r=$(https_curl -o /dev/null -D - -X POST "$MIXED_BASE/counter")
    grep -q '^HTTP/[0-9.]* 200' <<<"$r" || { redis_chat_stop; fail "POST /counter after the restart: $r"; }
    # The session written before the restart is still valid (Debian's redis saves on shutdown).
    expect_eq "$(https_curl -H "Cookie: $cookie" "$MIXED_BASE/session" | field "['user']")" alice "the session after the restart" || { redis_chat_stop; return 1; }
    # The chat: every client back, then a batch reaches every one of them.
    redis_chat_wait_open "the chat after the restart" || { redis_chat_stop; return 1; }
    local outage after
    outage=$(redis_chat_status | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['batches']['outage'], sort_keys=True))")
    record redis_restart_chat_during "$outage; gaps told $(redis_chat_status | field "['gaps']"); closes $(redis_chat_status | field "['closes']"); refused $(redis_chat_status | field "['refused']")"
    expect_eq "$(field "['duplicates']" <<<"$outage")" 0 "messages delivered twice during the restart" || { redis_chat_stop; return 1; }
    expect_at_least "$(redis_chat_status | field "['gaps']")" "$REDIS_CHAT_CLIENTS" "clients told of the gap" || { redis_chat_stop; return 1; }
    after=$(redis_chat_batch after-restart 200 100) || { redis_chat_stop; fail "the batch after the restart did not finish"; }
    redis_chat_stop
    record redis_restart_chat_after "$after"
    expect_complete "$after" "200 messages after the restart"
}

# redis_chat_closed_since BEFORE CODE: the clients closed with CODE since the
# status BEFORE (a file), each counted once: a client that reconnects while
# its instance drains is sent to another one (nginx retries the handshake's
# 503), which the rolling reload may restart next, closing it twice.
redis_chat_closed_since() {
    redis_chat_status | python3 -c '
import json, sys
before = json.load(open(sys.argv[1]))["closes_by_slot"].get(sys.argv[2], {})
now = json.load(sys.stdin)["closes_by_slot"].get(sys.argv[2], {})
print(sum(1 for slot, n in now.items() if n > before.get(slot, 0)))' "$1" "$2"
}

test_redis_chat_across_a_rolling_reload() {
    local before during after closes total
    redis_chat_start || { redis_chat_stop; return 1; }
    redis_chat_status >"$WORK/redis-chat-before-reload.json"
    before=$(field "['closes'].get('1012', 0)" <"$WORK/redis-chat-before-reload.json")
    redis_chat_send reload 400 100
    ct app corepool reload >/dev/null || { redis_chat_stop; fail "reload failed"; }
    redis_chat_wait_open "the chat after the reload" || { redis_chat_stop; return 1; }
    closes=$(redis_chat_closed_since "$WORK/redis-chat-before-reload.json" 1012)
    total=$(($(redis_chat_status | field "['closes'].get('1012', 0)") - before))
    during=$(redis_chat_wait_batch reload) || { redis_chat_stop; fail "the batch during the reload did not finish"; }
    after=$(redis_chat_batch after-reload 200 100) || { redis_chat_stop; fail "the batch after the reload did not finish"; }
    redis_chat_stop
    record redis_reload_chat "clients closed with 1012: $closes ($total closes); during: $during; after: $after"
    record redis_chat_summary "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d[k] for k in ("closes", "refused", "reconnects", "gaps", "errors")}, sort_keys=True))' <"$WORK/redis-chat.json")"
    expect_eq "$closes" "$REDIS_CHAT_CLIENTS" "chat WebSockets closed with 1012 by the reload"
    expect_eq "$(field "['duplicates']" <<<"$during")" 0 "messages delivered twice during the reload"
    expect_complete "$after" "200 messages after the reload"
}

# Back as packaged for the tests after these: no [redis], Redis stopped; the
# drop-in goes with the setting.
test_redis_off_again() {
    ct_sh app "set -e
        sed -i '/^\[redis\]/,/^\[/{s|^url = .*|url = \"\"|; s|^required = .*|required = false|}' /etc/corepool/corepool.toml
        rm -rf /etc/corepool/credentials
        corepool config check --quiet" || fail "removing [redis] failed"
    ct app corepool reload >/dev/null || fail "reload without [redis] failed"
    ct app systemctl disable -q --now redis-server || fail "stopping redis-server failed"
    wait_ready_everywhere "after the reload without [redis]" || return 1
    local unit
    unit=$(ct app systemctl cat corepool@0.service)
    ! grep -q 'redis' <<<"$unit" || fail "the unit still mentions redis: $unit"
    expect_eq "$(curl_sock 0 /healthz | field ".get('redis')")" None "instance 0's Redis link after removing [redis]"
}

run_test "redis: Debian's redis-server on a 0770 socket with a password credential; every instance connected" test_redis_configured_as_an_operator_would
run_test "redis: a login over HTTPS seen by 100 requests on every instance" test_redis_session_seen_by_every_instance
run_test "redis: 200 chat WebSockets on every instance each receive all 1,000 messages" test_redis_chat_reaches_every_client
run_test "redis: systemctl restart redis-server under GET+POST+heavy load and the chat: 503s only on its routes, bounded; the chat resumes" test_redis_restart_under_load_and_chat
run_test "redis: a rolling reload during the chat: 1012, reconnected, every message after received" test_redis_chat_across_a_rolling_reload
run_test "redis: [redis] removed again: the drop-in gone, every instance ready without it" test_redis_off_again
