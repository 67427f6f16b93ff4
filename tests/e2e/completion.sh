#!/usr/bin/env bash
# Bash completion (dist/completion/): gitopper's flags; gitopperctl's options, verbs and their
# aliases, @host from its known-hosts file, and service names from `list service` of that host
# (asked of a real daemon once, then cached).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"
: "${SOURCE_DIR:?set by CTest}"
export HOME=$T/home XDG_CACHE_HOME=$T/cache
mkdir -p "$HOME"
PATH="$(dirname "$GITOPPERCTL"):$PATH"
# shellcheck source=/dev/null
. "$SOURCE_DIR/dist/completion/gitopper"
# shellcheck source=/dev/null
. "$SOURCE_DIR/dist/completion/gitopperctl"

# completes FUNCTION WORD...: the completions for the last WORD, sorted, on one line.
completes() {
    local function=$1; shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    "$function"
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect_completion() { # EXPECTED FUNCTION WORD...
    local want=$1; shift
    local got; got=$(completes "$@")
    [ "$got" = "$want" ] || fail "completing '${*:2}': got '$got', want '$want'"
}

expect_completion "--ssh --ssh-key" _gitopper gitopper --ss
expect_completion "--state" _gitopper gitopper --st
mkdir -p "$T/dirs/a-dir"
touch "$T/dirs/a-file"
expect_completion "$T/dirs/a-dir" _gitopper gitopper --state "$T/dirs/a"

expect_completion "d diff do l list ls" _gitopperctl gitopperctl ""
expect_completion "freeze" _gitopperctl gitopperctl -m do fr
expect_completion "r release rollback" _gitopperctl gitopperctl do r
expect_completion "h history" _gitopperctl gitopperctl l h
expect_completion "p pull" _gitopperctl gitopperctl d p
expect_completion "--identity --insecure-host-key" _gitopperctl gitopperctl --i
cat >"$T/kh" <<KH
# a comment
web1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBr0000000000000000000000000000000000000000000
[web2]:2223,web3 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBr0000000000000000000000000000000000000000001
KH
expect_completion "@web1 @web2:2223 @web3" _gitopperctl gitopperctl -k "$T/kh" do pull @
expect_completion "@web2:2223" _gitopperctl gitopperctl -k "$T/kh" list service @web2
# Services from the cache of that host.
mkdir -p "$XDG_CACHE_HOME/gitopperctl"
printf 'grafana-server\nprometheus\n' >"$XDG_CACHE_HOME/gitopperctl/services-web1"
expect_completion "grafana-server" _gitopperctl gitopperctl do freeze @web1 gr
expect_completion "" _gitopperctl gitopperctl list machines @web1 ""

# From a real daemon: its services, asked once with the options given on the line.
ssh-keygen -q -t ed25519 -N '' -f "$T/rw"
make_upstream
commit app/conf "one" >/dev/null
commit db/conf "one" >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
keys = [ { path = "rw.pub" } ]
[[services]]
machine = "testhost"
service = "app"
dirs = [ { local = "$T/etc/app", link = "app" } ]
[[services]]
machine = "testhost"
service = "db"
dirs = [ { local = "$T/etc/db", link = "db" } ]
TOML
start_gitopper
port=$(api_port)
"$GITOPPERCTL" -i "$T/rw" list machines "@127.0.0.1:$port" >/dev/null 2>&1 || true # stores the host key
expect_completion "app" _gitopperctl gitopperctl -i "$T/rw" do pull "@127.0.0.1:$port" a
expect_completion "app db" _gitopperctl gitopperctl -i "$T/rw" list service "@127.0.0.1:$port" ""
[ -s "$XDG_CACHE_HOME/gitopperctl/services-127.0.0.1:$port" ] || fail "the services were not cached"
echo PASS
