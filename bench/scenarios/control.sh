# shellcheck shell=bash
# scenario_control (control: list round trips, a burst of clients) and tcp_counters.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only control.

# tcp_counters: "ListenOverflows ListenDrops TCPSynRetrans" of this network namespace (ours
# alone: the kernel keeps /proc/net/netstat per namespace).
tcp_counters() {
    awk '$1 == "TcpExt:" {
            if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1 } else { for (i = 2; i <= NF; i++) v[k[i]] = $i }
         }
         END { printf "%d %d %d\n", v["ListenOverflows"], v["ListenDrops"], v["TCPSynRetrans"] }' /proc/net/netstat
}

# control N RUNS CLIENTS: N services, the SSH API and HTTP serving (-t 10s, as idle_50):
# `gitopperctl list service` round trip over RUNS runs one after another, then CLIENTS
# gitopperctl processes started at once (each `list service`): how many succeeded, the wall
# time for all; VmRSS/RssAnon after start-up and right after the burst (and 5 s later).
scenario_control() {
    local name=$1 n=$2 runs=$3 clients=$4
    local up=$CUR/up state=$CUR/state
    need_ctl
    make_upstream "$up" "$n"
    write_config "$CUR/config.toml" "$up" "$CUR/srv" "$CUR/etc" "$n" \
        "keys = [ { path = \"$CUR/rw.pub\" } ]"
    : >"$T/systemctl.log"
    : >"$T/git.log"
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s \
        -m 127.0.0.1:0 -s 127.0.0.1:0
    wait_ports
    wait_starts "$n" $((120 + n))
    # Settle as idle does: the poll that follows start-up, then 2 s.
    local deadline=$(($(now_ns) + 30 * 1000000000))
    : >"$T/git.log"
    until grep -q ' ls-remote ' "$T/git.log"; do
        [ "$(now_ns)" -lt "$deadline" ] || break
        sleep 0.1
    done
    sleep 2
    local pid=$DAEMON_PID at="@127.0.0.1:$SSH_PORT"
    local healthz
    healthz=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz" 2>&1 || true)
    [ "$healthz" = 200 ] || log "$name: GET /healthz: $healthz"
    local rss0 anon0 thr0 fd0
    rss0=$(status_kb "$pid" VmRSS)
    anon0=$(status_kb "$pid" RssAnon)
    thr0=$(threads_of "$pid")
    fd0=$(fds_of "$pid")

    # Is the answer whole? A header and one row per service.
    local lines
    whole() { mapfile -t lines <"$1"; [ "${#lines[@]}" = $((n + 1)) ]; }
    # First contact stores the host key (with a notice on stderr): not measured.
    local rc=0
    ctl list service "$at" >"$CUR/first.out" 2>"$CUR/first.err" || rc=$?
    whole "$CUR/first.out" || log "$name: first list: exit $rc, ${#lines[@]} lines: $(cat "$CUR/first.err")"

    local i t0 seq_bad=0
    : >"$CUR/seq.ns"
    for ((i = 1; i <= runs; i++)); do
        rc=0
        stamp
        t0=$STAMP
        ctl list service "$at" >"$CUR/seq.out" 2>"$CUR/seq.err" || rc=$?
        stamp
        echo $((STAMP - t0)) >>"$CUR/seq.ns"
        if [ "$rc" != 0 ] || ! whole "$CUR/seq.out"; then
            seq_bad=$((seq_bad + 1))
            log "$name: list run $i: exit $rc, ${#lines[@]} lines: $(cat "$CUR/seq.err")"
        fi
    done
    local seq50 seq95
    seq50=$(pct_ms 50 "$CUR/seq.ns")
    seq95=$(pct_ms 95 "$CUR/seq.ns")

    # The reference: OpenSSH's ssh asking the same, with the same key, no agent and no config,
    # its known-hosts file filled before timing as gitopperctl's is. It prints the JSON alone.
    local ssh50=n/a ssh95=n/a ssh_bad=0
    : >"$CUR/ssh.ns"
    ossh() {
        env -u SSH_AUTH_SOCK -u SSH_AGENT_PID HOME="$CUR/home" ssh -F none -o BatchMode=yes \
            -o IdentitiesOnly=yes -i "$CUR/rw" -o GlobalKnownHostsFile=/dev/null \
            -o UserKnownHostsFile="$CUR/ssh_known_hosts" -o StrictHostKeyChecking=accept-new \
            -p "$SSH_PORT" 127.0.0.1 /list/service
    }
    if command -v ssh >/dev/null; then
        ossh >/dev/null 2>"$CUR/ssh.err" || log "$name: first ssh: $(cat "$CUR/ssh.err")"
        for ((i = 1; i <= runs; i++)); do
            rc=0
            stamp
            t0=$STAMP
            ossh >"$CUR/ssh.out" 2>"$CUR/ssh.err" || rc=$?
            stamp
            echo $((STAMP - t0)) >>"$CUR/ssh.ns"
            if [ "$rc" != 0 ] || ! grep -q '"service"' "$CUR/ssh.out"; then
                ssh_bad=$((ssh_bad + 1))
                log "$name: ssh run $i: exit $rc: $(cat "$CUR/ssh.err")"
            fi
        done
        ssh50=$(pct_ms 50 "$CUR/ssh.ns")
        ssh95=$(pct_ms 95 "$CUR/ssh.ns")
    else
        log "$name: no OpenSSH ssh: no reference round trip"
    fi
    sleep 3 # the server keeps a session up to 2 s after its reply unless the client closes first
    local rss_b anon_b thr_b fd_b
    rss_b=$(status_kb "$pid" VmRSS)
    anon_b=$(status_kb "$pid" RssAnon)
    thr_b=$(threads_of "$pid")
    fd_b=$(fds_of "$pid")

    # The burst: CLIENTS gitopperctl processes started in the background one after another as
    # fast as bash forks (each fork execs env, which execs gitopperctl: its PID is the client's).
    # Wall time: before the first fork -> the last one has exited.
    local B=$CUR/burst b0 b_spawned b1 p r rcs=()
    mkdir -p "$B"
    local log_lines_before
    log_lines_before=$(wc -l <"$CUR/gitopper.log")
    local ov0 dr0 syn0 ov1 dr1 syn1
    read -r ov0 dr0 syn0 < <(tcp_counters)
    BG_PIDS=()
    stamp
    b0=$STAMP
    for ((i = 1; i <= clients; i++)); do
        env -u SSH_AUTH_SOCK -u SSH_AGENT_PID HOME="$CUR/home" "$GITOPPERCTL" \
            -i "$CUR/rw" -k "$CUR/known_hosts" list service "$at" >"$B/out.$i" 2>"$B/err.$i" &
        BG_PIDS+=($!)
    done
    stamp
    b_spawned=$STAMP
    for p in "${BG_PIDS[@]}"; do
        r=0
        wait "$p" || r=$?
        rcs+=("$r")
    done
    stamp
    b1=$STAMP
    BG_PIDS=()
    read -r ov1 dr1 syn1 < <(tcp_counters)
    local rss1 anon1 thr1 fd1 hwm1
    rss1=$(status_kb "$pid" VmRSS)
    anon1=$(status_kb "$pid" RssAnon)
    hwm1=$(status_kb "$pid" VmHWM)
    thr1=$(threads_of "$pid")
    fd1=$(fds_of "$pid")
    local ok=0
    for ((i = 1; i <= clients; i++)); do
        if [ "${rcs[i - 1]}" = 0 ] && whole "$B/out.$i"; then ok=$((ok + 1)); fi
    done
    local failed=$((clients - ok)) wall_s
    wall_s=$(ns_to_s $((b1 - b0)))
    local errs="-"
    if [ "$failed" -gt 0 ]; then
        # Client errors by message (the port made generic), most frequent first.
        errs=$(cat "$B"/err.* | sed "s/$SSH_PORT/PORT/g" | sort | uniq -c | sort -rn |
            awk '{ c = $1; $1 = ""; sub(/^ /, ""); gsub(/["\\]/, ""); printf "%s%d x %s", (NR > 1 ? "; " : ""), c, $0 }')
        log "$name: $failed of $clients clients failed: $errs"
    fi
    # What the daemon said during the burst.
    local refused burst_warn burst_warnings
    refused=$(tail -n +$((log_lines_before + 1)) "$CUR/gitopper.log" | grep -c 'refusing a connection' || true)
    burst_warn=$(tail -n +$((log_lines_before + 1)) "$CUR/gitopper.log" |
        grep -E '^([0-9T:.-]+ )?(warning|error|critical): ' | sed -E 's/^[0-9T:.-]+ //' |
        sort | uniq -c | sort -rn | head -n 5 |
        awk '{ c = $1; $1 = ""; sub(/^ /, ""); gsub(/["\\]/, ""); printf "%s%d x %s", (NR > 1 ? "; " : ""), c, $0 }' || true)
    [ -n "$burst_warn" ] && log "$name: daemon warnings/errors during the burst: $burst_warn"
    burst_warnings=${burst_warn:--}

    sleep 5 # sessions linger up to 2 s after their reply; their threads end
    local rss2 anon2 thr2 fd2
    rss2=$(status_kb "$pid" VmRSS)
    anon2=$(status_kb "$pid" RssAnon)
    thr2=$(threads_of "$pid")
    fd2=$(fds_of "$pid")
    local w e2
    read -r w e2 < <(daemon_log_summary "$CUR/gitopper.log")
    stop_daemon
    log "$name: threads/fds after start $thr0/$fd0, before the burst $thr_b/$fd_b, right after $thr1/$fd1, 5 s later $thr2/$fd2"
    log "$name: VmRSS/RssAnon kB after start $rss0/$anon0, before the burst $rss_b/$anon_b, right after $rss1/$anon1 (VmHWM $hwm1), 5 s later $rss2/$anon2"
    log "$name: burst: $ok of $clients clients succeeded in $wall_s s (all started within $(ns_to_s $((b_spawned - b0))) s); the daemon refused $refused connections; TCP listen queue overflows $((ov1 - ov0)), listen drops $((dr1 - dr0)), SYN retransmits $((syn1 - syn0))"
    [ "$DAEMON_EXIT" = 0 ] || log "$name: daemon exited with status $DAEMON_EXIT after SIGTERM"
    CONTROL_ROWS+=("$(printf '%-17s %8s  %-21s  %-21s  %-9s  %8s  %-19s  %-21s' "$name" "$n" \
        "$seq50/$seq95 ($runs)" "$ssh50/$ssh95" "$ok/$clients" "$wall_s" "$rss0/$rss1" "$anon0/$anon1")")
    json_add "$(printf '{"scenario":"%s","kind":"control","services":%d,"interval_s":10,"list_runs":%d,"list_failed":%d,"list_p50_ms":%s,"list_p95_ms":%s,"list_ms":[%s],"openssh_list_failed":%d,"openssh_list_p50_ms":%s,"openssh_list_p95_ms":%s,"openssh_list_ms":[%s],"burst_clients":%d,"burst_ok":%d,"burst_failed":%d,"burst_wall_s":%s,"burst_spawn_s":%s,"burst_client_errors":%s,"burst_daemon_refused":%d,"burst_tcp_listen_overflows":%d,"burst_tcp_listen_drops":%d,"burst_tcp_syn_retransmits":%d,"burst_daemon_warnings":%s,"vmrss_kb":{"start":%d,"before_burst":%d,"after_burst":%d,"after_5s":%d},"rssanon_kb":{"start":%d,"before_burst":%d,"after_burst":%d,"after_5s":%d},"vmhwm_kb_after_burst":%d,"threads":{"start":%d,"before_burst":%d,"after_burst":%d,"after_5s":%d},"fds":{"start":%d,"before_burst":%d,"after_burst":%d,"after_5s":%d},"daemon_log_warnings":%d,"daemon_log_errors":%d,"exit_status":%d,"loadavg1_end":%s}' \
        "$name" "$n" "$runs" "$seq_bad" "$(json_num "$seq50")" "$(json_num "$seq95")" \
        "$(ms_list "$CUR/seq.ns")" "$ssh_bad" "$(json_num "$ssh50")" "$(json_num "$ssh95")" \
        "$(ms_list "$CUR/ssh.ns")" "$clients" "$ok" "$failed" "$wall_s" "$(ns_to_s $((b_spawned - b0)))" "$(json_str "$errs")" "$refused" "$((ov1 - ov0))" "$((dr1 - dr0))" "$((syn1 - syn0))" "$(json_str "$burst_warnings")" \
        "$rss0" "$rss_b" "$rss1" "$rss2" "$anon0" "$anon_b" "$anon1" "$anon2" "$hwm1" \
        "$thr0" "$thr_b" "$thr1" "$thr2" "$fd0" "$fd_b" "$fd1" "$fd2" "$w" "$e2" \
        "$DAEMON_EXIT" "$(loadavg1)")"
}
