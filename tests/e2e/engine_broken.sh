#!/usr/bin/env bash
# Failures stay with their service: systemctl failing -> BROKEN, recovered by the next good
# change; a package that cannot be installed or a user that does not exist -> BROKEN for that
# service alone; packages are installed with the OS's manager (fakes on PATH here).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit good/conf "good v1" >/dev/null
commit pkg/conf "pkg v1" >/dev/null
commit nouser/conf "nouser v1" >/dev/null

# Fake dpkg-query / apt-get (this machine is Debian): "present" is installed, "fresh" installs,
# "broken" fails to install.
cat >"$T/bin/dpkg-query" <<SH
#!/bin/sh
for last; do :; done
case "\$last" in present) echo installed ;; fresh) [ -e "$T/fresh-installed" ] && echo installed || exit 1 ;; *) exit 1 ;; esac
SH
cat >"$T/bin/apt-get" <<SH
#!/bin/sh
echo "\$DEBIAN_FRONTEND \$*" >>"$T/apt.log"
for last; do :; done
[ "\$last" = fresh ] && touch "$T/fresh-installed" && exit 0
echo "E: Unable to locate package \$last" >&2
exit 100
SH
chmod +x "$T/bin/dpkg-query" "$T/bin/apt-get"

cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
action = "reload"
[[services]]
machine = "testhost"
service = "good"
package = "fresh"
dirs = [ { local = "$T/etc/good", link = "good" } ]
[[services]]
machine = "testhost"
service = "pkg"
package = "broken"
dirs = [ { local = "$T/etc/pkg", link = "pkg" } ]
[[services]]
machine = "testhost"
service = "nouser"
user = "no-such-user-gitopper"
dirs = [ { local = "$T/etc/nouser", link = "nouser" } ]
TOML
start_gitopper
wait_until 20 grep -qx "start good" "$T/systemctl.log"
wait_until 10 grep -q "\[pkg\] state OK -> BROKEN: installing package \"broken\"" "$T/gitopper.log"
wait_until 10 grep -q "\[nouser\] state OK -> BROKEN: no such user \"no-such-user-gitopper\"" "$T/gitopper.log"
expect_in "$T/apt.log" "noninteractive install --yes"
expect_in "$T/apt.log" "-- fresh"
[ ! -e "$T/srv/nouser" ] || fail "a service with a missing user was checked out (as root?)"
[ "$(cat "$T/etc/good/conf")" = "good v1" ] || fail "the good service suffered"

# systemctl failing: BROKEN with the error; tracking goes on; the next good change recovers.
touch "$T/systemctl.fail"
commit good/conf "good v2" >/dev/null
wait_until 20 grep -q "\[good\] state OK -> BROKEN: systemctl" "$T/gitopper.log"
[ "$(cat "$T/etc/good/conf")" = "good v2" ] || fail "files not deployed while BROKEN"
rm "$T/systemctl.fail"
wait_cycles 2
grep -q "\[good\] state BROKEN -> OK" "$T/gitopper.log" && fail "recovered without a change"
commit good/conf "good v3" >/dev/null
wait_until 20 grep -q "\[good\] state BROKEN -> OK" "$T/gitopper.log"
[ "$(cat "$T/etc/good/conf")" = "good v3" ] || fail "good v3 not deployed"
kill -0 "$GITOPPER_PID" || fail "the daemon died"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
