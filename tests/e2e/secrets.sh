#!/usr/bin/env bash
# A token in the upstream URL never leaks: not in the log, state info, history, HTTP answers,
# metrics, --check, a checkout's .git/config or git's command line (which every local user
# can read in /proc); the clone still works, the password reaching git only through its
# environment. An unreachable upstream with a token shows "user:***@" in its errors.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

token="s3cret-$RANDOM$RANDOM-token"
make_upstream
commit app/app.conf "app 1" >/dev/null

# A git wrapper first on PATH records every command line gitopper runs.
real_git=$(command -v git)
cat >"$T/bin/git" <<SH
#!/bin/sh
printf '%s\n' "\$*" >>"$T/git-argv.log"
exec "$real_git" "\$@"
SH
chmod +x "$T/bin/git"

cat >"$T/config.toml" <<TOML
[global]
mount = "$T/srv"
action = "reload"

[[services]]
machine = "testhost"
service = "good"
upstream = "file://deploy:$token@localhost$T/up"
dirs = [ { local = "$T/etc/good", link = "app" } ]

[[services]]
machine = "testhost"
service = "bad"
upstream = "https://deploy:$token@127.0.0.1:9/nothing.git"
dirs = [ { local = "$T/etc/bad", link = "app" } ]

# As forges hand them out: the token as the user name.
[[services]]
machine = "testhost"
service = "named"
upstream = "https://$token@127.0.0.1:9/named.git"
dirs = [ { local = "$T/etc/named", link = "app" } ]
TOML

chmod 644 "$T/config.toml"
expect_status 0 "$GITOPPER" --check -c "$T/config.toml" -h testhost
cat "$T/out" "$T/err" >"$T/check.out"
expect_in "$T/err" "warning: the upstream of [[services]] #1 (good) holds a credential and the file is readable by others (mode 0644)"
chmod 600 "$T/config.toml"
expect_status 0 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_not_in "$T/err" "readable by others"
expect_not_in "$T/check.out" "$token"
expect_in "$T/check.out" "https://deploy:***@127.0.0.1:9/nothing.git"
expect_in "$T/check.out" "https://***@127.0.0.1:9/named.git"

start_gitopper -t 1s
wait_until 20 grep -qx "start good" "$T/systemctl.log"
wait_until 20 grep -q "\[bad\] state OK -> DIFF" "$T/gitopper.log"
wait_until 20 grep -q "\[named\] state OK -> DIFF" "$T/gitopper.log"
[ "$(cat "$T/etc/good/app.conf")" = "app 1" ] || fail "the clone with a token did not work"
commit app/app.conf "app 2" >/dev/null
wait_until 20 grep -qx "app 2" "$T/etc/good/app.conf" # fetches work too

port=$(http_port)
curl -sS "http://127.0.0.1:$port/list/service" >"$T/list.json"
curl -sS "http://127.0.0.1:$port/list/service/bad" >"$T/bad.json"
curl -sS "http://127.0.0.1:$port/metrics" >"$T/metrics.txt"
stop_gitopper TERM

for f in "$T/gitopper.log" "$T/list.json" "$T/bad.json" "$T/metrics.txt" "$T/git-argv.log"; do
    expect_not_in "$f" "$token"
done
! grep -rqF -- "$token" "$T/state" || fail "the token is in the state dir: $(grep -rlF -- "$token" "$T/state")"
! grep -rqF -- "$token" "$T/srv" || fail "the token is in a checkout: $(grep -rlF -- "$token" "$T/srv")"
# The store of "good" (the one with a user in its URL): the URL without the token, 0600.
store=""
for s in "$T"/srv/.gitopper/stores/*; do
    [ "$(git -C "$s" config remote.origin.url)" = "file://deploy@localhost$T/up" ] && store=$s
done
[ -n "$store" ] || fail "no object store has the URL file://deploy@localhost$T/up"
config="$store/.git/config"
[ "$(stat -c %a "$config")" = 600 ] || fail "the object store's .git/config is not 0600"
expect_in "$T/gitopper.log" "deploy:***@"
grep -q "deploy" "$T/git-argv.log" || fail "the wrapper saw no git command with the URL"
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
