#!/usr/bin/env bash
# `health` (SPEC §6, issue 12 point 2): run after the action. Every try failing rolls the
# service back to the commit before (its files live again, the action run again), BROKEN with
# why, a history entry marked as the automatic rollback, and the failed commit quarantined:
# polls do not deploy it again, nor does a restart; a pull tries it deliberately; the next
# upstream commit is deployed as usual.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# The health check records what it saw and fails while $T/health.fail exists.
cat >"$T/health.sh" <<SH
#!/bin/sh
[ "\$GITOPPER_SERVICE" = app ] || { [ ! -e "$T/health.fail.\$GITOPPER_SERVICE" ]; exit; }
echo "commit=\$GITOPPER_COMMIT dir=\$1 live=\$(cat "$T/etc/app/conf")" >>"$T/health.log"
if [ -e "$T/health.fail" ]; then echo "GET /health: 503" >&2; exit 1; fi
SH
chmod +x "$T/health.sh"
ssh-keygen -q -t ed25519 -N '' -f "$T/rw"
api() { api_as rw "$@"; } # REQUEST...
tries() { [ -e "$T/health.log" ] && wc -l <"$T/health.log" || echo 0; }
tries_are() { [ "$(tries)" = "$1" ]; }
start() {
    : >"$T/gitopper.log"
    start_gitopper
    API_PORT=$(api_port)
}

make_upstream
c1=$(commit app/conf "one")
p1=$(commit peer/conf "peer one")
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
health = ["$T/health.sh", "{dir}"]
health_retries = 3
health_interval = "200ms"
dirs = [ { local = "$T/etc/app", link = "app" } ]
[[services]]
machine = "testhost"
service = "peer"
action = "reload"
health = ["$T/health.sh", "{dir}"]
health_retries = 1
dirs = [ { local = "$T/etc/peer", link = "peer" } ]
TOML
start
wait_until 20 grep -qx "start app" "$T/systemctl.log"

# A healthy deploy: one try, after the action, on the new files.
c2=$(commit app/conf "two")
wait_until 20 tries_are 1
expect_in "$T/health.log" "commit=$c2 dir=$T/srv/app live=two"
[ "$(calls "reload app")" = 1 ] || fail "reloads: $(calls "reload app")"

# Unhealthy: three tries, then two's files are live again and the service is told again.
touch "$T/health.fail"
c3=$(commit app/conf "three")
wait_until 20 grep -q "\[app\] state OK -> BROKEN: health failed for ${c3:0:8}: exited 1: GET /health: 503; rolled back to ${c2:0:8}, ${c3:0:8} quarantined" "$T/gitopper.log"
tries_are 4 || fail "health tries: $(tries)"
[ "$(grep -c "commit=$c3 dir=$T/srv/app live=three" "$T/health.log")" = 3 ] || fail "tries on three: $(cat "$T/health.log")"
[ "$(cat "$T/etc/app/conf")" = two ] || fail "not rolled back: $(cat "$T/etc/app/conf")"
checkout_at "$T/srv/app" "$c2" || fail "the live tree is at $(live_commit "$T/srv/app")"
[ "$(calls "reload app")" = 3 ] || fail "reloads (two, three, back to two): $(calls "reload app")"
[ "$(metric 'gitopper_service_health_total{service="app",result="failed"}')" = 1 ] || fail "failed health not counted"
[ "$(metric 'gitopper_service_rollbacks_total{service="app",reason="health"}')" = 1 ] || fail "rollback not counted"
api /list/history app
expect_in "$T/out" "\"to\":\"$c3\""
expect_in "$T/out" "health failed for ${c3:0:8}"
expect_in "$T/out" "\"trigger\":\"health\""
expect_in "$T/out" "automatic rollback"
grep -q "\"quarantined\": *\"$c3\"" "$T/state/gitopper-state/app.json" || fail "not quarantined: $(cat "$T/state/gitopper-state/app.json")"

# Healthy again, but polls and a restart leave the quarantined commit alone.
rm "$T/health.fail"
wait_cycles 3
[ "$(cat "$T/etc/app/conf")" = two ] || fail "a poll deployed the quarantined commit"
stop_gitopper TERM
start
wait_cycles 3
[ "$(cat "$T/etc/app/conf")" = two ] || fail "a restart deployed the quarantined commit"
api /list/service app
expect_in "$T/out" "${c3:0:8} quarantined"

# A pull tries it deliberately: healthy now, so it stays, and the quarantine ends.
api /do/pull app
[ "$API_STATUS" = 0 ] || fail "pull: $API_STATUS $(cat "$T/err")"
wait_until 20 grep -qx three "$T/etc/app/conf"
wait_until 10 checkout_at "$T/srv/app" "$c3"
wait_until 10 grep -q "\"commit\":\"$c3\"" <(curl -sS "http://127.0.0.1:$(http_port)/list/service/app")
c4=$(commit app/conf "four")
wait_until 20 grep -qx four "$T/etc/app/conf"
wait_until 10 checkout_at "$T/srv/app" "$c4"
! grep -q '"quarantined"' "$T/state/gitopper-state/app.json" || fail "still quarantined: $(cat "$T/state/gitopper-state/app.json")"

# A pull is its own service's: pulling app does not retry peer's quarantined commit.
touch "$T/health.fail.peer"
p2=$(commit peer/conf "peer two")
wait_until 20 grep -q "\[peer\] state OK -> BROKEN: health failed for ${p2:0:8}" "$T/gitopper.log"
[ "$(cat "$T/etc/peer/conf")" = "peer one" ] || fail "peer not rolled back"
rm "$T/health.fail.peer"
api /do/pull app
[ "$API_STATUS" = 0 ] || fail "pull: $API_STATUS $(cat "$T/err")"
wait_cycles 3
[ "$(cat "$T/etc/peer/conf")" = "peer one" ] || fail "a pull of app deployed peer's quarantined commit"
api /do/pull peer
wait_until 20 grep -qx "peer two" "$T/etc/peer/conf"

# Killed between the switch and the action: the restarted daemon runs the action it owed, and
# judges the commit's health then, as the deploy would have: unhealthy, it is rolled back.
cat >"$T/bin/systemctl" <<SH
#!/bin/sh
echo "\$*" >>"$T/systemctl.log"
while [ "\$1" = reload ] && [ -e "$T/pause-systemctl" ]; do echo \$\$ >"$T/paused-systemctl"; sleep 0.05; done
SH
touch "$T/health.fail" "$T/pause-systemctl"
c5=$(commit app/conf "five")
wait_until 20 test -s "$T/paused-systemctl"
kill -KILL "$GITOPPER_PID"
wait "$GITOPPER_PID" || true
kill -KILL -- "-$(cat "$T/paused-systemctl")" 2>/dev/null || true
rm "$T/pause-systemctl" "$T/paused-systemctl"
[ "$(cat "$T/etc/app/conf")" = five ] || fail "five is not live: $(cat "$T/etc/app/conf")"
start
wait_until 20 grep -q "\[app\] state .* -> BROKEN: health failed for ${c5:0:8}: exited 1: GET /health: 503; rolled back to ${c4:0:8}, ${c5:0:8} quarantined" "$T/gitopper.log"
expect_in "$T/gitopper.log" "[app] ${c5:0:8} was checked out but its action never ran; running it now"
[ "$(cat "$T/etc/app/conf")" = four ] || fail "not rolled back after the restart: $(cat "$T/etc/app/conf")"
grep -q "\"quarantined\": *\"$c5\"" "$T/state/gitopper-state/app.json" || fail "not quarantined: $(cat "$T/state/gitopper-state/app.json")"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
