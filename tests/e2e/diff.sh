#!/usr/bin/env bash
# The diff preview (issue 15 point 4): /list/diff SERVICE (read-only keys too, and GET
# /list/diff/SERVICE) says what the next deploy would do, fetching what it needs but never
# touching the live tree; for a frozen service, what unfreezing would bring; the diff is cut
# at its bound with a marker. gitopperctl diff shows it readably.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${GITOPPERCTL:?set by CTest}"

private_home ops
ssh-keygen -q -t ed25519 -N '' -C watcher -f "$T/ro"
make_upstream
one=$(commit app/conf "one")
commit other/file "outside" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "$HOME/.ssh/id_ed25519.pub" }, { path = "ro.pub", ro = true } ]
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
start_gitopper -t 1h # no polls: only the preview looks upstream
API_PORT=$(api_port)
at="@127.0.0.1:$API_PORT"
wait_until 20 grep -qx one "$T/etc/app/conf"
ctl() { expect_status "$1" "$GITOPPERCTL" --insecure-host-key "${@:2}"; }
deployed=$(git -C "$T/up" rev-parse HEAD)

# Nothing upstream yet.
ctl 0 diff "$at" app
expect_in "$T/out" "nothing to deploy"

# Frozen, then two commits upstream (one outside its links): what unfreezing would bring.
ctl 0 do freeze "$at" app
printf 'one\ntwo\n' >"$T/up/app/conf"
git -C "$T/up" commit -qam "add two" --author "Alice <alice@example.org>"
commit other/file "still outside" >/dev/null
upstream=$(git -C "$T/up" rev-parse HEAD)
ctl 0 diff "$at" app
cat "$T/out"
expect_in "$T/out" "app: deployed ${deployed:0:8}, upstream ${upstream:0:8}"
expect_in "$T/out" "frozen: this is what unfreezing would bring"
expect_in "$T/out" "2 commits:"
expect_in "$T/out" "add two  (Alice)"
expect_in "$T/out" "1 file of its links:"
expect_in "$T/out" "  M  app/conf"
! grep -qE '^  [AMD]  other/' "$T/out" || fail "a file outside its links is listed"
expect_in "$T/out" "action: systemctl reload app"
expect_in "$T/out" "+two"
expect_not_in "$T/out" $'\x1b' # not a terminal: no colour
# Nothing live moved, nothing was told.
[ "$(cat "$T/etc/app/conf")" = one ] || fail "the preview changed the live tree"
! grep -q "^reload app" "$T/systemctl.log" || fail "the preview ran the action"

# Read-only keys may ask; so may HTTP, with the same JSON.
api_as ro /list/diff app
[ "$API_STATUS" = 0 ] || fail "read-only key: $API_STATUS $(cat "$T/out")"
curl -sS "http://127.0.0.1:$(http_port)/list/diff/app" >"$T/http.json"
python3 - "$T/http.json" "$deployed" "$upstream" <<'PY'
import json, sys
path, deployed, upstream = sys.argv[1:]
d = json.load(open(path))
assert d["deployed"] == deployed and d["upstream"] == upstream, d
assert [c["subject"] for c in d["commits"]] == ["change other/file", "add two"], d["commits"]
assert d["files"] == [{"status": "M", "path": "app/conf"}], d["files"]
assert "+two" in d["diff"] and not d["truncated"], d
assert d["action"] == "systemctl reload app", d
PY
curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(http_port)/list/diff/nope" >"$T/code"
[ "$(cat "$T/code")" = 404 ] || fail "unknown service over HTTP: $(cat "$T/code")"

# A big change: the diff is cut at its bound, and says so.
head -c 300000 /dev/urandom | base64 >"$T/up/app/big"
git -C "$T/up" add -A && git -C "$T/up" commit -qm "big"
ctl 0 diff "$at" app
expect_in "$T/out" "[diff truncated"
expect_in "$T/out" "  A  app/big"
stop_gitopper
