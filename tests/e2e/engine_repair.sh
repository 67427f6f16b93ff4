#!/usr/bin/env bash
# Existing checkouts that no longer fit the config are repaired at start, not failed on
# forever: another upstream, another branch, another owner, stale git locks, a directory that
# is not a git checkout, an unusable repository, a file in the checkout's place (all moved
# aside, never deleted). Template units are enabled first.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# Two unrelated upstreams with the same paths (another upstream), one shared upstream with a
# second branch "next", and one for the owner change (its owner follows the service's user:
# git refuses to serve a file:// repository owned by someone else).
make_upstream "$T/upA"
commit follow/conf/app.conf "A app" "$T/upA" >/dev/null
commit follow/one.conf "A one" "$T/upA" >/dev/null
make_upstream "$T/upB"
commit follow/conf/app.conf "B app" "$T/upB" >/dev/null
headB=$(commit follow/one.conf "B one" "$T/upB")
make_upstream
commit branch/app.conf "main 1" >/dev/null
commit lock/app.conf "lock 1" >/dev/null
commit plain/app.conf "plain 1" >/dev/null
commit corrupt/app.conf "corrupt 1" >/dev/null
commit getty/app.conf "getty 1" >/dev/null
git -C "$T/up" branch next
git -C "$T/up" checkout -q next
commit branch/app.conf "next 1" >/dev/null
git -C "$T/up" checkout -q main
make_upstream "$T/upN"
commit owner/app.conf "owner 1" "$T/upN" >/dev/null

