#!/usr/bin/env bash
# One object store for every service of an upstream: 20 services on branch main and 2 on
# branch other share one store; a poll cycle is one ls-remote naming both branches; a push
# that changes one service's paths costs one fetch in the store and a few git processes,
# however many services there are, and only that service is checked out and reloaded (the
# others advance their recorded commit and nothing else). A push to the other branch deploys
# only its two services. Git's processes are counted by a wrapper first on PATH that logs
# its parent's PID: the daemon's own children are the lines that start with its PID.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

real_git=$(command -v git) # for the test's own looks, past the wrapper below
log_git_calls

# commit_files MESSAGE PATH CONTENT [PATH CONTENT...]: one commit in the upstream's current
# branch writing every PATH; prints its hash.
commit_files() {
    local message=$1; shift
    while [ $# -ge 2 ]; do
        mkdir -p "$(dirname "$T/up/$1")"
        printf '%s\n' "$2" >"$T/up/$1"
        shift 2
    done
    git -C "$T/up" add -A
    git -C "$T/up" commit -q -m "$message"
    git -C "$T/up" rev-parse HEAD
}

make_upstream
mains=$(seq -f 's%g' 1 20)
others="o1 o2"
{
    printf '[global]\nupstream = "file://%s/up"\nmount = "%s/srv"\naction = "reload"\n' "$T" "$T"
    for s in $mains; do
        commit "$s/conf" "$s v1" >/dev/null
        printf '[[services]]\nmachine = "testhost"\nservice = "%s"\n' "$s"
        printf 'dirs = [ { local = "%s/etc/%s", link = "%s" } ]\n' "$T" "$s" "$s"
    done
    for s in $others; do
        printf '[[services]]\nmachine = "testhost"\nservice = "%s"\nbranch = "other"\n' "$s"
        printf 'dirs = [ { local = "%s/etc/%s", link = "%s" } ]\n' "$T" "$s" "$s"
    done
} >"$T/config.toml"
git -C "$T/up" checkout -q -b other
other_head=$(commit_files "the other branch" o1/conf "o1 v1" o2/conf "o2 v1")
git -C "$T/up" checkout -q main
main_head=$(git -C "$T/up" rev-parse HEAD)

# ours: the daemon's own git processes in $T/git.log, argv only.
ours() { awk -v pid="$GITOPPER_PID" '$1 == pid { $1 = ""; print substr($0, 2) }' "$T/git.log"; }
ls_remotes() { ours | grep -c ' ls-remote ' || true; }
ls_remotes_above() { [ "$(ls_remotes)" -gt "$1" ]; }
# polls_more N: waits until N more poll cycles have begun.
polls_more() { wait_until 10 ls_remotes_above $(($(ls_remotes) + $1 - 1)); }
all_deployed() { # HASH SERVICE...
    local hash=$1; shift
    for s; do deployed "$s" "$hash" || return 1; done
}

start_gitopper -t 1s
for s in $mains $others; do
    wait_until 60 grep -qx "start $s" "$T/systemctl.log"
done
wait_until 20 all_deployed "$main_head" $mains
wait_until 20 all_deployed "$other_head" $others
for s in $mains $others; do
    [ "$(cat "$T/etc/$s/conf")" = "$s v1" ] || fail "$s shows $(cat "$T/etc/$s/conf")"
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "$(mounts_on "$T/etc/$s") mounts on etc/$s"
done

# One object store for the upstream, whatever the branch; 22 services' trees beside it.
ls -A "$T/srv/.gitopper/stores" >"$T/stores"
[ "$(wc -l <"$T/stores")" = 1 ] || { cat "$T/stores"; fail "not exactly one object store"; }
store="$T/srv/.gitopper/stores/$(cat "$T/stores")"
[ -d "$store/.git" ] || fail "$store is not a repository"
[ "$(ls "$T/srv/.gitopper/trees" | wc -l)" = 22 ] || fail "trees: $(ls "$T/srv/.gitopper/trees")"
[ "$(ours | grep -c ' clone ' || true)" = 1 ] || { ours | grep ' clone '; fail "more than one clone"; }

# Idle cycles: one ls-remote each, naming both branches, and no other git process.
# Start-up is over once the poll loop runs: the second cycle begins after the first is done.
wait_until 10 ls_remotes_above 1
: >"$T/git.log"
wait_until 10 ls_remotes_above 3
cp "$T/git.log" "$T/idle.log"
ours >"$T/idle-ours.log"
[ -s "$T/idle-ours.log" ] || fail "no git process logged while idle"
if grep -v ' ls-remote ' "$T/idle-ours.log"; then fail "an idle cycle ran git for something else"; fi
while read -r line; do
    case "$line" in *" refs/heads/main"*" refs/heads/other"* | *" refs/heads/other"*" refs/heads/main"*) ;;
    *) fail "an ls-remote that does not name both branches: $line" ;; esac
done <"$T/idle-ours.log"

# What the 21 untouched services look like now: the symlink, the trees (named after their
# commits), and the time each tree's files last changed.
snapshot() {
    for s in $mains $others; do
        [ "$s" = s1 ] && continue
        printf '%s %s' "$s" "$(readlink "$T/srv/$s")"
        for tree in "$T/srv/.gitopper/trees/$s".*; do
            printf ' %s %s' "${tree##*/}" "$(find "$tree" -printf '%T@ %p\n' | sort | md5sum)"
        done
        echo
    done
}
snapshot >"$T/trees-before"

