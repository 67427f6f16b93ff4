# Shared by the end-to-end scenarios: a private temp dir per test, an ERR trap that names the
# failing command, and small assertions. Source it first thing: . "$(dirname "$0")/lib.sh"
set -euo pipefail

: "${GITOPPER:?set by CTest}"
T=$(mktemp -d "/tmp/gitopper-e2e-$(basename "$0" .sh).XXXXXX")
cleanup_hooks=()
cleanup() {
    local status=$?
    for hook in "${cleanup_hooks[@]}"; do eval "$hook" || true; done
    rm -rf "$T"
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
