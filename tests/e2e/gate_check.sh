#!/usr/bin/env bash
# `check` (SPEC §6, issue 12 point 1): run on the staged new commit before anything live moves.
# The check sees the new files while the live file still shows the old; its placeholders and
# environment; a failing check leaves the live files, mounts and action alone, makes the
# service BROKEN with the command's output, is counted and in the history, and is not run again
# for the same commit by polls, only by a pull or a new upstream commit. Both ways of deploying:
# a tree beside the live one (Linux >= 6.5) and the live tree moved in place (older kernels).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# The check records what it saw, one line per run, and fails while $T/check.fail exists.
cat >"$T/check.sh" <<SH
#!/bin/sh
echo "dir=\$1 commit=\$2 service=\$3 env=\$GITOPPER_DIR,\$GITOPPER_COMMIT,\$GITOPPER_SERVICE new=\$(cat "\$1/app/conf") live=\$(cat "$T/etc/app/conf" 2>/dev/null)" >>"$T/check.log"
if [ -e "$T/check.fail" ]; then echo "app/conf: syntax error on line 1" >&2; exit 3; fi
SH
chmod +x "$T/check.sh"
ssh-keygen -q -t ed25519 -N '' -f "$T/rw"

api() { api_as rw "$@"; } # REQUEST...
checks() { [ -e "$T/check.log" ] && wc -l <"$T/check.log" || echo 0; }
checks_are() { [ "$(checks)" = "$1" ]; }

scenario() {
    # The daemon leaves its mounts when it stops (the service keeps running on them).
    while [ -d "$T/etc/app" ] && mountpoint -q "$T/etc/app"; do umount "$T/etc/app"; done
    rm -rf "$T/up" "$T/srv" "$T/state" "$T/etc" "$T/check.log" "$T/check.fail"
    : >"$T/systemctl.log"
    : >"$T/gitopper.log"
    make_upstream
    local c1 c2 c3 c4
    c1=$(commit app/conf "one")
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
check = ["$T/check.sh", "{dir}", "{commit}", "{service}"]
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
    start_gitopper
    API_PORT=$(api_port)
    wait_until 20 grep -qx "start app" "$T/systemctl.log"
    # The first deploy is checked too, before anything is mounted.
    checks_are 1 || fail "first deploy: $(checks) checks"
    expect_in "$T/check.log" "commit=$c1 service=app env=$T/srv/.gitopper/trees/app."
    expect_in "$T/check.log" ",$c1,app new=one live="
    grep -q "^dir=$T/srv/.gitopper/trees/app\.[0-9a-f]*\.${c1:0:12} " "$T/check.log" ||
        fail "{dir} is not the staged tree: $(cat "$T/check.log")"

    # A passing check: it saw the new file while the live one was still the old.
    c2=$(commit app/conf "two")
    wait_until 20 grep -qx "two" "$T/etc/app/conf"
    wait_until 5 grep -qx "reload app" "$T/systemctl.log"
    expect_in "$T/check.log" "commit=$c2 service=app env=$T/srv/.gitopper/trees/app."
    expect_in "$T/check.log" "new=two live=one"
    [ "$(metric 'gitopper_service_check_total{service="app",result="ok"}')" = 2 ] ||
        fail "passed checks counted: $(metric 'gitopper_service_check_total{service="app",result="ok"}')"

    # A failing check: nothing live moves, no action, BROKEN with its output.
    touch "$T/check.fail"
    c3=$(commit app/conf "three, broken")
    wait_until 20 checks_are 3
    wait_until 10 grep -q "\[app\] state OK -> BROKEN: check failed for ${c3:0:8}: exited 3: app/conf: syntax error on line 1" "$T/gitopper.log"
    expect_in "$T/check.log" "new=three, broken live=two"
    [ "$(cat "$T/etc/app/conf")" = two ] || fail "the live file moved: $(cat "$T/etc/app/conf")"
    checkout_at "$T/srv/app" "$c2" || fail "the live tree moved to $(live_commit "$T/srv/app")"
    [ "$(calls "reload app")" = 1 ] || fail "an action ran for a commit whose check failed"
    [ -z "$(find "$T/srv/.gitopper/trees" -maxdepth 1 -name "app.*.${c3:0:12}")" ] ||
        fail "the failed commit's staged tree was left: $(ls "$T/srv/.gitopper/trees")"
    [ "$(metric 'gitopper_service_check_total{service="app",result="failed"}')" = 1 ] ||
        fail "failed check not counted"
    api /list/history app
    expect_in "$T/out" "check failed for ${c3:0:8}"
    api /list/service app
    expect_in "$T/out" '"state":"BROKEN"'
    expect_in "$T/out" "check failed for ${c3:0:8}: exited 3"

    # Polls at the same head do not run the check again; a pull does.
    wait_cycles 3
    checks_are 3 || fail "the same commit was checked again by a poll: $(checks) checks"
    api /do/pull app
    [ "$API_STATUS" = 0 ] || fail "pull: $API_STATUS $(cat "$T/err")"
    wait_until 10 checks_are 4
    [ "$(cat "$T/etc/app/conf")" = two ] || fail "a pull published a commit whose check failed"

    # Fixed upstream: the next commit passes and goes live.
    rm "$T/check.fail"
    c4=$(commit app/conf "four")
    wait_until 20 grep -qx "four" "$T/etc/app/conf"
    wait_until 10 grep -q "\[app\] state BROKEN -> OK" "$T/gitopper.log"
    expect_in "$T/check.log" "commit=$c4 service=app"
    expect_in "$T/check.log" "new=four live=two"
    wait_until 5 calls_above "reload app" 1
    stop_gitopper TERM
    [ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
}

scenario
# Where the live tree is moved in place, the check runs on a tree of its own first.
export GITOPPER_TEST_NO_MOUNT_BENEATH=1
scenario
