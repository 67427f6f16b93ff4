# shellcheck shell=bash
# scenario_startup_scale (startup_scale: 200 and 1000 services, fresh) and
# fresh_startup.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only startup_scale.

# startup_scale SMALL LARGE TIMEOUT: fresh start-ups (empty mount and state dirs) of SMALL and
# of LARGE services, as startup's (a), each given TIMEOUT s (n/a past it), and LARGE/SMALL.
scenario_startup_scale() {
    local name=$1 small=$2 large=$3 timeout=$4 k
    local -A sc_secs=() sc_gits=() sc_started=() sc_exits=() sc_bys=()
    for k in "$small" "$large"; do
        fresh_startup "$k" "$timeout"
        sc_secs[$k]=$FRESH_S sc_gits[$k]=$FRESH_GIT sc_started[$k]=$STARTS sc_exits[$k]=$DAEMON_EXIT
        sc_bys[$k]=$FRESH_BY
        log "$name: $k services: $STARTS started, in ${FRESH_S} s; git processes $FRESH_GIT ($FRESH_BY)"
    done
    local r goal_large goal_ratio
    r=$(ratio "${sc_secs[$large]}" "${sc_secs[$small]}")
    goal_large=$(mark "${sc_secs[$large]}" "<=" 20)
    goal_ratio=$(mark "$r" "<=" 5.5)
    for k in "$small" "$large"; do
        local goals="-"
        [ "$k" != "$large" ] || goals="fresh<=20s $goal_large; $large/$small=$r <=5.5 $goal_ratio"
        STARTUP_ROWS+=("$(printf '%-17s %8s  %8s  %10s  %-16s  %-14s  %s' "$name" "$k" "${sc_secs[$k]}" \
            - "${sc_gits[$k]} ($(ratio "${sc_gits[$k]}" "$k")/svc)" - "$goals")")
    done
    json_add "$(printf '{"scenario":"%s","kind":"startup_scale","upstreams":1,"timeout_s":%d,"services":[%d,%d],"fresh_s":[%s,%s],"started":[%d,%d],"fresh_git_processes":[%d,%d],"fresh_git_by_subcommand":["%s","%s"],"ratio":%s,"goal_large_20s":"%s","goal_ratio_5_5":"%s","exit_status":[%d,%d],"loadavg1_end":%s}' \
        "$name" "$timeout" "$small" "$large" "$(json_num "${sc_secs[$small]}")" "$(json_num "${sc_secs[$large]}")" \
        "${sc_started[$small]}" "${sc_started[$large]}" "${sc_gits[$small]}" "${sc_gits[$large]}" "${sc_bys[$small]}" \
        "${sc_bys[$large]}" "$(json_num "$r")" "$goal_large" "$goal_ratio" "${sc_exits[$small]}" \
        "${sc_exits[$large]}" "$(loadavg1)")"
}
# fresh_startup N TIMEOUT: in $CUR/nN, N services started from an empty mount and state dir;
# FRESH_S (n/a after TIMEOUT s), STARTS, FRESH_GIT (git processes), FRESH_BY (by subcommand).
fresh_startup() {
    local n=$1 timeout=$2 dir=$CUR/n$1 t0 t1
    mkdir -p "$dir"
    make_upstream "$dir/up" "$n"
    write_config "$dir/config.toml" "$dir/up" "$dir/srv" "$dir/etc" "$n"
    : >"$T/systemctl.log"
    : >"$T/git.log"
    FRESH_S=n/a
    t0=$(now_ns)
    start_daemon "$dir/config.toml" "$dir/state" "$dir/gitopper.log" -t 10s
    if wait_starts "$n" "$timeout"; then
        t1=$(now_ns)
        FRESH_S=$(ns_to_s $((t1 - t0)))
        sleep 0.5 # the poll that follows start-up, as startup's
    fi
    cp "$T/git.log" "$dir/fresh-git.log"
    stop_daemon
    local ls other
    read -r ls other FRESH_BY < <(git_split "$dir/fresh-git.log")
    FRESH_GIT=$((ls + other))
    FRESH_BY="ls-remote:$ls,$FRESH_BY"
}
