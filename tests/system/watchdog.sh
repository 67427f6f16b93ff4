#!/usr/bin/env bash
# The watchdog under a real systemd: with WatchdogSec= a poll thread that stops getting anywhere
# (GITOPPER_TEST_STALL_POLL, as a deadlock would) stops the pings once it is past git_timeout +
# 10 s, and systemd kills gitopper and starts it again. A healthy one is never restarted.
. "$(dirname "$0")/lib.sh"

make_upstream
commit nginx/nginx.conf "$(nginx_conf "git v1")" >/dev/null
boot_container
host=$(in_container hostname)
install_config <<TOML
[global]
upstream = "file:///srv/test/up"
mount = "/srv/gitopper"
git_timeout = "1s"
[[services]]
machine = "$host"
service = "nginx"
action = "reload"
interval = "1s"
dirs = [ { local = "/etc/nginx", link = "nginx" } ]
TOML
in_container mkdir -p /etc/systemd/system/gitopper.service.d
in_container sh -c 'cat >/etc/systemd/system/gitopper.service.d/watchdog.conf' <<'UNIT'
[Service]
WatchdogSec=3s
LimitCORE=0
UNIT
in_container systemctl daemon-reload

# Healthy: pinged, never restarted, for longer than a stuck thread would take to be killed.
in_container systemctl start gitopper
wait_until 30 serves "git v1"
started=$(date +%s)
commit nginx/nginx.conf "$(nginx_conf "git v2")" >/dev/null
wait_until 30 serves "git v2"
while [ $(( $(date +%s) - started )) -lt 8 ]; do
    [ "$(unit_property NRestarts)" = 0 ] || fail "a healthy gitopper was restarted"
    sleep 1
done

# Stuck: the next cycle's reconcile never ends.
in_container sh -c 'printf "[Service]\nEnvironment=GITOPPER_TEST_STALL_POLL=nginx\n" \
    >/etc/systemd/system/gitopper.service.d/stall.conf'
in_container systemctl daemon-reload
in_container systemctl restart gitopper
pid=$(unit_property MainPID)
wait_until 60 unit_is NRestarts 1
journal=$(in_container journalctl -u gitopper --no-pager)
grep -q "the poll thread of file:///srv/test/up is stuck" <<<"$journal" || fail "no stuck line"
grep -q "Watchdog timeout" <<<"$journal" || fail "restarted, but not by the watchdog"
wait_until 30 unit_is ActiveState active
[ "$(unit_property MainPID)" != "$pid" ] || fail "the same process after the restart"
echo PASS
