# shellcheck shell=bash
# scenario_startup (startup_50) and the constant of its git goal.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only startup_50.

# The constant C of the start-up goal git_fresh - C <= 2 per service.
STARTUP_GIT_C=10

# startup N: time from starting the daemon until all N services have "start sN" recorded,
# (a) from fresh clones (empty mount dir and state dir), (b) restarted on those checkouts.
scenario_startup() {
    local name=$1 n=$2
    local up=$CUR/up state=$CUR/state
    make_upstream "$up" "$n"
    write_config "$CUR/config.toml" "$up" "$CUR/srv" "$CUR/etc" "$n"
    local limit=$((120 + n))

    : >"$T/systemctl.log"
    : >"$T/git.log"
    local t0 t1 fresh_ns existing_ns
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s
    wait_starts "$n" "$limit"
    t1=$(now_ns)
    fresh_ns=$((t1 - t0))
    sleep 0.5 # the poll that follows start-up, so the stop below does not cut a git run
    cp "$T/git.log" "$CUR/fresh-git.log"
    local fresh_sysctl
    fresh_sysctl=$(wc -l <"$T/systemctl.log")
    stop_daemon
    local fresh_exit=$DAEMON_EXIT
    local mounts_between
    mounts_between=$(awk -v t="$CUR/etc/" 'index($5, t) == 1' /proc/self/mountinfo | wc -l)

    : >"$T/systemctl.log"
    : >"$T/git.log"
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s
    wait_starts "$n" "$limit"
    t1=$(now_ns)
    existing_ns=$((t1 - t0))
    sleep 0.5
    cp "$T/git.log" "$CUR/existing-git.log"
    local existing_sysctl
    existing_sysctl=$(wc -l <"$T/systemctl.log")
    local mounts_after
    mounts_after=$(awk -v t="$CUR/etc/" 'index($5, t) == 1' /proc/self/mountinfo | wc -l)
    stop_daemon
    local existing_exit=$DAEMON_EXIT

    local fls foth fby els eoth eby
    read -r fls foth fby < <(git_split "$CUR/fresh-git.log")
    read -r els eoth eby < <(git_split "$CUR/existing-git.log")
    local fresh_s existing_s
    fresh_s=$(ns_to_s "$fresh_ns")
    existing_s=$(ns_to_s "$existing_ns")
    local git_fresh=$((fls + foth)) git_per goal_fresh goal_existing goal_git
    git_per=$(ratio "$git_fresh" "$n")
    goal_fresh=$(mark "$fresh_s" "<=" 1)
    goal_existing=$(mark "$existing_s" "<=" 0.3)
    # At most 2 git processes per service plus a constant (the post-start poll and the like).
    goal_git=$(mark $((git_fresh - STARTUP_GIT_C)) "<=" $((2 * n)))
    local goals="fresh<=1s $goal_fresh; existing<=0.3s $goal_existing"
    goals+="; git_fresh-$STARTUP_GIT_C<=$((2 * n)) $goal_git"
    STARTUP_ROWS+=("$(printf '%-17s %8s  %8s  %10s  %-16s  %-14s  %s' "$name" "$n" "$fresh_s" \
        "$existing_s" "$git_fresh ($git_per/svc)" "$((els + eoth))" "$goals")")
    log "$name: git by subcommand, fresh: ls-remote:$fls,$fby; existing: ls-remote:$els,$eby"
    log "$name: mounts on $CUR/etc after stop: $mounts_between; after restart: $mounts_after"
    json_add "$(printf '{"scenario":"%s","kind":"startup","services":%d,"upstreams":1,"fresh_s":%s,"existing_s":%s,"fresh_git_processes":%d,"fresh_git_by_subcommand":"ls-remote:%d,%s","existing_git_processes":%d,"existing_git_by_subcommand":"ls-remote:%d,%s","fresh_systemctl_calls":%d,"existing_systemctl_calls":%d,"mounts_after_stop":%d,"mounts_after_restart":%d,"exit_status_fresh":%d,"exit_status_existing":%d,"fresh_git_per_service":%s,"goal_fresh_1s":"%s","goal_existing_0_3s":"%s","git_goal_constant":%d,"goal_git_fresh_2_per_service":"%s","loadavg1_end":%s}' \
        "$name" "$n" "$fresh_s" "$existing_s" "$git_fresh" "$fls" "$fby" "$((els + eoth))" \
        "$els" "$eby" "$fresh_sysctl" "$existing_sysctl" "$mounts_between" "$mounts_after" \
        "$fresh_exit" "$existing_exit" "$(json_num "$git_per")" "$goal_fresh" "$goal_existing" \
        "$STARTUP_GIT_C" "$goal_git" "$(loadavg1)")"
}
