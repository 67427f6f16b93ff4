# shellcheck shell=bash
# scenario_fleet (fleet: N daemons on one git:// upstream) and its helpers: the git
# daemon, the fleet's systemctl calls and memory, ms_to_s.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only fleet (--fleet N for N daemons).

ms_to_s() { awk -v m="$1" 'BEGIN { if (m == "n/a") print m; else printf "%.2f", m / 1000 }'; }

listening() {
    awk -v p="$(printf '%04X' "$1")" '$4 == "0A" && substr($2, index($2, ":") + 1) == p { f = 1 }
        END { exit !f }' /proc/net/tcp
}
# free_port: a port nobody listens on in this (private) network namespace.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        listening "$p" || { echo "$p"; return; }
    done
}

# start_git_daemon BASE: `git daemon` serving the repositories under BASE on git://127.0.0.1:PORT
# (PORT in GITD_PORT), its PID in GITD_PID: git-daemon run directly from git's exec path, so the
# PID is the server itself (whose cutime/cstime take in the per-connection children it reaps),
# without the counting git wrapper on its PATH (its upload-packs are counted from its log).
start_git_daemon() {
    GITD_PORT=$(free_port)
    env PATH="$ORIG_PATH" "$("$REAL_GIT" --exec-path)/git-daemon" --reuseaddr --base-path="$1" --export-all --verbose \
        --listen=127.0.0.1 --port="$GITD_PORT" >>"$CUR/git-daemon.log" 2>&1 &
    GITD_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        listening "$GITD_PORT" && return 0
        alive "$GITD_PID" || break
        sleep 0.05
    done
    log "git daemon is not listening on $GITD_PORT; its log:"
    cat "$CUR/git-daemon.log" >&2
    return 1
}
stop_git_daemon() {
    [ -n "$GITD_PID" ] || return 0
    local p
    for p in $(children_of "$GITD_PID"); do
        log "git daemon child $p still running; killing it"
        kill -KILL "$p" 2>/dev/null || true
    done
    stop_pid "$GITD_PID"
    GITD_PID=
}
# gitd_requests: upload-pack requests the git daemon has logged so far.
gitd_requests() { grep -c 'Request upload-pack' "$CUR/git-daemon.log" || true; }

