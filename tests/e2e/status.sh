#!/usr/bin/env bash
# Commit statuses (issue 15 point 2), against a recording server on 127.0.0.1 that stands in
# for each forge's API (no real GitHub, Gitea or GitLab is reachable here): a deploy sets
# `pending` on the new commit, then `success`; a refused check sets `failure`. Method, path,
# headers and body are checked per forge; the token never reaches the log.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/rx"
python3 "$SOURCE_DIR/tests/e2e/receiver.py" "$T/rx" 0 &
receiver_pid=$!
cleanup_hooks+=("kill $receiver_pid 2>/dev/null")
wait_until 10 test -e "$T/rx/port"
port=$(cat "$T/rx/port")
token="tok-$RANDOM-en"
printf '%s\n' "$token" >"$T/token"
chmod 600 "$T/token"
make_upstream
commit app/conf "one" >/dev/null
host=$(hostname)

sent_at_least() {
    [ "$(metric "gitopper_status_requests_total{forge=\"$1\",result=\"sent\"}")" -ge "$2" ]
}
mentioned_twice() { [ "$(grep -c "$1" "$T/rx/requests.jsonl")" -ge 2 ]; }
requests_at_least() { [ "$(grep -c . "$T/rx/requests.jsonl")" -ge "$1" ]; }

# run_forge FORGE API: a daemon reporting to FORGE at API; a good and a refused commit.
run_forge() {
    local forge=$1 api=$2
    : >"$T/rx/requests.jsonl"
    cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
status = { forge = "$forge", api = "$api", token_file = "token", repository = "ops/config" }

[[services]]
machine = "testhost"
service = "app"
check = ["grep", "-qv", "bad", "{dir}/app/conf"]
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
    "$GITOPPER" -c "$T/config.toml" --check -h testhost --state "$T/state" >"$T/check.out"
    expect_in "$T/check.out" "commit status: $forge at $api, repository ops/config, token from $T/token"
    start_gitopper
    wait_until 20 grep -qx "start app" "$T/systemctl.log"
    good=$(commit app/conf "good $forge")
    wait_until 20 grep -qx "good $forge" "$T/etc/app/conf"
    bad=$(commit app/conf "bad $forge")
    wait_until 20 requests_at_least 4
    wait_until 20 mentioned_twice "$bad" # its pending, then its failure
    wait_until 10 sent_at_least "$forge" 4 # 6 when the start deployed the last run's head
    stop_gitopper
    python3 - "$T/rx/requests.jsonl" "$forge" "$good" "$bad" "$token" "$host" <<'PY'
import json, sys
path, forge, good, bad, token, host = sys.argv[1:]
reqs = [json.loads(l) for l in open(path)]
context = f"gitopper/{host}/app"
want = [(good, "pending"), (good, "success"), (bad, "pending"), (bad, "failure")]
got = []
for r in reqs:
    assert r["method"] == "POST", r
    h, body = r["headers"], json.loads(r["body"])
    assert h["content-type"] == "application/json", h
    if forge == "gitlab":
        sha = r["path"].rsplit("/", 1)[1]
        assert r["path"] == f"/api/v4/projects/ops%2Fconfig/statuses/{sha}", r["path"]
        assert h["private-token"] == token and "authorization" not in h, h
        assert body["name"] == context, body
        state = {"failed": "failure"}.get(body["state"], body["state"])
    else:
        base = "/api/v3" if forge == "github" else "/api/v1"
        sha = r["path"].rsplit("/", 1)[1]
        assert r["path"] == f"{base}/repos/ops/config/statuses/{sha}", r["path"]
        scheme = "Bearer" if forge == "github" else "token"
        assert h["authorization"] == f"{scheme} {token}", h
        if forge == "github":
            assert h["accept"] == "application/vnd.github+json", h
        assert body["context"] == context, body
        state = body["state"]
    assert body["description"] and len(body["description"]) <= 140, body
    got.append((sha, state))
# The start may deploy the head the last forge's run left; only ours are looked at.
ours = [i for i, (sha, _) in enumerate(got) if sha in (good, bad)]
assert [got[i] for i in ours] == want, (got, want)
failure = json.loads(reqs[ours[3]]["body"])["description"]
assert failure.startswith(f"check failed on {host}"), failure
PY
    expect_not_in "$T/gitopper.log" "$token"
    # Back to a good head for the next forge.
    commit app/conf "one" >/dev/null
}

run_forge github "http://127.0.0.1:$port/api/v3"
run_forge gitea "http://127.0.0.1:$port/api/v1/"
run_forge gitlab "http://127.0.0.1:$port/api/v4"
