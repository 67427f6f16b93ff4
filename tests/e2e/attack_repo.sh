#!/usr/bin/env bash
# A hostile repository (anyone who can push): symlinks as links, in the first commit and only
# in a later one, as a file, a directory or a directory on the way; a file over max_file_size.
# Each is refused before anything is checked out: BROKEN with the reason, nothing mounted from
# it, no action, the previous good mount kept. "victim" stands in for system paths.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/victim/root/dir"
echo "root:secret-hash:19000:0:99999:7:::" >"$T/victim/shadow"
echo "host file" >"$T/victim/root/hostfile"
echo "host file" >"$T/victim/root/dir/hostfile"

make_upstream
commit good/app.conf "good 1" >/dev/null
commit later/app.conf "later 1" >/dev/null
commit parent/dir/app.conf "parent 1" >/dev/null
commit big/app.conf "big 1" >/dev/null
# First commit already hostile: a file link and a directory link that are symlinks.
mkdir -p "$T/up/caddy" "$T/up/grafana"
ln -s "$T/victim/shadow" "$T/up/caddy/Caddyfile"
ln -s "$T/victim/root" "$T/up/grafana/etc"
git -C "$T/up" add -A && git -C "$T/up" commit -q -m "symlinks"
first=$(git -C "$T/up" rev-parse HEAD)

service() { # NAME LINK [file]
    local file=""
    [ "${3:-}" = file ] && file=", file = true"
    cat <<TOML
[[services]]
machine = "testhost"
service = "$1"
action = "reload"
dirs = [ { local = "$T/etc/$1", link = "$2"$file } ]
TOML
}
{
    printf '[global]\nupstream = "file://%s/up"\nmount = "%s/srv"\nmax_file_size = "4K"\n' "$T" "$T"
    service caddy caddy/Caddyfile file
    service grafana grafana/etc
    service later later/app.conf file
    service parent parent/dir
    service big big
} >"$T/config.toml"

start_gitopper -t 1h
wait_until 20 grep -qx "start later" "$T/systemctl.log"
wait_until 20 grep -qx "start big" "$T/systemctl.log"
wait_until 20 grep -q "\[grafana\] state OK -> BROKEN" "$T/gitopper.log"
wait_until 20 grep -q "\[caddy\] state OK -> BROKEN" "$T/gitopper.log"

# First commit: refused with the link and the commit, nothing mounted, never started.
expect_in "$T/gitopper.log" "[caddy] state OK -> BROKEN: link \"caddy/Caddyfile\" is a symlink in ${first:0:8}"
expect_in "$T/gitopper.log" "[grafana] state OK -> BROKEN: link \"grafana/etc\" is a symlink in ${first:0:8}"
for s in caddy grafana; do
    [ "$(mounts_on "$T/etc/$s")" = 0 ] || fail "something is mounted on etc/$s"
    [ "$(calls "start $s")" = 0 ] || fail "$s was started"
    [ "$(calls "reload $s")" = 0 ] || fail "$s was reloaded"
done
[ ! -e "$T/etc/caddy" ] || ! grep -q secret-hash "$T/etc/caddy" || fail "the victim file shows at the target"
[ ! -e "$T/etc/grafana/hostfile" ] || fail "the victim directory shows at the target"

# The HTTP API says the same.
port=$(http_port)
curl -sS "http://127.0.0.1:$port/list/service/caddy" >"$T/caddy.json"
expect_in "$T/caddy.json" '"state":"BROKEN"'
expect_in "$T/caddy.json" 'is a symlink in'

# Later commits: the file link becomes a symlink; a directory on the way of another link does;
# a file over max_file_size appears. Each is refused, the previous mount and files stay.
rm "$T/up/later/app.conf"
ln -s "$T/victim/shadow" "$T/up/later/app.conf"
rm -rf "$T/up/parent"
ln -s "$T/victim/root" "$T/up/parent"
head -c 8192 /dev/zero >"$T/up/big/huge.bin"
git -C "$T/up" add -A && git -C "$T/up" commit -q -m "hostile later"
later=$(git -C "$T/up" rev-parse HEAD)
: >"$T/systemctl.log"
stop_gitopper TERM
start_gitopper -t 1s
wait_until 20 grep -q "\[later\] state OK -> BROKEN: link \"later/app.conf\" is a symlink in ${later:0:8}" "$T/gitopper.log"
wait_until 20 grep -q "\[parent\] state OK -> BROKEN: link \"parent/dir\" is a symlink in ${later:0:8} (at \"parent\")" "$T/gitopper.log"
wait_until 20 grep -q "\[big\] state OK -> BROKEN: file \"big/huge.bin\" is 8192 bytes in ${later:0:8}, over max_file_size (4096 bytes)" "$T/gitopper.log"
[ "$(cat "$T/etc/later")" = "later 1" ] || fail "the later file mount changed: $(cat "$T/etc/later")"
[ "$(cat "$T/etc/parent/app.conf")" = "parent 1" ] || fail "the parent mount changed"
[ ! -e "$T/etc/parent/hostfile" ] || fail "the victim directory shows through parent"
[ ! -e "$T/srv/big/big/huge.bin" ] || fail "the oversized file was checked out"
[ "$(cat "$T/etc/big/app.conf")" = "big 1" ] || fail "the big mount changed"
for s in later parent big; do
    [ "$(mounts_on "$T/etc/$s")" = 1 ] || fail "$(mounts_on "$T/etc/$s") mounts on etc/$s"
    [ "$(git -C "$T/srv/$s" rev-parse HEAD)" != "$later" ] || fail "$s checked out the hostile commit"
    [ "$(calls "reload $s")" = 0 ] || fail "$s was reloaded for a refused commit"
done
# Polls do not retry a refused head; a fix pushed to git recovers.
rm "$T/up/later/app.conf" "$T/up/big/huge.bin"
echo "later 2" >"$T/up/later/app.conf"
git -C "$T/up" add -A && git -C "$T/up" commit -q -m "fixed"
wait_until 20 grep -qx "later 2" "$T/etc/later"
wait_until 20 grep -qx "reload later" "$T/systemctl.log"
wait_until 20 grep -q "\[later\] state BROKEN -> OK" "$T/gitopper.log"
stop_gitopper TERM

# The config moves "later" to another upstream whose branch is hostile: vetted like any
# commit, refused, and the service keeps its files (not an emptied directory).
make_upstream "$T/up2"
mkdir -p "$T/up2/later"
ln -s "$T/victim/shadow" "$T/up2/later/app.conf"
git -C "$T/up2" add -A && git -C "$T/up2" commit -q -m "hostile upstream"
other=$(git -C "$T/up2" rev-parse HEAD)
sed -i "0,/service = \"later\"/s|service = \"later\"|service = \"later\"\nupstream = \"file://$T/up2\"|" "$T/config.toml"
start_gitopper -t 1h
wait_until 20 grep -q "\[later\] state OK -> BROKEN: link \"later/app.conf\" is a symlink in ${other:0:8}" "$T/gitopper.log"
[ "$(cat "$T/etc/later")" = "later 2" ] || fail "the switched service lost its file: $(cat "$T/etc/later")"
[ "$(git -C "$T/srv/later" rev-parse HEAD)" != "$other" ] || fail "the hostile upstream was checked out"
kill -0 "$GITOPPER_PID" || fail "the daemon died"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
