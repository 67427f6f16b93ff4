#!/usr/bin/env bash
# The HTTP endpoint cannot be starved (SPEC §11): while slow clients hold connections open
# (slowloris header trickle, idle sockets, a trickled body) from another loopback address or
# from the scraper's own, /metrics and /healthz still answer a scraper on 127.0.0.1 within
# 2 s, and the server cuts the slow ones off at its read deadline. Oversized webhook bodies
# get 413 by Content-Length and by chunked encoding alike, and a stream of them leaves the
# daemon's memory flat. Stopping the daemon does not wait for slow clients.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

attack="$SOURCE_DIR/tests/e2e/http_attack.py"
deadline=5 # HttpServer::kReadDeadline
margin=2   # a loaded machine's scheduling, the trickle interval
fast=2     # what a scraper may wait while under attack

make_upstream
commit app/conf "one" >/dev/null
printf 'starve-secret\n' >"$T/webhook.secret"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
webhook_secret_file = "webhook.secret"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
start_gitopper -m 127.0.0.1:0 -t 1h
wait_until 20 grep -q "http: .*listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
url="http://127.0.0.1:$port"
wait_until 20 grep -qx "start app" "$T/systemctl.log"

# scrape PATH: a GET from 127.0.0.1 must answer 200 within $fast seconds.
scrape() {
    local got
    got=$(curl -sS -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' "$url$1" || true)
    echo "scrape $1: $got" >>"$T/scrapes"
    [ "${got%% *}" = 200 ] || fail "GET $1 under attack: \"$got\" (want 200)"
    awk -v t="${got#* }" -v max="$fast" 'BEGIN { exit !(t < max) }' ||
        fail "GET $1 under attack took ${got#* } s (want < $fast s)"
}

# under_attack NAME SECONDS GROUP...: starts the slow clients (see http_attack.py), scrapes
# while they are all connected, then checks that the server closed every one of them within
# the read deadline plus margin.
under_attack() {
    local name=$1 seconds=$2 pid; shift 2
    python3 "$attack" slow "$port" "$T/$name" "$seconds" "$@" &
    pid=$!
    cleanup_hooks+=("kill $pid 2>/dev/null")
    wait_until 10 test -e "$T/$name.ready"
    # Scrape throughout the first half of the deadline, while the admitted ones are still up.
    local until=$(( $(date +%s%N) + deadline * 500000000 ))
    while [ "$(date +%s%N)" -lt "$until" ]; do
        scrape /metrics
        scrape /healthz
        sleep 0.2 # pacing: a scraper, not a flood
    done
    wait "$pid"
    awk -v max=$((deadline + margin)) '$3 != "closed" || $4 > max { bad = 1; print "not cut off:", $0 }
        END { exit bad }' "$T/$name.out" || fail "$name: slow clients outlived the deadline"
    echo "$name: $(awk '{ print $1, $3, $4 }' "$T/$name.out" | sort | uniq -c | tr '\n' ';')"
}

# 50 hostile connections from another loopback address.
under_attack other 12 slowloris:20@127.0.0.2 idle:20@127.0.0.2 slowbody:10@127.0.0.2
# 4 from the scraper's own address.
under_attack same 12 slowloris:2@127.0.0.1 idle:1@127.0.0.1 slowbody:1@127.0.0.1

# Oversized webhook bodies: 413 before the body is read, whichever way its length is given.
head -c 2000000 /dev/zero | tr '\0' x >"$T/big"
for encoding in Content-Length chunked; do
    header=()
    if [ "$encoding" = chunked ]; then header=(-H "Transfer-Encoding: chunked"); fi
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "${header[@]}" \
        --data-binary @"$T/big" "$url/webhook" || true)
    [ "$code" = 413 ] || fail "oversized webhook body by $encoding: $code"
done

# A stream of 200 oversized requests (8 MiB declared, half of them chunked) sent without
# waiting for 100-continue: memory stays flat, and VmHWM shows that not even one request was
# buffered beyond the 1 MiB limit. AddressSanitizer keeps freed memory in quarantine, so a
# sanitizer build checks the answers only.
mem() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$GITOPPER_PID/status"; }
rss_before=$(mem VmRSS) hwm_before=$(mem VmHWM)
python3 "$attack" oversize "$port" 200 $((8 << 20)) >"$T/oversize"
rss_after=$(mem VmRSS) hwm_after=$(mem VmHWM)
echo "oversize: $(tr '\n' ' ' <"$T/oversize"); VmRSS ${rss_before} -> ${rss_after} kB," \
    "VmHWM ${hwm_before} -> ${hwm_after} kB"
[ "$(cat "$T/oversize")" = "413 200" ] || fail "oversized stream: $(cat "$T/oversize")"
if ! ldd "$GITOPPER" | grep -q libasan; then
    # Bounds: back to where it was, give or take a few pages; a peak of one 1 MiB body.
    (( rss_after - rss_before < 1024 )) || fail "VmRSS grew from $rss_before to $rss_after kB"
    (( hwm_after - hwm_before < 2048 )) || fail "VmHWM grew from $hwm_before to $hwm_after kB"
fi

curl -sS "$url/metrics" >"$T/metrics"
expect_in "$T/metrics" 'gitopper_webhook_requests_total{result="too_large"} 202'
scrape /healthz

# Stopping does not wait for slow clients: their connections end with the daemon, at once.
python3 "$attack" slow "$port" "$T/stop" 12 slowloris:4@127.0.0.3 idle:4@127.0.0.3 &
attacker=$!
cleanup_hooks+=("kill $attacker 2>/dev/null")
wait_until 10 test -e "$T/stop.ready"
start=$(date +%s%N)
stop_gitopper TERM
stop_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "stop with slow clients connected: $stop_ms ms"
[ "$EXIT_STATUS" = 0 ] || fail "daemon exit status $EXIT_STATUS"
(( stop_ms < 2000 )) || fail "stopping took $stop_ms ms with slow clients connected"
wait "$attacker"
echo PASS
