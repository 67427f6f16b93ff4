# Shared by the fleet rollout scenarios (fleet.sh, fleet_faults.sh): real etcd members on
# 127.0.0.1 with their data in $T, and several real daemons, each in a mount namespace, state
# dir and work dir ($T/HOST) of its own, with a stand-in systemctl and a health check that log
# with timestamps, so that the publish windows can be read back. Source it after lib.sh.

command -v etcd >/dev/null || skip "no etcd (scripts/install-deps installs etcd-server)"

# free_port: a TCP port nothing listens on now, on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_etcd NAME CLIENT PEER CLUSTER: one member, data in $T/etcd-NAME; CLUSTER is etcd's
# --initial-cluster (NAME=http://127.0.0.1:PEER,...). Its PID in ETCD_PID[NAME].
declare -A ETCD_PID ETCD_ARGS
start_etcd() {
    local name=$1 client=$2 peer=$3 cluster=$4
    ETCD_ARGS[$name]="--name $name --data-dir $T/etcd-$name
        --listen-client-urls http://127.0.0.1:$client --advertise-client-urls http://127.0.0.1:$client
        --listen-peer-urls http://127.0.0.1:$peer --initial-advertise-peer-urls http://127.0.0.1:$peer
        --initial-cluster $cluster --initial-cluster-token gitopper-test-$$"
    restart_etcd "$name"
}
# restart_etcd NAME: the member again, from its data dir.
restart_etcd() {
    local name=$1
    # shellcheck disable=SC2086
    etcd ${ETCD_ARGS[$name]} >>"$T/etcd-$name.log" 2>&1 &
    ETCD_PID[$name]=$!
    cleanup_hooks+=("kill -KILL ${ETCD_PID[$name]} 2>/dev/null; wait ${ETCD_PID[$name]} 2>/dev/null")
}
stop_etcd() { kill -TERM "${ETCD_PID[$1]}"; wait "${ETCD_PID[$1]}" 2>/dev/null || true; }
etcd_healthy() { curl -sS -m 1 "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

# The health check every host runs: health.sh HOST SERVICE COMMIT. It logs its start and end
# to $T/HOST/health.log, takes $T/SERVICE.seconds (0.3 s if none) like a service settling,
# waits while $T/hang or $T/hang-COMMIT exists (its PID in $T/HOST/health.pid), fails while $T/unhealthy-SERVICE
# exists.
cat >"$T/health.sh" <<SH
#!/bin/sh
log="$T/\$1/health.log"
echo "\$(date +%s.%N) start \$2 \$3" >>"\$log"
echo \$\$ >"$T/\$1/health.pid"
n=0
while { [ -e "$T/hang" ] || [ -e "$T/hang-\$3" ]; } && [ \$n -lt 600 ]; do sleep 0.1; n=\$((n + 1)); done
sleep "\$(cat "$T/\$2.seconds" 2>/dev/null || echo 0.3)"
echo "\$(date +%s.%N) end \$2 \$3" >>"\$log"
[ ! -e "$T/unhealthy-\$2" ]
SH
chmod +x "$T/health.sh"

# fleet_host HOST ROLLOUT SERVICES...: HOST's work dir, stand-in systemctl (each call logged
# as "TIME ARGS" in $T/HOST/systemctl.log) and config: [global] rollout = ROLLOUT (a TOML
# table), one service per name given, each on the upstream's directory of its name.
fleet_host() {
    local host=$1 rollout=$2; shift 2
    mkdir -p "$T/$host/bin" "$T/$host/state"
    cat >"$T/$host/bin/systemctl" <<SH
#!/bin/sh
echo "\$(date +%s.%N) \$*" >>"$T/$host/systemctl.log"
SH
    chmod +x "$T/$host/bin/systemctl"
    touch "$T/$host/systemctl.log" "$T/$host/health.log"
    {
        cat <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/$host/srv"
action = "reload"
health_retries = 1
keys = [ { path = "$T/ops.pub" } ]
rollout = $rollout
TOML
        local service
        for service in "$@"; do
            cat <<TOML
[[services]]
machine = "$host"
service = "${service%%:*}"
health = ["$T/health.sh", "$host", "${service%%:*}", "{commit}"]
dirs = [ { local = "$T/$host/etc/${service%%:*}", link = "${service%%:*}" } ]
${service#*:}
TOML
        done
    } >"$T/$host/config.toml"
}

# start_host HOST: its daemon, in a mount namespace of its own, polling every $HOST_INTERVAL
# (1s unless set); PID in HOST_PID[HOST].
declare -A HOST_PID
start_host() {
    local host=$1
    env PATH="$T/$host/bin:$PATH" unshare --mount --propagation private -- \
        "$GITOPPER" -c "$T/$host/config.toml" --state "$T/$host/state" -h "$host" -t "${HOST_INTERVAL:-1s}" \
        -m 127.0.0.1:0 -s 127.0.0.1:0 >>"$T/$host/gitopper.log" 2>&1 &
    HOST_PID[$host]=$!
    cleanup_hooks+=("kill -KILL ${HOST_PID[$host]} 2>/dev/null; wait ${HOST_PID[$host]} 2>/dev/null")
}
stop_host() { kill -TERM "${HOST_PID[$1]}"; wait "${HOST_PID[$1]}"; }

# host_port HOST: its HTTP endpoint's port; host_api_port HOST: its control API's.
host_port() {
    wait_until 20 grep -q "http: .*listening on 127.0.0.1:" "$T/$1/gitopper.log"
    sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/$1/gitopper.log" | tail -1
}
host_api_port() {
    wait_until 20 grep -q "control API listening on 127.0.0.1:" "$T/$1/gitopper.log"
    sed -n 's/.*control API listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/$1/gitopper.log" | tail -1
}
# host_field HOST SERVICE FIELD: one field of /list/service/SERVICE (commit, state, stateinfo).
host_field() {
    curl -sS "http://127.0.0.1:$(host_port "$1")/list/service/$2" |
        python3 -c "import json, sys; print(json.load(sys.stdin)['services'][0]['$3'])"
}
host_metric() {
    curl -sS "http://127.0.0.1:$(host_port "$1")/metrics" | awk -v s="$2" '$1 == s { print $2 }'
}
# all_at COMMIT SERVICE HOSTS...: every one of HOSTS has deployed COMMIT of SERVICE.
all_at() {
    local commit=$1 service=$2 host; shift 2
    for host in "$@"; do [ "$(host_field "$host" "$service" commit)" = "$commit" ] || return 1; done
}

# all_done COMMIT SERVICE HOSTS...: all_at, and each host's health check of it has ended (a
# commit is deployed, and listed, before its health check: its slot is held until then).
all_done() {
    local commit=$1 service=$2 host
    all_at "$@" || return 1
    shift 2
    for host in "$@"; do
        grep -q " end $service $commit\$" "$T/$host/health.log" || return 1
    done
}

# windows SERVICE COMMIT HOSTS...: one line "START END HOST" per host that published COMMIT,
# from its first `systemctl reload SERVICE` after $PUSHED (the push's time) to the end of its
# health check of COMMIT: a window within the time it held its slot.
windows() {
    local service=$1 commit=$2 host; shift 2
    for host in "$@"; do
        local start end
        start=$(awk -v t="$PUSHED" -v s="reload $service" '$1 > t && substr($0, index($0, " ") + 1) == s { print $1; exit }' "$T/$host/systemctl.log")
        end=$(awk -v s="$service" -v c="$commit" '$2 == "end" && $3 == s && $4 == c { print $1 }' "$T/$host/health.log" | tail -1)
        [ -n "$start" ] && [ -n "$end" ] && echo "$start $end $host"
    done
    return 0
}
# most_at_once: the most windows (lines of `windows` on stdin) open at one instant.
most_at_once() {
    python3 -c '
import sys
edges = []
for line in sys.stdin:
    start, end, _ = line.split()
    edges += [(float(start), 1), (float(end), -1)]
now = most = 0
for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
    now += step
    most = max(most, now)
print(most)'
}
# push PATH CONTENT: a commit upstream; its hash in $PUSH, its time in $PUSHED.
push() {
    PUSHED=$(date +%s.%N)
    PUSH=$(commit "$1" "$2")
}
