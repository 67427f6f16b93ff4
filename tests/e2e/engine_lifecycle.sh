#!/usr/bin/env bash
# Restarts keep exactly one mount per target; exit codes: SIGTERM 0, SIGINT 0, SIGHUP 2,
# -r with a changed config 2, a bad config 1 with nothing written; a damaged state file is kept
# aside, and the single state file of earlier versions is taken over.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
log_git_calls # polls are counted by their ls-remote

make_upstream
commit svc/a.conf "a" >/dev/null
commit svc/one.conf "one" >/dev/null
commit extra/x.conf "extra" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "svc"
dirs = [
  { local = "$T/etc/svc", link = "svc" },
  { local = "$T/etc/one.conf", link = "svc/one.conf", file = true },
]
TOML
for signal in TERM INT HUP; do
    start_gitopper
    wait_until 20 grep -q "start svc" "$T/systemctl.log"
    wait_cycles 1 # running its loop, not still starting
    stop_gitopper "$signal"
    want=0; [ "$signal" = HUP ] && want=2
    [ "$EXIT_STATUS" = "$want" ] || fail "SIG$signal: exit $EXIT_STATUS, not $want"
    [ "$(mounts_on "$T/etc/svc")" = 1 ] || fail "after SIG$signal: $(mounts_on "$T/etc/svc") mounts on etc/svc"
    [ "$(mounts_on "$T/etc/one.conf")" = 1 ] || fail "after SIG$signal: mounts on one.conf"
    : >"$T/systemctl.log"
done

# -r: a changed config file ends the daemon with 2.
start_gitopper -r
wait_until 20 grep -q "start svc" "$T/systemctl.log"
touch "$T/config.toml" # same content: not a change
wait_until 10 grep -q "config.toml was touched but its content is the same" "$T/gitopper.log"
kill -0 "$GITOPPER_PID" || fail "exited on a touch without a change"
echo "# a comment" >>"$T/config.toml"
wait_exit 10
[ "$EXIT_STATUS" = 2 ] || fail "-r: exit $EXIT_STATUS, not 2"
expect_in "$T/gitopper.log" "changed, exiting with status 2"

# A bad config: exit 1, the error with its position, nothing created.
echo 'brokenbranch = "x"' >>"$T/config.toml"
expect_status 1 "$GITOPPER" -c "$T/config.toml" --state "$T/newstate" -h testhost
expect_in "$T/err" "config.toml:12:1: unknown key \"brokenbranch\""
[ ! -e "$T/newstate" ] || fail "a bad config created the state dir"

# A truncated state file (the service's own, gitopper-state/svc.json): a warning, default
# state, the daemon runs.
sed -i '$d' "$T/config.toml" # drop the bad line again
[ "$(stat -c %a "$T/state/gitopper-state")" = 700 ] || fail "gitopper-state/ is not 0700"
[ "$(stat -c %a "$T/state/gitopper-state/svc.json")" = 600 ] || fail "svc.json is not 0600"
cp "$T/state/gitopper-state/svc.json" "$T/state/saved"
head -c 20 "$T/state/saved" >"$T/state/gitopper-state/svc.json"
: >"$T/systemctl.log"
start_gitopper
wait_until 20 grep -q "start svc" "$T/systemctl.log"
expect_in "$T/gitopper.log" "is damaged"
kill -0 "$GITOPPER_PID" || fail "a damaged state file stopped the daemon"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS after a damaged state file"
expect_in "$T/gitopper.log" "kept the unreadable state file"
[ "$(cat "$T"/state/gitopper-state/svc.json.unreadable-*)" = "$(head -c 20 "$T/state/saved")" ] ||
    fail "the damaged state file was not kept as it was"

# The single state file of earlier versions is taken over: the freeze in it holds, and the old
# file is kept, renamed.
rm "$T/state/gitopper-state/svc.json"
pinned=$(commit svc/a.conf "a pinned")
commit svc/a.conf "a after the pin" >/dev/null
cat >"$T/state/gitopper-state.json" <<JSON
{"version": 1, "services": {"svc": {"frozen": true, "pin": "$pinned", "info": "",
 "applied": "", "history": [{"time": 1, "from": "", "to": "$pinned",
 "trigger": "start", "result": "from the old file"}]}}}
JSON
cp "$T/state/gitopper-state.json" "$T/old-state.json"
start_gitopper
wait_until 20 grep -q "took over the state of 1 service" "$T/gitopper.log"
wait_until 20 grep -q "\[svc\] restoring pinned commit" "$T/gitopper.log"
wait_until 10 checkout_at "$T/srv/svc" "$pinned"
wait_until 10 grep -qx "a pinned" "$T/etc/svc/a.conf"
cmp "$T/old-state.json" "$T/state/gitopper-state.json.migrated" || fail "the old file was not kept"
[ ! -e "$T/state/gitopper-state.json" ] || fail "the old file is still in place"
expect_in "$T/state/gitopper-state/svc.json" '"result": "from the old file"'
expect_in "$T/state/gitopper-state/svc.json" '"frozen": true'
# Two poll cycles: the freeze holds.
seen=$(polls)
wait_until 10 polls_after $((seen + 1))
checkout_at "$T/srv/svc" "$pinned" || fail "the freeze from the old file did not hold"
[ "$(cat "$T/etc/svc/a.conf")" = "a pinned" ] || fail "the frozen service followed upstream"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS after taking over the old file"
rm "$T/state/gitopper-state/svc.json" # unfrozen again for what follows

# Another link at a restart: the existing checkout's sparse set grows, the new link is mounted.
sed -i "s|^  { local = \"$T/etc/svc\", link = \"svc\" },|&\n  { local = \"$T/etc/extra\", link = \"extra\" },|" "$T/config.toml"
expect_in "$T/config.toml" "link = \"extra\""
start_gitopper
wait_until 20 grep -qx "extra" "$T/etc/extra/x.conf"
[ "$(mounts_on "$T/etc/extra")" = 1 ] || fail "the new link is not mounted once"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS after adding a link"
echo PASS
