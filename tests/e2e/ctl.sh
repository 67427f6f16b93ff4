#!/usr/bin/env bash
# gitopperctl, the real binary, against a real daemon: tables and raw JSON, freeze, unfreeze,
# pull and rollback, errors as one line naming the host, read-only keys, the ssh-agent,
# several hosts at once, known hosts (trust on first use, refuse on change), aliases, --help.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${GITOPPERCTL:?set by CTest}"

make_upstream
c1=$(commit app/conf "one")
c2=$(commit app/conf "two")

# A private home: ~/.ssh (default key, known hosts) is the test's, and no agent is inherited.
export HOME="$T/home"
unset SSH_AUTH_SOCK SSH_AGENT_PID
mkdir -p "$HOME" && mkdir -m 700 "$HOME/.ssh"
ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"
for k in ro stranger other; do ssh-keygen -q -t ed25519 -N '' -f "$T/$k"; done
known="$HOME/.ssh/gitopper_known_hosts"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "$HOME/.ssh/id_ed25519.pub" }, { path = "ro.pub", ro = true } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML

start_gitopper -s 127.0.0.1:0
wait_until 20 grep -q "control API listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*control API listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
at="@127.0.0.1:$port"
wait_until 20 grep -qx two "$T/etc/app/conf"

ctl() { expect_status "$1" "$GITOPPERCTL" "${@:2}"; }
one_line_error() { # TEXT: stderr is exactly one line and holds TEXT
    expect_in "$T/err" "$1"
    [ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "stderr is not one line"; }
}
state_is() { # STATE: the app's row in the table shows STATE
    "$GITOPPERCTL" list service "$at" app | grep -qE "^0  app +[0-9a-f]{8}  $1( |\$)"
}

# First contact: the host key is stored, with a notice; from then on nothing is said.
ctl 0 list service "$at"
one_line_error "gitopperctl: $at: new host key SHA256:"
expect_in "$T/err" "stored in $known"
grep -q "^\[127.0.0.1\]:$port ssh-ed25519 " "$known" || fail "known_hosts: $(cat "$known")"
ctl 0 list service "$at"
[ ! -s "$T/err" ] || fail "second run not silent: $(cat "$T/err")"
cat "$T/out"

# The table: header, one row, 8-character hash, state OK, columns aligned.
[ "$(head -1 "$T/out")" = "#  SERVICE  HASH      STATE  INFO  SINCE" ] || fail "header: $(head -1 "$T/out")"
grep -qE "^0  app      ${c2:0:8}  OK           [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} UTC\$" \
    "$T/out" || fail "row: $(tail -1 "$T/out")"
[ "$(wc -l <"$T/out")" = 2 ] || fail "expected a header and one row"

# -m: the daemon's JSON as is.
ctl 0 -m list service "$at"
jq -e ".services[0].hash == \"${c2:0:8}\" and .services[0].commit == \"$c2\" and
    .services[0].state == \"OK\"" "$T/out" >/dev/null ||
    fail "raw JSON: $(cat "$T/out")"

# Machines.
ctl 0 list machines "$at"
[ "$(head -1 "$T/out")" = "#  MACHINE   ACTUAL" ] || fail "machines header: $(head -1 "$T/out")"
grep -qE "^0  testhost  [^ ]+\$" "$T/out" || fail "machines row: $(cat "$T/out")"

# Freeze, unfreeze, pull: silent on success; the state follows.
ctl 0 "do" freeze "$at" app
[ ! -s "$T/out" ] || fail "do freeze printed: $(cat "$T/out")"
wait_until 5 state_is FREEZE
ctl 0 "do" unfreeze "$at" app
wait_until 5 state_is OK
ctl 0 "do" pull "$at" app

# Rollback to an older commit: FREEZE, the content changes, INFO says where to.
ctl 0 "do" rollback "$at" app "${c1:0:8}"
wait_until 5 grep -qx one "$T/etc/app/conf"
wait_until 5 state_is FREEZE
ctl 0 list service "$at" app
grep -qE "^0  app  +${c1:0:8}  FREEZE  ROLLBACK: $c1  " "$T/out" || fail "after rollback: $(cat "$T/out")"
ctl 0 list history "$at" app
grep -qE "^#  TIME +FROM +TO +TRIGGER +RESULT\$" "$T/out" || fail "history header: $(head -1 "$T/out")"
grep -qE "^[0-9]+  .* UTC  ${c2:0:8}  ${c1:0:8}  rollback " "$T/out" || fail "history: $(cat "$T/out")"
cat "$T/out"

# Errors: one line naming the host, exit 1, the daemon's words.
ctl 1 "do" rollback "$at" app zzzz
one_line_error "gitopperctl: $at: not a valid git hash: \"zzzz\""
ctl 1 list service "$at" nosuch
one_line_error "gitopperctl: $at: service \"nosuch\" not found"
ctl 1 "do" freeze "$at" nosuch
one_line_error "gitopperctl: $at: service \"nosuch\" not found"
[ ! -s "$T/out" ] || fail "stdout on error: $(cat "$T/out")"

# Keys: a read-only key lists but cannot change anything; an unknown key gets nowhere.
ctl 0 -i "$T/ro" list service "$at"
ctl 1 -i "$T/ro" "do" unfreeze "$at" app
one_line_error "gitopperctl: $at: unauthorized: /do/unfreeze needs a read-write key"
ctl 1 -i "$T/stranger" list service "$at"
one_line_error "gitopperctl: $at: permission denied"
expect_in "$T/err" "$T/stranger"
wait_cycles 2
state_is FREEZE || fail "a read-only key changed the state"

