#!/usr/bin/env bash
# The SSH control API cannot be starved: 200 idle TCP connections from one address
# (127.0.0.2) and a few that trickle a banner byte by byte (127.0.0.3) do not delay a real
# client from 127.0.0.1; connections over the per-address cap are closed at once, the rest at
# the pre-authentication deadline; idle sockets cost no thread.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${GITOPPERCTL:?set by CTest}"

idle=200
trickle=4
deadline=10 # the server's pre-authentication deadline (src/server/ssh.cpp)
cap=8       # unauthenticated connections per address

make_upstream
commit app/conf "one" >/dev/null
export HOME="$T/home"
unset SSH_AUTH_SOCK SSH_AGENT_PID
mkdir -p "$HOME" && mkdir -m 700 "$HOME/.ssh"
ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "$HOME/.ssh/id_ed25519.pub" } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML

start_gitopper -s 127.0.0.1:0
wait_until 20 grep -q "control API listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*control API listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
at="@127.0.0.1:$port"
wait_until 20 grep -qx "start app" "$T/systemctl.log"

threads() { awk '/^Threads:/ { print $2 }' "/proc/$GITOPPER_PID/status"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed NAME COMMAND...: runs a legitimate request (20 s at most), prints how long it took.
timed() {
    local name=$1; shift
    local start status=0
    start=$(now_ms)
    timeout 20 "$@" >"$T/$name.out" 2>"$T/$name.err" || status=$?
    local took=$(( $(now_ms) - start ))
    echo "$name: exit $status after $took ms"
    [ "$status" = 0 ] || { cat "$T/$name.err"; fail "$name failed (exit $status) under attack"; }
    [ "$took" -le 2000 ] || fail "$name took $took ms under attack (limit 2000)"
}
ctl_list=("$GITOPPERCTL" -k "$T/known" list service "$at")
ssh_list=(ssh -p "$port" -i "$HOME/.ssh/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
          -o IdentitiesOnly=yes -o LogLevel=ERROR -b 127.0.0.1 test@127.0.0.1 /list/service)

# Before the attack: the client works, and the thread count settles to its idle value.
timed ctl_before "${ctl_list[@]}"
timed ssh_before "${ssh_list[@]}"
wait_until 10 test "$(threads)" -le 20
base=$(threads)
echo "threads before: $base"

python3 "$SOURCE_DIR/tests/e2e/ssh_hold.py" 127.0.0.1 "$port" "$T" \
    127.0.0.2 "$idle" 127.0.0.3 "$trickle" $((deadline * 3 + 10)) &
hold_pid=$!
cleanup_hooks+=("kill $hold_pid 2>/dev/null; wait $hold_pid 2>/dev/null")
wait_until 20 test -e "$T/ready"
echo "attacker connections (set up, failed): $(cat "$T/ready")"

# While they are held: real clients from 127.0.0.1 answer at once, several times over.
max_threads=$(threads)
for i in 1 2 3; do
    timed "ctl_attack_$i" "${ctl_list[@]}"
    expect_in "$T/ctl_attack_$i.out" "app"
    timed "ssh_attack_$i" "${ssh_list[@]}"
    expect_in "$T/ssh_attack_$i.out" '"service":"app"'
    t=$(threads); [ "$t" -le "$max_threads" ] || max_threads=$t
done

# Thread count stays bounded while the attacker is connected: one thread per trickling
# connection (they have sent something) and none per idle socket.
attacker_alive() { kill -0 "$hold_pid" 2>/dev/null && [ ! -e "$T/result.json" ]; }
while attacker_alive; do
    t=$(threads); [ "$t" -le "$max_threads" ] || max_threads=$t
    sleep 0.2
done
wait "$hold_pid"
echo "threads: before $base, at most $max_threads while attacked"
[ "$max_threads" -le $((base + trickle + 4)) ] ||
    fail "thread count grew from $base to $max_threads under $idle idle and $trickle slow connections"

# Every attacker connection was closed by the server: over the cap at once, the others at the
# deadline (a trickling banner does not extend it).
cat "$T/result.json"
python3 - "$T/result.json" "$idle" "$trickle" "$deadline" "$cap" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
idle, trickle, deadline, cap = (int(x) for x in sys.argv[2:6])
def fail(msg):
    sys.exit("FAIL: " + msg)
still_open = [t for t in r["idle"] + r["trickle"] if t is None]
if still_open:
    fail("%d attacker connections were never closed by the server (TCP states %s)"
         % (len(still_open), sorted(set(r["open_states"]))))
at_once = [t for t in r["idle"] if t < 1.5]
held = sorted(t for t in r["idle"] if t >= 1.5)
print("idle: %d closed at once, %d held until %s s" % (len(at_once), len(held), held[-1:] or "-"))
if len(at_once) < idle - cap:
    fail("only %d of %d idle connections were closed at once (cap %d per address)"
         % (len(at_once), idle, cap))
if any(not deadline - 1 <= t <= deadline + 3 for t in held):
    fail("idle connections held for %s s, not until the %d s deadline" % (held, deadline))
if any(not deadline - 1 <= t <= deadline + 3 for t in r["trickle"]):
    fail("trickling connections closed after %s s, not at the %d s deadline"
         % (r["trickle"], deadline))
PY
expect_in "$T/gitopper.log" "127.0.0.2"

# After the attack the API is as before.
timed ctl_after "${ctl_list[@]}"

# Many addresses (40, each under its cap) with 300 idle sockets in all: beyond the 256 that
# may wait for a first byte, the oldest are dropped; real clients still answer at once.
rm -f "$T/ready" "$T/result.json"
sources=$(seq -s, -f "127.0.1.%g" 1 40)
python3 "$SOURCE_DIR/tests/e2e/ssh_hold.py" 127.0.0.1 "$port" "$T" "$sources" 300 127.0.0.3 0 \
    $((deadline * 3 + 10)) &
hold_pid=$!
cleanup_hooks+=("kill $hold_pid 2>/dev/null; wait $hold_pid 2>/dev/null")
wait_until 20 test -e "$T/ready"
echo "attacker connections (set up, failed): $(cat "$T/ready")"
timed ctl_spread "${ctl_list[@]}"
timed ssh_spread "${ssh_list[@]}"
wait_until 10 grep -q "connections waiting for a first byte: dropped the oldest" "$T/gitopper.log"
t=$(threads)
[ "$t" -le $((base + 2)) ] || fail "$t threads with 300 idle sockets from 40 addresses (idle: $base)"
wait "$hold_pid"
python3 - "$T/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if None in r["idle"]:
    sys.exit("FAIL: %d idle connections never closed (TCP states %s)"
             % (r["idle"].count(None), sorted(set(r["open_states"]))))
early = [t for t in r["idle"] if t < 1.5]
print("spread: %d dropped at once, %d at the deadline" % (len(early), len(r["idle"]) - len(early)))
if len(early) < 300 - 256:
    sys.exit("FAIL: only %d dropped beyond the pending cap" % len(early))
PY
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"
echo PASS