# fleet_calls WHAT: FIRST_NS[i] = the time stamp of the first `systemctl WHAT fI` in
# $T/systemctl.ns since it was cleared; FLEET_DONE = how many daemons have one (no fork).
fleet_calls() {
    local ns rest i
    FIRST_NS=()
    while read -r ns rest; do
        [[ $rest == "$1 f"* ]] || continue
        i=${rest#"$1 f"}
        [[ $i =~ ^[0-9]+$ ]] && [ -z "${FIRST_NS[i]:-}" ] && FIRST_NS[i]=$ns
    done <"$T/systemctl.ns"
    FLEET_DONE=${#FIRST_NS[@]}
}
# wait_fleet WHAT SECONDS: until every daemon of FLEET_PIDS has `systemctl WHAT fI` recorded,
# polling every 0.1 s; 1 on timeout or when a daemon has died.
wait_fleet() {
    local deadline=$(($(now_ns) + $2 * 1000000000)) n=${#FLEET_PIDS[@]} i k=0
    while :; do
        fleet_calls "$1"
        [ "$FLEET_DONE" -lt "$n" ] || return 0
        if [ "$(now_ns)" -gt "$deadline" ]; then
            log "only $FLEET_DONE of $n daemons recorded \"$1\" within $2 s"
            return 1
        fi
        if ((k++ % 10 == 0)); then # once a second: are they all still running?
            for ((i = 1; i <= n; i++)); do
                alive "${FLEET_PIDS[i - 1]}" && continue
                log "fleet daemon $i died; its log tail:"
                tail -n 20 "$CUR/d$i/gitopper.log" >&2 || true
                return 1
            done
        fi
        sleep 0.1
    done
}
# fleet_mem: "VMRSS RSSANON PSS" summed over the fleet's daemons, in kB.
fleet_mem() {
    local p
    for p in "${FLEET_PIDS[@]}"; do
        awk '$1 == "VmRSS:" || $1 == "RssAnon:" { print $1, $2 }' "/proc/$p/status"
        awk '$1 == "Pss:" { print $1, $2 }' "/proc/$p/smaps_rollup"
    done | awk '{ s[$1] += $2 } END { printf "%d %d %d\n", s["VmRSS:"], s["RssAnon:"], s["Pss:"] }'
}

# fleet N INTERVAL: N daemons (host fleetI runs service fI: s1/ bound on etc/fI, action reload),
# each with its own state, checkout and mount dirs and listeners on 127.0.0.1:0, polling every
# INTERVAL s one git:// upstream served by `git daemon`. The time from launching them until all
# have started their service; then one push to s1/ and the time until all have recorded
# `systemctl reload fI`; the git server's CPU over both; the daemons' memory.
scenario_fleet() {
    local name=$1 n=$2 interval=$3
    local up=$CUR/git/up i
    mkdir -p "$CUR/git"
    make_upstream "$up" 1
    start_git_daemon "$CUR/git"
    # A read-only key, so each daemon runs its SSH API as a deployed one would.
    ssh-keygen -q -t ed25519 -N '' -C bench-ro -f "$CUR/ro"
    {
        printf '[global]\nupstream = "git://127.0.0.1:%s/up"\nmount = "%s/srv"\naction = "reload"\n' \
            "$GITD_PORT" "$CUR"
        printf 'keys = [ { path = "%s/ro.pub", ro = true } ]\n' "$CUR"
        for ((i = 1; i <= n; i++)); do
            printf '\n[[services]]\nmachine = "fleet%d"\nservice = "f%d"\n' "$i" "$i"
            printf 'dirs = [ { local = "%s/etc/f%d", link = "s1" } ]\n' "$CUR" "$i"
        done
    } >"$CUR/config.toml"
    : >"$T/systemctl.log"
    : >"$T/systemctl.ns"
    : >"$T/git.log"
    touch "$T/systemctl.ns-on"

    local c0 c1 c2 c3 r0 r1 r2 r3 t0 t1 t_push t3
    c0=$(cpu_ticks "$GITD_PID")
    r0=$(gitd_requests)
    stamp
    t0=$STAMP
    FLEET_PIDS=()
    for ((i = 1; i <= n; i++)); do
        mkdir -p "$CUR/d$i"
        "$GITOPPER" -c "$CUR/config.toml" --state "$CUR/d$i/state" -h "fleet$i" -t "${interval}s" \
            -m 127.0.0.1:0 -s 127.0.0.1:0 >>"$CUR/d$i/gitopper.log" 2>&1 &
        FLEET_PIDS+=($!)
    done
    wait_fleet start $((120 + 2 * n))
    stamp
    c1=$(cpu_ticks "$GITD_PID")
    r1=$(gitd_requests)
    t1=0
    for i in "${!FIRST_NS[@]}"; do [ "${FIRST_NS[i]}" -le "$t1" ] || t1=${FIRST_NS[i]}; done
    local startup_s
    startup_s=$(ns_to_s $((t1 - t0)))
    log "$name: $n daemons deployed in $startup_s s"
    local mem0
    mem0=$(fleet_mem)
    cp "$T/git.log" "$CUR/startup-git.log"

    # The push, once each daemon's first poll after start-up (right after its start) is done.
    sleep 2
    : >"$T/systemctl.ns"
    : >"$T/git.log"
    local content="fleet push $RANDOM"
    printf '%s\n' "$content" >"$up/s1/conf"
    c2=$(cpu_ticks "$GITD_PID")
    r2=$(gitd_requests)
    "$REAL_GIT" -C "$up" commit -q -a -m "$content"
    stamp
    t_push=$STAMP
    local reached=1
    wait_fleet reload $((interval * 3 / 2 + 60)) || reached=0
    stamp
    t3=$STAMP
    c3=$(cpu_ticks "$GITD_PID")
    r3=$(gitd_requests)
    local mem1
    mem1=$(fleet_mem)
    cp "$T/git.log" "$CUR/push-git.log"
    rm -f "$T/systemctl.ns-on"
    : >"$CUR/push.ns"
    for i in "${!FIRST_NS[@]}"; do echo $((FIRST_NS[i] - t_push)) >>"$CUR/push.ns"; done
    local wrong=0 now
    for ((i = 1; i <= n; i++)); do
        now=$(cat "$CUR/etc/f$i/conf" 2>/dev/null || true)
        [ "$now" = "$content" ] || wrong=$((wrong + 1))
    done

    # Stop: SIGTERM to all at once, then collect them; then the git server.
    local p exits=() bad_exits=0 w=0 e=0 wi ei
    for p in "${FLEET_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${FLEET_PIDS[@]}"; do
        stop_pid "$p"
        exits+=("$STOP_EXIT")
        [ "$STOP_EXIT" = 0 ] || bad_exits=$((bad_exits + 1))
    done
    FLEET_PIDS=()
    stop_git_daemon
    for ((i = 1; i <= n; i++)); do
        read -r wi ei < <(daemon_log_summary "$CUR/d$i/gitopper.log")
        w=$((w + wi))
        e=$((e + ei))
    done

    local ok=$FLEET_DONE p50 max min all_s="n/a"
    p50=$(pct_ms 50 "$CUR/push.ns")
    max=$(pct_ms 100 "$CUR/push.ns")
    min=$(pct_ms 0 "$CUR/push.ns")
    [ "$reached" = 0 ] || all_s=$(ms_to_s "$max")
    local cpu_start cpu_push vm0 an0 pss0 vm1 an1 pss1 sls soth sby pls poth pby
    cpu_start=$(ticks_to_s $((c1 - c0)))
    cpu_push=$(ticks_to_s $((c3 - c2)))
    read -r vm0 an0 pss0 <<<"$mem0"
    read -r vm1 an1 pss1 <<<"$mem1"
    read -r sls soth sby < <(git_split "$CUR/startup-git.log")
    read -r pls poth pby < <(git_split "$CUR/push-git.log")
    log "$name: git processes, start-up: ls-remote:$sls,$sby; push window ($(ns_to_s $((t3 - t_push))) s): ls-remote:$pls,$pby"
    log "$name: git daemon upload-pack requests: start-up $((r1 - r0)), push window $((r3 - r2))"
    log "$name: daemons' memory kB after start-up VmRSS $vm0, RssAnon $an0, Pss $pss0; after the push $vm1/$an1/$pss1"
    [ "$wrong" = 0 ] || log "$name: $wrong daemons' etc/fI/conf does not hold the pushed content"
    [ "$w$e" = 00 ] || log "$name: daemon log warnings/errors (all daemons): $w/$e"
    [ "$bad_exits" = 0 ] || log "$name: $bad_exits daemons exited non-zero after SIGTERM: ${exits[*]}"
    FLEET_ROWS+=("$(printf '%-17s %7s %8s  %9s  %-23s  %6s  %-20s  %-17s' "$name" "$n" "${interval}s" \
        "$startup_s" "$(ms_to_s "$min")/$(ms_to_s "$p50")/$all_s" "$ok/$n" "$cpu_start/$cpu_push" "$pss0/$vm0")")
    json_add "$(printf '{"scenario":"%s","kind":"fleet","daemons":%d,"services_per_daemon":1,"interval_s":%d,"upstream":"git://","startup_all_s":%s,"push_reloads_recorded":%d,"push_all_s":%s,"push_min_ms":%s,"push_p50_ms":%s,"push_max_ms":%s,"push_ms":[%s],"wrong_content":%d,"server_cpu_s_startup":%s,"server_cpu_s_push":%s,"server_requests_startup":%d,"server_requests_push":%d,"git_startup_processes":%d,"git_startup_by_subcommand":"ls-remote:%d,%s","git_push_processes":%d,"git_push_by_subcommand":"ls-remote:%d,%s","vmrss_kb_sum":{"deployed":%d,"after_push":%d},"rssanon_kb_sum":{"deployed":%d,"after_push":%d},"pss_kb_sum":{"deployed":%d,"after_push":%d},"daemon_log_warnings":%d,"daemon_log_errors":%d,"exit_status_nonzero":%d,"clk_tck":%d,"loadavg1_end":%s}' \
        "$name" "$n" "$interval" "$startup_s" "$ok" "$(json_num "$all_s")" "$(json_num "$min")" \
        "$(json_num "$p50")" "$(json_num "$max")" "$(ms_list "$CUR/push.ns")" "$wrong" \
        "$cpu_start" "$cpu_push" $((r1 - r0)) $((r3 - r2)) $((sls + soth)) "$sls" "$sby" $((pls + poth)) "$pls" "$pby" \
        "$vm0" "$vm1" "$an0" "$an1" "$pss0" "$pss1" "$w" "$e" "$bad_exits" "$CLK_TCK" "$(loadavg1)")"
}
