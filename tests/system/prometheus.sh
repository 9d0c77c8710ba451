#!/usr/bin/env bash
# Observability as operators run it, sourced by tests/system/run once the
# instances serve over HTTPS: Debian's prometheus beside the package,
# configured with the shipped files (/etc/corepool/prometheus/), scraping
# corepool-metrics.service through the targets `corepool enable/scale` keep.
# promtool checks the files and runs the rules' unit tests; the live server
# shows every instance up, follows a scale-down, reports a stopped instance
# down without starting it, and a SIGSTOPped one without hanging; the
# alerts fire; every dashboard query is accepted.
# Uses run's helpers: ct, ct_sh, fail, record, expect_eq, curl_sock, main_pid, NCPU.

PROM=http://127.0.0.1:9090
# The test's scrape and evaluation interval (the shipped file says 15s).
PROM_INTERVAL=4s

# prom PATH [CURL ARGS...]: a GET on the Prometheus API in the container.
prom() {
    local path=$1
    shift
    ct app curl -s --max-time 10 --get "$@" "$PROM$path"
}

# prom_query EXPR: the result of an instant query (JSON).
prom_query() {
    prom /api/v1/query --data-urlencode "query=$1"
}

# targets_summary: "path health" of every active corepool target, sorted.
targets_summary() {
    prom /api/v1/targets --data-urlencode state=active | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["labels"].get("job") == "corepool":
        print(t["discoveredLabels"]["__metrics_path__"], t["health"])' | sort
}

# wait_for WHAT SECONDS CMD...: until CMD succeeds (bounded); fails the test otherwise.
wait_for() {
    local what=$1 secs=$2 k
    shift 2
    for ((k = 0; k < secs * 4; k++)); do
        "$@" && return 0
        sleep 0.25
    done
    fail "timed out after ${secs}s waiting for: $what"
}

# expected_targets N: the targets with N instances up (and the host's view).
expected_targets() {
    local i
    {
        echo "/metrics up"
        for ((i = 0; i < $1; i++)); do echo "/instances/$i/metrics up"; done
    } | sort
}

targets_are() {
    [[ $(targets_summary) == "$1" ]]
}

# firing_alerts: "alertname:instance" of every firing alert.
firing_alerts() {
    prom /api/v1/alerts | python3 -c '
import json, sys
print(" ".join(sorted("%s:%s" % (a["labels"]["alertname"], a["labels"].get("instance", "")) for a in json.load(sys.stdin)["data"]["alerts"] if a["state"] == "firing")))'
}

# alert_fires ERE: a firing alert matches ERE.
alert_fires() {
    firing_alerts | grep -Eq "$1"
}

# rate_series: the request rate has a non-zero series for every instance.
rate_series() {
    [[ $(prom_query 'sum by (instance) (rate(corepool_http_requests_total{service="corepool"}[30s]))' |
        python3 -c 'import json,sys; print(len([r for r in json.load(sys.stdin)["data"]["result"] if float(r["value"][1]) > 0]))') == "$NCPU" ]]
}

# down0: instance 0's target is down; prints its last scrape's duration and error.
down0() {
    prom /api/v1/targets --data-urlencode state=active | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["discoveredLabels"]["__metrics_path__"] == "/instances/0/metrics" and t["health"] == "down":
        print(t["lastScrapeDuration"], t["lastError"])
        sys.exit(0)
sys.exit(1)'
}

test_promtool_checks_the_shipped_files() {
    ct app promtool check config /etc/corepool/prometheus/prometheus.yml || fail "promtool check config"
    ct app promtool check rules /etc/corepool/prometheus/rules.yml || fail "promtool check rules"
    sed 's/@NAME@/corepool/g' packaging/prometheus/rules.test.yml | ct app sh -c 'cat > /var/tmp/rules.test.yml'
    ct app promtool test rules /var/tmp/rules.test.yml || fail "promtool test rules"
    record promtool "check config, check rules, test rules: $(grep -c 'alertname:' packaging/prometheus/rules.test.yml) alert cases pass"
}

test_prometheus_scrapes_every_instance() {
    ct app systemctl is-active -q corepool-metrics.service || fail "corepool-metrics.service is not running after enable"
    # The shipped files, as Debian's prometheus service reads them; faster
    # intervals and 'for' durations for the test.
    ct_sh app "sed 's/scrape_interval: 15s/scrape_interval: $PROM_INTERVAL/; s/evaluation_interval: 15s/evaluation_interval: $PROM_INTERVAL/;
            s/scrape_timeout: 5s/scrape_timeout: 3s/; s|/etc/corepool/prometheus/rules.yml|/etc/prometheus/corepool-rules.yml|' \
            /etc/corepool/prometheus/prometheus.yml > /etc/prometheus/prometheus.yml
        sed 's/for: [0-9]*m/for: 8s/' /etc/corepool/prometheus/rules.yml > /etc/prometheus/corepool-rules.yml
        systemctl restart prometheus"
    wait_for "prometheus answers" 30 prom /-/ready -o /dev/null -f
    local want
    want=$(expected_targets "$NCPU")
    wait_for "every instance's target up" 40 targets_are "$want"
    targets_summary | tee "$WORK/targets.txt" >&2
    # Some load, then the request rate has one series per instance.
    load app 4000 16 "$MIXED_BASE/" "${MIXED_CURL[@]}" >/dev/null
    wait_for "a request rate for every instance" 40 rate_series
    record prometheus_rate_series "$(prom_query 'sum by (instance) (rate(corepool_http_requests_total{service="corepool"}[30s]))' |
        python3 -c 'import json,sys; print(" ".join(r["metric"]["instance"] for r in json.load(sys.stdin)["data"]["result"]))')"
}

