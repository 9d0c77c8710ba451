#!/bin/bash
# nginx in compose: the packaged site's templates filled in for the `app`
# replicas, HTTPS once certbot has a certificate for $DOMAIN, and a reload
# whenever that changes (a first certificate, a renewal); nginx's workers
# sized for long-lived streams. Then nginx itself.
set -euo pipefail

T=/etc/corepool/templates
D=/etc/nginx/conf.d/app
NAME=app
fill() { sed -e "s/@NAME@/$NAME/g" -e "s/@IDENT@/$NAME/g" "$1"; }

render() {
    mkdir -p "$D" /var/lib/app/acme
    # The proxy settings, with an `if` per path of $CACHEABLE (what may use
    # the cache), as `NAME package` writes them.
    local p ifs=""
    for p in ${CACHEABLE:-}; do
        [[ $p =~ ^/[A-Za-z0-9/._~-]*$ ]] || { echo "nginx-start.sh: CACHEABLE: $p is not a plain path (/, letters, digits, . _ ~ -)" >&2; exit 78; }
        ifs+="if (\$uri ~ \"^${p//./\\.}$([[ $p == */ ]] || echo '(/|$)')\") { set \$${NAME}_not_cacheable \"\"; }  # $p"$'\n'
    done
    fill "$T/proxy.conf" | CACHEABLE_IFS=$ifs awk '
        $0 == "@CACHEABLE@" { printf "%s", ENVIRON["CACHEABLE_IFS"]; next } { print }' >"$D/proxy.conf"
    fill "$T/tls.conf" >"$D/tls.conf"
    # The upstream: every address the engine's DNS gives for the replicas
    # (nginx resolves it when it loads the configuration: reload after --scale).
    cat >"$D/upstream.conf" <<UP
upstream $NAME {
    least_conn;
    # A replica can vanish (stopped, crashed): one error takes it out for 5 s.
    server $UPSTREAM max_fails=1 fail_timeout=5s;
    keepalive 64;
    keepalive_requests 10000;
    # Below the instances' drain_idle (5s): nginx closes an idle connection
    # before a draining replica would (see the packaged upstream).
    keepalive_timeout 4s;
}
UP
    printf 'listen 80 default_server;\nlisten [::]:80 default_server;\nserver_name _;\n' >"$D/listen.conf"
    cert=/etc/letsencrypt/live/$DOMAIN
    if [ -f "$cert/fullchain.pem" ]; then
        # shellcheck disable=SC2016 # nginx's variables, not the shell's
        printf 'location / {\n    return 301 https://$host$request_uri;\n}\n' >"$D/http.conf"
        cat >"$D/https.conf" <<TLS
server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name $DOMAIN;
    ssl_certificate $cert/fullchain.pem;
    ssl_certificate_key $cert/privkey.pem;
    include $D/tls.conf;
    include $D/proxy.conf;
}
TLS
    else
        printf 'include %s/proxy.conf;\n' "$D" >"$D/http.conf"
        : >"$D/https.conf"
    fi
    # The packaged site, pointed at these files.
    fill "$T/site.conf" | sed "s|/etc/$NAME/nginx/|$D/|g" >/etc/nginx/conf.d/app.conf
}

# Streams (WebSockets, SSE) hold connections for as long as they are open;
# in this container nginx.conf is ours (on a host it is the administrator's),
# so its workers are sized for them here:
# - each proxied stream takes two of a worker's worker_connections (the
#   client's and the replica's) and two files: the image's 1024 (Debian's
#   768) is a few hundred streams per worker. Half the files the container
#   may open (its hard limit, at most 65536) go to each worker;
# - a reload (a new certificate, a scale) starts new workers, and the old
#   ones finish what they have: a WebSocket or SSE stream, kept alive by its
#   pings, would keep them forever. After 10 s they close what is left, and
#   those clients reconnect to the new workers.
tune_workers() {
    local conf=/etc/nginx/nginx.conf files
    files=$(ulimit -Hn)
    if [ "$files" = unlimited ] || [ "$files" -gt 65536 ]; then files=65536; fi
    # (Left as it is unless that is more than 1024.)
    if [ $((files / 2)) -gt 1024 ]; then
        sed -i -E "s/^(\s*)worker_connections\s+[0-9]+;/\1worker_connections $((files / 2));/" "$conf"
    fi
    for d in "worker_rlimit_nofile $files" "worker_shutdown_timeout 10s"; do
        if grep -Eq "^\s*${d%% *}\s" "$conf"; then
            sed -i -E "s/^(\s*)${d%% *}\s+[^;]+;/\1$d;/" "$conf"
        else
            sed -i "1i $d;" "$conf"
        fi
    done
}

state() {
    ls -l --time-style=+%s "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" /etc/letsencrypt/.renewed 2>/dev/null || true
}

# Debian's stock site would claim port 80 too (images built on Debian's nginx).
rm -f /etc/nginx/sites-enabled/default /etc/nginx/conf.d/default.conf
tune_workers
render
last=$(state)
(
    while :; do
        sleep 10
        now=$(state)
        if [ "$now" != "$last" ]; then
            render && nginx -t -q && nginx -s reload
            last=$now
        fi
    done
) &
exec nginx -g 'daemon off;'
