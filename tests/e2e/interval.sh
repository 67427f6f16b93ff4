#!/usr/bin/env bash
# `interval` per service (issue 12 point 4): a service with a longer interval than -t is not
# reconciled on the others' polls; services of one upstream share one ls-remote a cycle; a pull
# reconciles it at once; out of range is a config error.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

ssh-keygen -q -t ed25519 -N '' -f "$T/rw"
make_upstream
mkdir -p "$T/up/fast" "$T/up/slow"
echo one >"$T/up/fast/conf"
echo one >"$T/up/slow/conf"
git -C "$T/up" add -A
git -C "$T/up" commit -q -m one
config() { # INTERVAL
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" } ]
[[services]]
machine = "testhost"
service = "fast"
dirs = [ { local = "$T/etc/fast", link = "fast" } ]
[[services]]
machine = "testhost"
service = "slow"
interval = "$1"
dirs = [ { local = "$T/etc/slow", link = "slow" } ]
TOML
}
config 0s
expect_status 1 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_in "$T/err" "interval \"0s\" is out of range (1s to 24h)"
config 1h

log_git_calls
start_gitopper
API_PORT=$(api_port)
wait_until 20 grep -qx one "$T/etc/slow/conf"
wait_until 20 grep -qx one "$T/etc/fast/conf"
wait_cycles 2 # the first poll, at which every service is due, is behind us

echo two >"$T/up/fast/conf"
echo two >"$T/up/slow/conf"
git -C "$T/up" commit -q -am two
wait_until 20 grep -qx two "$T/etc/fast/conf"
before=$(cycles)
polls_before=$(polls)
wait_cycles 4
[ "$(cat "$T/etc/slow/conf")" = one ] || fail "the 1h service was reconciled on the 1s polls"
# One ls-remote a cycle serves both.
ran=$(($(polls) - polls_before))
passed=$(($(cycles) - before))
[ "$ran" -le $((passed + 1)) ] || fail "$ran ls-remote in $passed cycles"

api_as rw /do/pull slow
[ "$API_STATUS" = 0 ] || fail "pull: $API_STATUS $(cat "$T/err")"
wait_until 20 grep -qx two "$T/etc/slow/conf"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
