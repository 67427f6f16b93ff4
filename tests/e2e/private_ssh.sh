#!/usr/bin/env bash
# ssh upstreams (issue 13, points 1 and 3), against OpenSSH's own sshd on 127.0.0.1: git uses
# the deploy key `ssh_key` only (refused at start when others may read it), for root and for a
# service's user, who gets it through a descriptor for the run alone. Host keys are trusted on
# first use (kept in the state dir) and a changed one is refused with both fingerprints and the
# file to edit; `known_hosts` pins them. The key is nowhere else: not in the log (with -d), an
# API answer, the metrics, --check, or a file others can read.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
[ -x /usr/sbin/sshd ] || skip "no /usr/sbin/sshd (openssh-server; scripts/install-deps)"

for k in host1 host2 deploy rw; do ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$T/$k"; done
cp "$T/deploy.pub" "$T/authorized_keys"
start_sshd "$T/host1" "$T/authorized_keys"
fp() { ssh-keygen -lf "$1" | awk '{ print $2 }'; } # KEY.pub
where="127.0.0.1:$SSHD_PORT"

make_upstream
commit app/conf "one" >/dev/null
commit peer/conf "peer one" >/dev/null
chmod -R a+rX "$T/up" # the sshd session runs as root; the service user reads nothing there
config() { # EXTRA-GLOBAL-LINE
    cat >"$T/config.toml" <<TOML
[global]
upstream = "ssh://root@$where$T/up"
mount = "$T/srv"
ssh_key = "deploy"
keys = [ { path = "rw.pub" } ]
$1
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
[[services]]
machine = "testhost"
service = "peer"
user = "nobody"
dirs = [ { local = "$T/etc/peer", link = "peer" } ]
TOML
}
config ""

# A deploy key others can read is refused before anything runs.
chmod 640 "$T/deploy"
expect_status 1 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_in "$T/err" "config.toml:4:11: ssh_key: $T/deploy holds a secret and is readable by others (mode 0640): chmod go-r"
chmod 600 "$T/deploy"
expect_status 0 "$GITOPPER" --check -c "$T/config.toml" -h testhost
cat "$T/out" "$T/err" >"$T/check.out"

# First use: the host key is learnt and kept; root's service and the user's are deployed.
start_gitopper -d
API_PORT=$(api_port)
wait_until 30 grep -qx one "$T/etc/app/conf"
wait_until 30 grep -qx "peer one" "$T/etc/peer/conf"
expect_in "$T/gitopper.log" "trusting the host key of $where on first use: $(fp "$T/host1.pub") (ssh-ed25519); kept in $T/state/known_hosts"
[ "$(awk '{ print $1, $3 }' "$T/state/known_hosts")" = "[127.0.0.1]:$SSHD_PORT $(awk '{ print $2 }' "$T/host1.pub")" ] ||
    fail "known_hosts: $(cat "$T/state/known_hosts")"
[ "$(stat -c %a "$T/state/known_hosts")" = 600 ] || fail "known_hosts mode $(stat -c %a "$T/state/known_hosts")"
commit app/conf "two" >/dev/null
wait_until 20 grep -qx two "$T/etc/app/conf"

# The server comes back with another host key: refused, nothing moves, and the message says
# what was expected, what came and where to change it.
stop_sshd
start_sshd "$T/host2" "$T/authorized_keys"
commit app/conf "three" >/dev/null
wait_until 20 grep -q "\[app\] state OK -> DIFF: .*host key for $where changed; expected $(fp "$T/host1.pub") (ssh-ed25519), got $(fp "$T/host2.pub") (ssh-ed25519); if the new key is right, edit $T/state/known_hosts" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = two ] || fail "deployed through a changed host key"
api_as rw /list/service app
cat "$T/out" >>"$T/answers"
metric gitopper_machine_info >/dev/null
curl -sS "http://127.0.0.1:$(http_port)/metrics" >"$T/metrics"
stop_gitopper TERM

# Pinned: known_hosts holds the new key, so it deploys; a pinned key that differs is refused.
ssh-keyscan -p "$SSHD_PORT" 127.0.0.1 2>/dev/null >"$T/pinned"
config 'known_hosts = "pinned"'
start_gitopper -d
wait_until 30 grep -qx three "$T/etc/app/conf"
stop_gitopper TERM
sed "s|$(awk '{ print $2 }' "$T/host2.pub")|$(awk '{ print $2 }' "$T/host1.pub")|" "$T/pinned" >"$T/pinned.new"
mv "$T/pinned.new" "$T/pinned"
commit app/conf "four" >/dev/null
start_gitopper -d
wait_until 20 grep -q "\[app\] state .*DIFF: .*host key for $where changed; expected $(fp "$T/host1.pub") (ssh-ed25519), got $(fp "$T/host2.pub") (ssh-ed25519); if the new key is right, edit $T/pinned" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = three ] || fail "deployed through a pinned key that differs"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# Bootstrapping from the ssh upstream with --ssh-key (there is no config yet to name it): the
# config inside names its own key by an absolute path (a key has no place in the repository).
mkdir -p "$T/up/gitopper"
cat >"$T/up/gitopper/config.toml" <<TOML
[global]
upstream = "ssh://root@$where$T/up"
mount = "$T/srv2"
ssh_key = "$T/deploy"
known_hosts = "$T/pinned"
[[services]]
machine = "testhost"
service = "booted"
dirs = [ { local = "$T/etc/booted", link = "app" } ]
TOML
git -C "$T/up" add -A
git -C "$T/up" commit -q -m "gitopper's own config"
ssh-keyscan -p "$SSHD_PORT" 127.0.0.1 2>/dev/null >"$T/pinned"
start_gitopper -c config.toml -U "ssh://root@$where$T/up" -D gitopper -M "$T/boot" \
    --ssh-key "$T/deploy" --state "$T/state2"
wait_until 30 grep -qx four "$T/etc/booted/conf"
expect_in "$T/gitopper.log" "trusting the host key of $where on first use: $(fp "$T/host2.pub") (ssh-ed25519); kept in $T/state2/known_hosts"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# The key's secret part is nowhere but in its own file.
secret=$(sed -n 5p "$T/deploy") # the private scalar (the lines before it are the header and the public part)
for f in "$T/gitopper.log" "$T/answers" "$T/metrics" "$T/check.out"; do
    expect_not_in "$f" "$secret"
done
leaked=$(grep -rlF -- "$secret" "$T" 2>/dev/null | grep -vx "$T/deploy" || true)
[ -z "$leaked" ] || fail "the deploy key is in: $leaked"
