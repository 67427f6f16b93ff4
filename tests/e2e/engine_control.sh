#!/usr/bin/env bash
# The internal control interface through the SSH API with a plain OpenSSH client: rollback
# (carried out before OK, ends in FREEZE, survives a restart; only to the branch's history
# unless forced; piled-up requests coalesced), unfreeze, freeze across a restart, bad and
# unknown hashes, read-only and unknown keys.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
c1=$(commit app/conf "one")
c2=$(commit app/conf "two")
c3=$(commit app/conf "three")
for k in rw ro stranger; do ssh-keygen -q -t ed25519 -N '' -f "$T/$k"; done
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" }, { path = "ro.pub", ro = true } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML

start_api() {
    : >"$T/gitopper.log"
    start_gitopper -s 127.0.0.1:0 "$@"
    API_PORT=$(api_port)
}
api() { api_as "$@"; } # KEY REQUEST...
state_is() { api ro /list/service app; grep -q "\"state\":\"$1\"" "$T/out"; }

start_api
wait_until 20 grep -qx "start app" "$T/systemctl.log"
wait_until 10 grep -qx three "$T/etc/app/conf"
api ro /list/service
[ "$API_STATUS" = 0 ] || fail "list service: $API_STATUS $(cat "$T/err")"
expect_in "$T/out" "\"service\":\"app\""
expect_in "$T/out" "\"hash\":\"${c3:0:8}\",\"state\":\"OK\""
expect_in "$T/out" "\"commit\":\"$c3\""
expect_in "$T/out" "\"state\":\"OK\""
grep -qE '"change":"[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} UTC"' "$T/out" || fail "change time format"

# Keys: an unknown key is refused; a read-only key may not change anything (401 -> 145).
api stranger /list/service
[ "$API_STATUS" = 255 ] || fail "an unknown key got in: $API_STATUS"
api ro /do/rollback app "$c1"
[ "$API_STATUS" = $((401 % 256)) ] || fail "read-only rollback: $API_STATUS"
api ro /do/freeze app
[ "$API_STATUS" = $((401 % 256)) ] || fail "read-only freeze: $API_STATUS"
api ro /do/pull app
[ "$API_STATUS" = $((401 % 256)) ] || fail "read-only pull: $API_STATUS"
expect_in "$T/gitopper.log" "ro.pub:1, read-only): 401"
wait_cycles 2
state_is OK || fail "a read-only key changed the state"
[ "$(cat "$T/etc/app/conf")" = three ] || fail "a read-only key changed the files"

# 30 clients at once from 4 addresses, 8 at most from one (the server's cap on unauthenticated
# connections per address, tested at its edge): every one answered.
for i in $(seq 1 30); do
    ( ssh -p "$API_PORT" -i "$T/ro" -b "127.0.0.$((10 + i % 4))" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR test@127.0.0.1 /list/service app \
        >"$T/c$i.out" 2>&1 && echo ok >"$T/c$i.status" || echo "fail $?" >"$T/c$i.status" ) &
done
wait_n() { [ "$(ls "$T"/c*.status 2>/dev/null | wc -l)" -ge 30 ]; }
wait_until 60 wait_n
[ "$(cat "$T"/c*.status | grep -c '^ok$')" = 30 ] || fail "concurrent clients: $(cat "$T"/c*.status | sort | uniq -c)"
grep -l '"service":"app"' "$T"/c*.out | wc -l | grep -qx 30 || fail "a concurrent client got a wrong answer"

# Arguments are checked before anything runs.
api rw /do/rollback app zzzz
[ "$API_STATUS" = $((406 % 256)) ] || fail "non-hex hash: $API_STATUS"
api rw /do/rollback app -- --help
[ "$API_STATUS" = $((400 % 256)) ] || fail "option-like args: $API_STATUS"
api rw /do/freeze nosuchservice
[ "$API_STATUS" = $((404 % 256)) ] || fail "unknown service: $API_STATUS"

# Rollback: at once, reloads, ends in FREEZE with ROLLBACK: <hash>.
reloads=$(calls "reload app")
start_ns=$(date +%s%N)
api rw /do/rollback app "${c1:0:8}"
[ "$API_STATUS" = 0 ] || fail "rollback: $API_STATUS $(cat "$T/out")"
wait_until 5 grep -qx one "$T/etc/app/conf"
echo "rollback deployed in $(( ($(date +%s%N) - start_ns) / 1000000 )) ms"
wait_until 5 calls_above "reload app" "$reloads"
wait_until 5 state_is FREEZE
expect_in "$T/out" "\"stateinfo\":\"ROLLBACK: $c1\""

