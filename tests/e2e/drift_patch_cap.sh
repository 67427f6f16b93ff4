#!/usr/bin/env bash
# A drift whose patch would be larger than all the patches a service may keep (256 MiB) is
# refused while git writes it: BROKEN "drift kept", nothing reverted, no patch left to fill
# root's disk. Once the user takes the big file away, the rest is saved and reverted.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/app.conf "app 1" >/dev/null
chown -R nobody: "$T/up"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "svc"
user = "nobody"
action = "reload"
dirs = [ { local = "$T/etc/svc", link = "app" } ]
TOML
start_gitopper -t 1h
wait_until 30 grep -q "start svc" "$T/systemctl.log"

# 270 MiB that do not compress: the binary patch would be larger still.
as_nobody sh -c "head -c 270M /dev/urandom >'$T/srv/svc/app/big.bin' && echo evil >'$T/etc/svc/app.conf'"
wait_until 50 grep -q "\[svc\] state OK -> BROKEN: drift kept: could not save patch: .*larger than 256 MiB" \
    "$T/gitopper.log"
[ "$(cat "$T/etc/svc/app.conf")" = evil ] || fail "reverted without its patch"
[ -e "$T/srv/svc/app/big.bin" ] || fail "the big file went without its patch"
left=$(du -sm "$T/state" | cut -f1)
[ "$left" -le 1 ] || fail "$left MiB left in the state dir"

as_nobody rm "$T/srv/svc/app/big.bin"
wait_until 20 grep -qx "app 1" "$T/etc/svc/app.conf"
patch=$(find "$T/state/gitopper-drift/svc" -name '*.patch')
[ -n "$patch" ] || fail "no patch saved"
expect_in "$patch" "evil"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
