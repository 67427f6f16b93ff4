#!/usr/bin/env bash
# Fleet rollouts with an etcd that wants TLS, client certificates and a password (issue 16
# point 1): a real etcd member on https://127.0.0.1 with --client-cert-auth and etcd's auth
# enabled, its CA, server and client certificates made here. A daemon with the right password
# takes its slot and deploys; one with a wrong password keeps its files, DIFF with etcd's
# reason; neither password is in any log or metric.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

pki=$T/pki
mkdir -m 700 "$pki"
certificate() { # NAME SUBJECT SUBJECT-ALT-NAME: NAME.pem and NAME.key, signed by the CA
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
        -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    printf 'subjectAltName = %s\nextendedKeyUsage = serverAuth, clientAuth\n' "$3" >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 1 -extfile "$pki/$1.ext" -out "$pki/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=gitopper test CA" \
    -days 1 -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
certificate server /CN=etcd "IP:127.0.0.1"
certificate client /CN=admin "DNS:admin" # etcdctl's, over gRPC
# The daemons': with etcd's auth on, its gateway refuses a client certificate that has a
# Common Name (it could not act on it), so theirs has none.
certificate gateway /O=gitopper "DNS:gitopper"
chmod 600 "$pki"/*.key

client=$(free_port)
peer=$(free_port)
ETCD_ARGS[tls]="--name tls --data-dir $T/etcd-tls
    --listen-client-urls https://127.0.0.1:$client --advertise-client-urls https://127.0.0.1:$client
    --listen-peer-urls http://127.0.0.1:$peer --initial-advertise-peer-urls http://127.0.0.1:$peer
    --initial-cluster tls=http://127.0.0.1:$peer
    --cert-file $pki/server.pem --key-file $pki/server.key
    --client-cert-auth --trusted-ca-file $pki/ca.pem"
restart_etcd tls
etcdctl() {
    command etcdctl --endpoints "https://127.0.0.1:$client" --cacert "$pki/ca.pem" \
        --cert "$pki/client.pem" --key "$pki/client.key" "$@"
}
tls_healthy() { etcdctl endpoint health >/dev/null 2>&1; }
wait_until 30 tls_healthy
etcdctl user add root --new-user-password=root-pw-$$ >/dev/null
etcdctl auth enable >/dev/null 2>&1
etcdctl --user "root:root-pw-$$" role add gitopper >/dev/null
etcdctl --user "root:root-pw-$$" role grant-permission --prefix gitopper readwrite /gitopper/ >/dev/null
etcdctl --user "root:root-pw-$$" user add gitopper --new-user-password="right-pw-$$" >/dev/null
etcdctl --user "root:root-pw-$$" user grant-role gitopper gitopper >/dev/null
printf 'right-pw-%s\n' "$$" >"$T/right.password"
printf 'wrong-pw-%s\n' "$$" >"$T/wrong.password"
chmod 600 "$T"/*.password

make_upstream
c0=$(commit app/conf "one")
ssh-keygen -q -t ed25519 -N '' -C ops -f "$T/ops"
for host in good bad named; do
    tls="ca_file = \"$pki/ca.pem\", cert_file = \"$pki/gateway.pem\", key_file = \"$pki/gateway.key\""
    fleet_host "$host" "{ etcd = [\"https://127.0.0.1:$client\"], $tls, user = \"gitopper\", password_file = \"$T/$host.password\" }" app:
done
cp "$T/right.password" "$T/named.password"
mv "$T/right.password" "$T/good.password"
mv "$T/wrong.password" "$T/bad.password"
# "named" presents the certificate with a Common Name, which the gateway refuses.
sed -i "s|$pki/gateway|$pki/client|g" "$T/named/config.toml"
"$GITOPPER" -c "$T/good/config.toml" --check -h good --state "$T/good/state" >"$T/check.out"
expect_in "$T/check.out" "fleet rollout: etcd at https://127.0.0.1:$client; at most 1 host at once, keys under /gitopper, lease 15s, as etcd user \"gitopper\", client certificate $pki/gateway.pem"
start_host good
start_host bad
start_host named
wait_until 30 all_at "$c0" app good bad named

push app/conf "two"
wait_until 30 all_done "$PUSH" app good
grep -q " took a rollout slot for ${PUSH:0:8}" "$T/good/gitopper.log" || fail "no slot taken"
bad_says() {
    [ "$(host_field bad app state)" = DIFF ] &&
        host_field bad app stateinfo | grep -qF "authenticating as \"gitopper\": etcdserver: authentication failed"
}
wait_until 30 bad_says
[ "$(host_field bad app commit)" = "$c0" ] || fail "published without a slot"
named_says() {
    host_field named app stateinfo |
        grep -qF "HTTP 400: CommonName of client sending a request against gateway will be ignored"
}
wait_until 30 named_says
[ "$(host_field named app commit)" = "$c0" ] || fail "named published without a slot"
for host in good bad named; do
    curl -sS "http://127.0.0.1:$(host_port "$host")/metrics" >"$T/$host.metrics"
    for secret in "right-pw-$$" "wrong-pw-$$" "root-pw-$$"; do
        expect_not_in "$T/$host/gitopper.log" "$secret"
        expect_not_in "$T/$host.metrics" "$secret"
    done
done
for host in good bad named; do stop_host "$host"; done
