#!/bin/sh
# nginx in compose: the packaged site's templates filled in for the `app`
# replicas, HTTPS once certbot has a certificate for $DOMAIN, and a reload
# whenever that changes (a first certificate, a renewal). Then nginx itself.
set -eu

T=/etc/corepool/templates
D=/etc/nginx/conf.d/app
NAME=app
fill() { sed -e "s/@NAME@/$NAME/g" -e "s/@IDENT@/$NAME/g" "$1"; }

render() {
    mkdir -p "$D" /var/lib/app/acme
    fill "$T/proxy.conf" >"$D/proxy.conf"
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

state() {
    ls -l --time-style=+%s "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" /etc/letsencrypt/.renewed 2>/dev/null || true
}

# Debian's stock site would claim port 80 too (images built on Debian's nginx).
rm -f /etc/nginx/sites-enabled/default /etc/nginx/conf.d/default.conf
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
