# The real-systemd tier: a Debian tree (tests/system/rootfs) booted with systemd-nspawn as its
# own PID 1, our .deb installed into the run's overlay, and commands run inside it through
# nsenter. Source it first thing: . "$(dirname "$0")/lib.sh"
#
# The container: --volatile=overlay (the cached tree is never written), --private-network
# (only its own loopback), --register=no --keep-unit (no systemd or D-Bus on this host),
# a cgroup v2 tree of its own under one the test makes, so that nothing it starts can outlive
# the test: stopped with RTMIN+4 (systemd's poweroff), then cgroup.kill.
set -Eeuo pipefail
trap 'echo "FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

: "${BUILD_DIR:?set by CTest}"
[ "$(id -u)" = 0 ] || skip "needs root to boot a container"
command -v systemd-nspawn >/dev/null || fail "no systemd-nspawn (scripts/install-deps installs it)"
cgroup_root=$(findmnt -t cgroup2 -n -o TARGET | head -n 1)
[ -n "$cgroup_root" ] || skip "no cgroup v2 hierarchy mounted: systemd cannot run in a container"
[ -w "$cgroup_root" ] || skip "cgroup v2 at $cgroup_root is not writable"

T=$(mktemp -d "/tmp/gitopper-system-$(basename "$0" .sh).XXXXXX")
chmod 755 "$T"
mkdir -p "$T/share"
CGROUP=$cgroup_root/gitopper-test-$(basename "$T")
NSPAWN_PID=""
LEADER=""

cleanup() {
    local status=$?
    if [ "$status" != 0 ] && [ "$status" != 77 ] && [ -n "$LEADER" ]; then
        echo "--- gitopper's journal"
        in_container journalctl -u gitopper -o short-monotonic --no-pager -n 60 2>&1 || true
    fi
    stop_container || true
    [ -n "${KEEP_T:-}" ] || rm -rf "$T"
    exit "$status"
}
trap cleanup EXIT

deb() {
    local deb
    deb=$(ls "$BUILD_DIR"/gitopper_*_amd64.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || fail "no package in $BUILD_DIR (the system_package test makes it)"
    echo "$deb"
}

rootfs() {
    local path
    path=$(cat "$BUILD_DIR/system/rootfs.path" 2>/dev/null) || fail "no rootfs (system_rootfs makes it)"
    [ -e "$path/.complete" ] || fail "rootfs $path is incomplete"
    echo "$path"
}

# in_container COMMAND...: runs COMMAND inside, in every namespace of its PID 1.
in_container() { nsenter -t "$LEADER" -a -- "$@"; }

# wait_until SECONDS COMMAND...: retries COMMAND every 0.1 s; fails after SECONDS.
wait_until() {
    local limit=$1; shift
    local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s%N)" -gt "$deadline" ]; then
            echo "--- gitopper's journal"
            in_container journalctl -u gitopper --no-pager -n 40 2>&1 || true
            fail "timed out after ${limit}s waiting for: $*"
        fi
        sleep 0.1
    done
}

