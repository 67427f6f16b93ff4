#!/usr/bin/env bash
# The fixture that makes (or finds cached) the tree the scenarios boot, and says where it is.
set -Eeuo pipefail
: "${BUILD_DIR:?set by CTest}" "${SOURCE_DIR:?set by CTest}"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for debootstrap" >&2; exit 77; }
deb=$(ls "$BUILD_DIR"/gitopper_*_amd64.deb | head -n 1)
mkdir -p "$BUILD_DIR/system"
tree=$("$SOURCE_DIR/tests/system/rootfs" "$deb" "${GITOPPER_TEST_CACHE:-/var/cache/gitopper-test}")
echo "$tree" >"$BUILD_DIR/system/rootfs.path"
echo "PASS: $tree"
