# shellcheck shell=bash
# scenario_gates (gates: what a `check` adds to a deploy).
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only gates.

# gates PUSHES: pull_run with 1 service twice, without a check and with check = ["true"] (a
# command that costs next to nothing itself), and the daemon's own time of each deploy from
# its debug lines `pull of "s1" requested` -> `running systemctl reload s1`: the difference is
# what the check costs (noisy: the stamps are to the millisecond), and the daemon's own
# measure of the check (its debug line "check of X took N ms": fork, exec, pipes, the wait),
# set beside the time /bin/true takes when bash runs it. Staging is done either way.
scenario_gates() {
    local name=$1 pushes=$2 base=$CUR variant i t0
    local -A g50=() g95=() gok=()
    for variant in none check; do
        local CUR=$base/$variant
        mkdir -p "$CUR"
        if [ "$variant" = check ]; then PULL_EXTRA='check = ["true"]'; else PULL_EXTRA=""; fi
        pull_run 1 "$pushes"
        g50[$variant]=$(pct_ms 50 "$CUR/daemon.ns")
        g95[$variant]=$(pct_ms 95 "$CUR/daemon.ns")
        gok[$variant]=$(wc -l <"$CUR/daemon.ns")
        # The check's own time in the deploy, fork to reaped, as the daemon measured it.
        awk '$2 == "debug:" && $4 == "check" && $7 == "took" { printf "%.0f\n", $8 * 1e6 }' \
            "$CUR/gitopper.log" >"$CUR/check.ns"
        [ "$DAEMON_EXIT" = 0 ] || log "$name: $variant: daemon exited with status $DAEMON_EXIT"
    done
    PULL_EXTRA=""
    : >"$base/true.ns"
    for ((i = 0; i < 20; i++)); do
        t0=$(now_ns)
        /bin/true
        echo $(($(now_ns) - t0)) >>"$base/true.ns"
    done
    local true50 added goal check50 check95
    true50=$(pct_ms 50 "$base/true.ns")
    check50=$(pct_ms 50 "$base/check/check.ns")
    check95=$(pct_ms 95 "$base/check/check.ns")
    added=$(awk -v a="${g50[check]}" -v b="${g50[none]}" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", a - b }')
    goal=$(mark "$check50" "<=" 10)
    GATE_ROWS+=("$(printf '%-17s %-19s %-19s %-15s %9s  %9s  %s' "$name" "${g50[none]}/${g95[none]} (${gok[none]})" \
        "${g50[check]}/${g95[check]} (${gok[check]})" "$check50/$check95" "$true50" "$added" "check of true <=10ms $goal")")
    json_add "$(printf '{"scenario":"%s","kind":"gates","services":1,"pushes":%d,"daemon_p50_ms_no_check":%s,"daemon_p95_ms_no_check":%s,"daemon_p50_ms_check_true":%s,"daemon_p95_ms_check_true":%s,"check_p50_ms":%s,"check_p95_ms":%s,"check_ms":[%s],"true_alone_p50_ms":%s,"deploy_p50_difference_ms":%s,"goal_check_10ms":"%s","loadavg1_end":%s}' \
        "$name" "$pushes" "$(json_num "${g50[none]}")" "$(json_num "${g95[none]}")" "$(json_num "${g50[check]}")" \
        "$(json_num "${g95[check]}")" "$(json_num "$check50")" "$(json_num "$check95")" \
        "$(ms_list "$base/check/check.ns")" "$(json_num "$true50")" "$(json_num "$added")" "$goal" "$(loadavg1)")"
}
