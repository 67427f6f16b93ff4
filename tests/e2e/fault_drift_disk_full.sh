#!/usr/bin/env bash
# Disk full where drift patches go (a 64 KiB tmpfs over the state dir's gitopper-drift): a
# local edit whose patch does not fit is not reverted. It stays exactly as it was, nothing
# stays staged, no half patch is left, the service is BROKEN ("drift kept: could not save
# patch: ..."), and an upstream change is not deployed over it. Once there is room again the
# next drift check saves the patch whole, reverts the edit and the deploy goes through.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf/main.conf "main v1" >/dev/null
commit app/conf/extra.conf "extra v1" >/dev/null
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
mkdir -p "$T/state/gitopper-drift"
mount -t tmpfs -o size=64k,mode=700 gitopper-e2e "$T/state/gitopper-drift"
start_gitopper -t 1s
wait_until 20 grep -qx "start app" "$T/systemctl.log"
deployed=$(live_commit "$T/srv/app")

# 200 KB that do not compress: its patch cannot fit in 64 KiB.
head -c 150000 /dev/urandom | base64 >"$T/big.txt"
cp "$T/big.txt" "$T/etc/app/big.txt"
echo "edited on the host" >>"$T/etc/app/main.conf"
cp "$T/etc/app/main.conf" "$T/main.conf.edited"

wait_until 20 grep -q "\[app\] state OK -> BROKEN: drift kept: could not save patch: " "$T/gitopper.log"
grep "drift kept" "$T/gitopper.log" | head -1
expect_in "$T/gitopper.log" "No space left on device"
expect_not_in "$T/gitopper.log" "local changes reverted"
cmp "$T/big.txt" "$T/etc/app/big.txt" || fail "the unsaved edit (big.txt) was touched"
cmp "$T/main.conf.edited" "$T/etc/app/main.conf" || fail "the unsaved edit (main.conf) was touched"
[ -z "$(find "$T"/srv/.gitopper/stores/*/.git -maxdepth 1 -name 'gitopper-*')" ] ||
    fail "an index of the tree's step was left: $(find "$T"/srv/.gitopper/stores/*/.git -maxdepth 1 -name 'gitopper-*')"
[ -z "$(find "$T/state/gitopper-drift" -type f)" ] ||
    fail "a partial patch was left: $(find "$T/state/gitopper-drift" -type f)"
[ "$(calls "restart app")" = 0 ] || fail "restarted although nothing was reverted"

# A new upstream commit is not checked out over the unsaved edit.
new=$(commit app/conf/extra.conf "extra v2")
# The refused deploy is in the history, with the reason.
refused() {
    jq -e --arg to "$1" '.history[] |
        select(.to == $to and (.result | startswith("drift kept: could not save patch: ")))' \
        "$T/state/gitopper-state/app.json"
}
wait_until 20 refused "$new"
cmp "$T/main.conf.edited" "$T/etc/app/main.conf" || fail "a deploy overwrote the unsaved edit"
cmp "$T/big.txt" "$T/etc/app/big.txt" || fail "a deploy touched the unsaved big.txt"
[ "$(cat "$T/etc/app/extra.conf")" = "extra v1" ] || fail "deployed over an unsaved edit"
checkout_at "$T/srv/app" "$deployed" || fail "the checkout moved over an unsaved edit"

# Room again: the next check (no new edit needed) saves, reverts, and the deploy follows.
# The daemon looks again every scan interval, and while it tries to write a patch there the
# small file system is busy: unmount it between two tries.
wait_until 20 umount "$T/state/gitopper-drift"
wait_until 20 test ! -e "$T/etc/app/big.txt"
wait_until 20 grep -q "\[app\] state BROKEN -> OK" "$T/gitopper.log"
wait_until 20 grep -qx "extra v2" "$T/etc/app/extra.conf"
wait_until 10 grep -qx "main v1" "$T/etc/app/main.conf"
patch=$(find "$T/state/gitopper-drift/app" -name '*.patch')
[ "$(echo "$patch" | wc -l)" = 1 ] && [ -n "$patch" ] || fail "expected one patch, found: $patch"
[ "$(stat -c %a "$T/state/gitopper-drift")" = 700 ] || fail "gitopper-drift is not 0700"
# (From a copy of root's: git's local transport drops the safe.directory that lib.sh sets.)
cp -r "$T/up" "$T/up-root"
git clone -q "$T/up-root" "$T/fresh"
git -C "$T/fresh" checkout -q --detach "$deployed"
git -C "$T/fresh" apply "$patch" || fail "the saved patch does not apply at $deployed"
cmp "$T/big.txt" "$T/fresh/app/conf/big.txt" || fail "big.txt differs after applying the patch"
cmp "$T/main.conf.edited" "$T/fresh/app/conf/main.conf" || fail "main.conf differs"
kill -0 "$GITOPPER_PID" || fail "the daemon died"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
