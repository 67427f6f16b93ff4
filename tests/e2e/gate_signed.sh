#!/usr/bin/env bash
# allowed_signers (SPEC §6, issue 12 point 3): only a head with a good SSH signature by one of
# its keys is deployed (real keys from ssh-keygen, commits signed by git commit -S). Unsigned or
# signed by another key: nothing moves, DIFF "commit X not signed by a trusted key", retried only
# when upstream moves. No rollback goes behind the last verified commit unless forced. A file
# others may write is a config error.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

for k in trusted stranger rw; do ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$T/$k"; done
echo "ops@example.org namespaces=\"git\" $(cat "$T/trusted.pub")" >"$T/allowed_signers"
chmod 600 "$T/allowed_signers" # root's alone: the daemon gives the user git runs as a copy
# signed_commit KEY|- PATH CONTENT: a commit signed with KEY ("-": unsigned); prints the hash.
signed_commit() {
    mkdir -p "$(dirname "$T/up/$2")"
    printf '%s\n' "$3" >"$T/up/$2"
    git -C "$T/up" add -A
    if [ "$1" = - ]; then
        git -C "$T/up" commit -q -m "unsigned $2"
    else
        git -C "$T/up" -c gpg.format=ssh -c user.signingkey="$T/$1.pub" commit -q -S -m "signed $2"
    fi
    git -C "$T/up" rev-parse HEAD
}
api() { api_as rw "$@"; } # REQUEST...

make_upstream
c1=$(signed_commit trusted app/conf "one")
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
allowed_signers = "allowed_signers"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML

chmod 620 "$T/allowed_signers"
expect_status 1 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_in "$T/err" "config.toml:9:19: allowed_signers: $T/allowed_signers must be root's and writable by root alone (it is uid 0, mode 0620)"
chmod 600 "$T/allowed_signers"

start_gitopper
API_PORT=$(api_port)
wait_until 20 grep -qx "start app" "$T/systemctl.log"
[ "$(cat "$T/etc/app/conf")" = one ] || fail "the signed first commit is not live"

# Unsigned: nothing moves, DIFF.
c2=$(signed_commit - app/conf "two, unsigned")
wait_until 20 grep -q "\[app\] state OK -> DIFF: commit ${c2:0:8} not signed by a trusted key" "$T/gitopper.log"
wait_cycles 3
[ "$(cat "$T/etc/app/conf")" = one ] || fail "an unsigned commit went live"
[ "$(calls "reload app")" = 0 ] || fail "an action ran for an unsigned commit"
# Signed, by a key the file does not hold: the same.
c3=$(signed_commit stranger app/conf "three, a stranger's")
wait_until 20 grep -q "\[app\] state DIFF: commit ${c3:0:8} not signed by a trusted key\|DIFF -> DIFF: commit ${c3:0:8}" "$T/gitopper.log"
wait_cycles 3
[ "$(cat "$T/etc/app/conf")" = one ] || fail "a commit signed by another key went live"
# Signed by the trusted key: deployed.
c4=$(signed_commit trusted app/conf "four")
wait_until 20 grep -qx four "$T/etc/app/conf"
wait_until 10 grep -q "\[app\] state DIFF -> OK" "$T/gitopper.log"
grep -q "\"verified\": *\"$c4\"" "$T/state/gitopper-state/app.json" || fail "the verified commit is not kept: $(cat "$T/state/gitopper-state/app.json")"

# A force-push back to an older signed commit is no way around it: DIFF, nothing moves.
git -C "$T/up" reset -q --hard "$c1"
wait_until 20 grep -q "\[app\] state OK -> DIFF: commit ${c1:0:8} does not descend from ${c4:0:8}, the last verified commit" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = four ] || fail "a force-push took the service back"
recovered=$(grep -c "\[app\] state DIFF -> OK" "$T/gitopper.log")
git -C "$T/up" reset -q --hard "$c4"
recovered_again() { [ "$(grep -c "\[app\] state DIFF -> OK" "$T/gitopper.log")" -gt "$recovered" ]; }
wait_until 20 recovered_again

# No rollback behind the last verified commit, unless forced; never to an unsigned one.
api /do/rollback app "$c2" force
[ "$API_STATUS" = $((404 % 256)) ] || fail "forced rollback to an unsigned commit: $API_STATUS $(cat "$T/out")"
expect_in "$T/out" "commit ${c2:0:8} not signed by a trusted key"
api /do/rollback app "$c1"
[ "$API_STATUS" = $((404 % 256)) ] || fail "rollback behind the verified commit: $API_STATUS $(cat "$T/out")"
expect_in "$T/out" "commit ${c1:0:8} is older than ${c4:0:8}, the last verified commit"
[ "$(cat "$T/etc/app/conf")" = four ] || fail "a refused rollback moved the files"
api /do/rollback app "$c1" force
[ "$API_STATUS" = 0 ] || fail "forced rollback: $API_STATUS $(cat "$T/out")"
wait_until 10 grep -qx one "$T/etc/app/conf"

# The file is read again for each verification: a key rotated out counts without a restart.
echo "ops@example.org namespaces=\"git\" $(cat "$T/stranger.pub")" >"$T/allowed_signers"
api /do/unfreeze app
[ "$API_STATUS" = 0 ] || fail "unfreeze: $API_STATUS $(cat "$T/out")"
wait_until 20 grep -q "\[app\] state .* -> DIFF: commit ${c4:0:8} not signed by a trusted key" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = one ] || fail "a commit by a rotated-out key went live"
c5=$(signed_commit stranger app/conf "five, by the new key")
wait_until 20 grep -qx "five, by the new key" "$T/etc/app/conf"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
