# Shared by the end-to-end scenarios: a private temp dir per test, an ERR trap that names the
# failing command, and small assertions. Source it first thing: . "$(dirname "$0")/lib.sh"
set -Eeuo pipefail # -E: the ERR trap fires inside functions too

: "${GITOPPER:?set by CTest}"

# Scenarios that mount set NEEDS_MOUNTS=1 before sourcing: they run as root inside a private
# mount namespace, so every mount they make disappears with them.
if [ "${NEEDS_MOUNTS:-}" = 1 ] && [ -z "${GITOPPER_E2E_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for bind mounts" >&2; exit 77; }
    exec env GITOPPER_E2E_NS=1 unshare --mount --propagation private -- "$0" "$@"
fi
T=$(mktemp -d "/tmp/gitopper-e2e-$(basename "$0" .sh).XXXXXX")
cleanup_hooks=()
cleanup() {
    local status=$?
    for hook in "${cleanup_hooks[@]}"; do eval "$hook" || true; done
    # Our mounts live in our private namespace; detach them so the files can go.
    awk -v t="$T" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    [ -n "${KEEP_T:-}" ] || rm -rf "$T" # KEEP_T=1: keep it for a post-mortem
    exit "$status"
}
trap cleanup EXIT
trap 'echo "FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

# expect_status CODE COMMAND... : runs COMMAND, output to $T/out and $T/err, checks its status.
expect_status() {
    local want=$1; shift
    local got=0
    "$@" >"$T/out" 2>"$T/err" || got=$?
    if [ "$got" != "$want" ]; then
        echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
        fail "expected exit $want, got $got: $*"
    fi
}

# expect_in FILE TEXT : FILE contains TEXT literally.
expect_in() {
    grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "expected \"$2\" in $1"; }
}
expect_not_in() {
    ! grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "did not expect \"$2\" in $1"; }
}

# ---- a test upstream, a stand-in systemctl, and the daemon -------------------------------

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null
# The test itself (root) reads checkouts owned by other users.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="*"
export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.org
export GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.org
chmod 755 "$T"
mkdir -p "$T/bin" "$T/state"

# A stand-in systemctl first on PATH: it records each call as one line in $T/systemctl.log and
# fails while $T/systemctl.fail exists; asked NeedDaemonReload, it says yes while
# $T/need-reload exists.
cat >"$T/bin/systemctl" <<'SH'
#!/bin/sh
echo "$*" >>"${0%/bin/systemctl}/systemctl.log"
case "$*" in
"show -p NeedDaemonReload --value "*)
    if [ -e "${0%/bin/systemctl}/need-reload" ]; then echo yes; else echo no; fi ;;
esac
[ ! -e "${0%/bin/systemctl}/systemctl.fail" ]
SH
chmod +x "$T/bin/systemctl"
touch "$T/systemctl.log"
export PATH="$T/bin:$PATH"

# make_upstream [DIR]: a repository served over file:// with partial clone allowed.
make_upstream() {
    local dir=${1:-$T/up}
    git init -q -b main "$dir"
    git -C "$dir" config uploadpack.allowFilter true
    git -C "$dir" config uploadpack.allowAnySHA1InWant true
}

