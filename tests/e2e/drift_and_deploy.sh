#!/usr/bin/env bash
# A local edit and an upstream change to the same service at once: the edit is saved as a
# patch before the new tree is published (a deploy skips its `git status` only when inotify
# saw nothing), and the new commit is deployed. Eight rounds, each with the edit made just
# before a webhook wakes the daemon, well inside the drift check's 200 ms settle time.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf/main.conf "main v1" >/dev/null
commit app/conf/extra.conf "extra v0" >/dev/null
secret="webhook-$RANDOM-secret"
printf '%s\n' "$secret" >"$T/webhook.secret"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
webhook_secret_file = "webhook.secret"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app/conf" } ]
TOML
start_gitopper -t 1h # only the webhooks move it
wait_until 20 grep -qx "start app" "$T/systemctl.log"
port=$(http_port)
body=$(printf '{"ref":"refs/heads/main","repository":{"clone_url":"file://%s/up.git/"}}' "$T")
signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/.*= //')"

saved() { grep -rqx "+round $1" "$T/state/gitopper-drift/app/"; }
for n in 1 2 3 4 5 6 7 8; do
    commit app/conf/extra.conf "extra v$n" >/dev/null
    echo "round $n" >>"$T/etc/app/main.conf"
    curl -sS -o /dev/null -X POST --data-binary "$body" -H 'Content-Type: application/json' \
        -H "X-Hub-Signature-256: $signature" "http://127.0.0.1:$port/webhook"
    wait_until 20 grep -qx "extra v$n" "$T/etc/app/extra.conf"
    wait_until 10 grep -qx "main v1" "$T/etc/app/main.conf"
    wait_until 10 saved "$n"
done
[ "$(mounts_on "$T/etc/app")" = 1 ] || fail "$(mounts_on "$T/etc/app") mounts on etc/app"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
