#!/usr/bin/env bash
# The layout of gitopper before object stores is taken over at the first start: a clone per
# service at <mount>/<service> (blobless, sparse on its link, detached; or, as the Go tool
# makes it, with every blob, cone-mode sparse, on its branch), bind mounts of its
# links, the single state file gitopper-state.json with a freeze and history, a saved drift
# patch. Afterwards <mount>/<service> is our symlink to a plain tree of the one store, every
# target has one mount, the old clones are gone, the freeze, history and patch are kept, a
# local edit in an old clone is saved and reverted, and only a service whose files changed
# is reloaded. The services' files never go missing while this happens.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

real_git=$(command -v git) # the old layout is made without the wrapper below
log_git_calls

# Four services, one link each:
#   frozen  frozen at its clone's commit in the old state file; upstream changed its path since
#   quiet   cloned at an older commit; none of its paths changed since
#   moved   cloned at an older commit; its path changed since
#   edited  cloned at the head, with a local edit in the clone
#   golike  as the Go tool clones: all blobs, cone-mode sparse on its directory, on branch main
services="frozen quiet moved edited golike"
make_upstream
for s in $services; do commit "$s/conf" "$s 1" >/dev/null; done
pin=$(commit frozen/conf "frozen 2")
commit frozen/conf "frozen 3" >/dev/null
commit moved/conf "moved 3" >/dev/null
head=$(commit elsewhere/file "nobody's")

{
    printf '[global]\nupstream = "file://%s/up"\nmount = "%s/srv"\naction = "reload"\n' "$T" "$T"
    for s in $services; do
        printf '[[services]]\nmachine = "testhost"\nservice = "%s"\n' "$s"
        printf 'dirs = [ { local = "%s/etc/%s", link = "%s" } ]\n' "$T" "$s" "$s"
    done
} >"$T/config.toml"

