# shellcheck shell=bash
# scenario_gates (gates: what a `check` adds to a deploy).
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only gates.

# gates PUSHES: pull_run with 1 service twice, without a check and with check = ["true"] (a
# command that costs next to nothing itself), and the daemon's own time of each deploy from
# its debug lines `pull of "s1" requested` -> `running systemctl reload s1`: the difference is
# what the check costs (noisy: the stamps are to the millisecond), and the daemon's own
# measure of the check (its debug line "check of X took N ms": fork, exec, pipes, the wait),
# set beside the time /bin/true takes when bash runs it. Staging is done either way. A third run
# fails the health of every other deploy (one try): the time from that failure to the
# rolled-back tree being live and to the rollback's end (rollback_ns).
# rollback_ns LOG SERVICE LIVE DONE: from a daemon log written with -d, for each automatic
# rollback the ns from the warning that the health failed ("...; X quarantined, rolling back to
# Y") to the rollback's `running systemctl reload SERVICE` (the old tree is live: the action
# follows the publish) into LIVE, and to the state line that ends it (`-> BROKEN: health
# failed for ...`) into DONE. The time stamps are local time to the millisecond.
rollback_ns() {
    awk -v svc="$2" -v live="$3" -v done="$4" '
        function secs(stamp, hms) { split(substr(stamp, 12), hms, ":"); return hms[1] * 3600 + hms[2] * 60 + hms[3] }
        function since(t, d) { d = secs(t) - failed; if (d < 0) d += 86400; return d * 1e9 }
        index($0, "[" svc "] health failed for ") && index($0, "rolling back to") { failed = secs($1); state = 1; next }
        state == 1 && $2 == "debug:" && $3 == "running" && $4 == "systemctl" && $6 == svc && NF == 6 {
            printf "%.0f\n", since($1) >>live; state = 2; next
        }
        state == 2 && index($0, "[" svc "] state ") && index($0, "BROKEN: health failed for ") {
            printf "%.0f\n", since($1) >>done; state = 0
        }' "$1"
    touch "$3" "$4"
}

scenario_gates() {
    local name=$1 pushes=$2 base=$CUR variant i t0
    local -A g50=() g95=() gok=()
    for variant in none check health; do
        local CUR=$base/$variant
        mkdir -p "$CUR"
        case $variant in
        none) PULL_EXTRA="" ;;
        check) PULL_EXTRA='check = ["true"]' ;;
        # Every other deploy fails its one health try and is rolled back.
        health) PULL_EXTRA="health = [\"/bin/sh\", \"-c\", \"if [ -e $CUR/healthy ]; then rm $CUR/healthy; else touch $CUR/healthy; exit 1; fi\"]
health_retries = 1" ;;
        esac
        pull_run 1 "$pushes"
        if [ "$variant" = health ]; then
            rollback_ns "$CUR/gitopper.log" s1 "$CUR/rollback_live.ns" "$CUR/rollback_done.ns"
            continue
        fi
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
    local true50 added goal check50 check95 live done
    live="$(pct_ms 50 "$base/health/rollback_live.ns")/$(pct_ms 95 "$base/health/rollback_live.ns") ($(wc -l <"$base/health/rollback_live.ns"))"
    done="$(pct_ms 50 "$base/health/rollback_done.ns")/$(pct_ms 95 "$base/health/rollback_done.ns")"
    true50=$(pct_ms 50 "$base/true.ns")
    check50=$(pct_ms 50 "$base/check/check.ns")
    check95=$(pct_ms 95 "$base/check/check.ns")
    added=$(awk -v a="${g50[check]}" -v b="${g50[none]}" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", a - b }')
    goal=$(mark "$check50" "<=" 10)
    GATE_ROWS+=("$(printf '%-17s %-19s %-19s %-15s %9s  %9s  %-19s %-15s %s' "$name" "${g50[none]}/${g95[none]} (${gok[none]})" \
        "${g50[check]}/${g95[check]} (${gok[check]})" "$check50/$check95" "$true50" "$added" "$live" "$done" "check of true <=10ms $goal")")
    json_add "$(printf '{"scenario":"%s","kind":"gates","services":1,"pushes":%d,"daemon_p50_ms_no_check":%s,"daemon_p95_ms_no_check":%s,"daemon_p50_ms_check_true":%s,"daemon_p95_ms_check_true":%s,"check_p50_ms":%s,"check_p95_ms":%s,"check_ms":[%s],"true_alone_p50_ms":%s,"deploy_p50_difference_ms":%s,"goal_check_10ms":"%s","rollback_live_p50_ms":%s,"rollback_live_p95_ms":%s,"rollback_done_p50_ms":%s,"rollback_done_p95_ms":%s,"rollbacks":%d,"loadavg1_end":%s}' \
        "$name" "$pushes" "$(json_num "${g50[none]}")" "$(json_num "${g95[none]}")" "$(json_num "${g50[check]}")" \
        "$(json_num "${g95[check]}")" "$(json_num "$check50")" "$(json_num "$check95")" \
        "$(ms_list "$base/check/check.ns")" "$(json_num "$true50")" "$(json_num "$added")" "$goal" \
        "$(json_num "$(pct_ms 50 "$base/health/rollback_live.ns")")" "$(json_num "$(pct_ms 95 "$base/health/rollback_live.ns")")" \
        "$(json_num "$(pct_ms 50 "$base/health/rollback_done.ns")")" "$(json_num "$(pct_ms 95 "$base/health/rollback_done.ns")")" \
        "$(wc -l <"$base/health/rollback_live.ns")" "$(loadavg1)")"
}
