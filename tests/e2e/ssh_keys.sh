#!/usr/bin/env bash
# authorized_keys options are honoured or refused, never silently ignored: from= (addresses,
# CIDR, negation, wildcards) refuses other sources and logs the key's file:line; command=
# replaces the client's request and goes through the same route checks; expiry-time= refuses
# the key after it; restrict and no-* flags are accepted; an unsupported option or a host-name
# from= pattern stops the daemon at start with file:line.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
commit app/conf "one" >/dev/null
for k in local neg cmd cmdro old new plain; do ssh-keygen -q -t ed25519 -N '' -f "$T/$k"; done
pub() { cut -d' ' -f1,2 "$T/$1.pub"; }
{
    echo "# only from this host"
    echo "from=\"127.0.0.1\" $(pub local) local-only"
} >"$T/local.keys"
echo "from=\"!127.0.0.2,127.0.0.0/8,::1\",no-pty $(pub neg)" >"$T/neg.keys"
echo "restrict,command=\"/list/machine\" $(pub cmd)" >"$T/cmd.keys"
echo "command=\"/do/freeze app\",from=\"127.0.0.*,10.0.0.0/8\" $(pub cmdro)" >"$T/cmdro.keys"
echo "expiry-time=\"20200101\" $(pub old)" >"$T/old.keys"
echo "expiry-time=\"29991231\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc $(pub new)" \
    >"$T/new.keys"
pub plain >"$T/plain.keys"
config() { # KEYS...: the config with these key entries
    cat <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ $1 ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
}
config '{ path = "local.keys" }, { path = "neg.keys" }, { path = "cmd.keys" },
        { path = "cmdro.keys", ro = true }, { path = "old.keys" }, { path = "new.keys" },
        { path = "plain.keys" }' >"$T/config.toml"

start_gitopper -s 127.0.0.1:0
wait_until 20 grep -q "control API listening on 127.0.0.1:" "$T/gitopper.log"
port=$(sed -n 's/.*control API listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | head -1)
wait_until 20 grep -qx "start app" "$T/systemctl.log"
# -s 127.0.0.1:PORT listens there only: another loopback address of this host is refused.
! timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.2/$port" 2>/dev/null || fail "listening beyond 127.0.0.1"

api() { # KEY SOURCE REQUEST...: one request from SOURCE; output in $T/out, status in $API_STATUS
    API_STATUS=0
    ssh -p "$port" -i "$T/$1" -b "$2" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR test@127.0.0.1 "${@:3}" \
        >"$T/out" 2>"$T/err" || API_STATUS=$?
}
expect_api() { # STATUS KEY SOURCE REQUEST...
    local want=$1; shift
    api "$@"
    [ "$API_STATUS" = "$want" ] ||
        fail "key $1 from $2 (${*:3}): exit $API_STATUS, expected $want: $(cat "$T/err")"
}

# from="127.0.0.1": that address only; elsewhere refused, logged with the key's file and line.
expect_api 0 local 127.0.0.1 /list/service
expect_in "$T/out" '"service":"app"'
expect_api 255 local 127.0.0.2 /list/service
wait_until 5 grep -q "local.keys:2.*127.0.0.2" "$T/gitopper.log"
grep "local.keys:2" "$T/gitopper.log"

# Negation wins over a CIDR that also matches.
expect_api 0 neg 127.0.0.3 /list/service
expect_api 0 neg 127.0.0.1 /list/service
expect_api 255 neg 127.0.0.2 /list/service
wait_until 5 grep -q "neg.keys:1.*127.0.0.2" "$T/gitopper.log"

# command=: the forced request replaces what the client asked for, with or without a command.
expect_api 0 cmd 127.0.0.1 /do/pull app
expect_in "$T/out" '"machines":['
expect_not_in "$T/out" "OK"
expect_api 0 cmd 127.0.0.1
expect_in "$T/out" '"machines":['
expect_in "$T/gitopper.log" "\"/list/machine\" (key $T/cmd.keys:1, forced; asked \"/do/pull app\")"
# ... and is checked like any request: a read-only key forced to freeze is refused (401).
expect_api $((401 % 256)) cmdro 127.0.0.5 /list/service
api plain 127.0.0.1 /list/service app
expect_in "$T/out" '"state":"OK"'

# expiry-time=: refused after it, accepted before it.
expect_api 255 old 127.0.0.1 /list/service
wait_until 5 grep -q "old.keys:1.*expired" "$T/gitopper.log"
expect_api 0 new 127.0.0.1 /list/service
expect_api 0 plain 127.0.0.2 /list/service
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit status $EXIT_STATUS"

# Refused at start, naming file:line: options gitopper cannot honour, and host names in from=.
refused_at_start() { # LINE TEXT: a key file whose second line is LINE stops the daemon with TEXT
    { echo "$(pub plain) fine"; echo "$1"; } >"$T/bad.keys"
    config '{ path = "bad.keys" }' >"$T/bad.toml"
    expect_status 1 timeout 60 "$GITOPPER" -c "$T/bad.toml" --state "$T/state" -h testhost \
        -m 127.0.0.1:0 -s 127.0.0.1:0
    expect_in "$T/err" "$T/bad.keys:2: $2"
    expect_status 1 "$GITOPPER" --check -c "$T/bad.toml" -h testhost
    grep -qF -- "$T/bad.keys:2: $2" "$T/out" "$T/err" || fail "--check does not say: $2"
}
refused_at_start "cert-authority $(pub local)" 'option "cert-authority" is not supported by gitopper: '
refused_at_start "environment=\"A=b\" $(pub local)" 'option "environment" is not supported by gitopper: '
refused_at_start "no-pty,permitopen=\"localhost:80\" $(pub local)" 'option "permitopen" is not supported by gitopper: '
refused_at_start "restrict,pty $(pub local)" 'option "pty" is not supported by gitopper: '
refused_at_start "no-ptty $(pub local)" 'option "no-ptty" is not supported by gitopper: unknown option (did you mean "no-pty"?)'
refused_at_start "from=\"*.example.org\" $(pub local)" 'from= pattern "*.example.org" is a host name'
refused_at_start "from=\"10.0.0.1/8\" $(pub local)" 'from= pattern "10.0.0.1/8"'
echo PASS
