#!/usr/bin/env bash
# Fleet rollouts when etcd fails (issue 16): a real 3-member etcd cluster on 127.0.0.1 and five
# real daemons. One member stopped changes nothing (the next member answers; publish windows
# still never overlap); all stopped, every daemon keeps its files and says DIFF with the
# reason, publishing nothing without a slot; the members back, the rollout resumes.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

members=(m1 m2 m3)
declare -A CLIENT PEER
cluster=""
for m in "${members[@]}"; do
    CLIENT[$m]=$(free_port)
    PEER[$m]=$(free_port)
    cluster+="${cluster:+,}$m=http://127.0.0.1:${PEER[$m]}"
done
for m in "${members[@]}"; do start_etcd "$m" "${CLIENT[$m]}" "${PEER[$m]}" "$cluster"; done
for m in "${members[@]}"; do wait_until 60 etcd_healthy "${CLIENT[$m]}"; done

make_upstream
c0=$(commit app/conf "one")
ssh-keygen -q -t ed25519 -N '' -C ops -f "$T/ops"
hosts=(h1 h2 h3 h4 h5)
urls=""
for m in "${members[@]}"; do urls+="${urls:+, }\"http://127.0.0.1:${CLIENT[$m]}\""; done
for host in "${hosts[@]}"; do
    fleet_host "$host" "{ etcd = [$urls], lease_ttl = \"3s\", timeout = \"1s\" }" app:
done
for host in "${hosts[@]}"; do start_host "$host"; done
wait_until 30 all_at "$c0" app "${hosts[@]}"

rollout_once() { # CONTENT: pushed, applied by every host, one at a time
    push app/conf "$1"
    wait_until 60 all_done "$PUSH" app "${hosts[@]}"
    windows app "$PUSH" "${hosts[@]}" >"$T/windows"
    [ "$(wc -l <"$T/windows")" = 5 ] || fail "$(cat "$T/windows")"
    [ "$(most_at_once <"$T/windows")" = 1 ] || fail "windows overlap: $(cat "$T/windows")"
}
rollout_once two

# The first member, which every daemon asks first, stops: the others answer.
stop_etcd m1
rollout_once three
c2=$PUSH

# All stopped: nobody publishes; each says why, DIFF, and keeps the files it has.
stop_etcd m2
stop_etcd m3
push app/conf "four"
c3=$PUSH
waiting_for_etcd() {
    local host
    for host in "${hosts[@]}"; do
        [ "$(host_field "$host" app state)" = DIFF ] || return 1
        host_field "$host" app stateinfo | grep -q '^rollout: etcd: http://127.0.0.1:' || return 1
    done
}
wait_until 60 waiting_for_etcd
cycles_of_at_least() { [ "$(host_metric "$1" gitopper_service_sync_duration_seconds_count)" -ge "$2" ]; }
# Two more of h1's poll cycles: each had its chance to publish without a slot.
wait_until 30 cycles_of_at_least h1 $(( $(host_metric h1 gitopper_service_sync_duration_seconds_count) + 2 ))
for host in "${hosts[@]}"; do
    [ "$(host_field "$host" app commit)" = "$c2" ] || fail "$host published without a slot"
    [ "$(host_field "$host" app upstream_commit)" = "$c3" ] || fail "$host does not track upstream"
    ! grep -q "reload app" <(awk -v t="$PUSHED" '$1 > t' "$T/$host/systemctl.log") ||
        fail "$host reloaded without a slot"
done
failures=$(host_metric h1 gitopper_rollout_etcd_failures_total)
[ "${failures%.*}" -gt 0 ] || fail "no etcd failures counted"

# Back: the rollout resumes, still one host at a time.
PUSHED=$(date +%s.%N)
for m in "${members[@]}"; do restart_etcd "$m"; done
wait_until 90 all_done "$c3" app "${hosts[@]}"
windows app "$c3" "${hosts[@]}" >"$T/windows"
[ "$(most_at_once <"$T/windows")" = 1 ] || fail "windows overlap after etcd came back"
for host in "${hosts[@]}"; do
    [ "$(host_field "$host" app state)" = OK ] || fail "$host: $(host_field "$host" app state)"
    stop_host "$host"
done
