#!/usr/bin/env bash
# The Debian package: scripts/package makes it (cpack, lintian with no warning or error), and it
# holds what an administrator expects: the three programs, the unit, man pages, completion, the
# example configs, alert rules and dashboard, and dependencies found by dpkg-shlibdeps.
set -Eeuo pipefail
: "${BUILD_DIR:?set by CTest}" "${SOURCE_DIR:?set by CTest}"
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$("$SOURCE_DIR/scripts/package" --no-build "$BUILD_DIR")
version=$(sed -n 's/^project(gitopper VERSION \([^ ]*\) .*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
[ "$(basename "$deb")" = "gitopper_${version}_amd64.deb" ] || fail "named $(basename "$deb")"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for path in /usr/sbin/gitopper /usr/sbin/gitopperctl /usr/bin/gitopperhdr \
            /usr/lib/systemd/system/gitopper.service \
            /usr/share/man/man8/gitopper.8.gz /usr/share/man/man8/gitopperctl.8.gz \
            /usr/share/man/man1/gitopperhdr.1.gz \
            /usr/share/bash-completion/completions/gitopper \
            /usr/share/bash-completion/completions/gitopperctl \
            /usr/share/doc/gitopper/copyright /usr/share/doc/gitopper/changelog.gz \
            /usr/share/doc/gitopper/examples/seed.toml /usr/share/doc/gitopper/examples/spec.toml \
            /usr/share/doc/gitopper/examples/gitopper-alerts.yml \
            /usr/share/doc/gitopper/examples/gitopper-dashboard.json; do
    grep -qxF "$path" <<<"$contents" || fail "the package lacks $path"
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in git libc6 libssh-4 libsystemd0 libmount1; do
    grep -q "\b$lib\b" <<<"$depends" || fail "Depends has no $lib: $depends"
done
# The packaged unit runs the packaged daemon.
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/gitopper.service |
    grep -q '^ExecStart=/usr/sbin/gitopper ' || fail "the unit does not run /usr/sbin/gitopper"
echo PASS
