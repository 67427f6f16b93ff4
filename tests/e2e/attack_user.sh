#!/usr/bin/env bash
# A compromised service user ("nobody") attacks root between two runs: it swaps a parent of
# its target for a symlink, puts a .git symlink to files it wants deleted into its tree,
# leaves hooks in its object store for whoever runs git next, plants symlinks and directories
# in a sticky mount base, and puts a FIFO where a file of its tree was. Also: state dir and
# mount base modes at start.
# "victim" directories stand in for system paths.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/victim/etcdir" "$T/victim/gitdir" "$T/hookout"
echo "keep" >"$T/victim/etcdir/precious"
echo "keep" >"$T/victim/gitdir/precious.lock"
chmod 777 "$T/hookout"
mkdir -p "$T/home/svc" && chown nobody: "$T/home/svc"
mkdir -p "$T/tmp" && chmod 1777 "$T/tmp"

make_upstream
commit app/app.conf "app 1" >/dev/null
chown -R nobody: "$T/up"
# "hooked" changes from nobody to root: a git daemon serves it whoever asks.
start_git_daemon "$T/up"

write_config() { # USER-LINE-FOR-hooked
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
action = "reload"

[[services]]
machine = "testhost"
service = "parent"
user = "nobody"
dirs = [ { local = "$T/home/svc/conf/app", link = "app" } ]

[[services]]
machine = "testhost"
service = "dotgit"
user = "nobody"
dirs = [ { local = "$T/etc/dotgit", link = "app" } ]

[[services]]
machine = "testhost"
service = "hooked"
upstream = "git://127.0.0.1:$GIT_DAEMON_PORT/up"
$1
dirs = [ { local = "$T/etc/hooked", link = "app" } ]

[[services]]
machine = "testhost"
service = "sparse"
user = "nobody"
dirs = [ { local = "$T/etc/sparse", link = "app" } ]

[[services]]
machine = "testhost"
service = "sym"
user = "nobody"
mount = "$T/tmp"
dirs = [ { local = "$T/etc/sym", link = "app" } ]

[[services]]
machine = "testhost"
service = "foreign"
user = "nobody"
mount = "$T/tmp"
dirs = [ { local = "$T/etc/foreign", link = "app" } ]

[[services]]
machine = "testhost"
service = "shared"
user = "nobody"
mount = "$T/tmp"
dirs = [ { local = "$T/etc/shared", link = "app" } ]
TOML
}
write_config 'user = "nobody"'
# In the sticky base, before anything runs: a symlink and another user's directory.
as_nobody ln -s "$T/victim/etcdir" "$T/tmp/sym"
mkdir "$T/tmp/foreign" && chown daemon: "$T/tmp/foreign"

# ---- state dir and mount base modes are checked at start ----------------------------------
mkdir -m 777 "$T/open-state"
expect_status 1 "$GITOPPER" -c "$T/config.toml" --state "$T/open-state" -h testhost -m 127.0.0.1:0
expect_in "$T/err" "state directory $T/open-state has mode 0777"
mkdir "$T/user-state" && chown nobody "$T/user-state"
expect_status 1 "$GITOPPER" -c "$T/config.toml" --state "$T/user-state" -h testhost -m 127.0.0.1:0
expect_in "$T/err" "state directory $T/user-state belongs to uid $(id -u nobody)"
mkdir -m 777 "$T/srv"
expect_status 1 "$GITOPPER" -c "$T/config.toml" --state "$T/state" -h testhost -m 127.0.0.1:0
expect_in "$T/err" "mount $T/srv has mode 0777"
chmod 755 "$T/srv"
# A mount base in a directory another user owns: that user could swap it for a symlink.
mkdir -p "$T/users-dir/base" && chown nobody "$T/users-dir"
sed "s|mount = \"$T/srv\"|mount = \"$T/users-dir/base\"|" "$T/config.toml" >"$T/users-dir.toml"
expect_status 1 "$GITOPPER" -c "$T/users-dir.toml" --state "$T/state" -h testhost -m 127.0.0.1:0
expect_in "$T/err" "mount $T/users-dir/base: $T/users-dir is uid $(id -u nobody)'s with mode 0755"
rmdir "$T/state"
start_gitopper -t 1h
wait_until 20 grep -q "http: .*listening" "$T/gitopper.log"
[ "$(stat -c %a "$T/state")" = 700 ] || fail "a new state dir is $(stat -c %a "$T/state")"

wait_until 20 grep -qx "start shared" "$T/systemctl.log"
for s in parent dotgit hooked sparse; do wait_until 20 grep -qx "start $s" "$T/systemctl.log"; done
# Sticky base: ours is made by root for the user, 0750; the others are refused, not followed.
[ "$(stat -L -c %U:%a "$T/tmp/shared")" = nobody:750 ] || fail "shared checkout: $(stat -L -c %U:%a "$T/tmp/shared")"
wait_until 10 grep -q "\[sym\] state OK -> BROKEN: $T/tmp/sym: \"sym\" is a symlink; not following it" "$T/gitopper.log"
wait_until 10 grep -q "\[foreign\] state OK -> BROKEN: $T/tmp/foreign belongs to uid $(id -u daemon), neither root nor nobody" "$T/gitopper.log"
[ "$(stat -c %U "$T/victim/etcdir")" = root ] || fail "the victim directory was given away"
[ "$(ls -A "$T/victim/etcdir")" = precious ] || fail "something was written into the victim"
[ "$(stat -c %U "$T/tmp/foreign")" = daemon ] || fail "the foreign directory was taken"
[ "$(mounts_on "$T/etc/sym")$(mounts_on "$T/etc/foreign")" = 00 ] || fail "sym or foreign mounted"
# The user replaces its linked directory by a copy, again and again (the old one kept alive
# elsewhere): our outdated mount is replaced, never stacked on.
reverts() { grep -c "\[shared\] local changes reverted" "$T/gitopper.log" || true; }
reverts_above() { [ "$(reverts)" -gt "$1" ]; }
for n in 1 2 3; do
    reverted=$(reverts)
    as_nobody sh -c "mv '$T/tmp/shared/app' '$T/home/svc/keep$n' &&
        cp -a '$T/home/svc/keep$n' '$T/tmp/shared/app' && echo x >>'$T/tmp/shared/app/app.conf'"
    wait_until 10 reverts_above "$reverted"
    [ "$(mounts_on "$T/etc/shared")" = 1 ] || fail "cycle $n: $(mounts_on "$T/etc/shared") mounts on etc/shared"
