#!/usr/bin/env bash
# The Grafana dashboard (dist/gitopper-dashboard.json): every PromQL expression in it is valid
# for promtool (as a recording rule, with Grafana's variables filled in), and every metric it
# names is one a running daemon exports.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${SOURCE_DIR:?set by CTest}"
command -v promtool >/dev/null || skip "no promtool (package prometheus)"
dashboard="$SOURCE_DIR/dist/gitopper-dashboard.json"

python3 - "$dashboard" "$T/rules.yml" "$T/metrics.txt" <<'PY'
import json, re, sys
dash = json.load(open(sys.argv[1]))
ids, exprs = set(), []
for panel in dash["panels"]:
    assert panel.get("title") and panel.get("description"), f"panel {panel.get('id')} needs a title and a description"
    assert panel["id"] not in ids, f"panel id {panel['id']} twice"
    ids.add(panel["id"])
    for target in panel["targets"]:
        exprs.append(target["expr"])
assert exprs, "no expressions"
filled = [e.replace("$__rate_interval", "5m").replace("$instance", ".*") for e in exprs]
assert not any("$" in e for e in filled), "a Grafana variable the test does not fill"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(filled):
        out.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(e)}\n")
names = sorted({m for e in exprs for m in re.findall(r"\bgitopper_[a-z_]+", e)})
open(sys.argv[3], "w").write("\n".join(names) + "\n")
PY
promtool check rules "$T/rules.yml" >"$T/out" 2>&1 || { cat "$T/out"; fail "promtool check rules"; }

# The names against what a daemon exports (histogram series by their family's name).
make_upstream
commit app/conf "one" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [ { local = "$T/etc/app", link = "app" } ]
TOML
start_gitopper
wait_until 20 grep -qx one "$T/etc/app/conf"
wait_cycles 2
curl -sS "http://127.0.0.1:$(http_port)/metrics" >"$T/exported"
while read -r name; do
    family=${name%_bucket}
    grep -q "^# TYPE $family " "$T/exported" || fail "the dashboard uses $name, which the daemon does not export"
done <"$T/metrics.txt"
grep -q 'gitopper_service_info{.*state="OK"' "$T/exported" || fail "no state=\"OK\" label for the pie chart"
stop_gitopper TERM
echo PASS