# The ssh-agent comes before ~/.ssh/id_ed25519: with only the read-only key in it, that is
# the key used.
eval "$(ssh-agent -s)" >/dev/null
cleanup_hooks+=("kill $SSH_AGENT_PID")
ssh-add -q "$T/ro"
ctl 0 list service "$at"
ctl 1 "do" unfreeze "$at" app
one_line_error "unauthorized"
ctl 1 -i "$T/stranger" list service "$at" # -i alone, not the agent
one_line_error "permission denied"
kill "$SSH_AGENT_PID"
unset SSH_AUTH_SOCK SSH_AGENT_PID

# Two hosts (both reach this daemon), in parallel: a MACHINE column, rows in host order.
ctl 0 l s "@127.0.0.1:$port,localhost:$port"
one_line_error "gitopperctl: @localhost:$port: new host key SHA256:" # localhost is new
cat "$T/out"
grep -qE "^#  MACHINE +SERVICE +HASH +STATE +INFO +SINCE\$" "$T/out" || fail "header: $(head -1 "$T/out")"
grep -qE "^0  127.0.0.1:$port  app  +${c1:0:8}  FREEZE  " "$T/out" || fail "row 0: $(cat "$T/out")"
grep -qE "^1  localhost:$port  app  +${c1:0:8}  FREEZE  " "$T/out" || fail "row 1: $(cat "$T/out")"
ctl 0 -m ls service "$at" "@localhost:$port"
jq -e "length == 2 and .[0].host == \"127.0.0.1:$port\" and .[1].services[0].service == \"app\"" \
    "$T/out" >/dev/null || fail "raw JSON of two hosts: $(cat "$T/out")"
# One host down: the other still answers; the failure is one line; the exit status says so.
ctl 1 list service "$at" @127.0.0.1:1
one_line_error "gitopperctl: @127.0.0.1:1: connection refused"
grep -qE "^0  127.0.0.1:$port  app " "$T/out" || fail "the good host's row: $(cat "$T/out")"
ctl 0 -p "$port" "do" unfreeze @127.0.0.1,localhost app
wait_until 5 state_is OK

# Connection refused on a closed port.
ctl 1 list service @127.0.0.1:1
[ "$(cat "$T/err")" = "gitopperctl: @127.0.0.1:1: connection refused" ] || fail "refused: $(cat "$T/err")"

# -k: another known-hosts file.
ctl 0 -k "$T/known" l m "$at"
one_line_error "stored in $T/known"

# A changed host key is refused, naming the file and the line to remove.
line=$(grep -n "^\[127.0.0.1\]:$port " "$known" | cut -d: -f1)
sed -i "${line}s|ssh-ed25519 .*|$(cut -d' ' -f1,2 "$T/other.pub")|" "$known"
ctl 1 list service "$at"
one_line_error "gitopperctl: $at: host key changed"
expect_in "$T/err" "remove line $line of $known"
expect_in "$T/err" "(-k FILE) or --insecure-host-key" # the way out for a Go daemon's new keys
[ ! -s "$T/out" ] || fail "a changed host key still got an answer"
grep -q "$(cut -d' ' -f2 "$T/other.pub")" "$known" || fail "the known-hosts file was rewritten"
# --insecure-host-key: the key is taken, with a warning, and nothing is stored.
cp "$known" "$T/known.before"
ctl 0 --insecure-host-key list service "$at"
expect_in "$T/err" "WARNING: --insecure-host-key: host keys are not checked"
expect_in "$T/err" "@127.0.0.1:$port: host key ssh-ed25519 SHA256:"
grep -qE "^0  app " "$T/out" || fail "no answer with --insecure-host-key: $(cat "$T/out")"
cmp -s "$known" "$T/known.before" || fail "--insecure-host-key changed $known"
ctl 0 --insecure-host-key -k "$T/never" list machines "$at"
[ ! -e "$T/never" ] || fail "--insecure-host-key stored a key in $T/never"
ctl 0 list service "@localhost:$port" # the other entry is still trusted
sed -i "${line}d" "$known"

# Aliases: list=ls=l, machines=m, service=s, history=h, do=d, freeze=f, unfreeze=u, pull=p, rollback=r.
ctl 0 l s "$at"
ctl 0 ls m "$at"
ctl 0 list h "$at" app
ctl 0 d f "$at" app
wait_until 5 state_is FREEZE
ctl 0 d u "$at" app
wait_until 5 state_is OK
ctl 0 d p "$at" app
ctl 0 d r "$at" app "$c1"
wait_until 5 state_is FREEZE

# Usage: --help everywhere; usage errors are one line.
for cmd in "" "list" "do" "list machines" "list service" "list history" "do freeze" \
           "do unfreeze" "do pull" "do rollback"; do
    # shellcheck disable=SC2086
    ctl 0 $cmd --help
    expect_in "$T/out" "Usage: gitopperctl"
done
ctl 0 l s -h
ctl 1 list service
one_line_error "gitopperctl: list service: missing @HOST"
ctl 1 "do" rollback "$at" app
one_line_error "usage: gitopperctl do rollback @HOST... SERVICE HASH"
ctl 1 list bogus "$at"
one_line_error "list: expected one of machines, service, history"

# Round trip of `list service`, 20 times.
times=()
for _ in $(seq 20); do
    start=$(date +%s%N)
    "$GITOPPERCTL" list service "$at" >/dev/null
    times+=($(( ($(date +%s%N) - start) / 1000 )))
done
mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
echo "list service round trip: p50 $((sorted[9] / 1000)).$(printf %03d $((sorted[9] % 1000))) ms," \
     "p95 $((sorted[18] / 1000)).$(printf %03d $((sorted[18] % 1000))) ms"

stop_gitopper TERM
echo PASS
