#!/usr/bin/env bash
# Notifications (issue 15 point 1): each event reaches each target once, in order, from a
# queue that never holds up a deploy. A real HTTP receiver on 127.0.0.1 is down, then slow,
# then up; an exec target gets GITOPPER_* and the JSON on stdin; a failed check, a failed
# health (with its automatic rollback) and reverted drift are events; what is pending at a
# clean stop is sent after the next start; a receiver's 400 drops the event, counted.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

receiver_pid=
start_receiver() { # PORT
    rm -f "$T/rx/port"
    python3 "$SOURCE_DIR/tests/e2e/receiver.py" "$T/rx" "$1" "$secret" &
    receiver_pid=$!
    cleanup_hooks+=("kill $receiver_pid 2>/dev/null")
    wait_until 10 test -e "$T/rx/port"
}
stop_receiver() { kill "$receiver_pid"; wait "$receiver_pid" 2>/dev/null || true; }
# received EVENT: how many requests answered 200 carried event EVENT.
received() {
    grep "\"x-gitopper-event\": \"$1\"" "$T/rx/requests.jsonl" 2>/dev/null |
        grep -c '"mode": "ok"' || true
}
received_at_least() { [ "$(received "$1")" -ge "$2" ]; }
exec_events() { grep -c "^GITOPPER_EVENT=$1\$" "$T/exec.log" 2>/dev/null || true; }
exec_at_least() { [ "$(exec_events "$1")" -ge "$2" ]; }
target_metric() { metric "$1{target=\"$2\"}"; }
failed_tries() { target_metric gitopper_notify_failed_tries_total recv; }
failed_more_than() { [ "$(failed_tries)" -gt "$1" ]; }

mkdir -p "$T/rx"
secret="notify-$RANDOM-secret"
printf '%s\n' "$secret" >"$T/notify.secret"
chmod 600 "$T/notify.secret"
start_receiver 0
port=$(cat "$T/rx/port")
stop_receiver # down to begin with: nothing listens on $port

cat >"$T/bin/record-event" <<SH
#!/bin/sh
{ env | grep '^GITOPPER_' | sort; cat; echo ---; } >>"$T/exec.log"
SH
chmod +x "$T/bin/record-event"

make_upstream
commit app/conf "one" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
notify = [
  { url = "http://127.0.0.1:$port/hook/s3cr3t-path?k=v", secret_file = "notify.secret", timeout = "15s", name = "recv" },
  { exec = "$T/bin/record-event", name = "script" },
]

[[services]]
machine = "testhost"
service = "app"
action = "reload"
check = ["grep", "-qv", "bad", "{dir}/app/conf"]
health = ["grep", "-qv", "sick", "{dir}/app/conf"]
health_retries = 1
dirs = [ { local = "$T/etc/app", link = "app" } ]

[[services]]
machine = "testhost"
service = "chat"
dirs = [ { local = "$T/etc/chat", link = "app" } ]
notify = [ { url = "http://127.0.0.1:$port/chat", format = "slack", name = "chat" } ]
TOML
"$GITOPPER" -c "$T/config.toml" --check -h testhost --state "$T/state" >"$T/check.out"
expect_in "$T/check.out" "recv: POST http://127.0.0.1:$port/… (json, signed with $T/notify.secret)"
expect_in "$T/check.out" "script: exec $T/bin/record-event"
expect_in "$T/check.out" "chat: POST http://127.0.0.1:$port/… (slack)"
expect_not_in "$T/check.out" "s3cr3t-path"

start_gitopper
wait_until 20 grep -qx "start app" "$T/systemctl.log"
host=$(hostname)

# Down: the deploy happens at once; the receiver's tries fail and are retried.
one=$(git -C "$T/up" rev-parse HEAD)
two=$(commit app/conf "two")
wait_until 10 grep -qx two "$T/etc/app/conf"
wait_until 10 exec_at_least deploy 1
wait_until 10 failed_more_than 0
expect_in "$T/exec.log" "GITOPPER_FROM=$one"
expect_in "$T/exec.log" "GITOPPER_TO=$two"
expect_in "$T/exec.log" "GITOPPER_SERVICE=app"
expect_in "$T/exec.log" "GITOPPER_HOST=$host"
expect_in "$T/exec.log" "\"event\":\"deploy\""
expect_in "$T/gitopper.log" "notify recv: deploy of app not delivered (try 1): cannot connect; next try in 1s"

