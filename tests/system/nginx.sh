#!/usr/bin/env bash
# "Does it really reload my nginx?" Debian's nginx, running since boot, managed by our package's
# gitopper under a real systemd; what nginx serves is asked with curl, not read from files.
# - Started, gitopper mounts git's /etc/nginx over Debian's, and nginx serves git's version at
#   once (a running unit is reloaded after the first mount: `start` alone tells it nothing).
# - A pushed change is served after the reload.
# - A broken config fails its `check` (nginx -t on the staged tree): nginx goes on serving the
#   last good version, and the service is BROKEN with nginx's own words.
. "$(dirname "$0")/lib.sh"

make_upstream
commit nginx/nginx.conf "$(nginx_conf "git v1")" >/dev/null
boot_container
[[ "$(served)" == *"Welcome to nginx"* ]] || fail "nginx does not serve Debian's page at boot"
nginx_service 'check = ["nginx", "-t", "-q", "-c", "{dir}/nginx/nginx.conf"]'
in_container systemctl start gitopper
wait_until 30 serves "git v1"

second=$(commit nginx/nginx.conf "$(nginx_conf "git v2")")
wait_until 30 serves "git v2"
wait_until 10 listed "\"commit\":\"$second\""

commit nginx/nginx.conf "$(nginx_conf "git v3" | sed 's/events {}/events { nonsense; }/')" >/dev/null
wait_until 30 listed '"state":"BROKEN"'
listed 'unknown directive' || { list_service; fail "BROKEN without nginx's reason"; }
serves "git v2" || fail "nginx serves '$(served)' after a broken push, not the last good version"
in_container grep -q "git v2" /etc/nginx/nginx.conf || fail "the broken version went live"
echo PASS
