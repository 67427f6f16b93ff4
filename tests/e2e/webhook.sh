#!/usr/bin/env bash
# Webhooks: a correctly signed push (GitHub, Gitea, GitLab styles) wakes the matching service
# at once; bad or missing signatures get 401, oversized bodies 413, no secret 404.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf "one" >/dev/null
git -C "$T/up" branch canary
secret="webhook-$RANDOM-secret"
printf '%s\n' "$secret" >"$T/webhook.secret"
write_config() {
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
$1
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
[[services]]
machine = "testhost"
service = "canary"
branch = "canary"
action = "reload"
dirs = [ { local = "$T/etc/canary", link = "app" } ]
TOML
}
write_config 'webhook_secret_file = "webhook.secret"'
start_gitopper -m 127.0.0.1:0 -t 1h # polling is off for the test: only webhooks move it
wait_until 20 grep -q "http: .*listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
wait_until 20 grep -qx "start app" "$T/systemctl.log"
wait_until 20 grep -qx "start canary" "$T/systemctl.log"
expect_not_in "$T/gitopper.log" "$secret"

payload() { printf '{"ref":"refs/heads/%s","repository":{"clone_url":"file://%s/up.git/"}}' "$1" "$T"; }
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$2" | sed 's/.*= //'; }
post() { # BODY HEADER... : HTTP status in $CODE
    local body=$1; shift
    CODE=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST --data-binary "$body" \
        -H 'Content-Type: application/json' "$@" "http://127.0.0.1:$port/webhook")
}

# GitHub style, good signature: deployed at once.
commit app/conf "two" >/dev/null
body=$(payload main)
post "$body" -H "X-Hub-Signature-256: sha256=$(sign "$body" "$secret")"
[ "$CODE" = 200 ] || fail "good GitHub signature: $CODE $(cat "$T/body")"
expect_in "$T/body" "woke 1 service"
wait_until 5 grep -qx two "$T/etc/app/conf"
# Polling is off: one cycle at start, one per woken webhook, so the count says who woke it.
wait_until 5 cycles_at_least 2
[ "$(cycles)" = 2 ] || fail "expected 2 poll cycles so far, not $(cycles)"

# Bad and missing signatures: 401, nothing happens.
commit app/conf "three" >/dev/null
post "$body" -H "X-Hub-Signature-256: sha256=$(sign "$body" wrong)"
[ "$CODE" = 401 ] || fail "bad signature: $CODE"
post "$body"
[ "$CODE" = 401 ] || fail "missing signature: $CODE"
post "$body" -H "X-Gitlab-Token: wrong"
[ "$CODE" = 401 ] || fail "bad GitLab token: $CODE"
[ "$(cat "$T/etc/app/conf")" = two ] || fail "an unsigned webhook deployed"
expect_in "$T/gitopper.log" "webhook: refused"

# Another branch wakes nothing; Gitea and GitLab styles work.
other=$(payload other)
post "$other" -H "X-Gitea-Signature: $(sign "$other" "$secret")"
[ "$CODE" = 200 ] && expect_in "$T/body" "woke 0 services"
post "$body" -H "X-Gitea-Signature: $(sign "$body" "$secret")"
[ "$CODE" = 200 ] || fail "Gitea: $CODE"
wait_until 5 grep -qx three "$T/etc/app/conf"
# Had a refused webhook woken the service, its cycle would have come before this one.
wait_until 5 cycles_at_least 3
[ "$(cycles)" = 3 ] || fail "a refused or unmatched webhook woke a poll cycle ($(cycles), not 3)"
commit app/conf "four" >/dev/null
post "$body" -H "X-Gitlab-Token: $secret"
[ "$CODE" = 200 ] || fail "GitLab: $CODE"
wait_until 5 grep -qx four "$T/etc/app/conf"

# A push to the other branch of the same upstream (one object store, one poll thread) wakes
# the service on that branch.
git -C "$T/up" checkout -q canary
commit app/conf "canary two" >/dev/null
git -C "$T/up" checkout -q main
canary=$(payload canary)
post "$canary" -H "X-Gitlab-Token: $secret"
[ "$CODE" = 200 ] || fail "canary: $CODE"
expect_in "$T/body" "woke 1 service"
wait_until 5 grep -qx "canary two" "$T/etc/canary/conf"

# Oversized: 413.
head -c 2000000 /dev/zero | tr '\0' 'x' >"$T/big"
CODE=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data-binary @"$T/big" \
    "http://127.0.0.1:$port/webhook")
[ "$CODE" = 413 ] || fail "oversized body: $CODE"

curl -sS "http://127.0.0.1:$port/metrics" >"$T/metrics"
expect_in "$T/metrics" 'gitopper_webhook_requests_total{result="ok"} 5'
expect_in "$T/metrics" 'gitopper_webhook_requests_total{result="unauthorized"} 3'
expect_not_in "$T/gitopper.log" "$secret"
stop_gitopper TERM

# Without a secret the endpoint does not exist.
write_config ""
start_gitopper -m 127.0.0.1:0 -t 1h
second_listen() { [ "$(grep -c 'http: .*listening on 127.0.0.1:' "$T/gitopper.log")" -ge 2 ]; }
wait_until 20 second_listen
port=$(sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | tail -1)
post "$body" -H "X-Gitlab-Token: $secret"
[ "$CODE" = 404 ] || fail "no secret: $CODE"
stop_gitopper TERM
echo PASS
