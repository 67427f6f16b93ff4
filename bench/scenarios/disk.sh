# shellcheck shell=bash
# scenario_disk (disk_50: what the checkouts take on disk) and make_history_upstream.
# Sourced by bench/run after bench/lib.sh; runs under its set -euo pipefail.
# Alone: bench/run --only disk_50.

# make_history_upstream DIR SERVICES COMMITS MB: written by git fast-import (no working tree): a
# first commit with sN/conf for each service and MB MiB of random data in 256 files under bulk/
# (16 directories; no service checks it out), then COMMITS commits, each changing one sN/conf
# (s1, s2, ... in turn), a second apart.
make_history_upstream() {
    local dir=$1 n=$2 commits=$3 mb=$4 files=256 f t0 msg="$2 services"
    local size=$((mb * 1048576 / files))
    t0=$(($(date +%s) - commits - 1))
    "$REAL_GIT" init -q -b main "$dir"
    "$REAL_GIT" -C "$dir" config uploadpack.allowFilter true
    "$REAL_GIT" -C "$dir" config uploadpack.allowAnySHA1InWant true
    {
        printf 'commit refs/heads/main\ncommitter bench <bench@example.org> %d +0000\ndata %d\n%s\n' \
            "$t0" "${#msg}" "$msg"
        awk -v n="$n" 'BEGIN {
            for (i = 1; i <= n; i++) {
                c = sprintf("service %d\n", i)
                printf "M 100644 inline s%d/conf\ndata %d\n%s\n", i, length(c), c
            } }'
        for ((f = 1; f <= files; f++)); do
            printf 'M 100644 inline bulk/d%02d/f%03d.bin\ndata %d\n' $(((f - 1) / 16)) "$f" "$size"
            head -c "$size" /dev/urandom
            printf '\n'
        done
        awk -v n="$n" -v commits="$commits" -v t0="$t0" 'BEGIN {
            for (k = 1; k <= commits; k++) {
                i = (k - 1) % n + 1
                m = sprintf("change %d of s%d", k, i)
                c = sprintf("service %d, change %d\n", i, k)
                printf "commit refs/heads/main\ncommitter bench <bench@example.org> %d +0000\n", t0 + k
                printf "data %d\n%s\nM 100644 inline s%d/conf\ndata %d\n%s\n", length(m), m, i, length(c), c
            } }'
    } | "$REAL_GIT" -C "$dir" fast-import --quiet
}

