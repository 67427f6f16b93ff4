# shellcheck shell=bash
# scenario_rollout (rollout: N daemons coordinated through one etcd, issue 16) and its helpers.
# Sourced by bench/run after bench/lib.sh and scenarios/fleet.sh (the git daemon, free_port);
# runs under its set -euo pipefail. Alone: bench/run --only rollout (--fleet N for N daemons).

# start_etcd_member DIR: one etcd member on 127.0.0.1 with its data in DIR; its client port in
# ETCD_PORT, its PID in ETCD_PID (also in BG_PIDS, which the clean-up ends).
start_etcd_member() {
    local dir=$1 peer i
    ETCD_PORT=$(free_port)
    peer=$(free_port)
    etcd --name bench --data-dir "$dir" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "bench=http://127.0.0.1:$peer" >>"$CUR/etcd.log" 2>&1 &
    ETCD_PID=$!
    BG_PIDS+=("$ETCD_PID")
    for ((i = 0; i < 200; i++)); do
        curl -sS -m 1 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' && return 0
        alive "$ETCD_PID" || break
        sleep 0.05
    done
    log "etcd did not come up; its log:"
    tail -n 20 "$CUR/etcd.log" >&2
    return 1
}
# etcd_requests: the requests etcd has served so far (its gRPC calls: the JSON gateway hands
# each request to one).
etcd_requests() {
    curl -sS "http://127.0.0.1:$ETCD_PORT/metrics" |
        awk '$1 ~ /^grpc_server_handled_total\{/ { s += $2 } END { printf "%d\n", s }'
}