# A push that changes only s1's paths. The log starts with a cycle's ls-remote, so the push's
# cycle is one that the log holds from its start.
: >"$T/git.log"
wait_until 10 ls_remotes_above 0
calls_before=$(wc -l <"$T/systemctl.log")
start_ns=$(date +%s%N)
head=$(commit s1/conf "s1 v2")
wait_until 20 grep -qx "s1 v2" "$T/etc/s1/conf"
wait_until 10 calls_above "reload s1" 0
wait_until 20 all_deployed "$head" $mains
took_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
# The cycle is over once the next one has begun.
fetched_then_polled() { ours | sed -n '/ fetch /,$p' | grep -q ' ls-remote '; }
wait_until 10 fetched_then_polled
ours >"$T/push-ours.log"
fetches=$(grep -c ' fetch ' "$T/push-ours.log" || true)
[ "$fetches" = 1 ] || { cat "$T/push-ours.log"; fail "$fetches fetches for one push, not 1"; }
grep ' fetch ' "$T/push-ours.log" | grep -qF -- "-C $store fetch " ||
    { cat "$T/push-ours.log"; fail "the fetch did not run in the store"; }
grep ' fetch ' "$T/push-ours.log" | grep -qF "refs/heads/main:" ||
    fail "the fetch did not ask for main"
# The cycle: from the ls-remote that saw the push to the next ls-remote.
awk '/ ls-remote / { n++ } { print n " " $0 }' "$T/push-ours.log" >"$T/numbered"
cycle=$(awk '/ fetch / { print $1 }' "$T/numbered")
awk -v c="$cycle" '$1 == c { $1 = ""; print substr($0, 2) }' "$T/numbered" >"$T/cycle.log"
processes=$(wc -l <"$T/cycle.log")
echo "the push cycle started $processes git processes for 22 services (deployed in ${took_ms} ms):"
cat "$T/cycle.log"
# ls-remote, fetch, diff, ls-tree; s1's new tree written with git's index of it (1), checked
# against that for what its user wrote before it goes live (1) and again once its watches are
# taken (2); the tree it replaced checked for the same before it is removed (2).
[ "$processes" -le 10 ] || fail "the push cycle started $processes git processes, more than 10"
for s in $mains $others; do
    [ "$s" = s1 ] && continue
    if grep -F "/trees/$s." "$T/push-ours.log"; then fail "git ran in a tree of $s"; fi
done
snapshot >"$T/trees-after"
diff "$T/trees-before" "$T/trees-after" || fail "a tree of an untouched service moved"
polls_more 2 # nothing else is owed
tail -n +$((calls_before + 1)) "$T/systemctl.log" >"$T/calls"
if grep -vx -e daemon-reload -e "reload s1" -e "is-active s1" -e "show -p NeedDaemonReload --value s1" "$T/calls"; then fail "a service whose paths did not change was told"; fi
[ "$(calls "reload s1")" = 1 ] || fail "s1 reloaded $(calls "reload s1") times"
for s in $mains; do
    want="$s v1"; [ "$s" = s1 ] && want="s1 v2"
    [ "$(cat "$T/etc/$s/conf")" = "$want" ] || fail "$s shows $(cat "$T/etc/$s/conf")"
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "$(mounts_on "$T/etc/$s") mounts on etc/$s"
done
all_deployed "$other_head" $others || fail "a push to main moved the services of other"

# A push to the other branch: its two services move and reload, main's do not.
: >"$T/git.log"
calls_before=$(wc -l <"$T/systemctl.log")
git -C "$T/up" checkout -q other
other_head=$(commit_files "both others" o1/conf "o1 v2" o2/conf "o2 v2")
git -C "$T/up" checkout -q main
wait_until 20 grep -qx "o1 v2" "$T/etc/o1/conf"
wait_until 20 grep -qx "o2 v2" "$T/etc/o2/conf"
wait_until 10 calls_above "reload o1" 0
wait_until 10 calls_above "reload o2" 0
wait_until 10 all_deployed "$other_head" $others
wait_until 10 fetched_then_polled
polls_more 2 # nothing else is owed
ours >"$T/other-ours.log"
[ "$(grep -c ' fetch ' "$T/other-ours.log" || true)" = 1 ] || { cat "$T/other-ours.log"; fail "not one fetch"; }
grep ' fetch ' "$T/other-ours.log" | grep -qF "refs/heads/other:" || fail "the fetch did not ask for other"
if grep ' fetch ' "$T/other-ours.log" | grep -F "refs/heads/main:"; then fail "main fetched again"; fi
for s in $mains; do
    if grep -F "/trees/$s." "$T/other-ours.log"; then fail "git ran in a tree of $s"; fi
done
tail -n +$((calls_before + 1)) "$T/systemctl.log" >"$T/calls"
if grep -vx -e daemon-reload -e "reload o1" -e "reload o2" -e "is-active o1" -e "is-active o2" -e "show -p NeedDaemonReload --value o1" -e "show -p NeedDaemonReload --value o2" "$T/calls"; then
    fail "a service of main was told about a push to other"
fi
[ "$(calls "reload o1")" = 1 ] && [ "$(calls "reload o2")" = 1 ] || fail "o1/o2 not reloaded once"
all_deployed "$head" $mains || fail "a push to other moved the services of main"
[ "$(ls -A "$T/srv/.gitopper/stores" | wc -l)" = 1 ] || fail "a second store appeared"

stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
