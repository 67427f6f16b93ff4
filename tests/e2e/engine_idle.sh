#!/usr/bin/env bash
# Cheap polls: 20 services on one upstream cost one git process (ls-remote) per idle cycle,
# counted by a git wrapper first on PATH.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
{
    printf '[global]\nupstream = "file://%s/up"\nmount = "%s/srv"\n' "$T" "$T"
    for i in $(seq 1 20); do
        commit "s$i/conf" "service $i" >/dev/null
        printf '[[services]]\nmachine = "testhost"\nservice = "s%s"\n' "$i"
        printf 'dirs = [ { local = "%s/etc/s%s", link = "s%s" } ]\n' "$T" "$i" "$i"
    done
} >"$T/config.toml"

real_git=$(command -v git)
cat >"$T/bin/git" <<SH
#!/bin/sh
echo "\$*" >>"$T/git.log"
exec "$real_git" "\$@"
SH
chmod +x "$T/bin/git"

start_gitopper -t 1s
wait_until 60 grep -qx "start s20" "$T/systemctl.log"
wait_cycles 2 # the start-up's cycles are over

# idle_window N: the git processes run while N more poll cycles complete, in $T/idle.log; one
# ls-remote per cycle (give or take the one under way at either end) and nothing else.
idle_window() {
    : >"$T/git.log"
    local before after ls others
    before=$(cycles)
    wait_cycles "$1"
    cp "$T/git.log" "$T/idle.log"
    after=$(cycles)
    ls=$(grep -c '^-c .* ls-remote ' "$T/idle.log" || true)
    others=$(grep -vc '^-c .* ls-remote ' "$T/idle.log" || true)
    echo "idle: $ls ls-remote, $others other git processes in $((after - before)) cycles"
    [ "$others" = 0 ] || { cat "$T/idle.log"; fail "an idle cycle ran git for something else"; }
    [ "$ls" -ge $((after - before - 1)) ] && [ "$ls" -le $((after - before + 1)) ] ||
        fail "expected one ls-remote per cycle, got $ls in $((after - before)) cycles"
}
idle_window 5

# Once a push is deployed, idle again: back to one process per cycle.
commit s7/conf "service 7 v2" >/dev/null
wait_until 20 grep -qx "service 7 v2" "$T/etc/s7/conf"
wait_cycles 2
idle_window 3
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