# Slow: the receiver takes the request and sits on it past our 15 s timeout. A deploy still
# happens at once, for both services of the poll thread (had delivery been that thread's,
# the second would wait the 15 s app's event took).
echo slow:60 >"$T/rx/mode"
start_receiver "$port"
wait_until 20 grep -q '"mode": "slow:60"' "$T/rx/requests.jsonl"
three=$(commit app/conf "three")
wait_until 10 grep -qx three "$T/etc/app/conf"
wait_until 10 grep -qx three "$T/etc/chat/conf"

# Up: everything arrives, oldest first, each signed; what a slow answer cut short may come
# twice (delivery is at least once), never out of order.
echo ok >"$T/rx/mode"
wait_until 60 received_at_least deploy 3 # app two, chat two, app three (chat's 3rd has no change)
python3 - "$T/rx/requests.jsonl" "$two" "$three" "$host" <<'PY'
import json, sys
path, two, three, host = sys.argv[1:]
reqs = [json.loads(l) for l in open(path)]
app = [r for r in reqs if r["path"] == "/hook/s3cr3t-path?k=v" and r["mode"] == "ok"]
assert app, reqs
for r in app:
    assert r["method"] == "POST" and r["signed"], r
    assert r["headers"]["content-type"] == "application/json", r
    assert r["headers"]["user-agent"].startswith("gitopper/"), r
tos = [json.loads(r["body"])["to"] for r in app]
assert tos == [two, three], tos
event = json.loads(app[0]["body"])
assert event["host"] == host and event["service"] == "app" and event["state"] == "OK", event
assert sorted(event) == ["event", "from", "host", "info", "service", "state", "time", "to",
                         "trigger"], event
chat = [json.loads(r["body"]) for r in reqs if r["path"] == "/chat" and r["mode"] == "ok"]
assert chat and list(chat[0]) == ["text"], chat
assert chat[0]["text"].startswith(host + ": chat deployed "), chat
PY
[ "$(target_metric gitopper_notify_pending_events recv)" = 0 ] || fail "recv still has events"

# A refused check, a failed health with its rollback, drift: each an event, with the state.
commit app/conf "bad" >/dev/null
wait_until 20 received_at_least check_failed 1
grep '"x-gitopper-event": "check_failed"' "$T/rx/requests.jsonl" | grep -q 'BROKEN' ||
    fail "check_failed does not say BROKEN"
wait_until 10 exec_at_least check_failed 1
expect_in "$T/exec.log" "GITOPPER_STATE=BROKEN"
commit app/conf "sick" >/dev/null
wait_until 20 received_at_least health_failed 1
wait_until 10 received_at_least rollback 1
wait_until 10 grep -qx three "$T/etc/app/conf"
four=$(commit app/conf "four")
wait_until 20 grep -qx four "$T/etc/app/conf"
echo "local edit" >"$T/etc/app/conf"
wait_until 20 received_at_least drift_reverted 1
wait_until 10 grep -qx four "$T/etc/app/conf"

# Pending at a clean stop: kept (root's alone) and sent after the next start.
stop_receiver
five=$(commit app/conf "five")
wait_until 20 grep -qx five "$T/etc/app/conf"
wait_until 10 failed_more_than "$(failed_tries)"
stop_gitopper
[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"
expect_in "$T/gitopper.log" "kept in $T/state/gitopper-notify.json for the next start"
[ "$(stat -c %a "$T/state/gitopper-notify.json")" = 600 ] || fail "pending file is not 0600"
expect_not_in "$T/state/gitopper-notify.json" "s3cr3t-path"
start_receiver "$port"
start_gitopper
wait_until 20 grep -q "pending from the last run" "$T/gitopper.log"
wait_until 30 grep -q "$five" "$T/rx/requests.jsonl" # the first event to name it
[ ! -e "$T/state/gitopper-notify.json" ] || fail "the pending file outlived its start"

# A 400 is for good: the event is dropped, counted and logged, and the queue moves on.
echo reject >"$T/rx/mode"
commit app/conf "six" >/dev/null
wait_until 20 grep -q "notify recv: deploy of app refused (HTTP 400): dropped" "$T/gitopper.log"
[ "$(metric 'gitopper_notify_events_total{target="recv",result="dropped"}')" -ge 1 ] ||
    fail "dropped events not counted"

# Secrets: never in the log or the metrics.
curl -sS "http://127.0.0.1:$(http_port)/metrics" >"$T/metrics"
for f in "$T/gitopper.log" "$T/metrics"; do
    expect_not_in "$f" "$secret"
    expect_not_in "$f" "s3cr3t-path"
done
stop_gitopper
