# shellcheck shell=bash
# scenario_idle (idle_1, idle_50, idle_1000) and the helpers only it uses, self_ticks and
# git_bursts.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only idle_1 (or idle_50, idle_1000).

# self_ticks PID: utime+stime alone (the daemon's own threads, without its children).
self_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# git_bursts LOGFILE: how many bursts of git runs LOGFILE holds, a burst being runs that started
# less than 2 s after the one before (the wrapper's /proc/uptime stamps): poll cycles, counted
# from the outside, whatever git command a cycle runs and however many.
git_bursts() { awk 'NR == 1 || $1 - last > 2 { n++ } { last = $1 } END { print n + 0 }' "$1"; }

# idle N: N services on one upstream, -t 10s, all started, then an idle window of $WINDOW s.
scenario_idle() {
    local name=$1 n=$2
    local up=$CUR/up state=$CUR/state
    make_upstream "$up" "$n"
    write_config "$CUR/config.toml" "$up" "$CUR/srv" "$CUR/etc" "$n"
    : >"$T/systemctl.log"
    : >"$T/git.log"
    local t0 t1
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s
    wait_starts "$n" $((120 + n))
    t1=$(now_ns)
    log "$name: $n services started in $(ns_to_s $((t1 - t0))) s"
    # Settle: the poll that follows start-up (the first one runs right after the last start).
    local deadline=$(($(now_ns) + 30 * 1000000000))
    : >"$T/git.log"
    until grep -q ' ls-remote ' "$T/git.log"; do
        [ "$(now_ns)" -lt "$deadline" ] || break
        sleep 0.1
    done
    sleep 2

    local pid=$DAEMON_PID
    local self0 self1 c0 rss0 anon0 thr0 fd0 load0 c1 rss1 anon1 hwm1 rssfile1 top_maps thr1 fd1 load1
    local samples=() elapsed s
    : >"$T/git.log"
    : >"$T/systemctl.log"
    local w0
    w0=$(now_ns)
    c0=$(cpu_ticks "$pid")
    self0=$(self_ticks "$pid")
    rss0=$(status_kb "$pid" VmRSS)
    anon0=$(status_kb "$pid" RssAnon)
    thr0=$(threads_of "$pid")
    fd0=$(fds_of "$pid")
    load0=$(loadavg1)
    # Samples every 10 s: "seconds cpu_ticks VmRSS RssAnon" (to see spikes and growth).
    for ((s = 10; s <= WINDOW; s += 10)); do
        local target=$((w0 + s * 1000000000)) left
        left=$((target - $(now_ns)))
        [ "$left" -le 0 ] || sleep "$(ns_to_s "$left")"
        samples+=("[$s,$(cpu_ticks "$pid"),$(status_kb "$pid" VmRSS),$(status_kb "$pid" RssAnon)]")
    done
    local tail_left=$((w0 + WINDOW * 1000000000 - $(now_ns)))
    [ "$tail_left" -le 0 ] || sleep "$(ns_to_s "$tail_left")"
    c1=$(cpu_ticks "$pid")
    self1=$(self_ticks "$pid")
    rss1=$(status_kb "$pid" VmRSS)
    anon1=$(status_kb "$pid" RssAnon)
    hwm1=$(status_kb "$pid" VmHWM)
    rssfile1=$(status_kb "$pid" RssFile)
    # Where the resident memory is: the largest mappings by Rss, summed per file.
    top_maps=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]" }
                    $1 == "Rss:" { rss[name] += $2 }
                    END { for (n in rss) printf "%d %s\n", rss[n], n }' "/proc/$pid/smaps" |
        sort -rn | head -n 6 | awk '{ sub(".*/", "", $2); printf "%s%s:%d", (NR > 1 ? "," : ""), $2, $1 }')
    thr1=$(threads_of "$pid")
    fd1=$(fds_of "$pid")
    load1=$(loadavg1)
    elapsed=$(($(now_ns) - w0))
    cp "$T/git.log" "$CUR/idle-git.log"
    cp "$T/systemctl.log" "$CUR/idle-systemctl.log"

    stop_daemon
    local ls other by cycles
    read -r ls other by < <(git_split "$CUR/idle-git.log")
    cycles=$(git_bursts "$CUR/idle-git.log")
    local total=$((ls + other))
    local per_cycle cpu_s cpu_per_180 sysctl_calls
    # One upstream, so one store: git processes per cycle are per store and cycle.
    per_cycle=$(awk -v t="$total" -v c="$cycles" 'BEGIN { if (c > 0) printf "%.2f", t / c; else print "n/a" }')
    cpu_s=$(ticks_to_s $((c1 - c0)))
    cpu_per_180=$(awk -v c="$cpu_s" -v w="$WINDOW" 'BEGIN { printf "%.3f", c * 180 / w }')
    # systemctl calls made during the window (an idle daemon should make none).
    sysctl_calls=$(wc -l <"$CUR/idle-systemctl.log")

    local goals goal_git goal_cpu=n/a goal_rss=n/a goal_anon=n/a anon_limit=
    goal_git=$(mark "$per_cycle" == 1)
    goals="git/cycle=1 $goal_git"
    if [ "$n" = 50 ]; then
        goal_cpu=$(mark "$cpu_per_180" "<=" 0.2)
        goal_rss=$(mark "$rss1" "<=" 10240)
        goals+="; cpu<=0.2s/180s $goal_cpu (${cpu_per_180}s/180s)"
        goals+="; rss<=10MB $goal_rss"
        anon_limit=4096
    fi
    [ "$n" != 1000 ] || anon_limit=30720
    if [ -n "$anon_limit" ]; then
        goal_anon=$(mark "$anon1" "<=" "$anon_limit")
        goals+="; rssanon<=$((anon_limit / 1024))MB $goal_anon"
    fi
    IDLE_ROWS+=("$(printf '%-17s %8s %7s  %-20s  %-9s  %5s  %-17s  %-21s  %s' \
        "$name" "$n" "${WINDOW}s" "$per_cycle ($cycles)" "$other" "$cpu_s" "$rss0/$rss1" \
        "$anon0/$anon1" "$goals")")
    log "$name: resident kB by mapping at the end: $top_maps"
    [ "$other" = 0 ] || log "$name: other git processes in the window: $by"
    [ "$DAEMON_EXIT" = 0 ] || log "$name: daemon exited with status $DAEMON_EXIT after SIGTERM"
    json_add "$(printf '{"scenario":"%s","kind":"idle","services":%d,"upstreams":1,"interval_s":10,"window_s":%d,"window_measured_s":%s,"startup_s":%s,"cycles":%d,"git_ls_remote":%d,"git_other":%d,"git_other_by_subcommand":"%s","git_per_cycle":%s,"goal_git_per_cycle_1":"%s","goal_cpu_0_2s_per_180s":"%s","goal_vmrss_10mb":"%s","rssanon_goal_kb":%s,"goal_rssanon":"%s","cpu_s":%s,"cpu_self_s":%s,"cpu_children_s":%s,"cpu_s_per_180s":%s,"clk_tck":%d,"vmrss_kb_start":%d,"vmrss_kb_end":%d,"rssanon_kb_start":%d,"rssanon_kb_end":%d,"vmhwm_kb_end":%d,"rssfile_kb_end":%d,"rss_kb_by_mapping_end":%s,"threads_start":%d,"threads_end":%d,"fds_start":%d,"fds_end":%d,"systemctl_calls_in_window":%d,"loadavg1_start":%s,"loadavg1_end":%s,"exit_status":%d,"samples_s_ticks_rss_anon":[%s]}' \
        "$name" "$n" "$WINDOW" "$(ns_to_s "$elapsed")" "$(ns_to_s $((t1 - t0)))" "$cycles" "$ls" "$other" "$by" \
        "$(json_num "$per_cycle")" "$goal_git" "$goal_cpu" "$goal_rss" "${anon_limit:-null}" "$goal_anon" "$cpu_s" "$(ticks_to_s $((self1 - self0)))" \
        "$(ticks_to_s $((c1 - c0 - self1 + self0)))" "$cpu_per_180" "$CLK_TCK" \
        "$rss0" "$rss1" "$anon0" "$anon1" "$hwm1" "$rssfile1" "$(json_str "$top_maps")" "$thr0" "$thr1" "$fd0" "$fd1" "$sysctl_calls" \
        "$load0" "$load1" "$DAEMON_EXIT" "$(IFS=,; echo "${samples[*]}")")"
}
