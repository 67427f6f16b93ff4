#!/usr/bin/env bash
# The daemon's command line: help, version, --check, usage errors, the root requirement.
. "$(dirname "$0")/lib.sh"
examples="$SOURCE_DIR/examples"

expect_status 0 "$GITOPPER" --help
for flag in "-h, --hosts" "-c, --config" "-s, --ssh" "-m, --metric" "-d, --debug" "-r, --restart" \
            "-o, --root" "-t, --duration" "-U, --upstream" "-D, --directory" "-B, --branch" \
            "-M, --mount" "-P, --pull" "--state" "--check" "--version"; do
    expect_in "$T/out" "$flag"
done
expect_in "$T/out" ":2222"
expect_in "$T/out" "/var/lib/gitopper"

expect_status 0 "$GITOPPER" --version
grep -qE '^gitopper [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" || fail "version line: $(cat "$T/out")"

# --check on the seed's config, acting as its machine: the service, its checkout and mounts.
expect_status 0 "$GITOPPER" --check -c "$examples/seed.toml" -h grafana.atoom.net
expect_in "$T/out" "1 of 1 services for this host"
expect_in "$T/out" "grafana-server"
expect_in "$T/out" "/tmp/grafana1/grafana-server"
expect_in "$T/out" "https://github.com/miekg/blah-origin"
expect_in "$T/out" "/etc/grafana <- grafana/etc"
expect_in "$T/out" "/var/lib/grafana/dashboards <- grafana/dashboards"
# Every service field of the config's field table, with its fallback where unset.
expect_in "$T/out" "max_file_size 100MiB"
expect_in "$T/out" "branch        main"
if ! getent passwd grafana >/dev/null; then
    expect_in "$T/err" 'seed.toml:9:8: warning: user "grafana" does not exist'
fi
# -h takes comma lists and repeats; the real host name is always added.
expect_status 0 "$GITOPPER" --check -c "$examples/seed.toml" -h a,b -h grafana.atoom.net
expect_in "$T/out" "acting as a, b, grafana.atoom.net, $(hostname)"
expect_status 0 "$GITOPPER" --check -c "$examples/seed.toml"
expect_in "$T/out" "0 of 1 services for this host"

# A bad config: every error with file:line:column, exit 1, nothing created.
cat >"$T/bad.toml" <<'TOML'
[global]
upstream = "https://example.org/x"
mount = "/srv"

[[services]]
machine = "m"
service = "s"
brokenbranch = "main"
TOML
expect_status 1 "$GITOPPER" --check -c "$T/bad.toml"
expect_in "$T/err" "$T/bad.toml:8:1: unknown key \"brokenbranch\" in [[services]] #1 (did you mean \"branch\"?)"
expect_status 1 "$GITOPPER" --check -c "$T/missing.toml"
expect_in "$T/err" "$T/missing.toml"

# SPEC §11 target rules, each with its position: under --check, as at start.
cat >"$T/targets.toml" <<TOML
[global]
upstream = "https://deploy:s3cret@example.org/x"
mount = "/srv/gitopper"

[[services]]
machine = "m"
service = "outer"
dirs = [ { local = "/etc/systemd", link = "a" } ]

[[services]]
machine = "m"
service = "inner"
dirs = [ { local = "/etc/systemd/system", link = "b" }, { local = "/srv/gitopper/outer/x", link = "c" } ]

[[services]]
machine = "m"
service = "system"
dirs = [ { local = "/usr", link = "d" }, { local = "/x", link = ".git/hooks" } ]
TOML
expect_status 1 "$GITOPPER" --check -c "$T/targets.toml" -h m --state "$T/newstate"
expect_in "$T/err" "$T/targets.toml:18:10: local \"/usr\" must not be a top-level system directory"
expect_in "$T/err" "$T/targets.toml:18:42: link \".git/hooks\" must not point into .git"
sed -i 's|/usr", link = "d" }, { local = "/x", link = ".git/hooks" }|/opt/d", link = "d" }|' "$T/targets.toml"
expect_status 1 "$GITOPPER" --check -c "$T/targets.toml" -h m --state "$T/newstate"
expect_in "$T/err" "$T/targets.toml:13:10: local \"/etc/systemd/system\" lies inside local \"/etc/systemd\" (at $T/targets.toml:8:10)"
expect_in "$T/err" "$T/targets.toml:13:57: local \"/srv/gitopper/outer/x\" lies inside the mount base /srv/gitopper"
expect_not_in "$T/err" "s3cret"
expect_status 1 "$GITOPPER" -c "$T/targets.toml" -h m --state "$T/newstate" -o=false
expect_in "$T/err" "lies inside local"
[ ! -e "$T/newstate" ] || fail "a refused config created the state dir"

# Usage errors.
expect_status 1 "$GITOPPER" --check
expect_in "$T/err" "missing -c CONFIG"
expect_status 1 "$GITOPPER" --check -c "$examples/seed.toml" -t 5x
expect_in "$T/err" 'invalid duration "5x"'
expect_status 0 "$GITOPPER" --check -c "$examples/seed.toml" -t 1h30m -o=false --root=false
expect_status 1 "$GITOPPER" --bogus
expect_in "$T/err" "--bogus"

# Without root the daemon refuses to start, unless -o=false.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    cp "$examples/seed.toml" "$T/seed.toml"; chmod 755 "$T"
    expect_status 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$GITOPPER" -c "$T/seed.toml"
    expect_in "$T/err" "must run as root"
fi
echo PASS
