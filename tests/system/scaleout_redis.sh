#!/usr/bin/env bash
# Shared state across hosts (issue 26), sourced by tests/system/scaleout
# after its own tests: a fourth machine, redis (10.77.0.4), runs Debian's
# redis-server as an operator sets it up for a LAN (bind to the LAN address,
# protected-mode with requirepass); app1 and app2 point [redis] at it over
# TCP with the password as a credential; then a login through the front is
# seen by both hosts, and one chat room spans both hosts' instances
# (tests/system/redis_client.py's chat, counting clients by host/instance:
# --by-host). Uses scaleout's ct, ct_sh, TLS, DOMAIN, URL, NCPU,
# every_instance, REDIS_IP, and lib.sh's record, field, expect_eq, fail.

SO_REDIS_URL="redis://$REDIS_IP:6379/0"
SO_CHAT_DIR=/var/tmp/chat
SO_CHAT_CLIENTS=60
SO_CHAT_ROOM=across

# so_healthz HOST I: instance I's /healthz on HOST, over its unix socket.
so_healthz() {
    ct "$1" curl -s --max-time 5 --unix-socket "/run/corepool/$2.sock" http://corepool/healthz
}

# so_redis_up_everywhere: every instance of app1 and app2 reports its Redis link up.
so_redis_up_everywhere() {
    local h i
    for h in app1 app2; do
        for ((i = 0; i < NCPU; i++)); do
            [[ $(so_healthz "$h" "$i" | field "['redis']['state']" 2>/dev/null) == up ]] || return 1
        done
    done
}

# so_redis_clients: "ADDR:COUNT ..." of the clients connected to Redis, by
# address (but redis-cli's own, from the Redis host).
so_redis_clients() {
    ct_sh redis "REDISCLI_AUTH=\$(cat /root/redis-password) redis-cli -h $REDIS_IP client list" |
        sed -nE 's/.* addr=([0-9.]+):[0-9]+ .*/\1/p' | awk -v me="$REDIS_IP" '$0 != me' | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
}

test_redis_host_for_both_backends() {
    # On redis: listen on the LAN address only, a random password.
    ct_sh redis "pw=\$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        (umask 077 && printf '%s\n' \"\$pw\" > /root/redis-password)
        sed -i -E 's|^bind .*|bind $REDIS_IP|; s|^#? *protected-mode .*|protected-mode yes|' /etc/redis/redis.conf
        printf 'requirepass %s\n' \"\$pw\" >> /etc/redis/redis.conf
        systemctl enable -q --now redis-server" || fail "configuring redis-server on redis failed"
    ct redis ss -Hltn 'sport = :6379' | tee "$WORK/redis-listen.txt"
    expect_eq "$(awk '{ print $4 }' "$WORK/redis-listen.txt")" "$REDIS_IP:6379" "where redis-server listens"
    # From a backend host (not sandboxed): no password, no access; with it, PONG.
    ct app1 redis-cli -h "$REDIS_IP" ping | tee "$WORK/redis-noauth.txt"
    grep -q NOAUTH "$WORK/redis-noauth.txt" || fail "redis-server answers without the password"
    local pw
    pw=$(ct redis cat /root/redis-password)
    [[ -n $pw ]] || fail "no password"
    local h
    for h in app1 app2; do
        # The password goes over stdin, never in an argument.
        ct_sh "$h" "install -d -m 0700 /etc/corepool/credentials && umask 077 && cat > /etc/corepool/credentials/redis-password" <<<"$pw"
        expect_eq "$(ct "$h" stat -c '%a %U' /etc/corepool/credentials/redis-password)" "600 root" "$h: the credential file's mode and owner"
        ct "$h" sed -i "/^\[redis\]/,/^\[/{s|^url = .*|url = \"$SO_REDIS_URL\"|; s|^required = .*|required = true|}" /etc/corepool/corepool.toml
        ct "$h" sed -n '/^\[redis\]/,/^\[/p' /etc/corepool/corepool.toml | grep -E '^(url|required) =' | tee "$WORK/$h-redis-toml.txt"
        grep -qx "url = \"$SO_REDIS_URL\"" "$WORK/$h-redis-toml.txt" || fail "$h: [redis] url not set"
        grep -qx 'required = true' "$WORK/$h-redis-toml.txt" || fail "$h: [redis] required not set"
        ct "$h" corepool config check >"$WORK/$h-redis-check.log" 2>&1 || { cat "$WORK/$h-redis-check.log"; fail "$h: config check with [redis]"; }
        ct "$h" corepool reload | tee "$WORK/$h-redis-reload.log"
        grep -q "written: .*network to $REDIS_IP only.*credential redis-password" "$WORK/$h-redis-reload.log" ||
            fail "$h: reload did not write the drop-in for a TCP Redis with a credential"
    done
    local k
    for ((k = 0; k < 75; k++)); do
        so_redis_up_everywhere && break
        sleep 0.2
    done
    for h in app1 app2; do
        for ((k = 0; k < NCPU; k++)); do
            expect_eq "$(so_healthz "$h" "$k" | field "['redis']['state']")" up "$h instance $k's Redis link"
        done
    done
    record scaleout_redis_healthz "$(so_healthz app2 0 | field "['redis']")"
    # What the drop-in opened: the network, to the Redis host only, and the password as a credential.
    ct app1 systemctl show -p PrivateNetwork -p RestrictAddressFamilies -p IPAddressAllow -p IPAddressDeny corepool@0.service |
        tee "$WORK/redis-unit.txt"
    grep -qx 'PrivateNetwork=no' "$WORK/redis-unit.txt" || fail "the instances still have PrivateNetwork=yes"
    grep -q "^IPAddressAllow=$REDIS_IP/32" "$WORK/redis-unit.txt" || fail "the instances may not reach $REDIS_IP"
    ct app1 systemctl cat corepool@0.service | grep -q '^LoadCredential=redis-password:/etc/corepool/credentials/redis-password$' ||
        fail "no LoadCredential= for the password"
    ct_sh app1 "! grep -rqF -- \"\$(cat /etc/corepool/credentials/redis-password)\" /etc/corepool/corepool.toml /etc/systemd/system /lib/systemd/system" ||
        fail "the Redis password appears in a readable file"
    # One connection per instance, from each host.
    local clients=""
    for ((k = 0; k < 25; k++)); do
        clients=$(so_redis_clients)
        [[ $clients == "$APP1_IP:$NCPU $APP2_IP:$NCPU " ]] && break
        sleep 0.2
    done
    record scaleout_redis_clients "$clients"
    expect_eq "$clients" "$APP1_IP:$NCPU $APP2_IP:$NCPU " "Redis clients by address (one per instance)"
}

