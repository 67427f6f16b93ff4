#!/usr/bin/env bash
# A checkout with more directories than its inotify watch budget (4096) takes no watches at
# all, says so once, and still has its local edits reverted, found by a periodic `git status`.
# After a deploy that removes directories it fits again and is watched with inotify.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
# 4200 directories under the link: with the link itself and the checkout's top, 4202 watches.
mkdir -p "$T/up/app/conf"
(cd "$T/up/app/conf" && mkdir $(seq -f 'd%04g' 0 4199) && for i in $(seq -w 0 4199); do echo "$i" >"d$i/f"; done)
commit app/conf/main.conf "main v1" >/dev/null
# git runs as nobody and reads the upstream, which must then be its own (safe.directory).
chown -R nobody: "$T/up"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
user = "nobody"
action = "restart"
dirs = [ { local = "$T/etc/app", link = "app/conf" } ]
TOML

# The daemon's inotify watches, as the kernel lists them for its descriptors.
watches_above() { [ "$(watches)" -gt "$1" ]; }

start_gitopper -t 1s
wait_until 60 grep -qx "start app" "$T/systemctl.log"
wait_until 10 grep -q "\[app\] checkout $T/srv/.gitopper/trees/app\.[0-9a-f.]* needs 4202 inotify watches, over its budget of 4096" \
    "$T/gitopper.log"
[ "$(grep -c "over its budget" "$T/gitopper.log")" = 1 ] || fail "the warning is not logged once"
[ "$(watches)" = 0 ] || fail "an over-budget checkout holds $(watches) watches"

# An edit is still found (by the scan) and reverted, with its patch saved.
echo "edited on the host" >>"$T/etc/app/main.conf"
echo "new" >"$T/etc/app/d0007/added"
wait_until 20 grep -qx "main v1" "$T/etc/app/main.conf"
wait_until 10 test ! -e "$T/etc/app/d0007/added"
wait_until 10 grep -qx "restart app" "$T/systemctl.log"
patch=$(find "$T/state/gitopper-drift/app" -name '*.patch')
[ -n "$patch" ] || fail "no patch saved"
expect_in "$patch" "edited on the host"
[ "$(watches)" = 0 ] || fail "watches taken after a scan: $(watches)"
[ "$(grep -c "over its budget" "$T/gitopper.log")" = 1 ] || fail "the warning is repeated"

# A deploy that removes 200 directories: 4002 watches fit, inotify again.
git -C "$T/up" rm -q -r $(cd "$T/up" && printf 'app/conf/d%s ' $(seq 4000 4199))
git -C "$T/up" commit -q -m "fewer directories"
wait_until 20 checkout_at "$T/srv/app" "$(git -C "$T/up" rev-parse HEAD)"
wait_until 10 grep -q "\[app\] checkout $T/srv/.gitopper/trees/app\.[0-9a-f.]* fits its inotify budget again (4002 of 4096 watches)" \
    "$T/gitopper.log"
wait_until 10 watches_above 4001
[ "$(watches)" = 4002 ] || fail "expected 4002 watches, got $(watches)"
restarts=$(calls "restart app")
echo "edited again" >>"$T/etc/app/d0100/f"
wait_until 10 grep -qx "0100" "$T/etc/app/d0100/f"
wait_until 10 calls_above "restart app" "$restarts"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
