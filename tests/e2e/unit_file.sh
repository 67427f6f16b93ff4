#!/usr/bin/env bash
# The systemd unit: `systemd-analyze verify` has nothing to say about it, it runs the installed
# daemon as a notify service restarted on failure, and it keeps gitopper in the host's mount
# namespace (its bind mounts must be seen by the services it manages).
. "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?set by CTest}"

unit=$BUILD_DIR/dist/gitopper.service
[ -f "$unit" ] || fail "no unit at $unit"
sbin=$(sed -n 's|^ExecStart=\([^ ]*\)/gitopper .*|\1|p' "$unit")
[ -n "$sbin" ] || fail "no ExecStart running gitopper"
expect_in "$unit" "Type=notify"
expect_in "$unit" "Restart=on-failure"
expect_in "$unit" "WatchdogSec="
expect_in "$unit" "Documentation=man:gitopper(8)"
expect_in "$unit" "ExecReload=/bin/kill -HUP \$MAINPID"
expect_in "$unit" " -r"
for option in PrivateTmp ProtectSystem ProtectHome ReadOnlyPaths ReadWritePaths InaccessiblePaths \
              TemporaryFileSystem BindPaths PrivateMounts MountFlags RootDirectory; do
    ! grep -q "^$option=" "$unit" || fail "$option= would give gitopper its own mount namespace"
done

# Verify a copy that runs the binary just built (the installed path need not exist here).
command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
sed "s|^ExecStart=$sbin/gitopper|ExecStart=$GITOPPER|" "$unit" >"$T/gitopper.service"
# Its Documentation= names a man page: the one built (verify runs man to find it).
mkdir -p "$T/man/man8"
cp "$BUILD_DIR/man/gitopper.8" "$T/man/man8/" || fail "no man page built at $BUILD_DIR/man"
MANPATH=$T/man systemd-analyze verify "$T/gitopper.service" >"$T/verify" 2>&1 ||
    { cat "$T/verify"; fail "verify failed"; }
# It warns (exit 0) about what it ignores; only lines about our unit count.
if grep -q "gitopper.service" "$T/verify"; then cat "$T/verify"; fail "systemd-analyze verify complains"; fi
echo PASS
