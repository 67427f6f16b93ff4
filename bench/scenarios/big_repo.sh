# shellcheck shell=bash
# scenario_big_repo (big_repo: one service on a big upstream) and the helpers only
# it uses: make_big_upstream, objects_bytes, git_timeline.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only big_repo.

# make_big_upstream DIR FILES MB: one commit (written by git fast-import, no working tree) with
# s1/conf, FILES small files under data/ (100 to a directory) and MB MiB of random data in 4
# blobs under blobs/. The blobs go in a pack of their own, streamed (no delta search) at zlib
# level 0 (random data does not compress; zlib over 200 MB would take most of the time; fast-import
# takes the level from core.compression); the rest at the default level.
make_big_upstream() {
    local dir=$1 files=$2 mb=$3 blobs=4 b
    local size=$((mb * 1048576 / blobs))
    "$REAL_GIT" init -q -b main "$dir"
    "$REAL_GIT" -C "$dir" config uploadpack.allowFilter true
    "$REAL_GIT" -C "$dir" config uploadpack.allowAnySHA1InWant true
    for ((b = 1; b <= blobs; b++)); do
        printf 'blob\nmark :%d\ndata %d\n' "$b" "$size"
        head -c "$size" /dev/urandom
        printf '\n'
    done | "$REAL_GIT" -C "$dir" -c core.compression=0 -c core.bigFileThreshold=1m \
        fast-import --quiet --export-marks="$dir/.git/bench.marks"
    {
        printf 'commit refs/heads/main\ncommitter bench <bench@example.org> %s +0000\n' "$(date +%s)"
        printf 'data 8\nbig repo\n'
        for ((b = 1; b <= blobs; b++)); do printf 'M 100644 :%d blobs/big%d.bin\n' "$b" "$b"; done
        awk -v n="$files" 'BEGIN {
            for (i = 1; i <= n; i++) {
                c = sprintf("file %d of %d\n", i, n)
                printf "M 100644 inline data/d%03d/f%05d.txt\ndata %d\n%s\n", int((i - 1) / 100), i, length(c), c
            } }'
        printf 'M 100644 inline s1/conf\ndata 10\nservice 1\n\n'
    } | "$REAL_GIT" -C "$dir" fast-import --quiet --import-marks="$dir/.git/bench.marks"
}

# objects_bytes GITDIR: "PACK_BYTES LOOSE_BYTES PACKS LOOSE" of GITDIR/objects: the sizes of the
# .pack files (as received: clone and fetch keep the pack they were sent, without its .idx,
# which the receiver builds) and of loose objects (fetches of fewer than 100 objects are unpacked
# into loose objects, zlib-compressed again, so near what was sent).
objects_bytes() {
    local o=$1/objects
    {
        find "$o/pack" -name '*.pack' -printf 'p %s\n' 2>/dev/null
        find "$o" -path "$o/pack" -prune -o -path "$o/info" -prune -o -type f -printf 'l %s\n'
    } | awk '$1 == "p" { p += $2; np++ } $1 == "l" { l += $2; nl++ }
             END { printf "%d %d %d %d\n", p, l, np, nl }'
}

# git_timeline LOGFILE: "subcommand@seconds" for each git process in LOGFILE, seconds from the
# first (the wrapper's /proc/uptime stamps: when each one started).
git_timeline() {
    awk 'NR == 1 { t0 = $1 }
        {
            cmd = ""
            for (i = 2; i <= NF; i++) {
                if ($i == "-c" || $i == "-C") { i++; continue }
                if ($i ~ /^-/) continue
                cmd = $i; break
            }
            printf "%s%s@%.2f", (NR > 1 ? "," : ""), cmd, $1 - t0
        }' "$1"
}

