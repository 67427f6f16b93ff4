#!/usr/bin/env bash
# https upstreams (issue 13, points 2 and 3), against nginx with TLS from a CA this test makes,
# basic auth, and git http-backend through fcgiwrap, all on 127.0.0.1: `token_file` is given to
# git by its askpass prompt (for root and for a service's user, through a descriptor for that
# run), `ca_file` trusts the private CA. A wrong token is DIFF with git's message; the token
# is nowhere else: not in the log (with -d), an API answer, the metrics, --check, or a file
# others can read.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
for p in /usr/sbin/nginx /usr/sbin/fcgiwrap; do
    [ -x "$p" ] || skip "no $p (nginx-light, fcgiwrap; scripts/install-deps)"
done

# A CA, and a certificate for 127.0.0.1 it signed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$T/san.ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/san.ext" -out "$T/server.pem" 2>/dev/null
token="tok-$RANDOM$RANDOM-secret"
printf '%s\n' "$token" >"$T/token"
chmod 600 "$T/token"
printf 'git:%s\n' "$(openssl passwd -apr1 "$token")" >"$T/htpasswd"

make_upstream
commit app/conf "one" >/dev/null
commit peer/conf "peer one" >/dev/null

# fcgiwrap and nginx in the foreground, our children, on a socket and a port in $T.
/usr/sbin/fcgiwrap -s "unix:$T/fcgi.sock" >>"$T/fcgiwrap.log" 2>&1 &
FCGI_PID=$!
cleanup_hooks+=("kill $FCGI_PID 2>/dev/null; wait $FCGI_PID 2>/dev/null")
wait_until 10 test -S "$T/fcgi.sock"
mkdir -p "$T/nginx"
for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    listening "$port" || break
done
cat >"$T/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
error_log $T/nginx/error.log;
pid $T/nginx/nginx.pid;
events {}
http {
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/body;
    fastcgi_temp_path $T/nginx/fastcgi;
    proxy_temp_path $T/nginx/proxy;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $T/server.pem;
        ssl_certificate_key $T/server.key;
        location / {
            auth_basic "git";
            auth_basic_user_file $T/htpasswd;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
            fastcgi_param GIT_PROJECT_ROOT $T;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_PROTOCOL \$http_git_protocol;
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param REMOTE_USER \$remote_user;
            fastcgi_pass unix:$T/fcgi.sock;
        }
    }
}
CONF
/usr/sbin/nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" >>"$T/nginx/out.log" 2>&1 &
NGINX_PID=$!
cleanup_hooks+=("kill $NGINX_PID 2>/dev/null; wait $NGINX_PID 2>/dev/null")
wait_until 10 listening "$port"
GIT_SSL_CAINFO="$T/ca.pem" git ls-remote "https://git:$token@127.0.0.1:$port/up" >/dev/null ||
    fail "the test's own server does not serve (see $T/nginx/error.log)"

ssh-keygen -q -t ed25519 -N '' -f "$T/rw"
config() { # TOKEN-FILE CA-FILE-LINE
    cat >"$T/config.toml" <<TOML
[global]
upstream = "https://127.0.0.1:$port/up"
mount = "$T/srv"
token_file = "$1"
$2
keys = [ { path = "rw.pub" } ]
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
config token 'ca_file = "ca.pem"'

# A token others can read is refused before anything runs.
chmod 644 "$T/token"
expect_status 1 "$GITOPPER" --check -c "$T/config.toml" -h testhost
expect_in "$T/err" "config.toml:4:14: token_file: $T/token holds a secret and is readable by others (mode 0644): chmod go-r"
chmod 600 "$T/token"
expect_status 0 "$GITOPPER" --check -c "$T/config.toml" -h testhost
cat "$T/out" "$T/err" >"$T/check.out"

# The token and the CA: root's service and the user's are deployed, and follow a push.
start_gitopper -d
API_PORT=$(api_port)
wait_until 30 grep -qx one "$T/etc/app/conf"
wait_until 30 grep -qx "peer one" "$T/etc/peer/conf"
commit app/conf "two" >/dev/null
wait_until 20 grep -qx two "$T/etc/app/conf"
api_as rw /list/service
cat "$T/out" >>"$T/answers"
curl -sS "http://127.0.0.1:$(http_port)/metrics" >"$T/metrics"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"

# A wrong token: DIFF with git's message, the files stay.
printf 'not-the-token\n' >"$T/wrong"
chmod 600 "$T/wrong"
config wrong 'ca_file = "ca.pem"'
commit app/conf "three" >/dev/null
start_gitopper -d
wait_until 20 grep -q "\[app\] state .*DIFF: .*Authentication failed for 'https://127.0.0.1:$port/up/'" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = two ] || fail "deployed with a wrong token"
api_as rw /list/service app
cat "$T/out" >>"$T/answers"
stop_gitopper TERM

# Without the CA, the server's certificate is not trusted.
config token ""
start_gitopper -d
wait_until 20 grep -q "\[app\] state .*DIFF: .*server certificate verification failed\|\[app\] state .*DIFF: .*SSL certificate problem" "$T/gitopper.log"
[ "$(cat "$T/etc/app/conf")" = two ] || fail "deployed from a server whose certificate is not trusted"
stop_gitopper TERM

# The askpass answers for the upstream's own host only: git asking for another (after a
# redirect) gets nothing.
helper() { GITOPPER_HELPER=askpass GITOPPER_ASKPASS_HOST="127.0.0.1:$port" GITOPPER_TOKEN_FD=3 \
    "$GITOPPER" "$1" 3<"$T/token"; }
[ "$(helper "Password for 'https://git@127.0.0.1:$port': ")" = "$token" ] || fail "askpass did not answer"
expect_status 1 helper "Password for 'https://git@elsewhere.example:$port': "
[ ! -s "$T/out" ] || fail "askpass answered another host: $(cat "$T/out")"
expect_status 1 helper "Password for 'https://git@127.0.0.1:1$port': "
expect_status 1 helper "Password for 'http://git@127.0.0.1:$port': "
expect_status 1 helper "Password for 'https://x@127.0.0.1:$port'@elsewhere.example': "

# The token is nowhere but in its own file (and the server's hash of it).
for f in "$T/gitopper.log" "$T/answers" "$T/metrics" "$T/check.out"; do
    expect_not_in "$f" "$token"
done
leaked=$(grep -rlF -- "$token" "$T" 2>/dev/null | grep -vx "$T/token" || true)
[ -z "$leaked" ] || fail "the token is in: $leaked"
