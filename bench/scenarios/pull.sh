# shellcheck shell=bash
# scenario_pull (pull_50: do pull with 1 and with 50 services in the poll group),
# pull_run and pull_daemon_ns.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only pull_50.

# pull_daemon_ns LOG SERVICE: from a daemon log written with -d, the ns from each debug line
# `pull of "SERVICE" requested` to the next `running systemctl reload SERVICE` (from the newest
# request before it), one a line. The time stamps are local time to the millisecond.
pull_daemon_ns() {
    awk -v svc="$2" '
        function secs(stamp, hms) { split(substr(stamp, 12), hms, ":"); return hms[1] * 3600 + hms[2] * 60 + hms[3] }
        $2 == "debug:" && $0 ~ ("pull of \"" svc "\" requested$") { req = secs($1); have = 1; next }
        have && $2 == "debug:" && $3 == "running" && $4 == "systemctl" && $5 == "reload" && $6 == svc && NF == 6 {
            d = secs($1) - req; if (d < 0) d += 86400 # past midnight
            printf "%.0f\n", d * 1e9; have = 0
        }' "$1"
}

# pull N PUSHES: `gitopperctl do pull s1` right after each of PUSHES pushes (latency's pull
# machinery), once with 1 service in the poll group and once with N (one upstream and branch,
# sN/ each; a push changes s1/conf alone), -t 1h and -d: push -> recorded `reload s1` for both,
# their p50 ratio, and the daemon's own time from its debug lines `pull of "s1" requested` ->
# `running systemctl reload s1`.
scenario_pull() {
    local name=$1 n=$2 pushes=$3 base=$CUR k
    local -A pl_p50=() pl_p95=() pl_max=() pl_d50=() pl_d95=() pl_cmd50=() pl_cmd95=() pl_ok=() pl_items=()
    for k in 1 "$n"; do
        local CUR=$base/n$k
        mkdir -p "$CUR"
        pull_run "$k" "$pushes"
        pl_ok[$k]=$(wc -l <"$CUR/pull.ns")
        pl_p50[$k]=$(pct_ms 50 "$CUR/pull.ns")
        pl_p95[$k]=$(pct_ms 95 "$CUR/pull.ns")
        pl_max[$k]=$(pct_ms 100 "$CUR/pull.ns")
        pl_d50[$k]=$(pct_ms 50 "$CUR/daemon.ns")
        pl_d95[$k]=$(pct_ms 95 "$CUR/daemon.ns")
        pl_cmd50[$k]=$(pct_ms 50 "$CUR/pull.cmd_ns")
        pl_cmd95[$k]=$(pct_ms 95 "$CUR/pull.cmd_ns")
        local w e
        read -r w e < <(daemon_log_summary "$CUR/gitopper.log")
        [ "$w$e" = 00 ] || log "$name: $k services: daemon log warnings/errors $w/$e"
        [ "$DAEMON_EXIT" = 0 ] || log "$name: $k services: daemon exited with status $DAEMON_EXIT after SIGTERM"
        pl_items[$k]=$(printf '"%s":{"reloads_recorded":%d,"failed":%d,"wrong_content":%d,"startup_s":%s,"p50_ms":%s,"p95_ms":%s,"max_ms":%s,"daemon_p50_ms":%s,"daemon_p95_ms":%s,"trigger_cmd_p50_ms":%s,"trigger_cmd_p95_ms":%s,"latency_ms":[%s],"daemon_ms":[%s],"trigger_cmd_ms":[%s],"daemon_log_warnings":%d,"daemon_log_errors":%d,"exit_status":%d}' \
            "$k" "${pl_ok[$k]}" "$(cat "$CUR/pull.failed")" "$(cat "$CUR/pull.wrong")" "$PULL_STARTUP_S" \
            "$(json_num "${pl_p50[$k]}")" "$(json_num "${pl_p95[$k]}")" "$(json_num "${pl_max[$k]}")" \
            "$(json_num "${pl_d50[$k]}")" "$(json_num "${pl_d95[$k]}")" "$(json_num "${pl_cmd50[$k]}")" \
            "$(json_num "${pl_cmd95[$k]}")" "$(ms_list "$CUR/pull.ns")" "$(ms_list "$CUR/daemon.ns")" \
            "$(ms_list "$CUR/pull.cmd_ns")" "$w" "$e" "$DAEMON_EXIT")
    done
    local r goal_ratio goal_daemon
    r=$(ratio "${pl_p50[$n]}" "${pl_p50[1]}")
    goal_ratio=$(mark "$r" "<=" 1.5)
    goal_daemon=$(mark "${pl_d50[$n]}" "<=" 60)
    for k in 1 "$n"; do
        local goals="-"
        [ "$k" != "$n" ] || goals="p50 $n/1=$r <=1.5 $goal_ratio; daemon p50<=60ms $goal_daemon"
        PULL_ROWS+=("$(printf '%-17s %8s %6s  %7s  %7s  %7s  %-17s  %-19s  %s' "$name" "$k" \
            "${pl_ok[$k]}/$pushes" "${pl_p50[$k]}" "${pl_p95[$k]}" "${pl_max[$k]}" "${pl_d50[$k]}/${pl_d95[$k]}" \
            "${pl_cmd50[$k]}/${pl_cmd95[$k]}" "$goals")")
    done
    json_add "$(printf '{"scenario":"%s","kind":"pull","services":[1,%d],"upstreams":1,"pushes":%d,"interval_s":3600,"p50_ms_1":%s,"p50_ms_n":%s,"ratio_p50":%s,"goal_ratio_1_5":"%s","daemon_p50_ms_n":%s,"goal_daemon_60ms":"%s","runs":{%s,%s},"loadavg1_end":%s}' \
        "$name" "$n" "$pushes" "$(json_num "${pl_p50[1]}")" "$(json_num "${pl_p50[$n]}")" "$(json_num "$r")" \
        "$goal_ratio" "$(json_num "${pl_d50[$n]}")" "$goal_daemon" "${pl_items[1]}" "${pl_items[$n]}" "$(loadavg1)")"
}
# pull_run K PUSHES: in $CUR, K services with a read-write key and action reload, the daemon at
# -t 1h -d with the SSH API on 127.0.0.1; after start-up and the git runs that follow it, PUSHES
# pushes each pulled with `gitopperctl do pull s1`, the next once git has been quiet for 1 s. Writes latency_pushes' pull.* files and
# $CUR/daemon.ns (pull_daemon_ns); PULL_STARTUP_S.
pull_run() {
    local k=$1 pushes=$2 t0
    need_ctl
    make_upstream "$CUR/up" "$k"
    write_config "$CUR/config.toml" "$CUR/up" "$CUR/srv" "$CUR/etc" "$k" "action = \"reload\"
keys = [ { path = \"$CUR/rw.pub\" } ]
${PULL_EXTRA:-}"
    : >"$T/systemctl.log"
    : >"$T/systemctl.ns"
    : >"$T/git.log"
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$CUR/state" "$CUR/gitopper.log" -t 1h -d \
        -m 127.0.0.1:0 -s 127.0.0.1:0
    wait_ports
    wait_starts "$k" $((120 + k))
    PULL_STARTUP_S=$(ns_to_s $(($(now_ns) - t0)))
    wait_git_quiet
    touch "$T/systemctl.ns-on"
    # First contact stores the host key (with a notice): not part of any measured pull.
    ctl list service "@127.0.0.1:$SSH_PORT" >"$CUR/first.out" 2>"$CUR/first.err"
    sleep 1
    SETTLE_GIT=1 latency_pushes pull "$pushes"
    rm -f "$T/systemctl.ns-on"
    stop_daemon
    pull_daemon_ns "$CUR/gitopper.log" s1 >"$CUR/daemon.ns"
}