test_prometheus_follows_a_scale_down() {
    ct app corepool scale 1 >/dev/null
    wait_for "the scraped set shrinking to instance 0" 40 targets_are "$(expected_targets 1)"
    ct app corepool scale max >/dev/null
    wait_for "the scraped set growing back" 40 targets_are "$(expected_targets "$NCPU")"
}

test_a_stopped_instance_is_down_not_started() {
    local last=$((NCPU - 1))
    ct app systemctl stop "corepool@$last.service"
    local want
    want=$(expected_targets "$NCPU" | sed "s|^/instances/$last/metrics up|/instances/$last/metrics down|" | sort)
    wait_for "instance $last's target down" 40 targets_are "$want"
    # Several more scrapes: it must stay stopped (the socket would start it).
    sleep 10
    expect_eq "$(ct app systemctl is-active "corepool@$last.service" || true)" inactive "instance $last after being scraped while stopped"
    expect_eq "$(ct app systemctl is-active "corepool@$last.socket")" active "its socket"
    wait_for "CorepoolInstanceDown firing for instance $last" 40 alert_fires "CorepoolInstanceDown:.*:$last"
    record alert_instance_down "$(prom /api/v1/alerts | python3 -c 'import json,sys; print([a["annotations"]["summary"] for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == "CorepoolInstanceDown"])')"
    # Back: its next connection starts it.
    curl_sock "$last" /healthz >/dev/null
    wait_for "instance $last's target up again" 40 targets_are "$(expected_targets "$NCPU")"
}

# until_next_scrape0: seconds until half a second before Prometheus's next
# scrape of instance 0 (targets are scraped at a fixed offset in the interval).
until_next_scrape0() {
    prom /api/v1/targets --data-urlencode state=active | python3 -c '
import datetime, json, re, sys
interval = float(sys.argv[1].rstrip("s"))
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["discoveredLabels"]["__metrics_path__"] == "/instances/0/metrics":
        base, frac, tz = re.match(r"(.*:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", t["lastScrape"]).groups()
        last = datetime.datetime.fromisoformat(base + (frac or ".0")[:7] + ("+00:00" if tz == "Z" else tz))
        wait = (last.timestamp() + interval - 0.5 - datetime.datetime.now(datetime.timezone.utc).timestamp()) % interval
        print("%.3f" % wait)' "$PROM_INTERVAL"
}

test_a_hung_instance_does_not_hang_the_scrape() {
    local pid dur wait
    pid=$(main_pid 0)
    # The watchdog replaces a hung instance 4.5 to 7 s after it stops (and a
    # scrape waiting in its socket's queue is then answered), so stop it just
    # before a scrape: that scrape must meet it hung, whatever the phase.
    wait=$(until_next_scrape0)
    [[ -n $wait ]] || fail "no target for instance 0"
    sleep "$wait"
    ct app kill -STOP "$pid"
    wait_for "the hung instance's target down" 20 down0
    dur=$(down0 | cut -d' ' -f1)
    record scrape_of_hung_instance "$(down0)"
    # The endpoint gives up after 2 s, well inside the scrape's 3 s timeout.
    python3 -c "import sys; sys.exit(0 if float('$dur') < 3.0 else 1)" || fail "the scrape of the hung instance took ${dur}s"
    # The watchdog replaces it (WatchdogSec=5s), and the alert says so.
    wait_for "CorepoolWatchdogRestart firing" 60 alert_fires CorepoolWatchdogRestart
    wait_for "every target up again" 40 targets_are "$(expected_targets "$NCPU")"
    record alerts_firing "$(firing_alerts)"
}

test_every_dashboard_query_is_accepted() {
    local exprs n=0 bad=0 empty=0 e out
    # shellcheck disable=SC2016 # $service and $__rate_interval are Grafana's, replaced in Python
    exprs=$(python3 -c '
import json
d = json.load(open("packaging/grafana/dashboard.json"))
for p in d["panels"]:
    for t in p["targets"]:
        print(t["expr"].replace("$service", "corepool").replace("$__rate_interval", "1m"))')
    while IFS= read -r e; do
        n=$((n + 1))
        out=$(prom_query "$e")
        if ! python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["status"] == "success" else 1)' <<<"$out"; then
            echo "rejected: $e -> $out" >&2
            bad=$((bad + 1))
        elif python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin)["data"]["result"] else 1)' <<<"$out"; then
            empty=$((empty + 1))
        fi
    done <<<"$exprs"
    record dashboard_queries "$n queries accepted: $((n - bad)); with data now: $((n - bad - empty))"
    expect_eq "$bad" 0 "dashboard queries Prometheus rejected"
}
