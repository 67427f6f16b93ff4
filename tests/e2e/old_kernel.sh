#!/usr/bin/env bash
# The older kernels' way (no MOVE_MOUNT_BENEATH before Linux 6.5, as on Debian 12), run on this
# one with GITOPPER_TEST_NO_MOUNT_BENEATH=1: the daemon says so at start; a deploy moves the
# live tree's files to the new commit in place (changed files rewritten, a removed one gone, a
# new one there) and renames the tree after the commit; the directory mount follows it, the
# file mount is made again, one mount per target; drift is still reverted; a kill -9 while the
# tree is written and a restart converge, with the owed action; a restart owing nothing does
# not reload.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
export GITOPPER_TEST_NO_MOUNT_BENEATH=1

# A git that stops at `restore` while $T/pause-restore exists (its PID in $T/paused-restore).
real_git=$(command -v git)
cat >"$T/bin/git" <<SH
#!/bin/bash
for arg; do
    if [ "\$arg" = restore ]; then
        while [ -e "$T/pause-restore" ]; do echo \$\$ >"$T/paused-restore"; sleep 0.05; done
    fi
done
exec "$real_git" "\$@"
SH
chmod +x "$T/bin/git"

make_upstream
commit app/a.conf "a 1" >/dev/null
commit app/gone.conf "gone 1" >/dev/null
commit one.conf "one 1" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [
  { local = "$T/etc/app", link = "app" },
  { local = "$T/etc/one.conf", link = "one.conf", file = true },
]
TOML
trees() { ls "$T/srv/.gitopper/trees" | grep -c '^app\.' || true; }
one_mount_each() { [ "$(mounts_on "$T/etc/app")" = 1 ] && [ "$(mounts_on "$T/etc/one.conf")" = 1 ]; }

start_gitopper -t 1s
wait_until 20 grep -qx "start app" "$T/systemctl.log"
expect_in "$T/gitopper.log" "this kernel has no MOVE_MOUNT_BENEATH"
inode=$(stat -c %i "$(readlink -f "$T/srv/app")")

# A deploy in place: the same directory, renamed after the new commit.
git -C "$T/up" rm -q app/gone.conf
printf 'a 2\n' >"$T/up/app/a.conf"
printf 'new 2\n' >"$T/up/app/new.conf"
printf 'one 2\n' >"$T/up/one.conf"
git -C "$T/up" add -A
git -C "$T/up" commit -q -m "in place"
head=$(git -C "$T/up" rev-parse HEAD)
wait_until 20 grep -qx "reload app" "$T/systemctl.log"
checkout_at "$T/srv/app" "$head" || fail "the symlink does not name the new commit"
[ "$(stat -c %i "$(readlink -f "$T/srv/app")")" = "$inode" ] || fail "not the same tree: not in place"
[ "$(cat "$T/etc/app/a.conf")" = "a 2" ] || fail "a.conf: $(cat "$T/etc/app/a.conf")"
[ "$(cat "$T/etc/app/new.conf")" = "new 2" ] || fail "new.conf missing"
[ ! -e "$T/etc/app/gone.conf" ] || fail "a file the commit removed is still there"
[ "$(cat "$T/etc/one.conf")" = "one 2" ] || fail "the file mount shows $(cat "$T/etc/one.conf")"
one_mount_each || fail "mounts: $(mounts_on "$T/etc/app") on etc/app, $(mounts_on "$T/etc/one.conf") on one.conf"
[ "$(trees)" = 1 ] || fail "trees: $(ls "$T/srv/.gitopper/trees")"
[ -z "$(tree_changes "$T/srv/app" app one.conf)" ] || fail "the tree differs from its commit: $(tree_changes "$T/srv/app" app one.conf)"

# Drift is reverted as ever.
reloads=$(calls "reload app")
echo "edited" >>"$T/etc/app/a.conf"
wait_until 20 grep -qx "a 2" "$T/etc/app/a.conf"
wait_until 10 calls_above "reload app" "$reloads"

# Killed while the next tree is written; the restart deploys it and reloads.
touch "$T/pause-restore"
head=$(commit app/a.conf "a 3")
wait_until 20 test -s "$T/paused-restore"
kill -KILL "$GITOPPER_PID"
wait "$GITOPPER_PID" || true
kill -KILL -- "-$(cat "$T/paused-restore")" 2>/dev/null || true
rm -f "$T/pause-restore" "$T/paused-restore"
reloads=$(calls "reload app")
start_gitopper -t 1s
wait_until 20 checkout_at "$T/srv/app" "$head"
wait_until 10 grep -qx "a 3" "$T/etc/app/a.conf"
wait_until 10 calls_above "reload app" "$reloads"
one_mount_each || fail "after the kill: $(mounts_on "$T/etc/app") on etc/app, $(mounts_on "$T/etc/one.conf") on one.conf"
[ "$(trees)" = 1 ] || fail "trees after the kill: $(ls "$T/srv/.gitopper/trees")"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# Nothing owed: a restart does not reload. (Its own log, so that http_port finds its port.)
reloads=$(calls "reload app")
mv "$T/gitopper.log" "$T/gitopper.log.before"
start_gitopper -t 1s
wait_cycles 2
[ "$(calls "reload app")" = "$reloads" ] || fail "a restart with nothing owed reloaded"
one_mount_each || fail "after a restart: $(mounts_on "$T/etc/app") on etc/app"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
