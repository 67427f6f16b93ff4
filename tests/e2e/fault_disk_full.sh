#!/usr/bin/env bash
# Disk full on the filesystem of the checkouts and the state file (a small tmpfs): the service
# goes to DIFF with a message that says so, the files in place and the state file stay whole,
# the other service and the daemon go on, and everything recovers when space returns.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit big/app.conf "v1" >/dev/null
commit small/app.conf "small v1" >/dev/null
mkdir -p "$T/var"
mount -t tmpfs -o size=2m,mode=755 gitopper-e2e "$T/var"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/var/srv"
action = "reload"
[[services]]
machine = "testhost"
service = "big"
dirs = [ { local = "$T/etc/big", link = "big" } ]
[[services]]
machine = "testhost"
service = "small"
dirs = [ { local = "$T/etc/small", link = "small" } ]
TOML
start_gitopper --state "$T/var/state"
wait_until 20 grep -qx "start big" "$T/systemctl.log"
wait_until 20 grep -qx "start small" "$T/systemctl.log"
cp "$T/var/state/gitopper-state/big.json" "$T/state-before.json"

# 3 MB that does not compress, for a filesystem of 2 MB.
head -c 3000000 /dev/urandom | base64 >"$T/up/big/blob"
commit big/app.conf "v2" >/dev/null
wait_until 20 grep -q "\[big\] state OK -> DIFF: .*No space left on device" "$T/gitopper.log"
[ "$(cat "$T/etc/big/app.conf")" = "v1" ] || fail "a failed checkout changed the files in place"
[ "$(calls "reload big")" = 0 ] || fail "reloaded big although its checkout failed"
cmp -s "$T/state-before.json" "$T/var/state/gitopper-state/big.json" ||
    [ "$(tail -c 2 "$T/var/state/gitopper-state/big.json" | tr -d '\n')" = "}" ] ||
    fail "the state file was damaged on a full disk"

# The other service keeps tracking: a small change still fits, as the failed git's half-written
# pack was removed.
grep -q "removing stale $T/var/srv/.gitopper/stores/[^/]*/.git/objects/pack/tmp_" "$T/gitopper.log" ||
    fail "the half-written pack was not removed"
commit small/app.conf "small v2" >/dev/null
wait_until 20 grep -qx "small v2" "$T/etc/small/app.conf"
kill -0 "$GITOPPER_PID" || fail "a full disk stopped the daemon"

# Space returns: the next poll deploys and reloads.
mount -o remount,size=64m "$T/var"
wait_until 20 deployed big "$(git -C "$T/up" rev-parse HEAD)"
wait_until 20 grep -q "\[big\] state DIFF -> OK" "$T/gitopper.log"
[ "$(cat "$T/etc/big/app.conf")" = "v2" ] || fail "big not deployed after space returned"
wait_until 10 grep -qx "reload big" "$T/systemctl.log"
tree_changes "$T/var/srv/big" big >"$T/status"
[ ! -s "$T/status" ] || { cat "$T/status"; fail "the tree is not clean after recovery"; }
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