# old_clone SERVICE COMMIT: what the previous version made for a service with one directory
# link of its name: the clone (0750, config 0600), sparse on /SERVICE/, detached at COMMIT,
# and the link bind-mounted on its target.
old_clone() {
    local dir="$T/srv/$1"
    "$real_git" clone -q --filter=blob:none --no-checkout --branch main "file://$T/up" "$dir"
    chmod 750 "$dir" && chmod 600 "$dir/.git/config"
    "$real_git" -C "$dir" sparse-checkout set --no-cone "/$1/"
    "$real_git" -C "$dir" checkout -q --detach "$2"
    mkdir -p "$T/etc/$1"
    mount --bind "$dir/$1" "$T/etc/$1"
}
mkdir -p "$T/srv" && chmod 755 "$T/srv"
old_clone frozen "$pin"
old_clone quiet "$pin"
old_clone moved "$pin"
old_clone edited "$head"
# go_clone SERVICE: the Go tool's checkout of a service with one directory link.
go_clone() {
    local dir="$T/srv/$1"
    "$real_git" clone -q --no-checkout --branch main "file://$T/up" "$dir"
    "$real_git" -C "$dir" sparse-checkout set --cone "$1"
    "$real_git" -C "$dir" checkout -q main
    mkdir -p "$T/etc/$1"
    mount --bind "$dir/$1" "$T/etc/$1"
}
go_clone golike
[ "$("$real_git" -C "$T/srv/golike" symbolic-ref HEAD)" = refs/heads/main ] || fail "golike is not on main"
[ "$(ls "$T/srv/quiet")" = quiet ] || fail "the old clone is not sparse: $(ls "$T/srv/quiet")"
printf 'edited by hand\n' >"$T/srv/edited/edited/conf"
for s in $services; do [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "old mount on $s"; done
[ "$(cat "$T/etc/frozen/conf")" = "frozen 2" ] && [ "$(cat "$T/etc/edited/conf")" = "edited by hand" ] ||
    fail "the old layout does not show what it should"

# The old single state file (version 1): the freeze, and history for two services.
cat >"$T/state/gitopper-state.json" <<JSON
{"version": 1, "services": {
 "frozen": {"frozen": true, "pin": "$pin", "info": "", "history": [
  {"time": 1700000000, "from": "", "to": "$pin", "trigger": "start", "result": "ok"},
  {"time": 1700000100, "from": "$pin", "to": "$pin", "trigger": "poll", "result": "old frozen entry"}]},
 "quiet": {"frozen": false, "pin": "", "info": "", "applied": "$pin", "history": [
  {"time": 1700000000, "from": "", "to": "$pin", "trigger": "start", "result": "old quiet entry"}]}}}
JSON
chmod 600 "$T/state/gitopper-state.json"
# A drift patch the old version saved for frozen.
mkdir -m 700 -p "$T/state/gitopper-drift/frozen"
old_patch="$T/state/gitopper-drift/frozen/20231114T221320Z-${pin:0:8}.patch"
printf 'diff --git a/frozen/conf b/frozen/conf\n' >"$old_patch"
chmod 600 "$old_patch"
cp "$old_patch" "$T/old.patch"

# A reader of every service's file, from before the start until the takeover is done: each
# round opens and reads each file; a failure or an empty file is written to $T/errors.
cat >"$T/reader.py" <<'PY'
import os, sys, time
out, paths = sys.argv[1], sys.argv[2:]
rounds = 0
while not os.path.exists(os.path.join(out, "reader.stop")):
    rounds += 1
    for path in paths:
        try:
            with open(path) as f:
                if not f.read().strip():
                    raise OSError("%s is empty" % path)
        except OSError as e:
            with open(os.path.join(out, "errors"), "a") as f:
                f.write("round %d: %s\n" % (rounds, e))
    time.sleep(0.002)  # paced: a reader, not a second load on the machine
with open(os.path.join(out, "reader.rounds"), "w") as f:
    f.write("%d\n" % rounds)
PY
python3 "$T/reader.py" "$T" $(for s in $services; do echo "$T/etc/$s/conf"; done) &
READER_PID=$!
cleanup_hooks+=("kill $READER_PID 2>/dev/null; wait $READER_PID 2>/dev/null")

ours() { awk -v pid="$GITOPPER_PID" '$1 == pid { $1 = ""; print substr($0, 2) }' "$T/git.log"; }
ls_remotes_above() { [ "$(ours | grep -c ' ls-remote ' || true)" -gt "$1" ]; }
state_of() { curl -sS "http://127.0.0.1:$(http_port)/list/service/$1" | grep -q "\"state\":\"$2\""; }

start_gitopper -t 1s
for s in $services; do
    wait_until 30 grep -qx "start $s" "$T/systemctl.log"
    wait_until 10 grep -qF "[$s] moved $T/srv/$s into the object store" "$T/gitopper.log"
done
wait_until 20 deployed moved "$head"
wait_until 10 grep -qx "moved 3" "$T/etc/moved/conf"
wait_until 10 calls_above "reload moved" 0
wait_until 20 deployed quiet "$head"
wait_until 20 deployed edited "$head"
wait_until 20 deployed golike "$head"
wait_until 10 deployed frozen "$pin"
wait_until 10 state_of frozen FREEZE
wait_until 10 ls_remotes_above 2 # a few polls more: nothing else is owed
touch "$T/reader.stop"
wait "$READER_PID"
[ ! -e "$T/errors" ] || { head "$T/errors"; fail "a service's file went missing during the takeover"; }
echo "the reader read every file $(cat "$T/reader.rounds") times"

# The new layout: a symlink to a plain tree of the one store, one mount per target, no old clone.
[ "$(ls -A "$T/srv/.gitopper/stores" | wc -l)" = 1 ] || fail "not one object store"
for s in $services; do
    [ -L "$T/srv/$s" ] || fail "$T/srv/$s is not a symlink"
    commit=$(live_commit "$T/srv/$s")
    case $(readlink "$T/srv/$s") in .gitopper/trees/"$s".????????."${commit:0:12}") ;;
    *) fail "$T/srv/$s points to $(readlink "$T/srv/$s")" ;; esac
    [ ! -e "$T/srv/$s/.git" ] || fail "the tree of $s has git files"
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "$(mounts_on "$T/etc/$s") mounts on etc/$s"
    [ ! -e "$T/srv/.gitopper/migrated-$s" ] || fail "the old clone of $s is still there"