# disk N COMMITS MB: N services fresh on an upstream with history and a bulk directory
# (make_history_upstream): what issue 10 names, "the store plus the work trees" (du -sk of the
# mount dir: allocated blocks), beside one `git clone --no-checkout --filter=blob:none --bare` of
# the upstream plus the services' files exported by `git archive`. The state dir (a state file
# per service) is printed beside, and a second ratio counts it too.
scenario_disk() {
    local name=$1 n=$2 commits=$3 mb=$4
    local up=$CUR/up state=$CUR/state srv=$CUR/srv i
    make_history_upstream "$up" "$n" "$commits" "$mb"
    write_config "$CUR/config.toml" "$up" "$srv" "$CUR/etc" "$n"
    : >"$T/systemctl.log"
    : >"$T/git.log"
    local t0 t1
    t0=$(now_ns)
    start_daemon "$CUR/config.toml" "$state" "$CUR/gitopper.log" -t 10s
    wait_starts "$n" $((120 + n))
    t1=$(now_ns)
    wait_git_quiet
    cp "$T/git.log" "$CUR/deploy-git.log"
    stop_daemon
    local mounts_in_srv
    mounts_in_srv=$(awk -v t="$srv/" 'index($5, t) == 1' /proc/self/mountinfo | wc -l)

    # The reference: one blobless bare clone (commits and trees, no blobs) and the files the
    # services' links show, as a plain export.
    local paths=()
    for ((i = 1; i <= n; i++)); do paths+=("s$i"); done
    "$REAL_GIT" clone -q --no-checkout --filter=blob:none --bare "file://$up" "$CUR/ref.git"
    mkdir "$CUR/export"
    "$REAL_GIT" -C "$up" archive main "${paths[@]}" | tar -x -C "$CUR/export"
    local daemon_kb daemon_b srv_kb state_kb ref_kb ref_b files_kb files_b up_kb r goal
    daemon_kb=$(du -sk "$srv" "$state" | awk '{ s += $1 } END { print s + 0 }')
    daemon_b=$(du -sb "$srv" "$state" | awk '{ s += $1 } END { print s + 0 }')
    srv_kb=$(du_kb "$srv")
    state_kb=$(du_kb "$state")
    ref_kb=$(du_kb "$CUR/ref.git")
    ref_b=$(du -sb "$CUR/ref.git" | awk '{ print $1 }')
    files_kb=$(cd "$CUR/export" && du_kb "${paths[@]}")
    files_b=$(cd "$CUR/export" && du -sb "${paths[@]}" | awk '{ s += $1 } END { print s + 0 }')
    up_kb=$(du_kb "$up/.git")
    local r_all
    r=$(ratio "$srv_kb" $((ref_kb + files_kb)))
    r_all=$(ratio "$daemon_kb" $((ref_kb + files_kb)))
    goal=$(mark "$r" "<=" 1.5)
    local ls other by content want
    read -r ls other by < <(git_split "$CUR/deploy-git.log")
    content=$(cat "$CUR/etc/s1/conf" 2>/dev/null || true)
    want=$("$REAL_GIT" -C "$up" show main:s1/conf)
    [ "$content" = "$want" ] || log "$name: $CUR/etc/s1/conf holds \"$content\", not \"$want\""
    log "$name: $n services deployed in $(ns_to_s $((t1 - t0))) s; git: ls-remote:$ls,$by; mounts under the mount dir after stop: $mounts_in_srv"
    log "$name: du -sk mount dir $srv_kb, state dir $state_kb (with it: $daemon_kb kB, ${r_all}x); apparent (du -sb) daemon $daemon_b B, reference $((ref_b + files_b)) B; upstream .git $up_kb kB"
    [ "$DAEMON_EXIT" = 0 ] || log "$name: daemon exited with status $DAEMON_EXIT after SIGTERM"
    DISK_ROWS+=("$(printf '%-17s %8s %8s %8s  %10s  %-19s  %6s  %s' "$name" "$n" "$commits" "$mb" \
        "$srv_kb" "$((ref_kb + files_kb)) ($ref_kb+$files_kb)" "$r" "store+trees/ref<=1.5 $goal")")
    json_add "$(printf '{"scenario":"%s","kind":"disk","services":%d,"upstreams":1,"history_commits":%d,"bulk_mib":%d,"deploy_s":%s,"daemon_du_kb":%d,"daemon_du_apparent_bytes":%d,"mount_dir_du_kb":%d,"state_dir_du_kb":%d,"reference_du_kb":%d,"blobless_bare_du_kb":%d,"blobless_bare_apparent_bytes":%d,"files_du_kb":%d,"files_apparent_bytes":%d,"upstream_git_du_kb":%d,"ratio":%s,"ratio_with_state_dir":%s,"goal_ratio_1_5":"%s","mounts_under_mount_dir_after_stop":%d,"git_processes":%d,"git_by_subcommand":"ls-remote:%d,%s","exit_status":%d,"loadavg1_end":%s}' \
        "$name" "$n" "$commits" "$mb" "$(ns_to_s $((t1 - t0)))" "$daemon_kb" "$daemon_b" "$srv_kb" \
        "$state_kb" $((ref_kb + files_kb)) "$ref_kb" "$ref_b" "$files_kb" "$files_b" "$up_kb" \
        "$(json_num "$r")" "$(json_num "$r_all")" "$goal" "$mounts_in_srv" $((ls + other)) "$ls" "$by" "$DAEMON_EXIT" "$(loadavg1)")"
}

# listening PORT: whether a TCP socket listens on 127.0.0.1/0.0.0.0:PORT (/proc/net/tcp, state 0A).