# big_repo FILES MB: one service (s1/, one small file) in a file:// upstream that also holds
# FILES small files and MB MiB of random blobs outside s1/: the time from starting the daemon
# until `start s1` is recorded, what the checkout fetched, and the disk it takes, beside a
# `git clone --no-checkout --filter=blob:none` of the same upstream and the upstream's own .git.
scenario_big_repo() {
    local name=$1 files=$2 mb=$3
    local up=$CUR/up state=$CUR/state co=$CUR/srv/s1
    local g0 g1
    g0=$(now_ns)
    make_big_upstream "$up" "$files" "$mb"
    g1=$(now_ns)
    log "$name: upstream of $files files and $mb MiB of blobs made in $(ns_to_s $((g1 - g0))) s"
    write_config "$CUR/config.toml" "$up" "$CUR/srv" "$CUR/etc" 1
    : >"$T/systemctl.log"
    : >"$T/git.log"
    local t0 t1 pid
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s
    wait_starts 1 600
    t1=$(now_ns)
    pid=$DAEMON_PID
    sleep 0.5 # the poll that follows start-up, so the stop below does not cut a git run
    local hwm rss
    hwm=$(status_kb "$pid" VmHWM)
    rss=$(status_kb "$pid" VmRSS)
    cp "$T/git.log" "$CUR/deploy-git.log"
    stop_daemon

    local pack loose npack nloose co_kb git_kb tree_files content
    read -r pack loose npack nloose < <(objects_bytes "$co/.git")
    co_kb=$(du_kb "$co")
    git_kb=$(du_kb "$co/.git")
    tree_files=$(find "$co" -path "$co/.git" -prune -o -type f -print | wc -l)
    content=$(cat "$CUR/etc/s1/conf" 2>/dev/null || true)
    [ "$content" = "service 1" ] || log "$name: $CUR/etc/s1/conf holds \"$content\""
    # For contrast: what the clone step alone takes (the daemon's first git run does the same),
    # and the upstream's .git (what a full clone would receive, give or take).
    local c0 c1 bl_kb up_kb
    c0=$(now_ns)
    "$REAL_GIT" clone -q --no-checkout --filter=blob:none "file://$up" "$CUR/blobless"
    c1=$(now_ns)
    bl_kb=$(du_kb "$CUR/blobless/.git")
    up_kb=$(du_kb "$up/.git")

    local ls other by timeline w e deploy_s fetched_kb
    read -r ls other by < <(git_split "$CUR/deploy-git.log")
    timeline=$(git_timeline "$CUR/deploy-git.log")
    read -r w e < <(daemon_log_summary "$CUR/gitopper.log")
    deploy_s=$(ns_to_s $((t1 - t0)))
    fetched_kb=$(((pack + loose + 1023) / 1024))
    log "$name: git runs (started at s after the first): $timeline"
    log "$name: checkout: $npack packs ($pack B), $nloose loose objects ($loose B), $tree_files files in the working tree; daemon VmHWM $hwm kB"
    [ "$w$e" = 00 ] || log "$name: daemon log warnings/errors: $w/$e"
    [ "$DAEMON_EXIT" = 0 ] || log "$name: daemon exited with status $DAEMON_EXIT after SIGTERM"
    BIG_ROWS+=("$(printf '%-17s %7s %8s  %8s  %10s  %-18s  %-18s  %11s' "$name" "$files" "$mb" \
        "$deploy_s" "$fetched_kb" "$co_kb/$git_kb" "$bl_kb ($(ns_to_s $((c1 - c0)))s)" "$up_kb")")
    json_add "$(printf '{"scenario":"%s","kind":"big_repo","services":1,"files":%d,"blob_mib":%d,"upstream_make_s":%s,"deploy_s":%s,"fetched_bytes":%d,"fetched_pack_bytes":%d,"fetched_loose_bytes":%d,"packs":%d,"loose_objects":%d,"checkout_du_kb":%d,"checkout_git_du_kb":%d,"worktree_files":%d,"blobless_clone_git_du_kb":%d,"blobless_clone_s":%s,"upstream_git_du_kb":%d,"git_processes":%d,"git_by_subcommand":"ls-remote:%d,%s","git_timeline_s":"%s","vmrss_kb":%d,"vmhwm_kb":%d,"daemon_log_warnings":%d,"daemon_log_errors":%d,"exit_status":%d,"loadavg1_end":%s}' \
        "$name" "$files" "$mb" "$(ns_to_s $((g1 - g0)))" "$deploy_s" $((pack + loose)) "$pack" "$loose" \
        "$npack" "$nloose" "$co_kb" "$git_kb" "$tree_files" "$bl_kb" "$(ns_to_s $((c1 - c0)))" "$up_kb" \
        $((ls + other)) "$ls" "$by" "$timeline" "$rss" "$hwm" "$w" "$e" "$DAEMON_EXIT" "$(loadavg1)")"
}
