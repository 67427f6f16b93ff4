#!/usr/bin/env bash
# Local drift: a file edited, added or deleted on the host inside a mounted directory is saved
# as a patch under the state dir, reverted to git's version, logged with the file list, and
# the service gets its action.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf/main.conf "main v1" >/dev/null
commit app/conf/extra.conf "extra v1" >/dev/null
commit app/single.conf "single v1" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "restart"
dirs = [
  { local = "$T/etc/app", link = "app/conf" },
  { local = "$T/etc/single.conf", link = "app/single.conf", file = true },
]
TOML
start_gitopper -t 1h # no polling: only drift can make it act
wait_until 20 grep -qx "start app" "$T/systemctl.log"
wait_until 20 cycles_at_least 1 # the first poll follows the watches being set

echo "edited on the host" >>"$T/etc/app/main.conf"
echo "new" >"$T/etc/app/added.conf"
rm "$T/etc/app/extra.conf"
wait_until 10 grep -qx "main v1" "$T/etc/app/main.conf"
wait_until 10 test -e "$T/etc/app/extra.conf"
wait_until 10 test ! -e "$T/etc/app/added.conf"
wait_until 10 grep -qx "restart app" "$T/systemctl.log"
expect_in "$T/gitopper.log" "local changes reverted"
expect_in "$T/gitopper.log" "main.conf"
expect_in "$T/gitopper.log" "added.conf"
expect_in "$T/gitopper.log" "extra.conf"

# Nothing lost: the patch holds the edit, the new file and the deletion.
patch=$(find "$T/state/gitopper-drift/app" -name '*.patch' | head -1)
[ -n "$patch" ] || fail "no patch saved"
[ "$(stat -c %a "$patch")" = 600 ] || fail "patch mode $(stat -c %a "$patch")"
expect_in "$patch" "edited on the host"
expect_in "$patch" "added.conf"
expect_in "$patch" "deleted file mode"
(cd "$T/srv/app" && git apply --check "$patch") || fail "patch does not describe the change"

# A single-file mount edited in place.
restarts=$(calls "restart app")
echo "tampered" >"$T/etc/single.conf"
wait_until 10 grep -qx "single v1" "$T/etc/single.conf"
wait_until 10 calls_above "restart app" "$restarts"
[ "$(mounts_on "$T/etc/single.conf")" = 1 ] || fail "file mount stacked after revert"

# The state file records it in the history.
wait_until 5 grep -q '"trigger": "drift"' "$T/state/gitopper-state/app.json"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# Edits made while gitopper was down are caught at the next start.
echo "offline edit" >>"$T/etc/app/main.conf"
start_gitopper -t 1h
wait_until 20 grep -qx "main v1" "$T/etc/app/main.conf"
patches() { [ "$(find "$T/state/gitopper-drift/app" -name "*.patch" | wc -l)" -ge 3 ]; }
wait_until 5 patches

# The whole live work tree deleted under the running daemon: checked out again and remounted
# at once.
rm -rf "$(readlink -f "$T/srv/app")"
wait_until 15 test -d "$T/srv/app"
wait_until 10 grep -qx "main v1" "$T/etc/app/main.conf"
wait_until 10 grep -qx "single v1" "$T/etc/single.conf"
[ "$(mounts_on "$T/etc/app")" = 1 ] || fail "mounts on etc/app after re-clone: $(mounts_on "$T/etc/app")"
[ "$(mounts_on "$T/etc/single.conf")" = 1 ] || fail "mounts on single.conf after re-clone"
expect_in "$T/gitopper.log" "disappeared; checking it out again"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
