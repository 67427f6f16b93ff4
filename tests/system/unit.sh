#!/usr/bin/env bash
# The packaged unit under a real systemd: Type=notify (active only once READY=1, our STATUS=
# line), `systemctl reload` (SIGHUP, exit 2) and a changed config with -r both end in systemd
# starting it again, and `systemctl stop` is a clean exit that leaves the mounts in place: the
# services keep reading git's files, and the next start takes the mounts over.
. "$(dirname "$0")/lib.sh"

make_upstream
commit nginx/nginx.conf "$(nginx_conf "git v1")" >/dev/null
boot_container
nginx_service
in_container systemctl start gitopper # returns once READY=1 came (Type=notify)
[ "$(unit_property ActiveState)" = active ] || fail "not active after start"
wait_until 30 unit_is StatusText "1 service: 1 OK"
wait_until 30 serves "git v1"

pid=$(unit_property MainPID)
in_container systemctl reload gitopper
wait_until 30 unit_is NRestarts 1
wait_until 30 unit_is ActiveState active
[ "$(unit_property MainPID)" != "$pid" ] || fail "reload did not restart gitopper"
in_container journalctl -u gitopper --no-pager | grep -q "received SIGHUP, exiting with status 2" ||
    fail "no SIGHUP exit in the journal"

pid=$(unit_property MainPID)
in_container sh -c 'echo "# changed" >>/etc/gitopper/config.toml'
wait_until 30 unit_is NRestarts 2
wait_until 30 unit_is ActiveState active
[ "$(unit_property MainPID)" != "$pid" ] || fail "a changed config did not restart gitopper"
wait_until 30 unit_is StatusText "1 service: 1 OK"

in_container systemctl stop gitopper
[ "$(unit_property ActiveState)" = inactive ] || fail "$(unit_property ActiveState) after stop"
[ "$(unit_property ExecMainStatus)" = 0 ] || fail "stop: exit $(unit_property ExecMainStatus)"
[ "$(unit_property Result)" = success ] || fail "stop: result $(unit_property Result)"
in_container findmnt -n /etc/nginx >/dev/null || fail "stop took the mount away"
in_container systemctl reload nginx
serves "git v1" || fail "after gitopper stopped, nginx serves '$(served)'"
# The next start takes the mount over: still one, and nginx is not told again.
reloads=$(in_container journalctl -u nginx --no-pager | grep -c "Reloaded nginx" || true)
in_container systemctl start gitopper
wait_until 30 unit_is StatusText "1 service: 1 OK"
[ "$(in_container findmnt -n /etc/nginx | wc -l)" = 1 ] || fail "mounts piled up on /etc/nginx"
[ "$(in_container journalctl -u nginx --no-pager | grep -c "Reloaded nginx" || true)" = "$reloads" ] ||
    fail "a start over mounts already in place reloaded nginx"
echo PASS
