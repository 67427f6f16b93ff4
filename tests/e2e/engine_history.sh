#!/usr/bin/env bash
# Upstream rewritten (force-push), upstream unreachable then back, two branches (canary).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit web/index.html "main 1" >/dev/null
git -C "$T/up" branch canary
git -C "$T/up" checkout -q canary
commit web/index.html "canary 1" >/dev/null
git -C "$T/up" checkout -q main
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
action = "reload"
[[services]]
machine = "testhost"
service = "web"
dirs = [ { local = "$T/www/main", link = "web" } ]
[[services]]
machine = "testhost"
service = "web-canary"
branch = "canary"
dirs = [ { local = "$T/www/canary", link = "web" } ]
TOML
start_gitopper
wait_until 20 grep -qx "start web-canary" "$T/systemctl.log"
wait_until 5 grep -qx "start web" "$T/systemctl.log"
[ "$(cat "$T/www/main/index.html")" = "main 1" ] || fail "main branch content"
[ "$(cat "$T/www/canary/index.html")" = "canary 1" ] || fail "canary branch content"

# Canary: a push to canary reloads only web-canary.
git -C "$T/up" checkout -q canary
commit web/index.html "canary 2" >/dev/null
git -C "$T/up" checkout -q main
wait_until 20 grep -qx "canary 2" "$T/www/canary/index.html"
wait_until 5 grep -qx "reload web-canary" "$T/systemctl.log"
wait_cycles 2
[ "$(calls "reload web")" = 0 ] || fail "web reloaded for a canary push"
[ "$(cat "$T/www/main/index.html")" = "main 1" ] || fail "main changed"

# Force-push: history rewritten upstream; the checkout follows.
commit web/index.html "main 2" >/dev/null
wait_until 20 grep -qx "main 2" "$T/www/main/index.html"
git -C "$T/up" reset -q --hard HEAD~1
rewritten=$(commit web/index.html "main 2 rewritten")
wait_until 20 grep -qx "main 2 rewritten" "$T/www/main/index.html"
wait_until 5 checkout_at "$T/srv/web" "$rewritten"

# Unreachable upstream: DIFF, the files stay; back again: recovers and deploys.
mv "$T/up" "$T/up.away"
wait_until 20 grep -q "\[web\] state OK -> DIFF" "$T/gitopper.log"
[ "$(cat "$T/www/main/index.html")" = "main 2 rewritten" ] || fail "files changed while upstream was away"
mv "$T/up.away" "$T/up"
commit web/index.html "main 3" >/dev/null
wait_until 30 grep -qx "main 3" "$T/www/main/index.html"
wait_until 10 grep -q "\[web\] state DIFF -> OK" "$T/gitopper.log"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
