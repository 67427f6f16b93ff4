#!/usr/bin/env bash
# No blind spot for drift at start: an edit made after a tree is mounted and before the inotify
# watches are in place (here by the stand-in systemctl, as `systemctl start` runs, which lies in
# that window) is reverted and saved, for a fresh tree and for an existing one at a restart.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# A systemctl that, on "start app", edits the mounted file once per $T/edit-on-start.
cat >"$T/bin/systemctl" <<SH
#!/bin/bash
if [ "\$*" = "start app" ] && [ -e "$T/edit-on-start" ]; then
    rm -f "$T/edit-on-start"
    echo "edited while starting" >>"$T/etc/app/a.conf"
fi
echo "\$*" >>"$T/systemctl.log"
SH
chmod +x "$T/bin/systemctl"

make_upstream
commit app/a.conf "a 1" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
patches() { [ -d "$T/state/gitopper-drift/app" ] && find "$T/state/gitopper-drift/app" -name '*.patch' | wc -l || echo 0; }
patches_above() { [ "$(patches)" -gt "$1" ]; }
restored() { [ "$(cat "$T/etc/app/a.conf")" = "a 1" ]; }

for run in fresh existing; do
    touch "$T/edit-on-start"
    before=$(patches)
    start_gitopper -t 1h # no polling: only the look at start or the watches can find it
    wait_until 20 grep -qx "start app" "$T/systemctl.log"
    [ ! -e "$T/edit-on-start" ] || fail "$run: the stand-in did not edit"
    wait_until 20 restored
    wait_until 10 patches_above "$before"
    grep -rqx "+edited while starting" "$T/state/gitopper-drift/app/" || fail "$run: the edit was not saved"
    stop_gitopper TERM
    [ "$EXIT_STATUS" = 0 ] || fail "$run: exit $EXIT_STATUS"
    : >"$T/systemctl.log"
done
echo PASS
