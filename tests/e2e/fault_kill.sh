#!/usr/bin/env bash
# kill -9 of the daemon in the middle of an update, at each step (first clone, fetch, the
# writing of the new tree, the action), then a restart: it converges on upstream, the action the killed daemon owed is
# carried out, the state file is intact, and every target has exactly one mount. A lock left
# behind under the running daemon is removed after the failure it causes.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# A git and a systemctl that stop at a chosen step: while $T/pause-STEP exists, the process
# that reaches STEP writes its PID to $T/paused-STEP and waits there to be killed.
real_git=$(command -v git)
cat >"$T/bin/git" <<SH
#!/bin/bash
for arg; do
    case \$arg in clone | fetch | restore)
        while [ -e "$T/pause-\$arg" ]; do echo \$\$ >"$T/paused-\$arg"; sleep 0.05; done ;;
    esac
done
exec "$real_git" "\$@"
SH
cat >"$T/bin/systemctl" <<SH
#!/bin/bash
while [ -e "$T/pause-systemctl" ]; do echo \$\$ >"$T/paused-systemctl"; sleep 0.05; done
echo "\$*" >>"$T/systemctl.log"
SH
chmod +x "$T/bin/git" "$T/bin/systemctl"

make_upstream
commit svc/app.conf "v0" >/dev/null
commit svc/one.conf "one v0" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
action = "reload"
[[services]]
machine = "testhost"
service = "svc"
dirs = [
  { local = "$T/etc/svc", link = "svc" },
  { local = "$T/etc/one.conf", link = "svc/one.conf", file = true },
]
TOML

# kill_at STEP: waits until a process stops at STEP, then kills the daemon with SIGKILL and the
# stopped process (its own process group, as the daemon starts every child).
kill_at() {
    wait_until 20 test -s "$T/paused-$1"
    kill -KILL "$GITOPPER_PID"
    wait "$GITOPPER_PID" || true
    kill -KILL -- "-$(cat "$T/paused-$1")" 2>/dev/null || true
    rm -f "$T/pause-$1" "$T/paused-$1"
}

# converged HASH: what a restart must reach. The log shows state files read without complaint.
converged() {
    checkout_at "$T/srv/svc" "$1" &&
        [ "$(git -C "$T/up" show "$1:svc/app.conf")" = "$(cat "$T/etc/svc/app.conf")" ] &&
        [ "$(git -C "$T/up" show "$1:svc/one.conf")" = "$(cat "$T/etc/one.conf")" ]
}
check_after_restart() { # HASH STEP
    wait_until 20 converged "$1"
    [ "$(mounts_on "$T/etc/svc")" = 1 ] || fail "after a kill at $2: $(mounts_on "$T/etc/svc") mounts on etc/svc"
    [ "$(mounts_on "$T/etc/one.conf")" = 1 ] || fail "after a kill at $2: $(mounts_on "$T/etc/one.conf") mounts on one.conf"
    expect_not_in "$T/gitopper.log" "is damaged"
    expect_not_in "$T/gitopper.log" "unreadable"
    [ -z "$(ls "$T/srv" | grep -v '^svc$')" ] || fail "after a kill at $2, left in srv: $(ls "$T/srv")"
}

# 1. Killed during the very first clone: the half-made clone is not taken for a checkout.
touch "$T/pause-clone"
start_gitopper
kill_at clone
start_gitopper
check_after_restart "$(git -C "$T/up" rev-parse HEAD)" clone
expect_in "$T/systemctl.log" "start svc"

# 2.-4. Killed during an update, before the fetch, while the new tree is written, and after the
# switch but before the action: the restarted daemon deploys the commit and reloads the service.
for step in fetch restore systemctl; do
    reloads=$(calls "reload svc")
    touch "$T/pause-$step"
    hash=$(commit svc/app.conf "v-$step")
    [ "$step" = restore ] && hash=$(commit svc/one.conf "one v-$step")
    kill_at "$step"
    cp "$T/state/gitopper-state/svc.json" "$T/state-after-kill-$step.json"
    start_gitopper
    check_after_restart "$hash" "$step"
    wait_until 10 calls_above "reload svc" "$reloads"
    # The killed daemon's state file was whole (an atomic write), and so is the new one.
    for file in "$T/state-after-kill-$step.json" "$T/state/gitopper-state/svc.json"; do
        [ "$(tail -c 2 "$file")" = "}" ] || [ "$(tail -c 1 "$file")" = "}" ] ||
            fail "state file $file is cut short"
    done
done
expect_in "$T/gitopper.log" "was checked out but its action never ran; running it now"
# What the killed daemons left of their writes is gone; a write of the running one may be
# under way (its temp file for a moment), so this waits for a listing without one.
only_state_file() { [ "$(ls "$T/state/gitopper-state")" = svc.json ]; }
wait_until 10 only_state_file || fail "left in gitopper-state/: $(ls "$T/state/gitopper-state")"

# A lock left by a git killed under the running daemon: the next update fails once, naming the
# lock, the leftover is removed, and the one after that deploys.
# The lock is on the ref the next fetch moves, in the object store.
lock=$(echo "$T"/srv/.gitopper/stores/*/.git)/refs/remotes/origin/main.lock
mkdir -p "$(dirname "$lock")"
touch "$lock"
hash=$(commit svc/app.conf "v-lock")
wait_until 20 converged "$hash"
expect_in "$T/gitopper.log" "Another git process seems to be running in this repository"
expect_in "$T/gitopper.log" "[svc] removing stale $lock"

# A restart with nothing owed does not reload: the action runs once per change, not per start.
stop_gitopper TERM
reloads=$(calls "reload svc")
start_gitopper
wait_until 20 converged "$(git -C "$T/up" rev-parse HEAD)"
wait_cycles 2
[ "$(calls "reload svc")" = "$reloads" ] || fail "a restart with nothing owed reloaded the service"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
