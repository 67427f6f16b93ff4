#!/usr/bin/env bash
# A local edit whose patch is far larger than any output limit (a 3 MiB file of random base64,
# with an edit of a tracked file) is saved whole, by git running as the service user, before
# it is reverted: applied in a fresh clone at the deployed commit, the saved patch gives back
# the edit byte for byte.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
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
start_gitopper -t 1h # no polling: only drift can make it act
wait_until 20 grep -qx "start app" "$T/systemctl.log"
deployed=$(live_commit "$T/srv/app")

# The edit, kept aside as it was made: 3 MiB that do not compress, and one changed line.
head -c 2400000 /dev/urandom | base64 >"$T/big.txt"
[ "$(stat -c %s "$T/big.txt")" -gt $((3 * 1024 * 1024)) ] || fail "the test file is too small"
cp "$T/big.txt" "$T/etc/app/big.txt"
echo "edited on the host" >>"$T/etc/app/main.conf"
cp "$T/etc/app/main.conf" "$T/main.conf.edited"

wait_until 30 test ! -e "$T/etc/app/big.txt"
wait_until 10 grep -qx "main v1" "$T/etc/app/main.conf"
wait_until 10 grep -qx "restart app" "$T/systemctl.log"
wait_until 10 grep -q "\[app\] state OK -> OK: drift reverted: .*big.txt" "$T/gitopper.log"
expect_in "$T/gitopper.log" "local changes reverted"
expect_not_in "$T/gitopper.log" "not reverted"

patch=$(find "$T/state/gitopper-drift/app" -name '*.patch')
[ "$(echo "$patch" | wc -l)" = 1 ] && [ -n "$patch" ] || fail "expected one patch, found: $patch"
[ "$(stat -c %a "$patch")" = 600 ] || fail "patch mode $(stat -c %a "$patch")"
[ "$(stat -c %U "$patch")" = root ] || fail "patch owned by $(stat -c %U "$patch")"
[ "$(stat -c %s "$patch")" -gt $((3 * 1024 * 1024)) ] || fail "patch of $(stat -c %s "$patch") bytes"
leftovers=$(find "$T/state/gitopper-drift" -name '*.tmp*')
[ -z "$leftovers" ] || fail "temp files left: $leftovers"

# Nothing lost: the patch, applied where it was taken, reproduces the edit byte for byte.
# (From a copy of root's: git's local transport drops the safe.directory that lib.sh sets.)
cp -r "$T/up" "$T/up-root"
git clone -q "$T/up-root" "$T/fresh"
git -C "$T/fresh" checkout -q --detach "$deployed"
git -C "$T/fresh" apply --check "$patch" || fail "the saved patch does not apply"
git -C "$T/fresh" apply "$patch"
cmp "$T/big.txt" "$T/fresh/app/conf/big.txt" || fail "big.txt differs after applying the patch"
cmp "$T/main.conf.edited" "$T/fresh/app/conf/main.conf" || fail "main.conf differs"

# And the checkout is git's again, nothing left staged.
[ -z "$(tree_changes "$T/srv/app" app/conf)" ] || fail "tree not clean after the revert"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