# The container's PID 1 as this host sees it: a process beneath nspawn that is PID 1 of its
# own PID namespace and runs systemd (nspawn's helper children come and go before it).
container_init() {
    local pid
    local children
    children=$(pgrep -P "$NSPAWN_PID" | paste -sd, -) || return 1
    for pid in ${children//,/ } $(pgrep -P "$children"); do
        [ "$(awk '/^NSpid:/ { print $NF }' /proc/"$pid"/status 2>/dev/null)" = 1 ] || continue
        [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd ] || continue
        echo "$pid"
        return 0
    done
    return 1
}

# boot_container: boots the tree, waits for systemd to be up, installs our package.
boot_container() {
    mkdir -p "$CGROUP"
    # The shell moves itself into the test's cgroup and becomes nspawn: the container's own
    # tree is made beneath it.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' \
        sh "$CGROUP" systemd-nspawn --quiet --register=no --keep-unit --boot \
        --directory="$(rootfs)" --volatile=overlay --private-network \
        --machine="gt-$$" --bind-ro="$(deb):/root/gitopper.deb" --bind="$T/share:/srv/test" \
        >"$T/console.log" 2>&1 </dev/null &
    NSPAWN_PID=$!
    local deadline=$(( $(date +%s) + 30 ))
    until LEADER=$(container_init) && [ -n "$LEADER" ] && in_container true 2>/dev/null; do
        kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$T/console.log"; fail "nspawn ended"; }
        [ "$(date +%s)" -lt "$deadline" ] || { cat "$T/console.log"; fail "no container PID 1"; }
        sleep 0.1
    done
    # Until systemd listens, systemctl cannot ask it ("offline"); then --wait waits for the boot.
    local state=offline
    deadline=$(( $(date +%s) + 60 ))
    while [ "$state" = offline ] || [ -z "$state" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || break
        state=$(in_container timeout 60 systemctl is-system-running --wait 2>/dev/null) || true
        [ "$state" = offline ] && sleep 0.1
    done
    if [ "$state" != running ]; then
        in_container systemctl --failed --no-pager || true
        fail "the container's systemd is $state, not running"
    fi
    in_container dpkg -i /root/gitopper.deb >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i"; }
}

stop_container() {
    [ -n "$NSPAWN_PID" ] || return 0
    if [ -n "$LEADER" ]; then
        kill -s RTMIN+4 "$LEADER" 2>/dev/null || true
    fi
    local deadline=$(( $(date +%s) + 20 ))
    while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.1
    done
    # What did not stop in time, and anything left beneath the test's cgroup.
    [ -e "$CGROUP/cgroup.kill" ] && echo 1 >"$CGROUP/cgroup.kill"
    wait "$NSPAWN_PID" 2>/dev/null || true
    NSPAWN_PID=""
    local i
    for i in $(seq 50); do
        find "$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -e "$CGROUP" ] || break
        sleep 0.1
    done
}

# ---- inside: a config repository, gitopper's config ------------------------------------------

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null
export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.org
export GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.org

# make_upstream: $T/share/up, seen inside as /srv/test/up (file://, partial clone allowed).
make_upstream() {
    git init -q -b main "$T/share/up"
    git -C "$T/share/up" config uploadpack.allowFilter true
    git -C "$T/share/up" config receive.denyCurrentBranch ignore
}

# commit PATH CONTENT [MESSAGE]: writes PATH in the upstream and commits; prints the hash.
commit() {
    mkdir -p "$(dirname "$T/share/up/$1")"
    printf '%s' "$2" >"$T/share/up/$1"
    git -C "$T/share/up" add -A
    git -C "$T/share/up" commit -q -m "${3:-change $1}"
    git -C "$T/share/up" rev-parse HEAD
}

# install_config: stdin becomes /etc/gitopper/config.toml inside.
install_config() {
    in_container mkdir -p /etc/gitopper
    in_container sh -c 'cat >/etc/gitopper/config.toml'
}

# served [PATH]: what nginx inside answers on 127.0.0.1.
served() { in_container curl -sS --max-time 5 "http://127.0.0.1${1:-/}"; }
serves() { [ "$(served)" = "$1" ]; }

unit_property() { in_container systemctl show gitopper -p "$1" --value; }
unit_is() { [ "$(unit_property "$1")" = "$2" ]; } # PROPERTY VALUE

# nginx_conf TEXT: a whole nginx.conf that answers TEXT on port 80.
nginx_conf() {
    cat <<CONF
user www-data;
pid /run/nginx.pid;
events {}
http {
    access_log off;
    server {
        listen 80 default_server;
        location / { return 200 "$1\n"; }
    }
}
CONF
}

# nginx_service [FIELDS...]: the config of one service, nginx, from /srv/test/up, polled every
# second; each argument is one more line of its [[services]] table.
nginx_service() {
    local host
    host=$(in_container hostname)
    {
        printf '[global]\nupstream = "file:///srv/test/up"\nmount = "/srv/gitopper"\n'
        printf '[[services]]\nmachine = "%s"\nservice = "nginx"\naction = "reload"\n' "$host"
        printf 'interval = "1s"\ndirs = [ { local = "/etc/nginx", link = "nginx" } ]\n'
        local line
        for line in "$@"; do printf '%s\n' "$line"; done
    } | install_config
}

# The control API's read-only answers, over HTTP inside.
list_service() { in_container curl -sS --max-time 5 http://127.0.0.1:9222/list/service/nginx; }
listed() { list_service | grep -qF "$1"; }