# rollout_done SERVICE N SINCE: every daemon 1..N has recorded `is-active SERVICE` (its health
# check, the last step in its slot) after SINCE (ns) in $CUR/calls.ns.
rollout_done() {
    [ "$(awk -v t="$3" -v s="$1" '$1 > t && $3 == "is-active" && $4 == s { d[$2] = 1 }
        END { print length(d) }' "$CUR/calls.ns")" -ge "$2" ]
}

# rollout_figures SERVICE SINCE: from the stand-ins' calls (ns) and the daemons' logs (ms), one
# line "ALL_S FIRST_S GAP_P50 GAP_P95 COORD_P50 COORD_P95 STAGE_P50 MOST HANDOVERS" for the push at SINCE:
# when the last host's health check ran and when the first host's action did, both from the
# push; the gap from one host's health check to the next one's action (in order of their
# actions) where the next one stood in line already, split into coordination (health check → the next host's "took a rollout slot") and
# staging (slot → its action); the most hosts between action and health check at one instant.
rollout_figures() {
    python3 - "$1" "$2" "$CUR" <<'PY'
import datetime, glob, os, re, sys
service, since, cur = sys.argv[1], int(sys.argv[2]), sys.argv[3]
act, done = {}, {}
for line in open(os.path.join(cur, "calls.ns")):
    f = line.split()
    if len(f) < 4 or int(f[0]) <= since or f[3] != service:
        continue
    if f[2] == "reload":
        act.setdefault(f[1], int(f[0]))
    elif f[2] == "is-active":
        done[f[1]] = int(f[0])
took, waiting = {}, {}
pattern = re.compile(r"^(\S+) info: \[%s\] (took a rollout slot|\S+ is ready; waiting for a rollout slot)" % re.escape(service))
for path in glob.glob(os.path.join(cur, "d*", "gitopper.log")):
    host = os.path.basename(os.path.dirname(path))[1:]
    for line in open(path, errors="replace"):
        m = pattern.match(line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp() * 1e9
            if t > since:
                (took if m.group(2).startswith("took") else waiting).setdefault(host, t)
def pct(values, p):
    if not values:
        return "n/a"
    values = sorted(values)
    return "%.1f" % (values[max(0, -(-p * len(values) // 100) - 1)] / 1e6)
order = sorted(act, key=act.get)
gaps, coord, stage = [], [], []
# One slot: each action follows the health check before it (with more, "the next" is no hand-over).
pairs = zip(order, order[1:]) if service == "mp1" else []
for a, b in pairs:
    # A hand-over: b stood in line before a's health check passed (not a late poll of b's).
    if a in done and b in act and b in took and waiting.get(b, float("inf")) < done[a]:
        gaps.append(act[b] - done[a])
        coord.append(took[b] - done[a])
        stage.append(act[b] - took[b])
edges = sorted([(act[h], 1) for h in act if h in done] + [(done[h], -1) for h in act if h in done])
now = most = 0
for _, step in edges:
    now += step
    most = max(most, now)
last = max(done.values()) if done else since
first = min(act.values()) if act else since
print("%.2f %.2f %s %s %s %s %s %d %d" % ((last - since) / 1e9, (first - since) / 1e9, pct(gaps, 50),
      pct(gaps, 95), pct(coord, 50), pct(coord, 95), pct(stage, 50), most, len(gaps)))
PY
}

# rollout N INTERVAL [HEALTH]: N daemons (host fleetI) on one git:// upstream served by `git daemon`, all
# with the same three services in one etcd rollout: mp1 (max_parallel 1, on s1/), mp5 (5, s2/)
# and mpall (N, s3/); action reload, the default health check (systemctl is-active, taking
# HEALTH seconds, 0 by default). One push per
# service, one after the other; for each, the time from the push until every host's health
# check ran, the hand-over between hosts, and etcd's CPU and requests over that rollout.
scenario_rollout() {
    local name=$1 n=$2 interval=$3 health=${4:-0}
    command -v etcd >/dev/null || { log "$name: no etcd (scripts/install-deps); skipped"; return 0; }
    local up=$CUR/git/up i
    mkdir -p "$CUR/git"
    make_upstream "$up" 3
    start_git_daemon "$CUR/git"
    start_etcd_member "$CUR/etcd"
    : >"$CUR/calls.ns"
    FLEET_PIDS=()
    for ((i = 1; i <= n; i++)); do
        mkdir -p "$CUR/d$i/bin"
        # The health check (is-active) takes HEALTH seconds, as a service settling would; it
        # is recorded when it ends.
        cat >"$CUR/d$i/bin/systemctl" <<SH
#!/bin/sh
[ "\$1" != is-active ] || [ "$health" = 0 ] || sleep $health
echo "\$(date +%s%N) $i \$*" >>"$CUR/calls.ns"
SH
        chmod +x "$CUR/d$i/bin/systemctl"
        {
            printf '[global]\nupstream = "git://127.0.0.1:%s/up"\nmount = "%s/d%d/srv"\naction = "reload"\n' \
                "$GITD_PORT" "$CUR" "$i"
            printf 'rollout = { etcd = ["http://127.0.0.1:%s"] }\n' "$ETCD_PORT"
            local service dir slots
            for service in mp1:s1:1 mp5:s2:5 "mpall:s3:$n"; do
                IFS=: read -r service dir slots <<<"$service"
                printf '\n[[services]]\nmachine = "fleet%d"\nservice = "%s"\nmax_parallel = %d\n' "$i" "$service" "$slots"
                printf 'dirs = [ { local = "%s/d%d/etc/%s", link = "%s" } ]\n' "$CUR" "$i" "$service" "$dir"
            done
        } >"$CUR/d$i/config.toml"
        env PATH="$CUR/d$i/bin:$PATH" "$GITOPPER" -c "$CUR/d$i/config.toml" --state "$CUR/d$i/state" \
            -h "fleet$i" -t "${interval}s" -m 127.0.0.1:0 -s 127.0.0.1:0 >>"$CUR/d$i/gitopper.log" 2>&1 &
        FLEET_PIDS+=($!)
    done
    local deadline=$(($(now_ns) + (120 + 2 * n) * 1000000000))
    until [ "$(awk '$3 == "start" { s[$2 " " $4] = 1 } END { print length(s) }' "$CUR/calls.ns")" -ge $((3 * n)) ]; do
        [ "$(now_ns)" -lt "$deadline" ] || { log "$name: not all daemons started"; return 1; }
        sleep 0.2
    done
    sleep 2 # each daemon's first poll after start-up is done

    local service dir content reached e0 e1 r0 r1 t_push figures
    for service in mpall:s3 mp5:s2 mp1:s1; do
        IFS=: read -r service dir <<<"$service"
        content="rollout push $RANDOM"
        printf '%s\n' "$content" >"$up/$dir/conf"
        e0=$(cpu_ticks "$ETCD_PID")
        r0=$(etcd_requests)
        "$REAL_GIT" -C "$up" commit -q -a -m "$content"
        stamp
        t_push=$STAMP
        reached=1
        deadline=$(($(now_ns) + (interval * 2 + 30 + 2 * n) * 1000000000))
        until rollout_done "$service" "$n" "$t_push"; do
            [ "$(now_ns)" -lt "$deadline" ] || { reached=0; break; }
            sleep 0.1
        done
        e1=$(cpu_ticks "$ETCD_PID")
        r1=$(etcd_requests)
        figures=$(rollout_figures "$service" "$t_push")
        local all first gap50 gap95 coord50 coord95 stage50 most handovers slots=${service#mp}
        [ "$slots" != all ] || slots=$n
        read -r all first gap50 gap95 coord50 coord95 stage50 most handovers <<<"$figures"
        [ "$reached" = 1 ] || { log "$name: $service did not reach every host"; all=n/a; }
        log "$name: $service: all $n hosts in $all s (first action $first s); $handovers hand-overs to a host in line, p50 $gap50 ms (coordination $coord50, staging $stage50), at most $most at once; etcd $(ticks_to_s $((e1 - e0))) s CPU, $((r1 - r0)) requests"
        ROLLOUT_ROWS+=("$(printf '%-17s %7s %6s  %6s  %7s  %-17s  %-17s  %9s  %5s  %8s  %8s' \
            "$name" "$n" "$slots" "$all" "$first" "$gap50/$gap95" "$coord50/$coord95" "$stage50" "$most" \
            "$(ticks_to_s $((e1 - e0)))" "$((r1 - r0))")")
        json_add "$(printf '{"scenario":"%s","kind":"rollout","daemons":%d,"max_parallel":%d,"interval_s":%d,"health_s":%s,"all_s":%s,"first_action_s":%s,"handovers":%d,"handover_p50_ms":%s,"handover_p95_ms":%s,"coordination_p50_ms":%s,"coordination_p95_ms":%s,"staging_p50_ms":%s,"most_at_once":%d,"etcd_cpu_s":%s,"etcd_requests":%d,"loadavg1_end":%s}' \
            "$name" "$n" "$slots" "$interval" "$health" "$(json_num "$all")" "$(json_num "$first")" "$handovers" "$(json_num "$gap50")" \
            "$(json_num "$gap95")" "$(json_num "$coord50")" "$(json_num "$coord95")" "$(json_num "$stage50")" \
            "$most" "$(ticks_to_s $((e1 - e0)))" $((r1 - r0)) "$(loadavg1)")"
    done

    local p bad_exits=0
    for p in "${FLEET_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${FLEET_PIDS[@]}"; do
        stop_pid "$p"
        [ "$STOP_EXIT" = 0 ] || bad_exits=$((bad_exits + 1))
    done
    FLEET_PIDS=()
    [ "$bad_exits" = 0 ] || log "$name: $bad_exits daemons exited non-zero after SIGTERM"
    stop_pid "$ETCD_PID"
    stop_git_daemon
}