done
[ -z "$(find "$T/srv" -maxdepth 1 -mindepth 1 ! -name .gitopper ! -type l)" ] ||
    fail "left in srv: $(ls -A "$T/srv")"
expect_not_in "$T/gitopper.log" "not a usable work tree"

# frozen: at its pin, FREEZE, its patch and its history kept, never told anything.
[ "$(cat "$T/etc/frozen/conf")" = "frozen 2" ] || fail "frozen shows $(cat "$T/etc/frozen/conf")"
[ "$(live_commit "$T/srv/frozen")" = "$pin" ] || fail "frozen's tree moved"
cmp "$T/old.patch" "$old_patch" || fail "the saved drift patch of frozen changed or went"
expect_in "$T/state/gitopper-state/frozen.json" '"frozen": true'
expect_in "$T/state/gitopper-state/frozen.json" "\"pin\": \"$pin\""
expect_in "$T/state/gitopper-state/frozen.json" '"result": "old frozen entry"'
expect_in "$T/state/gitopper-state/quiet.json" '"result": "old quiet entry"'
[ -e "$T/state/gitopper-state.json.migrated" ] || fail "the old state file was not kept"
# quiet: follows the head without a checkout of anything new, never reloaded.
[ "$(cat "$T/etc/quiet/conf")" = "quiet 1" ] || fail "quiet shows $(cat "$T/etc/quiet/conf")"
# moved: deployed and reloaded once.
[ "$(calls "reload moved")" = 1 ] || fail "moved reloaded $(calls "reload moved") times"
# edited: the edit saved as a patch named after the clone's commit, then reverted; the
# service ran on the edit, so it is told, as after any revert, and the history says so.
[ "$(cat "$T/etc/edited/conf")" = "edited 1" ] || fail "edited shows $(cat "$T/etc/edited/conf")"
ls "$T/state/gitopper-drift/edited" >"$T/patches"
[ "$(wc -l <"$T/patches")" = 1 ] || { cat "$T/patches"; fail "not one patch for edited"; }
grep -q -- "-${head:0:8}\.patch\$" "$T/patches" || { cat "$T/patches"; fail "the patch is not named after the commit"; }
expect_in "$T/state/gitopper-drift/edited/$(cat "$T/patches")" "+edited by hand"
expect_in "$T/gitopper.log" "[edited] local changes reverted to git's version"
expect_in "$T/state/gitopper-state/edited.json" '"trigger": "drift"'
[ "$(calls "reload edited")" = 1 ] || fail "edited reloaded $(calls "reload edited") times after its edit was reverted, not once"
for s in frozen quiet golike; do
    if grep -E "^(reload|restart) $s\$" "$T/systemctl.log"; then
        fail "$s was told, though its files did not change"
    fi
done
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# A restart on the new layout: nothing to take over, still one mount each, nobody reloaded.
calls_before=$(wc -l <"$T/systemctl.log")
log_before=$(wc -l <"$T/gitopper.log")
start_gitopper -t 1s
for s in $services; do wait_until 20 calls_above "start $s" 1; done
wait_until 10 ls_remotes_above 2
tail -n +$((calls_before + 1)) "$T/systemctl.log" >"$T/calls"
if grep -E '^(reload|restart) ' "$T/calls"; then fail "a restart on the new layout told a service"; fi
for s in $services; do
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "after a restart: $(mounts_on "$T/etc/$s") mounts on etc/$s"
done
tail -n +$((log_before + 1)) "$T/gitopper.log" >"$T/restart.log"
expect_not_in "$T/restart.log" "into the object store"
expect_not_in "$T/restart.log" "checking out"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