done
[ "$(cat "$T/etc/shared/app.conf")" = "app 1" ] || fail "etc/shared shows $(cat "$T/etc/shared/app.conf")"

# A file name with a newline, made in a mounted directory: the drift report escapes it, so
# it cannot forge a log line or a line of state info.
as_nobody sh -c "printf x >'$T/etc/shared/evil
[shared] state OK -> FREEZE: forged'"
wait_until 10 grep -q 'local changes reverted.*evil\\n' "$T/gitopper.log"
! grep -q '^\[shared\] state OK -> FREEZE: forged' "$T/gitopper.log" || fail "a file name forged a log line"
curl -sS "http://127.0.0.1:$(http_port)/list/service/shared" >"$T/shared.json"
expect_in "$T/shared.json" 'evil\\n[shared]'
stop_gitopper TERM

# ---- between the runs, the service user strikes ------------------------------------------
# The target's parent (in the user's home) becomes a symlink to a victim directory.
as_nobody mv "$T/home/svc/conf" "$T/home/svc/conf.old"
as_nobody ln -s "$T/victim/etcdir" "$T/home/svc/conf"
# A .git symlink in the tree, to a directory with a "lock" a git (or its cleanup) would delete.
as_nobody ln -s "$T/victim/gitdir" "$T/srv/dotgit/.git"
# A hook in the user's store for whoever runs git there next: after the user change below,
# "hooked" is root's, and root must not run git in the user's store.
cat >"$T/hook" <<SH
#!/bin/sh
id -u >"$T/hookout/ran-as"
SH
chmod 755 "$T/hook"
store=$(find "$T/srv/.gitopper/stores" -mindepth 1 -maxdepth 1 -user nobody -name '127.0.0.1-*')
[ -d "$store/.git" ] || fail "no store of nobody's: $store"
as_nobody mkdir -p "$store/.git/hooks"
for h in post-checkout post-index-change reference-transaction; do as_nobody cp "$T/hook" "$store/.git/hooks/$h"; done
# A FIFO where a file of the tree was: whoever opens it to read blocks.
as_nobody rm "$T/srv/sparse/app/app.conf"
as_nobody mkfifo "$T/srv/sparse/app/app.conf"
write_config '' # "hooked" now runs as root
head=$(commit app/app.conf "app 2")
chown -R nobody: "$T/up"
: >"$T/systemctl.log"

start_gitopper -t 1s
wait_until 20 grep -q "\[parent\] state OK -> BROKEN: local $T/home/svc/conf/app: \"$T/home/svc/conf\" is a symlink" "$T/gitopper.log"
[ "$(mounts_on "$T/victim/etcdir/app")" = 0 ] || fail "root mounted over the victim directory"
[ "$(ls -A "$T/victim/etcdir")" = precious ] || fail "root created something in the victim"

# .git symlink: nothing deleted through it; the deploy goes on, and the old tree goes.
wait_until 20 grep -qx "app 2" "$T/etc/dotgit/app.conf"
[ -e "$T/victim/gitdir/precious.lock" ] || fail "a file was deleted through a .git symlink"
[ -e "$T/victim/gitdir" ] && [ "$(ls -A "$T/victim/gitdir")" = precious.lock ] ||
    fail "the victim directory changed: $(ls -A "$T/victim/gitdir")"

# A new owner: the old tree is moved aside and cloned anew, never chowned; no hook ran as root
# (root has a store of its own).
wait_until 20 grep -qx "app 2" "$T/etc/hooked/app.conf"
[ ! -e "$T/hookout/ran-as" ] || [ "$(cat "$T/hookout/ran-as")" != 0 ] ||
    fail "the old user's hook ran as root"
[ "$(stat -L -c %U "$T/srv/hooked")" = root ] || fail "hooked checkout owned by $(stat -L -c %U "$T/srv/hooked")"
aside=$(find "$T/srv" -maxdepth 1 -name 'hooked.broken-*')
[ -n "$aside" ] && [ "$(stat -c %U "$aside")" = nobody ] || fail "the old tree was not kept as it was"
grep -q "\[hooked\] $T/srv/.gitopper/trees/hooked\.[0-9a-f.]* is not a usable work tree (it belongs to uid $(id -u nobody), not 0)" "$T/gitopper.log" ||
    fail "no word of the old tree of hooked"

# The FIFO: root never opens it, and the daemon does not hang (the services of the same poll
# thread above updated); git, as the user, cannot save it as a patch: kept, and said why.
wait_until 20 grep -q "\[sparse\] state OK -> BROKEN: drift kept: could not save patch" "$T/gitopper.log"
[ -p "$T/srv/sparse/app/app.conf" ] || fail "the FIFO was not kept as it was"
kill -0 "$GITOPPER_PID" || fail "the daemon died"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
