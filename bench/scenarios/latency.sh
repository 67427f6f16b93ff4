# shellcheck shell=bash
# scenario_latency (latency: webhook, do pull, poll). Its push loop, latency_pushes,
# is in bench/lib.sh: pull_50 uses it too.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only latency.

# latency PUSHES: push -> recorded `systemctl reload s1` for one service, PUSHES times per
# trigger: (a) a signed GitHub-style webhook (curl), (b) `gitopperctl do pull` over the SSH API,
# both with the daemon at -t 1h; (c) polling, a second daemon run at -t 2s. End: the stand-in
# systemctl's own `date +%s%N`. Start: just before the trigger command (curl / gitopperctl,
# whose own run time is included), or for polling when `git commit` has returned.
scenario_latency() {
    local name=$1 pushes=$2
    local up=$CUR/up state=$CUR/state
    need_ctl
    make_upstream "$up" 1
    local secret="bench-$RANDOM$RANDOM$RANDOM"
    printf '%s\n' "$secret" >"$CUR/webhook.secret"
    write_config "$CUR/config.toml" "$up" "$CUR/srv" "$CUR/etc" 1 "action = \"reload\"
keys = [ { path = \"$CUR/rw.pub\" } ]
webhook_secret_file = \"$CUR/webhook.secret\""
    # The payload is the same for every push: signed once, outside the measured time.
    local body sig
    body=$(printf '{"ref":"refs/heads/main","repository":{"clone_url":"file://%s"}}' "$up")
    sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/.*= //')
    : >"$T/systemctl.log"
    : >"$T/systemctl.ns"
    touch "$T/systemctl.ns-on"

    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper-1h.log" -t 1h \
        -m 127.0.0.1:0 -s 127.0.0.1:0
    wait_ports
    wait_starts 1 60
    # First contact stores the host key (with a notice): not part of any measured pull.
    ctl list service "@127.0.0.1:$SSH_PORT" >"$CUR/first.out" 2>"$CUR/first.err"
    sleep 1
    local mode
    for mode in webhook pull; do
        latency_pushes "$mode" "$pushes" "$body" "$sig"
    done
    stop_daemon
    local exit_1h=$DAEMON_EXIT

    local starts_before
    ns_calls "start s1"
    starts_before=$CALLS
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper-2s.log" -t 2s \
        -m 127.0.0.1:0 -s 127.0.0.1:0
    wait_ports
    wait_call "start s1" "$starts_before" 60
    sleep 1
    latency_pushes poll "$pushes"
    stop_daemon
    local exit_2s=$DAEMON_EXIT
    rm -f "$T/systemctl.ns-on"

    local w1 e1 w2 e2
    read -r w1 e1 < <(daemon_log_summary "$CUR/gitopper-1h.log")
    read -r w2 e2 < <(daemon_log_summary "$CUR/gitopper-2s.log")
    local items=() p50 p95 max cmd50 cmd95 ok
    for mode in webhook pull poll; do
        ok=$(wc -l <"$CUR/$mode.ns")
        p50=$(pct_ms 50 "$CUR/$mode.ns")
        p95=$(pct_ms 95 "$CUR/$mode.ns")
        max=$(pct_ms 100 "$CUR/$mode.ns")
        cmd50=$(pct_ms 50 "$CUR/$mode.cmd_ns")
        cmd95=$(pct_ms 95 "$CUR/$mode.cmd_ns")
        local trigger
        case $mode in
        webhook) trigger="webhook (curl)" ;;
        pull) trigger="do pull (ctl)" ;;
        poll) trigger="poll -t 2s" ;;
        esac
        LATENCY_ROWS+=("$(printf '%-17s %-15s %6s  %7s  %7s  %7s  %-19s' "$name" "$trigger" \
            "$ok/$pushes" "$p50" "$p95" "$max" \
            "$([ "$mode" = poll ] && echo - || echo "$cmd50/$cmd95")")")
        items+=("$(printf '"%s":{"pushes":%d,"reloads_recorded":%d,"failed":%d,"wrong_content":%d,"p50_ms":%s,"p95_ms":%s,"max_ms":%s,"trigger_cmd_p50_ms":%s,"trigger_cmd_p95_ms":%s,"latency_ms":[%s],"trigger_cmd_ms":[%s]}' \
            "$mode" "$pushes" "$ok" "$(cat "$CUR/$mode.failed")" "$(cat "$CUR/$mode.wrong")" \
            "$(json_num "$p50")" "$(json_num "$p95")" "$(json_num "$max")" \
            "$(json_num "$cmd50")" "$(json_num "$cmd95")" "$(ms_list "$CUR/$mode.ns")" \
            "$(ms_list "$CUR/$mode.cmd_ns")")")
    done
    [ "$w1$e1$w2$e2" = 0000 ] || log "$name: daemon log warnings/errors: -t 1h run $w1/$e1, -t 2s run $w2/$e2"
    [ "$exit_1h$exit_2s" = 00 ] || log "$name: daemon exit status after SIGTERM: $exit_1h, $exit_2s"
    json_add "$(printf '{"scenario":"%s","kind":"latency","services":1,"pushes":%d,"interval_s_webhook_pull":3600,"interval_s_poll":2,%s,"daemon_log_warnings":[%d,%d],"daemon_log_errors":[%d,%d],"exit_status":[%d,%d],"loadavg1_end":%s}' \
        "$name" "$pushes" "$(IFS=,; echo "${items[*]}")" "$w1" "$w2" "$e1" "$e2" \
        "$exit_1h" "$exit_2s" "$(loadavg1)")"
}
