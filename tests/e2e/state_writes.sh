#!/usr/bin/env bash
# State is one file per service, written only when that service's state changed: with 50
# services, a deploy of one rewrites its file alone (the 49 others keep inode and mtime), and
# a push that changes no service's paths, which every service follows, writes none at all.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# Poll cycles are told by the daemon's ls-remote processes, logged by a git wrapper with
# their parent's PID.
log_git_calls

make_upstream
services=$(seq -f 's%g' 1 50)
{
    printf '[global]\nupstream = "file://%s/up"\nmount = "%s/srv"\naction = "reload"\n' "$T" "$T"
    for s in $services; do
        mkdir -p "$T/up/$s" && printf '%s v1\n' "$s" >"$T/up/$s/conf"
        printf '[[services]]\nmachine = "testhost"\nservice = "%s"\n' "$s"
        printf 'dirs = [ { local = "%s/etc/%s", link = "%s" } ]\n' "$T" "$s" "$s"
    done
} >"$T/config.toml"
first=$(commit README "fifty services")

ours() { awk -v pid="$GITOPPER_PID" '$1 == pid { $1 = ""; print substr($0, 2) }' "$T/git.log"; }
ls_remotes() { ours | grep -c ' ls-remote ' || true; }
ls_remotes_above() { [ "$(ls_remotes)" -gt "$1" ]; }
all_deployed() { for s in $services; do deployed "$s" "$1" || return 1; done; }
# snapshot FILE: name, inode, mtime (ns), ctime (ns) and size of every entry of gitopper-state/.
snapshot() { (cd "$T/state/gitopper-state" && stat -c '%n %i %.9Y %.9Z %s' -- * | sort) >"$1"; }
# cycles_since_mark N: more than N poll cycles have begun since the last `mark`.
mark() { MARK=$(ls_remotes); }
cycles_since_mark() { ls_remotes_above $((MARK + $1)); }

start_gitopper -t 1s
for s in $services; do wait_until 90 grep -qx "start $s" "$T/systemctl.log"; done
wait_until 20 all_deployed "$first"
mark
wait_until 10 cycles_since_mark 2 # what start-up had to write is written
snapshot "$T/started"
[ "$(wc -l <"$T/started")" = 50 ] || { cat "$T/started"; fail "not 50 state files"; }
for s in $services; do
    grep -q "^$s.json " "$T/started" || fail "no state file for $s"
done
# Idle polls write nothing.
mark
wait_until 10 cycles_since_mark 2
snapshot "$T/idle"
diff "$T/started" "$T/idle" || fail "idle polls wrote state files"

# A deploy of s7: its file alone.
head=$(commit s7/conf "s7 v2")
wait_until 20 grep -qx "s7 v2" "$T/etc/s7/conf"
wait_until 10 calls_above "reload s7" 0
wait_until 20 all_deployed "$head"
mark
wait_until 10 cycles_since_mark 1
snapshot "$T/deployed"
diff "$T/idle" "$T/deployed" >"$T/diff" || true
changed=$(grep '^[<>]' "$T/diff" | awk '{ print $2 }' | sort -u)
[ "$changed" = s7.json ] || { cat "$T/diff"; fail "the deploy of s7 changed: $changed"; }
[ "$(grep -c '^>' "$T/diff")" = 1 ] || { cat "$T/diff"; fail "not one new line for s7.json"; }
expect_in "$T/state/gitopper-state/s7.json" "\"to\": \"$head\""
for s in s6 s8 s50; do expect_not_in "$T/state/gitopper-state/$s.json" "$head"; done

# A push to no service's paths: every service follows it, no file is written.
elsewhere=$(commit unrelated/file "nobody's")
wait_until 20 all_deployed "$elsewhere"
mark
wait_until 10 cycles_since_mark 2
snapshot "$T/elsewhere"
diff "$T/deployed" "$T/elsewhere" || fail "a push to no service's paths wrote state files"
[ "$(calls "reload s7")" = 1 ] || fail "s7 reloaded $(calls "reload s7") times"
if grep -E '^(reload|restart) s([0-68-9]|[0-9][0-9])$' "$T/systemctl.log"; then
    fail "a service other than s7 was reloaded"
fi

stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
