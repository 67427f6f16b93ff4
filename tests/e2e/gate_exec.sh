#!/usr/bin/env bash
# `exec` (SPEC §6, issue 12 point 4): for hosts without systemd, a command runs after a change
# instead of `systemctl ACTION SERVICE`, and gitopper calls no systemctl at all for that
# service: no daemon-reload, start, enable or is-active. `action` with `exec` is a config error.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

cat >"$T/exec.sh" <<SH
#!/bin/sh
echo "service=\$1 commit=\$2 env=\$GITOPPER_SERVICE,\$GITOPPER_COMMIT live=\$(cat "$T/etc/app/conf")" >>"$T/exec.log"
if [ -e "$T/exec.fail" ]; then echo "reload refused" >&2; exit 2; fi
# A host without systemd: exec's job may be to start the daemon, which outlives it and keeps
# the stdout and stderr it was given.
if [ -e "$T/exec.daemon" ]; then
    sleep 300 &
    echo \$! >"$T/daemon.pid"
    echo "daemon started"
fi
SH
chmod +x "$T/exec.sh"
runs() { [ -e "$T/exec.log" ] && wc -l <"$T/exec.log" || echo 0; }
runs_are() { [ "$(runs)" = "$1" ]; }

make_upstream
c1=$(commit app/conf "one")
config() { # EXTRA-LINE
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
exec = ["$T/exec.sh", "{service}", "{commit}"]
$1
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
}

config 'action = "reload"'
expect_status 1 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_in "$T/err" "config.toml:7:8: action and exec exclude each other: exec runs instead of systemctl in [[services]] #1 (app)"

config ""
start_gitopper
wait_until 20 grep -qx one "$T/etc/app/conf"
c2=$(commit app/conf "two")
wait_until 20 runs_are 1
expect_in "$T/exec.log" "service=app commit=$c2 env=app,$c2 live=two"

touch "$T/exec.fail"
c3=$(commit app/conf "three")
wait_until 20 grep -q "\[app\] state OK -> BROKEN: exec: exited 2: reload refused" "$T/gitopper.log"
rm "$T/exec.fail"
c4=$(commit app/conf "four")
wait_until 20 grep -q "\[app\] state BROKEN -> OK" "$T/gitopper.log"
expect_in "$T/exec.log" "commit=$c4"
# The daemon exec starts keeps running and does not hold the deploy up (it holds stdout and
# stderr, and the exec timeout is 90 s).
touch "$T/exec.daemon"
c5=$(commit app/conf "five")
wait_until 20 grep -qs "daemon started" "$T/state/exec-app.log"
# The deploy ends (its commit recorded as applied after the action) well before exec's 90 s.
wait_until 20 grep -q "\"applied\": *\"$c5\"" "$T/state/gitopper-state/app.json"
daemon=$(cat "$T/daemon.pid")
cleanup_hooks+=("kill $daemon 2>/dev/null")
! not_running "$daemon" || fail "the daemon exec started was killed"
expect_in "$T/state/exec-app.log" "daemon started"
[ "$(stat -c %a "$T/state/exec-app.log")" = 600 ] || fail "exec-app.log is not 0600"
kill "$daemon"

stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
[ ! -s "$T/systemctl.log" ] || fail "systemctl ran for a service with exec: $(cat "$T/systemctl.log")"