test_redis_session_across_hosts() {
    local login cookie answers
    login=$(ct front curl -s --max-time 10 "${TLS[@]}" -D "/var/tmp/login-headers" -H 'Content-Type: application/json' \
        -d '{"user":"alice"}' "${URL}session") || fail "login through the front failed"
    cookie=$(ct front sed -nE 's/^[Ss]et-[Cc]ookie: (corepool_session=[^;]+);.*/\1/p' /var/tmp/login-headers | tr -d '\r')
    [[ $cookie == corepool_session=?* ]] || fail "no session cookie: $(ct front cat /var/tmp/login-headers)"
    ct front grep -i '^set-cookie: corepool_session=' /var/tmp/login-headers | grep -q 'Secure' ||
        fail "the cookie over HTTPS through the front is not Secure"
    record scaleout_redis_login "answered by $(field "['host']" <<<"$login")/$(field "['instance']" <<<"$login")"
    # 100 requests through the front: both hosts, every instance, all alice.
    answers=$(ct front curl -s --max-time 20 "${TLS[@]}" -H "Cookie: $cookie" -w '\n' "${URL}session?n=[1-100]")
    expect_eq "$(grep -c . <<<"$answers")" 100 "answers to the session's requests"
    expect_eq "$(python3 -c 'import json,sys; print(sorted({json.loads(l)["user"] for l in sys.stdin if l.strip()}))' <<<"$answers")" \
        "['alice']" "users seen by 100 requests through the front"
    local seen
    seen=$(python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip():
        j = json.loads(l)
        print("%s/%s" % (j["host"], j["instance"]))' <<<"$answers" | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
    record scaleout_redis_session_answers "$seen"
    expect_eq "$(tr ' ' '\n' <<<"$seen" | sed -n 's/:.*//p' | tr '\n' ' ')" "$(every_instance)" "instances that saw the session"
}

# so_chat_status: the chat client's status document.
so_chat_status() { ct front cat "$SO_CHAT_DIR/status.json" 2>/dev/null; }

# so_chat_stop: ends the chat client; its summary in $WORK/scaleout-chat.json.
so_chat_stop() {
    ct front touch "$SO_CHAT_DIR/stop"
    wait "$SO_CHAT_PID" || echo "chat client exited with $?: $(tail -n 5 "$WORK/scaleout-chat.out")" >&2
    ct front cat "$SO_CHAT_DIR/summary.json" >"$WORK/scaleout-chat.json" 2>/dev/null || true
}

test_redis_chat_across_hosts() {
    local f
    for f in streams_client.py redis_client.py; do
        ct front tee "/var/tmp/$f" <"tests/system/$f" >/dev/null
    done
    ct front sh -c "rm -rf $SO_CHAT_DIR && mkdir -p $SO_CHAT_DIR"
    ct front setsid -w timeout 300 /usr/bin/python3 /var/tmp/redis_client.py --host "$DOMAIN" --addr 127.0.0.1 \
        --cafile /var/tmp/pebble-root.pem chat --clients "$SO_CHAT_CLIENTS" --room "$SO_CHAT_ROOM" --dir "$SO_CHAT_DIR" \
        --by-host --max-seconds 240 </dev/null >"$WORK/scaleout-chat.out" 2>&1 &
    SO_CHAT_PID=$!
    # A failure below ends the test's subshell: stop the client then too.
    # shellcheck disable=SC2064 # expanded now, as test 3 does
    trap "ct front touch '$SO_CHAT_DIR/stop' >/dev/null 2>&1 || true" EXIT
    # Every client open, on every instance of both hosts (read from their hellos).
    local k s="" where=""
    for ((k = 0; k < 200; k++)); do
        s=$(so_chat_status) || { sleep 0.2; continue; }
        where=$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["open_by_instance"])), end=" ")' <<<"$s")
        [[ $(field "['open']" <<<"$s") == "$SO_CHAT_CLIENTS" && $where == "$(every_instance)" ]] && break
        sleep 0.2
    done
    record scaleout_redis_chat_open "$(field "['open']" <<<"$s") open: $(field "['open_by_instance']" <<<"$s")"
    expect_eq "$(field "['open']" <<<"$s")" "$SO_CHAT_CLIENTS" "chat clients open" || { so_chat_stop; return 1; }
    expect_eq "$where" "$(every_instance)" "instances holding chat clients" || { so_chat_stop; return 1; }
    # POST /chat/ROOM through the front, answered by either host: every
    # instance of both holds subscribers. (The body in the client's format.)
    local posted
    posted=$(for ((k = 0; k < 8; k++)); do
        ct front curl -s --max-time 10 "${TLS[@]}" -H 'Content-Type: text/plain' --data-binary "post:$k:0" "${URL}chat/$SO_CHAT_ROOM"
        echo
    done | python3 -c 'import json,sys; print(" ".join(sorted({str(json.loads(l)["instances"]) for l in sys.stdin if l.strip()})))')
    expect_eq "$posted" "$((2 * NCPU))" "instances subscribed to the room, as POST /chat/$SO_CHAT_ROOM counts them" ||
        { so_chat_stop; return 1; }
    # 200 messages from random clients (on both hosts): every client gets each exactly once.
    ct front sh -c "echo 'across 200 100' > $SO_CHAT_DIR/send.new && mv $SO_CHAT_DIR/send.new $SO_CHAT_DIR/send"
    local v=""
    for ((k = 0; k < 300; k++)); do
        if [[ $(so_chat_status | field "['batches'].get('across', {}).get('done')") == True ]]; then
            v=$(so_chat_status | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['batches']['across'], sort_keys=True))")
            break
        fi
        sleep 0.2
    done
    so_chat_stop
    [[ -n $v ]] || fail "the batch did not finish in 60 s: $(cat "$WORK/scaleout-chat.json")"
    record scaleout_redis_chat "$v"
    record scaleout_redis_chat_summary "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d[k] for k in ("closes", "refused", "reconnects", "gaps", "errors")}, sort_keys=True))' <"$WORK/scaleout-chat.json")"
    expect_eq "$(field "['not_sent']" <<<"$v")" 0 "messages not sent"
    expect_eq "$(field "['sent']" <<<"$v")" 200 "messages sent"
    expect_eq "$(field "['eligible']" <<<"$v")" "$SO_CHAT_CLIENTS" "clients open throughout"
    expect_eq "$(field "['min_received']" <<<"$v")" 200 "fewest messages a client received"
    expect_eq "$(field "['max_received']" <<<"$v")" 200 "most messages a client received"
    expect_eq "$(field "['missing']" <<<"$v")" 0 "deliveries missing"
    expect_eq "$(field "['duplicates']" <<<"$v")" 0 "deliveries twice"
}

run_test "8. redis host: redis-server on the LAN address with requirepass; app1 and app2 connect with the credential" test_redis_host_for_both_backends
run_test "9. a login through the front over HTTPS seen by every instance of both hosts" test_redis_session_across_hosts
run_test "10. a chat room spanning both hosts: $SO_CHAT_CLIENTS WebSockets through the front, 200 messages each received once by every client" test_redis_chat_across_hosts
