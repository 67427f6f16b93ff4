#!/usr/bin/env bash
# The service's user changes while both of its work trees exist (the live one and the spare):
# neither is chowned nor removed as the new user (who may not); both are moved aside, kept, and
# the service deploys on trees of the new user's store.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/app.conf "app 1" >/dev/null
write_config() {
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
$1
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
}
write_config ""
start_gitopper -t 1s
wait_until 20 grep -qx "start app" "$T/systemctl.log"
commit app/app.conf "app 2" >/dev/null
wait_until 20 grep -qx "app 2" "$T/etc/app/app.conf"
wait_until 10 grep -qx "reload app" "$T/systemctl.log" # the files show before the action runs
# One tree: the one the deploy made; the one it replaced is gone.
[ "$(ls "$T/srv/.gitopper/trees" | grep -c '^app\.')" = 1 ] ||
    fail "expected one tree: $(ls "$T/srv/.gitopper/trees")"
stop_gitopper TERM

# git serves a file:// repository only to its owner.
chown -R nobody: "$T/up"
write_config 'user = "nobody"'
: >"$T/systemctl.log"
start_gitopper -t 1s
wait_until 20 grep -qx "start app" "$T/systemctl.log"
commit app/app.conf "app 3" >/dev/null
chown -R nobody: "$T/up"
wait_until 20 grep -qx "app 3" "$T/etc/app/app.conf"
wait_until 10 grep -qx "reload app" "$T/systemctl.log"
# The tree the deploy replaced goes after the action: wait for it, not race it.
one_tree() { [ "$(ls "$T/srv/.gitopper/trees" | grep -c '^app\.')" = 1 ]; }
wait_until 10 one_tree
for tree in "$T"/srv/.gitopper/trees/app.*; do
    [ "$(stat -c %U "$tree")" = nobody ] || fail "tree $tree is $(stat -c %U "$tree")'s"
done
# root's tree is not the new user's to remove: kept aside.
[ "$(find "$T/srv" -maxdepth 1 -name 'app.broken-*' | wc -l)" = 1 ] ||
    fail "the old tree was not kept: $(ls "$T/srv")"
if grep -q "\[app\] state .* -> \(BROKEN\|DIFF\)" "$T/gitopper.log"; then
    fail "app failed on the way: $(grep "\[app\] state .* -> \(BROKEN\|DIFF\)" "$T/gitopper.log")"
fi
[ "$(mounts_on "$T/etc/app")" = 1 ] || fail "$(mounts_on "$T/etc/app") mounts on etc/app"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
