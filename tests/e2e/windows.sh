#!/usr/bin/env bash
# Maintenance windows (issue 15 point 5): outside its windows a service fetches and checks a
# new commit but does not publish it (state info "waiting for window (next: …)"); the window
# opening brings the deploy at once, not at the next poll; a manual pull publishes at once.
# The daemon's clock is the real one; its time zone is set so that a window opens a few
# seconds into the test (a POSIX TZ with an offset to the second).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf "one" >/dev/null
secret="hook-$RANDOM"
printf '%s\n' "$secret" >"$T/webhook.secret"
ssh-keygen -q -t ed25519 -N '' -C ops -f "$T/ops"
# Local 11:59:45 now: "daily 12:00-13:00" opens in 15 s; "daily 18:00-19:00" stays shut.
now=$(( $(date -u +%s) % 86400 ))
ahead=$(( ((12 * 3600 - 15) - now + 86400) % 86400 ))
export TZ=$(printf 'GOT-%02d:%02d:%02d' $((ahead / 3600)) $((ahead % 3600 / 60)) $((ahead % 60)))
[ "$(date +%H:%M)" = 11:59 ] || fail "TZ=$TZ gives $(date +%H:%M:%S), not 11:59:45"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
webhook_secret_file = "webhook.secret"
keys = [ { path = "ops.pub" } ]
check = ["grep", "-qv", "bad", "{dir}/app/conf"]
[[services]]
machine = "testhost"
service = "app"
windows = ["daily 12:00-13:00"]
dirs = [ { local = "$T/etc/app", link = "app" } ]
[[services]]
machine = "testhost"
service = "late"
windows = ["Mon-Fri 18:00-19:00", "Sat,Sun 18:00-19:00"]
dirs = [ { local = "$T/etc/late", link = "app" } ]
TOML
"$GITOPPER" -c "$T/config.toml" --check -h testhost --state "$T/state" >"$T/check.out"
expect_in "$T/check.out" "windows       daily 12:00-13:00"

start_gitopper -t 1h # no polls: only the webhook, the window and the pull move anything
wait_until 20 grep -qx one "$T/etc/app/conf"
wait_until 20 grep -qx one "$T/etc/late/conf"
port=$(http_port)
info() { curl -sS "http://127.0.0.1:$port/list/service/$1" | sed -n 's/.*"stateinfo":"\([^"]*\)".*/\1/p'; }
info_has() { info "$1" | grep -qF "$2"; }
two=$(commit app/conf "two")
body=$(printf '{"ref":"refs/heads/main","repository":{"clone_url":"file://%s/up.git/"}}' "$T")
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/.*= //')
curl -sS -o /dev/null -X POST --data-binary "$body" -H "X-Hub-Signature-256: sha256=$sig" \
    "http://127.0.0.1:$port/webhook"

# Outside: checked, not published.
wait_until 10 info_has app "waiting for window (next: "
info_has app "12:00)" || fail "app's info: $(info app)"
info_has late "18:00)" || fail "late's info: $(info late)"
expect_in "$T/gitopper.log" "[app] checking ${two:0:8}"
expect_in "$T/gitopper.log" "[app] ${two:0:8} is ready; waiting for window (next: "
[ "$(cat "$T/etc/app/conf")" = one ] || fail "published outside its window"
[ "$(metric 'gitopper_service_waiting_for_window{service="app"}')" = 1 ] || fail "metric"

# The window opens at local 12:00: published at once, with no poll due for an hour.
wait_until 30 grep -qx two "$T/etc/app/conf"
[ "$(date +%H)" = 12 ] || fail "published before the window opened ($(date +%H:%M:%S))"
info app | grep -q "waiting" && fail "still waiting: $(info app)"
[ "$(metric 'gitopper_service_waiting_for_window{service="app"}')" = 0 ] || fail "metric after"
checks=$(grep -c "\[app\] checking ${two:0:8}" "$T/gitopper.log")
[ "$checks" = 2 ] || fail "checked $checks times (once waiting, once at the deploy)"

# A manual pull publishes at once, window or not.
[ "$(cat "$T/etc/late/conf")" = one ] || fail "late published outside its window"
API_PORT=$(api_port)
api_as ops /do/pull late
[ "$API_STATUS" = 0 ] || fail "pull: $API_STATUS $(cat "$T/out") $(cat "$T/err")"
wait_until 10 grep -qx two "$T/etc/late/conf"
stop_gitopper
