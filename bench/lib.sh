# shellcheck shell=bash
# shellcheck disable=SC2034 # DAEMON_EXIT, STARTS, the result arrays: read by the others
# The helpers bench/run and its scenarios (bench/scenarios/KIND.sh) share: cleaning up, the
# daemon's start and stop, counting what the stand-ins recorded, timing, /proc figures, the
# push-to-reload loop of latency and pull_50, and the result rows and JSON objects. Sourced by
# bench/run after the namespaces are set up: it only defines functions and variables, and runs
# under bench/run's set -euo pipefail.

# ---- cleaning up all we start ---------------------------------------------------------------

unmount_under() { # DIR: detach every mount at or below DIR (deepest first)
    awk -v t="$1" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
cleanup() {
    local status=$? p
    for p in "${BG_PIDS[@]}" "${FLEET_PIDS[@]}" $DAEMON_PID $GITD_PID; do
        kill_tree "$p"
        wait "$p" 2>/dev/null || true
    done
    unmount_under "$T"
    if [ "$KEEP" = 1 ]; then
        echo "bench/run: kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$status"
}
# children_of PID: the PIDs of PID's children (all its threads').
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
# kill_tree PID: SIGKILL to PID and its descendants (a daemon's git runs, the git server's
# connections), each stopped first so it starts no new child meanwhile.
kill_tree() {
    local c
    kill -STOP "$1" 2>/dev/null || return 0
    for c in $(children_of "$1"); do kill_tree "$c"; done
    kill -KILL "$1" 2>/dev/null || true
}

# ---- helpers for scenarios ------------------------------------------------------------------

now_ns() { date +%s%N; }
# stamp: STAMP = now in ns since the epoch, from bash's $EPOCHREALTIME (microseconds, no extra
# process): the same clock (CLOCK_REALTIME) as `date +%s%N` in the stand-in systemctl.
stamp() {
    local t=$EPOCHREALTIME
    STAMP=$((${t%.*} * 1000000000 + 10#${t#*.} * 1000))
}
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# make_upstream DIR SERVICES: one repository, one directory sN/ per service, one commit.
make_upstream() {
    local dir=$1 n=$2 i
    "$REAL_GIT" init -q -b main "$dir"
    "$REAL_GIT" -C "$dir" config uploadpack.allowFilter true
    "$REAL_GIT" -C "$dir" config uploadpack.allowAnySHA1InWant true
    for ((i = 1; i <= n; i++)); do
        mkdir -p "$dir/s$i"
        printf 'service %s\n' "$i" >"$dir/s$i/conf"
    done
    "$REAL_GIT" -C "$dir" add -A
    "$REAL_GIT" -C "$dir" commit -q -m "$n services"
}

# write_config FILE UPSTREAM MOUNT ETC SERVICES [GLOBAL_LINES]: sN checks out sN/ and bind-mounts
# it on ETC/sN; GLOBAL_LINES (TOML) are added to [global].
write_config() {
    local file=$1 upstream=$2 mount=$3 etc=$4 n=$5 extra=${6:-} i
    {
        printf '[global]\nupstream = "file://%s"\nmount = "%s"\n' "$upstream" "$mount"
        [ -z "$extra" ] || printf '%s\n' "$extra"
        for ((i = 1; i <= n; i++)); do
            printf '\n[[services]]\nmachine = "benchhost"\nservice = "s%s"\n' "$i"
            printf 'dirs = [ { local = "%s/s%s", link = "s%s" } ]\n' "$etc" "$i" "$i"
        done
    } >"$file"
}

# start_daemon CONFIG STATE LOGFILE [ARGS...]: the daemon in the background, PID in DAEMON_PID.
start_daemon() {
    local config=$1 state=$2 logfile=$3
    shift 3
    "$GITOPPER" -c "$config" --state "$state" -h benchhost "$@" >>"$logfile" 2>&1 &
    DAEMON_PID=$!
    DAEMON_LOG=$logfile
}

# stop_daemon: SIGTERM, wait up to 30 s, then SIGKILL. Exit status in DAEMON_EXIT.
stop_daemon() {
    DAEMON_EXIT=0
    [ -n "$DAEMON_PID" ] || return 0
    stop_pid "$DAEMON_PID"
    DAEMON_EXIT=$STOP_EXIT
    DAEMON_PID=
}
# stop_pid PID: SIGTERM, wait up to 30 s for it to end, then SIGKILL; exit status in STOP_EXIT.
stop_pid() {
    local pid=$1 i
    STOP_EXIT=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "process $pid did not stop in 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || STOP_EXIT=$?
}
# alive PID: PID exists and is not a zombie (no fork: the state is read with bash's read).
alive() {
    local f=()
    read -r -a f 2>/dev/null <"/proc/$1/stat" || return 1
    [ "${f[2]}" != Z ]
}

# count_starts: how many distinct "start sN" lines the stand-in systemctl recorded (no fork).
STARTS=0
count_starts() {
    local line
    local -A seen=()
    while IFS= read -r line; do
        [[ $line == "start s"* ]] && seen[$line]=1
    done <"$T/systemctl.log"
    STARTS=${#seen[@]}
}

# wait_starts N TIMEOUT_S: polls every 10 ms until N services have started; 1 on timeout.
wait_starts() {
    local want=$1 deadline=$(($(now_ns) + $2 * 1000000000))
    while :; do
        count_starts
        [ "$STARTS" -ge "$want" ] && return 0
        if [ "$(now_ns)" -gt "$deadline" ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "only $STARTS of $want services started; daemon log tail:"
            tail -n 20 "${DAEMON_LOG:-$CUR/gitopper.log}" >&2 || true
            return 1
        fi
        sleep 0.01
    done
}

# cpu_ticks PID: utime+stime+cutime+cstime (fields 14-17 of /proc/PID/stat), in clock ticks.
# The comm field is "(gitopper)", without spaces, so the fields split simply.
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
# status_kb PID FIELD: a kB figure from /proc/PID/status (VmRSS, RssAnon, VmHWM, ...).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
threads_of() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status"; }
fds_of() { local fds=("/proc/$1/fd/"*); echo "${#fds[@]}"; }
ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }
ns_to_s() { awk -v n="$1" 'BEGIN { printf "%.3f", n / 1e9 }'; }
loadavg1() { awk '{ print $1 }' /proc/loadavg; }

# git_split LOGFILE: "LSREMOTE OTHER SUMMARY" where SUMMARY counts other git processes by
# subcommand ("fetch:3,status:2"; "-" if none). The subcommand is the first word that is not an
# option or the value of -c/-C.
git_split() {
    awk '
        {
            cmd = ""
            for (i = 2; i <= NF; i++) {
                if ($i == "-c" || $i == "-C") { i++; continue }
                if ($i ~ /^-/) continue
                cmd = $i; break
            }
            if (cmd == "ls-remote") ls++
            else { other++; by[cmd]++ }
        }
        END {
            s = ""
            for (k in by) s = s (s == "" ? "" : ",") k ":" by[k]
            printf "%d %d %s\n", ls, other, (s == "" ? "-" : s)
        }' "$1"
}

# pct_ms P FILE: the P-th percentile (nearest rank: the ceil(P*n/100)-th smallest) of the ns
# values in FILE (one a line), in ms with one decimal; n/a if FILE is empty.
pct_ms() {
    sort -n "$2" | awk -v p="$1" '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            r = int((p * NR + 99) / 100); if (r < 1) r = 1
            printf "%.1f", v[r] / 1e6 }'
}
# ms_list FILE: the ns values in FILE as a JSON list of ms with one decimal, in file order.
ms_list() { awk '{ printf "%s%.1f", (NR > 1 ? "," : ""), $1 / 1e6 }' "$1"; }
json_num() { [ "$1" = n/a ] && echo null || echo "$1"; }
# json_str TEXT: TEXT as a JSON string, quotes included: a path or an error message may hold a
# quote, a backslash or a control character.
json_str() {
    local s
    s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    printf '"%s"' "$s"
}

# wait_ports: HTTP_PORT and SSH_PORT from the daemon's log lines "http: ... listening on
# 127.0.0.1:P" and "ssh: control API listening on 127.0.0.1:P" (the newest of each, since a log
# file may hold several runs); 1 after 20 s or if the daemon died.
wait_ports() {
    local deadline=$(($(now_ns) + 20 * 1000000000))
    while :; do
        HTTP_PORT=$(sed -n 's/.*http: .*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DAEMON_LOG" | tail -n 1)
        SSH_PORT=$(sed -n 's/.*ssh: control API listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DAEMON_LOG" | tail -n 1)
        [ -z "$HTTP_PORT" ] || [ -z "$SSH_PORT" ] || return 0
        if [ "$(now_ns)" -gt "$deadline" ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "no listening ports in the daemon log; its tail:"
            tail -n 20 "$DAEMON_LOG" >&2 || true
            return 1
        fi
        sleep 0.05
    done
}

# ctl ARGS...: gitopperctl with the scenario's key and known-hosts file, HOME in $CUR/home and
# no ssh-agent (so nothing of the caller's ~/.ssh is used).
ctl() {
    env -u SSH_AUTH_SOCK -u SSH_AGENT_PID HOME="$CUR/home" \
        "$GITOPPERCTL" -i "$CUR/rw" -k "$CUR/known_hosts" "$@"
}
need_ctl() {
    [ -n "$GITOPPERCTL" ] || { log "no gitopperctl at $CTL_BIN (--ctl PATH)"; return 1; }
    local tool
    for tool in curl openssl ssh-keygen; do
        command -v "$tool" >/dev/null || { log "$tool is needed"; return 1; }
    done
    mkdir -m 700 "$CUR/home"
    ssh-keygen -q -t ed25519 -N '' -C bench-rw -f "$CUR/rw"
}

# ns_calls WHAT: CALLS = how many times the stand-in systemctl was run as `systemctl WHAT`
# since $T/systemctl.ns was last cleared; CALL_NS = the time stamp of the newest (no fork).
ns_calls() {
    local ns rest
    CALLS=0
    CALL_NS=
    while read -r ns rest; do
        [ "$rest" = "$1" ] || continue
        CALLS=$((CALLS + 1))
        CALL_NS=$ns
    done <"$T/systemctl.ns"
}
# wait_call WHAT BEFORE SECONDS: until there are more than BEFORE calls of WHAT; 1 on timeout.
# Polls every 20 ms: the figure comes from the stand-in's own time stamp, not from this loop.
wait_call() {
    local deadline=$(($(now_ns) + $3 * 1000000000))
    while :; do
        ns_calls "$1"
        [ "$CALLS" -le "$2" ] || return 0
        [ "$(now_ns)" -lt "$deadline" ] && kill -0 "$DAEMON_PID" 2>/dev/null || return 1
        sleep 0.02
    done
}

# wait_git_quiet: until the git wrapper has logged nothing new for 1 s (the runs that follow a
# start-up, whatever they are), 30 s at most.
wait_git_quiet() {
    local deadline=$(($(now_ns) + 30 * 1000000000)) lines last=-1 still=0
    while [ "$(now_ns)" -lt "$deadline" ]; do
        lines=$(wc -l <"$T/git.log")
        if [ "$lines" = "$last" ]; then
            still=$((still + 1))
            [ "$still" -lt 10 ] || return 0
        else
            still=0
            last=$lines
        fi
        sleep 0.1
    done
}

# ratio A B: A / B with two decimals; n/a if either is n/a or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# daemon_log_summary FILE: "WARNINGS ERRORS" = the daemon's log lines at level warning / error or
# worse ("2024-01-02T03:04:05.678 warning: ..."; without the time under systemd).
daemon_log_summary() {
    awk '/^([0-9T:.-]+ )?warning: / { w++ } /^([0-9T:.-]+ )?(error|critical): / { e++ }
         END { printf "%d %d\n", w, e }' "$1"
}

du_kb() { du -sk "$@" | awk '{ s += $1 } END { print s + 0 }'; }

# latency_pushes MODE PUSHES [BODY SIG]: PUSHES commits to s1/conf, each triggered by MODE
# (webhook, pull, poll), each waited for until `reload s1` is recorded (15 s at most). Writes
# $CUR/MODE.ns (push -> reload, ns), $CUR/MODE.cmd_ns (the trigger command's own run time),
# $CUR/MODE.failed (trigger refused or no reload) and $CUR/MODE.wrong (reloaded, other content).
# SETTLE_GIT=1: wait for git to be quiet after each push (wait_git_quiet) before the next.
# settle_after_push: lets the cycle finish (state, history, drift re-watch) before the next
# push; with SETTLE_GIT set, also until git has been quiet for 1 s: the cycle may go on to
# other services after reloading s1.
settle_after_push() {
    sleep 0.3
    [ -z "${SETTLE_GIT:-}" ] || wait_git_quiet
}

latency_pushes() {
    local mode=$1 n=$2 body=${3:-} sig=${4:-}
    local i before t0 t1 rc code content now failed=0 wrong=0
    : >"$CUR/$mode.ns"
    : >"$CUR/$mode.cmd_ns"
    for ((i = 1; i <= n; i++)); do
        ns_calls "reload s1"
        before=$CALLS
        content="$mode push $i $RANDOM"
        # Polling: a random 0-3 s pause first, so the pushes fall at random points of the
        # 2-3 s poll cycle (the interval plus up to half of it as jitter) and not in step with it.
        [ "$mode" != poll ] || sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r / 32768 * 3 }')"
        printf '%s\n' "$content" >"$CUR/up/s1/conf"
        "$REAL_GIT" -C "$CUR/up" commit -q -a -m "$content"
        stamp
        t0=$STAMP
        rc=0
        case $mode in
        webhook)
            code=$(curl -sS -o "$CUR/hook.body" -w '%{http_code}' -X POST --data-binary "$body" \
                -H 'Content-Type: application/json' -H "X-Hub-Signature-256: sha256=$sig" \
                "http://127.0.0.1:$HTTP_PORT/webhook" 2>>"$CUR/trigger.err") || rc=$?
            ;;
        pull)
            ctl "do" pull "@127.0.0.1:$SSH_PORT" s1 >>"$CUR/trigger.out" 2>>"$CUR/trigger.err" || rc=$?
            ;;
        esac
        stamp
        t1=$STAMP
        if [ "$mode" != poll ]; then
            echo $((t1 - t0)) >>"$CUR/$mode.cmd_ns"
            if [ "$rc" != 0 ] || { [ "$mode" = webhook ] && { [ "$code" != 200 ] ||
                ! grep -q "woke 1 service" "$CUR/hook.body"; }; }; then
                log "$mode push $i: trigger failed (exit $rc${code:+, HTTP $code}): $(tail -n 1 "$CUR/trigger.err" 2>/dev/null; cat "$CUR/hook.body" 2>/dev/null)"
                failed=$((failed + 1))
                # The push is still there: let the daemon take it (its next poll, if any) before
                # the next push, as after any other, so that it is not measured with this one.
                wait_call "reload s1" "$before" 15 || true
                settle_after_push
                continue
            fi
        fi
        if wait_call "reload s1" "$before" 15; then
            echo $((CALL_NS - t0)) >>"$CUR/$mode.ns"
            now=$(cat "$CUR/etc/s1/conf" 2>/dev/null || true)
            if [ "$now" != "$content" ]; then
                log "$mode push $i: reloaded, but $CUR/etc/s1/conf holds \"$now\""
                wrong=$((wrong + 1))
            fi
        else
            log "$mode push $i: no \"reload s1\" within 15 s"
            failed=$((failed + 1))
        fi
        settle_after_push
    done
    echo "$failed" >"$CUR/$mode.failed"
    echo "$wrong" >"$CUR/$mode.wrong"
}

# ---- results: table rows and JSON objects ----------------------------------------------------

IDLE_ROWS=()
STARTUP_ROWS=()
LATENCY_ROWS=()
PULL_ROWS=()
GATE_ROWS=()
CONTROL_ROWS=()
BIG_ROWS=()
FLEET_ROWS=()
ROLLOUT_ROWS=()
DISK_ROWS=()
JSON_ITEMS=()
json_add() { JSON_ITEMS+=("$1"); }
mark() { # VALUE OP LIMIT: "ok" or "MISSED" (never fails the run); n/a stays n/a
    [ "$1" != n/a ] || { echo n/a; return; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 == l + 0)
        print ok ? "ok" : "MISSED" }'
}