# live_commit LINK: the commit of the tree M/<service> names, whose name ends in the commit's
# first 12 digits (.gitopper/trees/<service>.<links>.<commit>), in full as a store has it.
live_commit() {
    local t s
    t=$(readlink "$1") || return 1
    for s in "$(dirname "$1")"/.gitopper/stores/*; do
        git -C "$s" rev-parse -q --verify "${t##*.}^{commit}" && return 0
    done
    return 1
}

# tree_git LINK GIT-ARGS...: git on the tree LINK names, through its object store and an index
# of the test's own (a plain tree has no git files): `tree_git "$T/srv/app" status --porcelain`
# after `tree_git "$T/srv/app" reset -q "$(live_commit "$T/srv/app")" -- PATHS`.
tree_git() {
    local link=$1; shift
    local store; store=$(echo "$(dirname "$link")"/.gitopper/stores/*)
    GIT_INDEX_FILE="$T/tree_git.index" git --git-dir="$store/.git" --work-tree="$link" "$@"
}

# tree_changes LINK PATHS...: what differs in the tree from its commit under PATHS (its links),
# and any file it has outside them; nothing when it is clean.
tree_changes() {
    local link=$1; shift
    rm -f "$T/tree_git.index"
    tree_git "$link" reset -q "$(live_commit "$link")" -- "$@" &&
        tree_git "$link" ls-files -m -d -o --exclude-standard
    rm -f "$T/tree_git.index"
}

# commit PATH CONTENT [DIR]: writes PATH in the upstream and commits it; prints the hash.
commit() {
    local dir=${3:-$T/up}
    mkdir -p "$(dirname "$dir/$1")"
    printf '%s\n' "$2" >"$dir/$1"
    git -C "$dir" add -A
    git -C "$dir" commit -q -m "change $1"
    git -C "$dir" rev-parse HEAD
}

# start_gitopper [ARGS...]: runs the daemon in the background as host "testhost".
start_gitopper() {
    # Ephemeral loopback ports, so scenarios running side by side never collide; a scenario's
    # own -m/-s (later on the line) wins.
    "$GITOPPER" -c "$T/config.toml" --state "$T/state" -h testhost -t 1s \
        -m 127.0.0.1:0 -s 127.0.0.1:0 "$@" \
        >>"$T/gitopper.log" 2>&1 &
    GITOPPER_PID=$!
    cleanup_hooks+=("kill -KILL $GITOPPER_PID 2>/dev/null; wait $GITOPPER_PID 2>/dev/null")
}

# stop_gitopper [SIGNAL]: signals the daemon and waits; its exit status lands in $EXIT_STATUS.
stop_gitopper() {
    EXIT_STATUS=0
    kill -"${1:-TERM}" "$GITOPPER_PID"
    wait "$GITOPPER_PID" || EXIT_STATUS=$?
}

# wait_exit SECONDS: waits for the daemon to end by itself; status in $EXIT_STATUS.
wait_exit() {
    wait_until "$1" not_running "$GITOPPER_PID"
    EXIT_STATUS=0
    wait "$GITOPPER_PID" || EXIT_STATUS=$?
}
not_running() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1")" = Z ]; }

# wait_until SECONDS COMMAND...: retries COMMAND every 0.1 s; fails after SECONDS.
wait_until() {
    local limit=$1; shift
    local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s%N)" -gt "$deadline" ]; then
            echo "--- gitopper.log"; tail -n 40 "$T/gitopper.log" || true
            echo "--- systemctl.log"; cat "$T/systemctl.log"
            fail "timed out after ${limit}s waiting for: $*"
        fi
        sleep 0.1
    done
}

# mounts_on PATH: how many mounts sit on PATH.
mounts_on() { awk -v p="$1" '$5 == p' /proc/self/mountinfo | wc -l; }

# calls PATTERN: how many recorded systemctl calls match PATTERN exactly.
calls() { grep -cxF -- "$1" "$T/systemctl.log" || true; }

# For wait_until, which needs commands, not values computed once:
checkout_at() { [ "$(live_commit "$1")" = "$2" ]; }                     # LINK HASH
calls_above() { [ "$(calls "$1")" -gt "$2" ]; }                         # PATTERN COUNT

# listening PORT: something listens on 127.0.0.1:PORT (state 0A in /proc/net/tcp).
listening() { awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" && $4 == "0A"' /proc/net/tcp | grep -q .; }

# start_git_daemon DIR...: serves DIRs (under $T) over git://127.0.0.1:$GIT_DAEMON_PORT/<path>
# with git's own daemon, as root, so the repositories' owner does not matter to clients.
# Its pid is $GIT_DAEMON_PID; it ends with the test.
start_git_daemon() {
    local port
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        listening "$port" && continue
        "$(git --exec-path)/git-daemon" --reuseaddr --export-all --base-path="$T" \
            --listen=127.0.0.1 --port="$port" "$@" >>"$T/git-daemon.log" 2>&1 &
        GIT_DAEMON_PID=$!
        cleanup_hooks+=("kill -CONT $GIT_DAEMON_PID 2>/dev/null; kill $GIT_DAEMON_PID 2>/dev/null; wait $GIT_DAEMON_PID 2>/dev/null")
        # A port taken meanwhile makes the daemon exit: then another port, not a failure.
        for _ in $(seq 100); do
            listening "$port" || ! kill -0 "$GIT_DAEMON_PID" 2>/dev/null && break
            sleep 0.05
        done
        listening "$port" && break
    done
    listening "$port" || fail "git daemon does not listen (see $T/git-daemon.log)"
    GIT_DAEMON_PORT=$port
}

# start_sshd HOSTKEY AUTHORIZED_KEYS: OpenSSH's sshd on 127.0.0.1:$SSHD_PORT, in the foreground
# as our child with its own config in $T/sshd (root logs in with a key of AUTHORIZED_KEYS;
# StrictModes off, since $T is under the sticky /tmp). Its pid is $SSHD_PID; stop_sshd ends it,
# and so does the end of the test. Called again, it serves with another host key on the same port.
start_sshd() {
    mkdir -p "$T/sshd" /run/sshd
    local port=${SSHD_PORT:-}
    for _ in 1 2 3 4 5; do
        [ -n "$port" ] || port=$((20000 + RANDOM % 40000))
        listening "$port" && { port=""; continue; }
        cat >"$T/sshd/config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $1
AuthorizedKeysFile $2
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PidFile none
CFG
        /usr/sbin/sshd -D -e -f "$T/sshd/config" >>"$T/sshd/log" 2>&1 &
        SSHD_PID=$!
        cleanup_hooks+=("kill $SSHD_PID 2>/dev/null; wait $SSHD_PID 2>/dev/null")
        for _ in $(seq 100); do
            listening "$port" || ! kill -0 "$SSHD_PID" 2>/dev/null && break
            sleep 0.05
        done
        listening "$port" && break
        port=""
    done
    listening "$port" || fail "sshd does not listen (see $T/sshd/log)"
    SSHD_PORT=$port
}
stop_sshd() {
    kill "$SSHD_PID"
    wait "$SSHD_PID" 2>/dev/null || true
    wait_until 10 not_listening "$SSHD_PORT"
}
not_listening() { ! listening "$1"; }

# http_port: the port the daemon's HTTP endpoint listens on (from its log; wait for the line).
http_port() {
    wait_until 20 grep -q "http: .*listening on 127.0.0.1:" "$T/gitopper.log"
    sed -n 's/.*http: .*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | tail -1
}

# private_home COMMENT: a HOME of the test's own (no agent inherited) whose default key
# ~/.ssh/id_ed25519 carries COMMENT, as gitopperctl's user would have it.
private_home() {
    export HOME="$T/home"
    unset SSH_AUTH_SOCK SSH_AGENT_PID
    mkdir -p "$HOME" && mkdir -m 700 "$HOME/.ssh"
    ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$HOME/.ssh/id_ed25519"
}

# api_port: the port the control API listens on (from the daemon's log; waits for the line).
api_port() {
    wait_until 20 grep -q "control API listening on 127.0.0.1:" "$T/gitopper.log"
    sed -n 's/.*control API listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/gitopper.log" | tail -1
}

# api_as KEY REQUEST...: one request through OpenSSH with the key $T/KEY to $API_PORT (set it
# from api_port); the reply in $T/out, ssh's stderr in $T/err, the exit status in $API_STATUS.
api_as() {
    API_STATUS=0
    ssh -p "$API_PORT" -i "$T/$1" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR test@127.0.0.1 "${@:2}" \
        >"$T/out" 2>"$T/err" || API_STATUS=$?
}

# log_git_calls: a git first on the daemon's PATH that appends "PPID ARGS" to $T/git.log (the
# parent tells the daemon's own git processes from git's children), then runs the real one.
log_git_calls() {
    local real_git
    real_git=$(command -v git)
    cat >"$T/bin/git" <<SH
#!/bin/sh
echo "\$PPID \$*" >>"$T/git.log"
exec "$real_git" "\$@"
SH
    chmod +x "$T/bin/git"
    touch "$T/git.log"
}

# polls_after COUNT: more than COUNT `git ls-remote` runs logged by log_git_calls (each one a
# poll cycle of some store); polls: how many so far.
polls() { grep -c ' ls-remote ' "$T/git.log" || true; }
polls_after() { [ "$(polls)" -gt "$1" ]; }

# metric SAMPLE: the value of one sample of the daemon's /metrics, e.g.
# metric 'gitopper_service_rollbacks_total{service="app",reason="health"}'; empty when absent.
metric() { curl -sS "http://127.0.0.1:$(http_port)/metrics" | awk -v s="$1" '$1 == s { print $2 }'; }

# cycles: poll cycles completed so far by all the daemon's stores (the count of the
# gitopper_service_sync_duration_seconds histogram, observed as each cycle ends).
cycles() {
    curl -sS "http://127.0.0.1:$(http_port)/metrics" |
        awk '$1 == "gitopper_service_sync_duration_seconds_count" { print $2 }'
}
cycles_at_least() { [ "$(cycles)" -ge "$1" ]; }
# wait_cycles N: until N more poll cycles than now have completed. The one under way counts,
# so N=2 means one whole cycle after this point: a "nothing happened" check after it has given
# the daemon that chance to do the wrong thing, however slow the machine.
wait_cycles() {
    local want
    want=$(($(cycles) + $1))
    wait_until 30 cycles_at_least "$want"
}

# deployed SERVICE HASH: the daemon reports HASH as the service's deployed commit (which moves
# without a checkout when none of the service's paths changed).
deployed() { curl -sS "http://127.0.0.1:$(http_port)/list/service/$1" | grep -q "\"commit\":\"$2\""; }

# as_nobody COMMAND...: runs COMMAND as the unprivileged user the attack scenarios play.
as_nobody() { setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups -- "$@"; }

# watches: how many inotify watches the daemon holds.
watches() { cat /proc/"$GITOPPER_PID"/fdinfo/* 2>/dev/null | grep -c '^inotify wd:' || true; }
