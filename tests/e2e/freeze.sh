#!/usr/bin/env bash
# Audited freezes (issue 15 point 3): a freeze records who (the key's comment, else its
# fingerprint), when, why and until when; list service and /list/history show it; it survives
# a restart; one with an end finishes by itself (OK, pulled at once, logged, notified); the
# Go client's plain "/do/freeze SERVICE" still works.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${GITOPPERCTL:?set by CTest}"

private_home alice@laptop
ssh-keygen -q -t ed25519 -N '' -C "" -f "$T/nameless"
fingerprint=$(ssh-keygen -l -E sha256 -f "$T/nameless.pub" | awk '{print $2}')
cat >"$T/bin/record-event" <<SH
#!/bin/sh
env | grep '^GITOPPER_' | sort >>"$T/events"
SH
chmod +x "$T/bin/record-event"

make_upstream
commit app/conf "one" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "$HOME/.ssh/id_ed25519.pub" }, { path = "nameless.pub" } ]
notify = [ { exec = "$T/bin/record-event" } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
start_gitopper
API_PORT=$(api_port)
at="@127.0.0.1:$API_PORT"
wait_until 20 grep -qx one "$T/etc/app/conf"
ctl() { expect_status "$1" "$GITOPPERCTL" --insecure-host-key "${@:2}"; }
json() { curl -sS "http://127.0.0.1:$(http_port)/list/service/app"; }
state_is() { json | grep -q "\"state\":\"$1\""; }

# The Go client's form: frozen, by the key that asked (no comment: its fingerprint).
api_as nameless /do/freeze app
[ "$API_STATUS" = 0 ] && [ "$(cat "$T/out")" = OK ] || fail "plain freeze: $API_STATUS $(cat "$T/out")"
wait_until 10 state_is FREEZE
json | grep -q "\"stateinfo\":\"frozen by $fingerprint\"" || fail "info: $(json)"
json | grep -q '"frozen_until":""' || fail "a plain freeze has no end: $(json)"
ctl 0 do unfreeze "$at" app
wait_until 10 state_is OK

# With an end and a reason, through gitopperctl.
ctl 0 do freeze "$at" app --for 1h --reason "release 4.2, ask ops"
wait_until 10 state_is FREEZE
json | grep -q '"frozen_by":"alice@laptop"' || fail "frozen_by: $(json)"
json | grep -q '"frozen_reason":"release 4.2, ask ops"' || fail "frozen_reason: $(json)"
json | grep -qE '"frozen_until":"[A-Z][a-z]{2}, ' || fail "frozen_until: $(json)"
ctl 0 list service "$at"
grep -qE "FREEZE +frozen by alice@laptop until .* UTC: release 4.2, ask ops" "$T/out" ||
    fail "INFO: $(cat "$T/out")"
[ -n "$(metric 'gitopper_service_freeze_expiry_timestamp_seconds{service="app"}')" ] ||
    fail "no expiry metric"
ctl 0 list history "$at" app
expect_in "$T/out" "frozen by alice@laptop until"
# Frozen, it does not follow upstream: a whole poll cycle after a push, still the old files.
commit app/conf "two" >/dev/null
wait_cycles 2
[ "$(cat "$T/etc/app/conf")" = one ] || fail "a frozen service deployed"
# Kept across a restart, whole.
before=$(json | sed 's/.*"frozen_by"/"frozen_by"/')
stop_gitopper
start_gitopper
listening_twice() { [ "$(grep -c "control API listening on" "$T/gitopper.log")" -ge 2 ]; }
wait_until 20 listening_twice
API_PORT=$(api_port)
at="@127.0.0.1:$API_PORT"
wait_until 20 state_is FREEZE
[ "$(json | sed 's/.*"frozen_by"/"frozen_by"/')" = "$before" ] || fail "after a restart: $(json)"

# A short one ends by itself: OK, and what upstream moved to meanwhile ("two") is pulled at
# once.
ctl 0 do freeze "$at" app --for 3s --reason "quick look"
wait_until 10 grep -q "frozen by alice@laptop until .*: quick look" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = one ] || fail "a frozen service deployed"
wait_until 10 grep -qx two "$T/etc/app/conf"
state_is OK || fail "not OK after its freeze ended: $(json)"
expect_in "$T/gitopper.log" "[app] freeze expired (frozen by alice@laptop until"
ctl 0 list history "$at" app
expect_in "$T/out" "freeze expired"
wait_until 10 grep -qx "GITOPPER_EVENT=freeze_expired" "$T/events"
expect_in "$T/events" "GITOPPER_STATE=OK"

# A rollback pins until an unfreeze: the end of a freeze before it does not undo it.
ctl 0 do freeze "$at" app --for 1h
wait_until 10 state_is FREEZE
first=$(git -C "$T/up" rev-list --max-parents=0 HEAD)
ctl 0 do rollback "$at" app "$first"
json | grep -q "\"stateinfo\":\"ROLLBACK: $first\"" || fail "after the rollback: $(json)"
json | grep -q '"frozen_until"' && fail "the rollback kept the freeze's end: $(json)"
[ -z "$(metric 'gitopper_service_freeze_expiry_timestamp_seconds{service="app"}')" ] ||
    fail "an end is still shown after the rollback"
ctl 0 do unfreeze "$at" app
wait_until 10 grep -qx two "$T/etc/app/conf"

# Arguments are checked before anything runs.
ctl 1 do freeze "$at" app --for soon
expect_in "$T/err" "for=soon"
state_is OK || fail "a refused freeze froze"
stop_gitopper
