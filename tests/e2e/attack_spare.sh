#!/usr/bin/env bash
# The service user ("nobody") owns both work trees of its service, also the spare one that no
# mount shows. What it writes there (an edited file, a new file) must not be published by the
# next deploy, nor lost: it is saved as a drift patch before the new commit is checked out.
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
start_gitopper -t 1s
wait_until 20 grep -qx "start svc" "$T/systemctl.log"

# A first deploy makes the second tree live: the first is now the spare.
head=$(commit app/app.conf "app 2")
chown -R nobody: "$T/up"
wait_until 20 grep -qx "app 2" "$T/etc/svc/app.conf"
live=$(readlink "$T/srv/svc")
spare="$T/srv/${live%/*}/$((1 - ${live##*/}))"
[ -e "$spare/.git" ] || fail "no spare tree at $spare"

as_nobody sh -c "echo 'planted by the user' >'$spare/app/app.conf' && echo evil >'$spare/app/planted.conf'"
commit app/other.conf "other 3" >/dev/null
chown -R nobody: "$T/up"
wait_until 20 grep -qx "other 3" "$T/etc/svc/other.conf"
[ "$(cat "$T/etc/svc/app.conf")" = "app 2" ] || fail "the user's edit was published: $(cat "$T/etc/svc/app.conf")"
[ ! -e "$T/etc/svc/planted.conf" ] || fail "the user's new file was published"
expect_in "$T/gitopper.log" "holds files that are not git's: saving them"
grep -rqx "+planted by the user" "$T/state/gitopper-drift/svc/" || fail "the edit was not saved"
grep -rqx "+evil" "$T/state/gitopper-drift/svc/" || fail "the new file was not saved"
[ "$(mounts_on "$T/etc/svc")" = 1 ] || fail "$(mounts_on "$T/etc/svc") mounts on etc/svc"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
