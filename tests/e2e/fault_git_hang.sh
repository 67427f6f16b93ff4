#!/usr/bin/env bash
# An upstream that never answers (a git daemon stopped with SIGSTOP: the kernel accepts the
# connection, nobody replies): git is killed after git_timeout, the service goes to DIFF and
# says why, a service on another upstream is not held up, and the daemon still stops at once.
# When the upstream answers again, the service recovers.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit hang/app.conf "hang v1" >/dev/null
make_upstream "$T/up2"
commit ok/app.conf "ok v1" "$T/up2" >/dev/null

start_git_daemon "$T/up"
port=$GIT_DAEMON_PORT
server=$GIT_DAEMON_PID
kill -STOP "$server"

cat >"$T/config.toml" <<TOML
[global]
mount = "$T/srv"
action = "reload"
git_timeout = "2s"
[[services]]
machine = "testhost"
service = "hang"
upstream = "git://127.0.0.1:$port/up"
dirs = [ { local = "$T/etc/hang", link = "hang" } ]
[[services]]
machine = "testhost"
service = "ok"
upstream = "file://$T/up2"
dirs = [ { local = "$T/etc/ok", link = "ok" } ]
TOML
start_gitopper
wait_until 20 grep -qx "start ok" "$T/systemctl.log"
wait_until 20 grep -q "\[hang\] state OK -> DIFF: git clone: timed out after 2s" "$T/gitopper.log"

# The other upstream's service goes on while git waits on the silent one.
commit ok/app.conf "ok v2" "$T/up2" >/dev/null
wait_until 10 grep -qx "ok v2" "$T/etc/ok/app.conf"
wait_until 10 grep -qx "reload ok" "$T/systemctl.log"

# At most one git waits on the silent upstream at any time: each is killed at its timeout.
waiting() { pgrep -x git | while read -r pid; do { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null; echo; done | grep -c ":$port/" || true; }
for _ in 1 2 3 4 5 6; do
    [ "$(waiting)" -le 1 ] || fail "$(waiting) git processes wait on the silent upstream"
    sleep 0.5
done

# The upstream answers again: the service is cloned, mounted and started.
kill -CONT "$server"
wait_until 20 grep -qx "start hang" "$T/systemctl.log"
wait_until 10 grep -qx "hang v1" "$T/etc/hang/app.conf"
wait_until 10 grep -q "\[hang\] state DIFF -> OK" "$T/gitopper.log"

# Silent again while a change waits: ls-remote times out, DIFF; the files stay as they were.
kill -STOP "$server"
commit hang/app.conf "hang v2" >/dev/null
wait_until 20 grep -q "\[hang\] state OK -> DIFF: git ls-remote: timed out after 2s" "$T/gitopper.log"
[ "$(cat "$T/etc/hang/app.conf")" = "hang v1" ] || fail "files changed without a deploy"
commit ok/app.conf "ok v3" "$T/up2" >/dev/null
wait_until 10 grep -qx "ok v3" "$T/etc/ok/app.conf"

# Stopping does not wait for the silent upstream.
started=$(date +%s%N)
stop_gitopper TERM
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
[ "$elapsed_ms" -lt 1500 ] || fail "stopping took $elapsed_ms ms while git was hanging"
echo "stopped in $elapsed_ms ms while git was hanging"
# Killed with the daemon: gone at once (a git left running would hang on the stopped server).
none_waiting() { [ "$(waiting)" = 0 ]; }
wait_until 2 none_waiting
echo PASS
