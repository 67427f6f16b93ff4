#!/usr/bin/env bash
# Fleet rollouts are carried by etcd's watch, not by polls (issue 16): five daemons that poll
# once an hour are each asked to pull a new commit; with max_parallel = 1 every one of them
# applies it, one at a time, each woken only when a slot is freed for it (a host far back in
# line is not woken by every hand-over; a missed wake would leave it waiting for an hour).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

client=$(free_port)
peer=$(free_port)
start_etcd one "$client" "$peer" "one=http://127.0.0.1:$peer"
wait_until 30 etcd_healthy "$client"

make_upstream
c0=$(commit app/conf "one")
ssh-keygen -q -t ed25519 -N '' -C ops -f "$T/ops"
hosts=(h1 h2 h3 h4 h5)
for host in "${hosts[@]}"; do
    fleet_host "$host" "{ etcd = [\"http://127.0.0.1:$client\"], lease_ttl = \"3s\", timeout = \"1s\" }" app:
done
HOST_INTERVAL=1h
for host in "${hosts[@]}"; do start_host "$host"; done
wait_until 30 all_at "$c0" app "${hosts[@]}"

echo 0.5 >"$T/app.seconds" # each host holds its slot half a second: the others stand in line
push app/conf "two"
for host in "${hosts[@]}"; do
    API_PORT=$(host_api_port "$host")
    api_as ops /do/pull app
    [ "$API_STATUS" = 0 ] || fail "pull on $host: $API_STATUS $(cat "$T/err")"
done
wait_until 60 all_done "$PUSH" app "${hosts[@]}"
windows app "$PUSH" "${hosts[@]}" >"$T/windows"
[ "$(wc -l <"$T/windows")" = 5 ] || fail "$(cat "$T/windows")"
[ "$(most_at_once <"$T/windows")" = 1 ] || fail "windows overlap: $(cat "$T/windows")"
waited=$(grep -l "is ready; waiting for a rollout slot" "$T"/h*/gitopper.log | wc -l)
[ "$waited" -ge 3 ] || fail "only $waited hosts stood in line"
for host in "${hosts[@]}"; do stop_host "$host"; done
