#!/usr/bin/env bash
# A deploy publishes a whole tree at once: a reader that opens the mounted directory once and
# reads its 40 files through that descriptor never sees two versions mixed, over 12 deploys
# that each rewrite all 40; every target (a directory and a single file) keeps exactly one
# mount. A kill -9 while the action runs (after the switch) and a restart leave one mount per
# target, holding one whole version, and the owed action is run.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

files=40
# commit_version N: one commit writing "vN" into all the files and into one.conf.
commit_version() {
    for i in $(seq -w 1 "$files"); do printf 'v%s\n' "$1" >"$T/up/app/f$i"; done
    printf 'v%s\n' "$1" >"$T/up/one.conf"
    git -C "$T/up" add -A
    git -C "$T/up" commit -q -m "version $1"
    git -C "$T/up" rev-parse HEAD
}

# A systemctl that stops at "reload app" while $T/pause-reload exists (its PID in
# $T/paused-reload), for the kill below.
cat >"$T/bin/systemctl" <<SH
#!/bin/bash
if [ "\$*" = "reload app" ]; then
    while [ -e "$T/pause-reload" ]; do echo \$\$ >"$T/paused-reload"; sleep 0.05; done
fi
echo "\$*" >>"$T/systemctl.log"
SH
chmod +x "$T/bin/systemctl"

make_upstream
mkdir -p "$T/up/app"
commit_version 0 >/dev/null
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "app"
action = "reload"
dirs = [
  { local = "$T/etc/app", link = "app" },
  { local = "$T/etc/one.conf", link = "one.conf", file = true },
]
TOML

# The reader: opens the target directory once per round and reads every file beneath that
# descriptor; a round that sees more than one version is written to $T/mixed, an error (a
# file missing, a short read) to $T/errors. The single file is read by path each round too.
cat >"$T/reader.py" <<'PY'
import os, sys, time
target, single, files, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
names = ["f%02d" % i for i in range(1, files + 1)]
seen, rounds = set(), 0

def note(name, text):
    with open(os.path.join(out, name), "a") as f:
        f.write(text + "\n")

while not os.path.exists(os.path.join(out, "reader.stop")):
    rounds += 1
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            versions = set()
            for name in names:
                f = os.open(name, os.O_RDONLY, dir_fd=fd)
                try:
                    versions.add(os.read(f, 100).decode().strip())
                finally:
                    os.close(f)
        finally:
            os.close(fd)
        with open(single) as f:
            one = f.read().strip()
        if not one.startswith("v"):
            note("errors", "round %d: %s holds %r" % (rounds, single, one))
    except OSError as e:
        note("errors", "round %d: %s" % (rounds, e))
        continue
    if len(versions) != 1:
        note("mixed", "round %d: %s" % (rounds, sorted(versions)))
    seen |= versions
    time.sleep(0.002)  # paced: a reader, not a second load on the machine
    if rounds % 50 == 0:
        with open(os.path.join(out, "reader.seen.tmp"), "w") as f:
            f.write("%d %s\n" % (rounds, " ".join(sorted(seen))))
        os.rename(os.path.join(out, "reader.seen.tmp"), os.path.join(out, "reader.seen"))
with open(os.path.join(out, "reader.seen"), "w") as f:
    f.write("%d %s\n" % (rounds, " ".join(sorted(seen))))
PY

start_reader() {
    rm -f "$T/reader.stop"
    python3 "$T/reader.py" "$T/etc/app" "$T/etc/one.conf" "$files" "$T" &
    READER_PID=$!
    cleanup_hooks+=("kill $READER_PID 2>/dev/null; wait $READER_PID 2>/dev/null")
}
stop_reader() {
    touch "$T/reader.stop"
    wait "$READER_PID"
}
reader_rounds() { [ -s "$T/reader.seen" ] && [ "$(cut -d' ' -f1 "$T/reader.seen")" -gt "$1" ]; }
# one_version N: every file under the target says vN, and so does the single file.
one_version() {
    [ "$(cat "$T/etc/app"/f* | sort -u)" = "v$1" ] && [ "$(cat "$T/etc/one.conf")" = "v$1" ] &&
        [ "$(ls "$T/etc/app" | wc -l)" = "$files" ]
}
one_mount_each() {
    [ "$(mounts_on "$T/etc/app")" = 1 ] || fail "$1: $(mounts_on "$T/etc/app") mounts on etc/app"
    [ "$(mounts_on "$T/etc/one.conf")" = 1 ] || fail "$1: $(mounts_on "$T/etc/one.conf") mounts on one.conf"
}

start_gitopper
wait_until 20 grep -qx "start app" "$T/systemctl.log"
wait_until 10 one_version 0
one_mount_each "at start"

start_reader
wait_until 10 reader_rounds 0
start_ns=$(date +%s%N)
for n in $(seq 1 12); do
    reloads=$(calls "reload app")
    hash=$(commit_version "$n")
    wait_until 20 deployed app "$hash"
    wait_until 10 one_version "$n"
    wait_until 10 calls_above "reload app" "$reloads"
    one_mount_each "after deploy $n"
done
echo "12 deploys in $(( ($(date +%s%N) - start_ns) / 1000000 )) ms"
stop_reader
echo "reader: $(cat "$T/reader.seen")"
[ ! -e "$T/errors" ] || { cat "$T/errors"; fail "the reader could not read the files"; }
[ ! -e "$T/mixed" ] || { head "$T/mixed"; fail "the reader saw versions mixed in one tree"; }
read -r rounds versions <"$T/reader.seen"
[ "$(echo "$versions" | wc -w)" -gt 1 ] || fail "the reader saw only $versions in $rounds rounds"
[ "$rounds" -gt 12 ] || fail "only $rounds reader rounds"

# kill -9 while the action runs: the switch is done, the service not told yet.
start_reader
touch "$T/pause-reload"
reloads=$(calls "reload app")
hash=$(commit_version 13)
wait_until 20 test -s "$T/paused-reload"
kill -KILL "$GITOPPER_PID"
wait "$GITOPPER_PID" || true
kill -KILL -- "-$(cat "$T/paused-reload")" 2>/dev/null || true
rm -f "$T/pause-reload" "$T/paused-reload"
one_mount_each "after the kill"
one_version 13 || fail "after the kill the target holds $(cat "$T/etc/app"/f* | sort -u | xargs)"
start_gitopper
wait_until 20 deployed app "$hash"
wait_until 20 calls_above "reload app" "$reloads"
expect_in "$T/gitopper.log" "was checked out but its action never ran; running it now"
one_mount_each "after the restart"
one_version 13 || fail "after the restart the target holds $(cat "$T/etc/app"/f* | sort -u | xargs)"
# One more deploy after the restart is still whole and on one mount.
hash=$(commit_version 14)
wait_until 20 deployed app "$hash"
wait_until 10 one_version 14
one_mount_each "after a deploy past the restart"
stop_reader
[ ! -e "$T/errors" ] || { cat "$T/errors"; fail "the reader could not read the files around the kill"; }
[ ! -e "$T/mixed" ] || { head "$T/mixed"; fail "the reader saw versions mixed around the kill"; }

stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