# Frozen: upstream moves, the service stays.
c4=$(commit app/conf "four")
wait_cycles 2
[ "$(cat "$T/etc/app/conf")" = one ] || fail "a frozen service followed upstream"

# A real restart keeps the rollback pin and the content.
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
start_api
wait_until 20 state_is FREEZE
expect_in "$T/out" "ROLLBACK: $c1"
wait_cycles 2
[ "$(cat "$T/etc/app/conf")" = one ] || fail "the restart lost the rollback"
[ "$(mounts_on "$T/etc/app")" = 1 ] || fail "mounts stacked"

# Unfreeze: follows upstream again, at once.
api rw /do/unfreeze app
[ "$API_STATUS" = 0 ] || fail "unfreeze: $API_STATUS"
wait_until 5 grep -qx four "$T/etc/app/conf"
wait_until 5 state_is OK

# Freeze survives a restart too.
api rw /do/freeze app
wait_until 5 state_is FREEZE
stop_gitopper TERM
start_api
wait_until 20 state_is FREEZE
commit app/conf "five" >/dev/null
wait_cycles 2
[ "$(cat "$T/etc/app/conf")" = four ] || fail "a restarted frozen service followed upstream"
api rw /do/unfreeze app
wait_until 5 grep -qx five "$T/etc/app/conf"

# An unknown commit: 404, the state and the files as they were.
api rw /do/rollback app deadbeefdeadbeef
[ "$API_STATUS" = $((404 % 256)) ] || fail "unknown commit: $API_STATUS"
expect_in "$T/out" "not found"
state_is OK || fail "a refused rollback changed the state: $(cat "$T/out")"
[ "$(cat "$T/etc/app/conf")" = five ] || fail "a failed rollback touched the files"

# A commit that upstream's branch no longer has (force-pushed away, but fetched here): 404
# unless forced; forced, it is deployed and logged as such.
gone=$(commit app/conf "gone")
wait_until 10 grep -qx gone "$T/etc/app/conf"
git -C "$T/up" reset -q --hard HEAD~1
wait_until 10 grep -qx five "$T/etc/app/conf"
api rw /do/rollback app "$gone"
[ "$API_STATUS" = $((404 % 256)) ] || fail "rollback off the branch: $API_STATUS $(cat "$T/out")"
expect_in "$T/out" "is not in the history of branch \"main\""
state_is OK || fail "a refused rollback changed the state"
[ "$(cat "$T/etc/app/conf")" = five ] || fail "a refused rollback touched the files"
api rw /do/rollback app "$gone" forced
[ "$API_STATUS" = $((400 % 256)) ] || fail "a third argument other than force: $API_STATUS"
api rw /do/rollback app "$gone" force
[ "$API_STATUS" = 0 ] || fail "forced rollback: $API_STATUS $(cat "$T/out")"
[ "$(cat "$T/etc/app/conf")" = gone ] || fail "the forced rollback was not carried out before OK"
expect_in "$T/gitopper.log" "[app] forced rollback to ${gone:0:8}, which is not in the history"
api rw /do/unfreeze app
wait_until 10 grep -qx five "$T/etc/app/conf"

# Rollbacks that pile up while one runs are coalesced: the last is carried out, the others
# are answered (the same result, or 409 superseded); never one deploy per request.
real_git=$(command -v git)
cat >"$T/bin/git" <<SH
#!/bin/sh
case " \$* " in *" fetch "*) [ -e "$T/slow" ] && touch "$T/fetching" && sleep 1 ;; esac
exec "$real_git" "\$@"
SH
chmod +x "$T/bin/git"
touch "$T/slow"
deploys_before=$(grep -c "(rollback, " "$T/gitopper.log" || true)
api rw /do/rollback app "$c2" &
first=$!
wait_until 10 test -e "$T/fetching"
pids=()
for n in 1 2 3 4 5 6; do
    hash=$c1; [ $((n % 2)) = 0 ] && hash=$c2
    (api rw /do/rollback app "$hash"; echo "$API_STATUS" >"$T/rb$n.status") &
    pids+=($!)
done
wait "$first" "${pids[@]}"
rm "$T/slow"
for n in 1 2 3 4 5 6; do
    grep -qxE "0|$((409 % 256))" "$T/rb$n.status" || fail "rollback $n answered $(cat "$T/rb$n.status")"
done
deploys=$(( $(grep -c "(rollback, " "$T/gitopper.log") - deploys_before ))
[ "$deploys" -le 2 ] || fail "7 piled-up rollbacks cost $deploys deploys"
rm "$T/bin/git"

# History records what happened.
api ro /list/history app
expect_in "$T/out" "\"trigger\":\"rollback\""
expect_in "$T/out" "\"to\":\"$c1\""
stop_gitopper TERM
echo PASS
