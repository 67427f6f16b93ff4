#!/usr/bin/env bash
# The example alert rules: valid for promtool, and they fire when they should (a BROKEN service
# after 10 minutes, a service not syncing for an hour, but not a frozen one).
. "$(dirname "$0")/lib.sh"
: "${SOURCE_DIR:?set by CTest}"
command -v promtool >/dev/null || skip "no promtool (package prometheus)"
cp "$SOURCE_DIR/dist/gitopper-alerts.yml" "$(dirname "$0")/alerts.yml" "$T/"
promtool check rules "$T/gitopper-alerts.yml" >"$T/out" 2>&1 || { cat "$T/out"; fail "promtool check rules"; }
sed -i '1a rule_files: [gitopper-alerts.yml]' "$T/alerts.yml"
(cd "$T" && promtool test rules alerts.yml) >"$T/out" 2>&1 || { cat "$T/out"; fail "promtool test rules"; }
echo PASS
