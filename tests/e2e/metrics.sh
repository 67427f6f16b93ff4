#!/usr/bin/env bash
# The HTTP endpoint: /metrics valid under promtool with every SPEC §7 name and exactly one
# gitopper_service_info series per service (the old one gone after a change), /healthz, and
# the read-only API routes with their content types and status codes.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf "one" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
start_gitopper -m 127.0.0.1:0
wait_until 20 grep -q "listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
url="http://127.0.0.1:$port"
wait_until 20 grep -qx "start app" "$T/systemctl.log"

get() { curl -sS -o "$T/body" -w '%{http_code} %{content_type}' "$url$1"; }
[ "$(get /healthz)" = "200 text/plain; charset=utf-8" ] || fail "healthz"
[ "$(get /metrics)" = "200 text/plain; version=0.0.4; charset=utf-8" ] || fail "metrics content type"
promtool check metrics <"$T/body" || fail "promtool rejects /metrics"
for name in gitopper_service_info gitopper_service_state gitopper_service_change_time_seconds \
            gitopper_machine_git_ops_total gitopper_machine_git_errors_total \
            gitopper_service_upstream_info gitopper_service_last_sync_timestamp_seconds \
            gitopper_service_sync_duration_seconds_bucket gitopper_service_drift_events_total \
            gitopper_service_actions_total gitopper_service_check_total \
            gitopper_api_requests_total gitopper_build_info; do
    expect_in "$T/body" "# TYPE ${name%_bucket} "
done
first=$(git -C "$T/up" rev-parse HEAD)
expect_in "$T/body" "gitopper_service_info{service=\"app\",hash=\"$first\",state=\"OK\"} 1"
expect_in "$T/body" 'gitopper_service_state{service="app"} 0'

second=$(commit app/conf "two")
wait_until 20 grep -qx two "$T/etc/app/conf"
# The hash is published at checkout, the action count after the reload: wait for both.
info_is_second() {
    get /metrics >/dev/null
    grep -q "hash=\"$second\",state=\"OK\"} 1" "$T/body" &&
        grep -q 'gitopper_service_actions_total{service="app",result="ok"} 1' "$T/body"
}
wait_until 10 info_is_second
[ "$(grep -c '^gitopper_service_info{' "$T/body")" = 1 ] || fail "more than one info series"
expect_not_in "$T/body" "hash=\"$first\",state"
expect_in "$T/body" 'gitopper_service_actions_total{service="app",result="ok"} 1'
grep -qE '^gitopper_service_last_sync_timestamp_seconds\{service="app"\} [0-9]{10}' "$T/body" ||
    fail "no last sync time"
promtool check metrics <"$T/body" || fail "promtool rejects /metrics after a change"

[ "$(get /list/service)" = "200 application/json" ] || fail "list service"
expect_in "$T/body" "\"hash\":\"${second:0:8}\""
expect_in "$T/body" "\"commit\":\"$second\""
[ "$(get /list/service/app)" = "200 application/json" ] || fail "list service/app"
[ "$(get /list/service/nosuch | cut -d' ' -f1)" = 404 ] || fail "unknown service is not 404"
[ "$(get /list/machine)" = "200 application/json" ] || fail "list machine"
expect_in "$T/body" '"machine":"testhost"'
[ "$(get /nothing | cut -d' ' -f1)" = 404 ] || fail "unknown path"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/list/service")
[ "$code" != 200 ] || fail "POST to a read-only route answered 200"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
