#!/usr/bin/env bash
# systemd's notify protocol without systemd: a datagram socket of the test's stands for it. The
# daemon says READY=1, a STATUS= with its services' states, and pings WATCHDOG=1 while its poll
# threads get somewhere; a stuck poll thread (GITOPPER_TEST_STALL_POLL) stops the pings, with a
# log line naming it. The real-systemd tier (system_watchdog) sees systemd restart it.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/a.conf "a" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
git_timeout = "1s"
[[services]]
machine = "testhost"
service = "app"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML

# One line per message: its arrival (ns) and its fields joined by '|'.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        data = s.recv(4096).decode()
        log.write("%d %s\n" % (time.monotonic_ns(), data.strip().replace("\n", "|")))
        log.flush()
' "$T/notify" "$T/notify.log" &
receiver=$!
cleanup_hooks+=("kill $receiver")
wait_until 10 test -S "$T/notify"
touch "$T/notify.log"
pings() { grep -c 'WATCHDOG=1' "$T/notify.log" || true; }
pings_above() { [ "$(pings)" -gt "$1" ]; }

# A healthy daemon: ready, its status, and pings every half interval (here 1 s).
NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=2000000 start_gitopper
wait_until 20 grep -q "READY=1" "$T/notify.log"
wait_until 20 grep -q "STATUS=1 service: 1 OK" "$T/notify.log"
before=$(pings)
wait_until 10 pings_above $((before + 2))
wait_cycles 2
stop_gitopper
expect_in "$T/notify.log" "STOPPING=1"
# Without WATCHDOG_USEC systemd watches nothing: no pings.
: >"$T/notify.log"
NOTIFY_SOCKET=$T/notify start_gitopper
wait_until 20 grep -q "STATUS=1 service: 1 OK" "$T/notify.log"
wait_cycles 2
stop_gitopper
[ "$(pings)" = 0 ] || fail "pinged without WATCHDOG_USEC"

# A poll thread that stops getting anywhere: after git_timeout + 10 s the pings stop, and stay
# stopped; the log says which thread.
: >"$T/notify.log"
GITOPPER_TEST_STALL_POLL=app NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=2000000 start_gitopper
wait_until 20 grep -q "GITOPPER_TEST_STALL_POLL" "$T/gitopper.log"
stalled_at=$(date +%s)
wait_until 30 grep -q "is stuck" "$T/gitopper.log"
waited=$(( $(date +%s) - stalled_at ))
[ "$waited" -ge 9 ] || fail "called stuck after ${waited}s, before git_timeout + 10 s"
expect_in "$T/gitopper.log" "the poll thread of file://$T/up is stuck"
kill -0 "$GITOPPER_PID" || fail "a stuck poll thread took the daemon down"
stopped=$(pings)
# Three ping periods without one (the receiver logs each ping as it arrives).
sleep 3
[ "$(pings)" -le $((stopped + 1)) ] || fail "pings went on while the poll thread was stuck"
stop_gitopper
[ "$EXIT_STATUS" = 0 ] || fail "a stalled daemon did not stop cleanly: $EXIT_STATUS"
echo PASS