# store_of URL: the object store whose origin is URL.
store_of() {
    local s
    for s in "$T"/srv/.gitopper/stores/*; do
        [ "$(git -C "$s" config remote.origin.url)" = "$1" ] && { echo "$s"; return; }
    done
}

# write_config UPSTREAM_OF_FOLLOW BRANCH_OF_BRANCH USER_LINE_OF_OWNER
write_config() {
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
action = "reload"
[[services]]
machine = "testhost"
service = "follow"
upstream = "$1"
dirs = [
  { local = "$T/etc/follow", link = "follow/conf" },
  { local = "$T/etc/one.conf", link = "follow/one.conf", file = true },
]
[[services]]
machine = "testhost"
service = "branch"
branch = "$2"
dirs = [ { local = "$T/etc/branch", link = "branch" } ]
[[services]]
machine = "testhost"
service = "owner"
upstream = "file://$T/upN"
$3
dirs = [ { local = "$T/etc/owner", link = "owner" } ]
[[services]]
machine = "testhost"
service = "lock"
dirs = [ { local = "$T/etc/lock", link = "lock" } ]
[[services]]
machine = "testhost"
service = "plain"
dirs = [ { local = "$T/etc/plain", link = "plain" } ]
[[services]]
machine = "testhost"
service = "corrupt"
dirs = [ { local = "$T/etc/corrupt", link = "corrupt" } ]
[[services]]
machine = "testhost"
service = "notdir"
dirs = [ { local = "$T/etc/notdir", link = "plain" } ]
[[services]]
machine = "testhost"
service = "getty@tty9"
dirs = [ { local = "$T/etc/getty", link = "getty" } ]
TOML
}

# line_of TEXT: the number of the first systemctl call that is exactly TEXT (empty: none).
line_of() { grep -nxF -- "$1" "$T/systemctl.log" | head -1 | cut -d: -f1 || true; }
all_started() {
    for s in follow branch owner lock plain corrupt notdir getty@tty9; do
        grep -qxF "start $s" "$T/systemctl.log" || return 1
    done
}

# ---- first run: fresh checkouts, all by root -----------------------------------------------
write_config "file://$T/upA" main ""
start_gitopper -m 127.0.0.1:0 # a port of its own: other tests run daemons too
wait_until 30 all_started
[ "$(cat "$T/etc/follow/app.conf")" = "A app" ] || fail "upstream A not deployed"
[ "$(cat "$T/etc/branch/app.conf")" = "main 1" ] || fail "branch main not deployed"
[ "$(stat -L -c %U "$T/srv/owner")" = root ] || fail "checkout without user not owned by root"

# Template unit: enabled before it is started; a plain unit is never enabled.
enable=$(line_of "enable getty@tty9")
start=$(line_of "start getty@tty9")
[ -n "$enable" ] || fail "getty@tty9 was not enabled"
[ "$enable" -lt "$start" ] || fail "getty@tty9 enabled (call $enable) after start (call $start)"
for s in follow branch owner lock plain corrupt notdir; do
    [ "$(calls "enable $s")" = 0 ] || fail "plain unit $s was enabled"
done
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "first run: exit $EXIT_STATUS"

# ---- while stopped: the config and the checkouts change under the daemon -------------------
write_config "file://$T/upB" next 'user = "nobody"'
chown -R nobody: "$T/upN"
# Locks of a git killed in a step of a tree (its index, in the store) and in the store itself.
store=$(store_of "file://$T/up")
[ -d "$store/.git" ] || fail "no object store of $T/up"
index_lock="$store/.git/gitopper-lock.json.index.lock"
ref_lock="$store/.git/refs/remotes/origin/main.lock"
mkdir -p "$(dirname "$ref_lock")"
touch "$index_lock" "$ref_lock"
head_lock=$(commit lock/app.conf "lock 2")
rm -rf "$T/srv/plain"
mkdir "$T/srv/plain"
echo "keep me" >"$T/srv/plain/precious"
# A tree that is not the service user's any more, still mounted; a file in the way.
chown nobody "$(readlink -f "$T/srv/corrupt")"
rm -rf "$T/srv/notdir"
echo "keep me too" >"$T/srv/notdir"
: >"$T/systemctl.log"

# ---- second run: every checkout is repaired ------------------------------------------------
start_gitopper -m 127.0.0.1:0

# Another upstream: the checkout follows B, one mount per target.
wait_until 20 grep -qx "B app" "$T/etc/follow/app.conf"
wait_until 10 grep -qx "B one" "$T/etc/one.conf"
wait_until 10 deployed follow "$headB"
[ -d "$(store_of "file://$T/upB")/.git" ] || fail "no object store of $T/upB"
[ "$(mounts_on "$T/etc/follow")" = 1 ] || fail "$(mounts_on "$T/etc/follow") mounts on etc/follow"
[ "$(mounts_on "$T/etc/one.conf")" = 1 ] || fail "$(mounts_on "$T/etc/one.conf") mounts on one.conf"

# Stale locks: gone, and the commit made meanwhile is deployed (checked, like "plain", before
# anything else lands on main).
wait_until 20 grep -qx "lock 2" "$T/etc/lock/app.conf"
wait_until 10 deployed lock "$head_lock"
[ ! -e "$index_lock" ] || fail "stale index.lock still there"
[ ! -e "$ref_lock" ] || fail "stale ref lock still there"

# Not a git checkout: moved aside with its content, a proper checkout in its place.
co="$T/srv/plain"
wait_until 10 deployed plain "$head_lock"
[ -L "$co" ] && [ -d "$co" ] || fail "$co is not our symlink to a tree"
[ "$(cat "$T/etc/plain/app.conf")" = "plain 1" ] || fail "plain not deployed"
[ ! -e "$co/precious" ] || fail "the old content is inside the new checkout"
aside=$(find "$T/srv" -maxdepth 1 -name "plain.broken-*")
[ "$(echo "$aside" | grep -c .)" = 1 ] || fail "expected one plain.broken-* dir, got: $aside"
[ "$(cat "$aside/precious")" = "keep me" ] || fail "the old content was not kept"
[ "$(mounts_on "$T/etc/plain")" = 1 ] || fail "$(mounts_on "$T/etc/plain") mounts on etc/plain"
# The same for an unusable tree (our mount of it is not left underneath)
# and for a file in the checkout's place.
for s in corrupt notdir; do
    wait_until 10 deployed "$s" "$head_lock"
    aside=$(find "$T/srv" -maxdepth 1 -name "$s.broken-*")
    [ "$(echo "$aside" | grep -c .)" = 1 ] || fail "expected one $s.broken-* dir, got: $aside"
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "$(mounts_on "$T/etc/$s") mounts on etc/$s"
done
[ "$(cat "$T/etc/corrupt/app.conf")" = "corrupt 1" ] || fail "corrupt not deployed"
[ -e "$(find "$T/srv" -maxdepth 1 -name "corrupt.broken-*")/corrupt/app.conf" ] ||
    fail "the unusable tree was not kept"
[ "$(cat "$T/etc/notdir/app.conf")" = "plain 1" ] || fail "notdir not deployed"
[ "$(cat "$T/srv/notdir.broken-"*)" = "keep me too" ] || fail "the file in the way was not kept"

# Another branch: "next" is deployed, and main no longer moves it.
wait_until 20 grep -qx "next 1" "$T/etc/branch/app.conf"
commit branch/app.conf "main 2" >/dev/null
wait_cycles 2
[ "$(cat "$T/etc/branch/app.conf")" = "next 1" ] || fail "a commit on main was deployed for next"
git -C "$T/up" checkout -q next
next_head=$(commit branch/app.conf "next 2")
git -C "$T/up" checkout -q main
wait_until 20 grep -qx "next 2" "$T/etc/branch/app.conf"
wait_until 10 deployed branch "$next_head"

# Another owner: the whole checkout belongs to nobody, it still deploys, no dubious ownership.
co="$T/srv/owner"
wait_until 20 grep -qx "start owner" "$T/systemctl.log"
[ -z "$(find -H "$co" ! -user nobody -print)" ] ||
    fail "not owned by nobody: $(find -H "$co" ! -user nobody -print | head -5)"
head_owner=$(commit owner/app.conf "owner 2" "$T/upN")
chown -R nobody: "$T/upN"
wait_until 20 grep -qx "owner 2" "$T/etc/owner/app.conf"
wait_until 10 deployed owner "$head_owner"
[ -z "$(find -H "$co" ! -user nobody -print)" ] ||
    fail "not owned by nobody after an update: $(find -H "$co" ! -user nobody -print | head -5)"
! grep -i dubious "$T/gitopper.log" || fail "dubious ownership in the log"

# Template unit again after a restart; still no enable for plain units.
wait_until 20 all_started
[ "$(line_of "enable getty@tty9")" -lt "$(line_of "start getty@tty9")" ] ||
    fail "getty@tty9 not enabled before start after a restart"
[ "$(grep -c '^enable' "$T/systemctl.log")" = 1 ] || fail "enable called for other units"

for s in follow branch owner lock plain corrupt notdir getty@tty9; do
    if grep -q "\[$s\] state OK -> \(BROKEN\|DIFF\)" "$T/gitopper.log"; then
        fail "$s failed on the way: $(grep "\[$s\] state OK -> \(BROKEN\|DIFF\)" "$T/gitopper.log")"
    fi
done
kill -0 "$GITOPPER_PID" || fail "the daemon died"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "second run: exit $EXIT_STATUS"
echo PASS
