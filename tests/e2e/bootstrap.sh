#!/usr/bin/env bash
# Bootstrapping (SPEC §9, issue 13 points 4 and 5), as the Go tool documents it:
# `-c config.toml -U URL -D gitopper -M DIR` checks out the repository's gitopper/ into
# DIR/gitopper, reads DIR/gitopper/gitopper/config.toml, whose relative key paths are inside
# that checkout, and manages the checkout as a service named "gitopper" (no unit). With -r a
# config change pushed through git makes the daemon exit 2, and the restarted one runs the new
# config; -P pulls before starting; an unreachable bootstrap repository with a checkout there
# starts from the checkout, with a warning.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

ssh-keygen -q -t ed25519 -N '' -f "$T/rw"
make_upstream "$T/boot"
mkdir -p "$T/boot/gitopper/keys"
cp "$T/rw.pub" "$T/boot/gitopper/keys/rw.pub"
service() { # NAME
    cat <<TOML
[[services]]
machine = "testhost"
service = "$1"
action = "reload"
dirs = [ { local = "$T/etc/$1", link = "$1" } ]
TOML
}
boot_config() { # SERVICE...
    {
        cat <<TOML
[global]
upstream = "file://$T/boot"
mount = "$T/srv"
keys = [ { path = "keys/rw.pub" } ]
TOML
        for s in "$@"; do service "$s"; done
    } >"$T/boot/gitopper/config.toml"
    for s in "$@"; do mkdir -p "$T/boot/$s" && echo "app $*" >"$T/boot/$s/conf"; done
    git -C "$T/boot" add -A
    git -C "$T/boot" commit -q -m "services $*"
}
mkdir -p "$T/boot/other"
echo other >"$T/boot/other/conf"
boot_config app
: >"$T/config.toml" # -c in the working directory is not the one read
boot() { start_gitopper -c config.toml -U "file://$T/boot" -D gitopper -M "$T/bootmount" -r "$@"; }

expect_status 1 "$GITOPPER" -c config.toml -U "file://$T/boot"
expect_in "$T/err" "-U needs -M, the directory to check the bootstrap repository out into"
expect_status 1 "$GITOPPER" -c "$T/config.toml" -U "file://$T/boot" -M "$T/bootmount"
expect_in "$T/err" "with -U, -c names the config inside the checkout (relative to -D), not an absolute path"

# The config from the checkout: its service is deployed, its key (a relative path, inside the
# checkout) opens the API, and the checkout itself is the service "gitopper".
boot
wait_until 30 grep -q "app app" "$T/etc/app/conf"
expect_in "$T/gitopper.log" "bootstrap: reading the config from $T/bootmount/gitopper/gitopper/config.toml"
[ -f "$T/bootmount/gitopper/gitopper/config.toml" ] || fail "no checkout at $T/bootmount/gitopper"
[ ! -e "$T/bootmount/gitopper/other" ] || fail "the bootstrap checkout is not sparse"
API_PORT=$(api_port)
api_as rw /list/service
expect_in "$T/out" '"service":"gitopper"'
expect_in "$T/out" '"service":"app"'
! grep -q "gitopper" "$T/systemctl.log" || fail "systemctl ran for the bootstrap checkout: $(cat "$T/systemctl.log")"

# --check with -U looks at the checkout's config as it is (it fetches nothing).
expect_status 0 "$GITOPPER" --check -c config.toml -U "file://$T/boot" -M "$T/bootmount" -h testhost
expect_in "$T/out" "$T/bootmount/gitopper/gitopper/config.toml: ok"

# A config change through git, with -r: exit 2; restarted, the daemon runs the new config.
boot_config app two
wait_exit 30
[ "$EXIT_STATUS" = 2 ] || fail "exit $EXIT_STATUS after a config change with -r"
expect_in "$T/gitopper.log" "$T/bootmount/gitopper/gitopper/config.toml changed, exiting with status 2 to be restarted"
boot
wait_until 30 grep -q "app app two" "$T/etc/two/conf"
stop_gitopper TERM

# -P: a newer bootstrap commit is taken before the config is read, with no restart between.
boot_config app two three
boot -P
wait_until 30 grep -q "app app two three" "$T/etc/three/conf"
! not_running "$GITOPPER_PID" || fail "the daemon exited after -P"
stop_gitopper TERM

# Without -r a config change is logged, once, and the daemon goes on; -B picks the branch.
git -C "$T/boot" branch -q canary
: >"$T/gitopper.log"
start_gitopper -c config.toml -U "file://$T/boot" -D gitopper -M "$T/bootmount-canary" -B canary
# The config is read before the change below is made (etc/three/conf is the last daemon's
# mount and says nothing of this one): app, two, three and the bootstrap checkout.
wait_until 30 grep -q "tracking 4 services in" "$T/gitopper.log"
wait_until 30 grep -q "app app two three" "$T/etc/three/conf"
git -C "$T/boot" checkout -q canary
boot_config app two three four
git -C "$T/boot" checkout -q main
wait_until 30 grep -q "$T/bootmount-canary/gitopper/gitopper/config.toml changed; the daemon goes on with the config it started with" "$T/gitopper.log"
wait_cycles 3
! not_running "$GITOPPER_PID" || fail "the daemon exited without -r"
[ "$(grep -c "config.toml changed; the daemon goes on" "$T/gitopper.log")" = 1 ] || fail "the change was logged more than once"
[ ! -e "$T/etc/four" ] || fail "the new config was taken without a restart"
stop_gitopper TERM

# The bootstrap repository unreachable, -P: the checkout there is used, with a warning.
mv "$T/boot" "$T/boot.away"
: >"$T/gitopper.log"
boot -P
wait_until 30 grep -q "\[gitopper\] .*; going on from the checkout at" "$T/gitopper.log"
wait_until 10 grep -q "bootstrap: reading the config" "$T/gitopper.log"
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
mv "$T/boot.away" "$T/boot"
