#!/usr/bin/env bash
# The service user ("nobody") attacks root's drift handling: (a) swaps its linked directory for
# a symlink to a victim tree, which root must neither walk nor watch; (b) leaves a file outside
# the sparse paths next to an edit of a mounted file; (c) buries an edit under 30k untracked
# files; (d) makes drift patches pile up in root's state dir. Every drift is saved and reverted,
# and the patches kept are bounded. Arguments name the parts to run (default: all).
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# The daemon's inotify watches, as the kernel lists them for its descriptors.
patches() { find "$T/state/gitopper-drift/svc" -name '*.patch' 2>/dev/null | wc -l; }
reverted() { [ "$(cat "$T/etc/svc/app.conf")" = "app 1" ]; }
drift_logged() { [ "$(grep -c '\[svc\] local changes reverted' "$T/gitopper.log")" -ge "$1" ]; }

make_upstream
commit app/app.conf "app 1" >/dev/null
commit other/other.conf "not this service's" >/dev/null
chown -R nobody: "$T/up"
cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"
[[services]]
machine = "testhost"
service = "svc"
user = "nobody"
action = "reload"
dirs = [ { local = "$T/etc/svc", link = "app" } ]
TOML

start() {
    start_gitopper -t 1h # no polling: only drift (inotify or the scan) makes it act
    wait_until 30 grep -q "start svc" "$T/systemctl.log"
    wait_until 10 grep -q "http: .*listening on" "$T/gitopper.log"
}
stop() {
    stop_gitopper TERM
    [ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
    : >"$T/systemctl.log"
}
info() { curl -sS "http://127.0.0.1:$(http_port)/list/service/svc"; }

# few_watches MS: the daemon holds at most 5 watches all that time (sampled).
few_watches() {
    local end=$(( $(date +%s%N) + $1 * 1000000 ))
    while [ "$(date +%s%N)" -lt "$end" ]; do
        [ "$(watches)" -le 5 ] || fail "$(watches) inotify watches: the victim was walked"
        sleep 0.1
    done
}

# (a) A symlink in place of the link: root walks no victim tree and the drift is reverted.
part_a() {
    mkdir -p "$T/victim"
    (cd "$T/victim" && mkdir $(seq -f 'd%04g' 0 2999))
    start
    local before
    before=$(watches)
    [ "$before" -le 5 ] || fail "$before watches before the attack"
    as_nobody sh -c "cd '$T/srv/svc' && mv app .app-old && ln -s '$T/victim' app"
    # Root looks at the checkout (and watches it anew) once the events settle.
    wait_until 20 grep -qE '\[svc\] (local changes reverted|.*drift kept)' "$T/gitopper.log"
    few_watches 1000
    wait_until 20 test -d "$T/srv/svc/app" -a ! -L "$T/srv/svc/app"
    wait_until 10 test ! -e "$T/srv/svc/.app-old"
    wait_until 10 reverted
    [ "$(watches)" -le 5 ] || fail "$(watches) inotify watches after the symlink (victim walked)"
    # Again, with the symlink planted while root is between revert and rewatch: the watcher
    # meets the symlink itself, and still takes no watch beyond it.
    for _ in 1 2 3 4 5; do
        as_nobody sh -c "cd '$T/srv/svc' && rm -rf app && ln -s '$T/victim' app" || true
        few_watches 300
    done
    wait_until 20 test -d "$T/srv/svc/app" -a ! -L "$T/srv/svc/app"
    wait_until 10 reverted
    [ "$(watches)" -le 5 ] || fail "$(watches) inotify watches at the end"
    [ "$(find "$T/victim" -mindepth 1 | wc -l)" = 3000 ] || fail "the victim changed"
    stop
}

# (b) An untracked file outside the sparse paths does not shield an edit of a mounted file.
part_b() {
    start
    as_nobody sh -c "echo evil >'$T/etc/svc/app.conf' && echo junk >'$T/srv/svc/outside' &&
                     mkdir -p '$T/srv/svc/other' && echo mine >'$T/srv/svc/other/other.conf'"
    wait_until 20 reverted
    wait_until 10 test ! -e "$T/srv/svc/outside"
    wait_until 10 test ! -e "$T/srv/svc/other"
    local patch
    patch=$(grep -l "junk" "$T"/state/gitopper-drift/svc/*.patch | head -1)
    [ -n "$patch" ] || fail "no patch holds the file outside the sparse paths"
    expect_in "$patch" "evil"
    expect_in "$patch" "outside"
    expect_in "$patch" "mine"
    expect_not_in "$T/gitopper.log" "not reverted"
    info >"$T/b.json"
    expect_in "$T/b.json" '"state":"OK"'
    stop
}

# (c) 30k untracked files (megabytes of `git status`) do not hide the edit next to them.
part_c() {
    mkdir -m 777 "$T/stage"
    as_nobody sh -c "mkdir '$T/stage/d' && cd '$T/stage/d' &&
                     seq -f padding-padding-padding-padding-%06g 1 30000 | xargs touch"
    start
    as_nobody sh -c "mv '$T/stage/d' '$T/srv/svc/app/d' && echo evil >'$T/srv/svc/app/app.conf'"
    wait_until 40 reverted
    wait_until 10 test ! -e "$T/srv/svc/app/d"
    wait_until 10 grep -q "drift reverted" <(info)
    info >"$T/c.json"
    # 30001 changes: the first 20 named, the rest counted.
    expect_in "$T/c.json" "and 29981 more"
    expect_in "$T/c.json" "app/app.conf"
    grep -q "local changes reverted .*and 29981 more" "$T/gitopper.log" || fail "count not logged"
    stop
}

# (d) Patches do not pile up: 130 older ones (as if from earlier cycles) and 3 new drifts
# leave at most 100, the newest kept, the oldest deleted and logged.
part_d() {
    local dir=$T/state/gitopper-drift/svc
    rm -rf "$dir" # the earlier parts' patches
    mkdir -p -m 700 "$T/state/gitopper-drift" "$dir"
    for i in $(seq -w 1 130); do
        printf 'diff --git a/app/x b/app/x\n' >"$dir/20200101T000000Z-old$i.patch"
        touch -d "@$((1577836800 + 10#$i))" "$dir/20200101T000000Z-old$i.patch"
    done
    start
    local n before
    before=$(grep -c '\[svc\] local changes reverted' "$T/gitopper.log" || true)
    # Each edit right after the last revert, as a user fighting it would.
    for n in 1 2 3; do
        as_nobody sh -c "echo 'evil $n' >'$T/etc/svc/app.conf'"
        wait_until 20 drift_logged $((before + n))
        wait_until 10 reverted
    done
    [ "$(patches)" -le 100 ] || fail "$(patches) patches kept, more than 100"
    [ "$(patches)" = 100 ] || fail "$(patches) patches kept, expected exactly the 100 newest"
    [ "$(grep -l '^+evil [123]$' "$dir"/*.patch | wc -l)" = 3 ] || fail "a new patch was deleted"
    [ ! -e "$dir/20200101T000000Z-old001.patch" ] || fail "the oldest patch was kept"
    [ -e "$dir/20200101T000000Z-old130.patch" ] || fail "a newer old patch was deleted"
    expect_in "$T/gitopper.log" "deleted old drift patch"
    stop
}

for part in "${@:-a b c d}"; do
    for p in $part; do
        "part_$p"
    done
done
echo PASS
