#!/usr/bin/env bash
# Start-up and updates: sparse partial clone owned by the service user, directory and file
# bind mounts, systemctl calls; an update in the service's paths reloads it, one elsewhere
# does not; a path longer than 80 characters works.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

make_upstream
long="grafana/etc/provisioning/dashboards/a-rather-long-directory-name-for-testing/and-a-long-file-name-too.yaml"
commit grafana/etc/grafana.ini "v1" >/dev/null
commit "$long" "long v1" >/dev/null
commit caddy/Caddyfile "caddy v1" >/dev/null
commit caddy/other "not ours" >/dev/null
commit README "top level" >/dev/null
first=$(commit unrelated/file "x")
chown -R nobody: "$T/up"

cat >"$T/config.toml" <<TOML
[global]
upstream = "file://$T/up"
mount = "$T/srv"

[[services]]
machine = "testhost"
service = "grafana-server"
user = "nobody"
action = "reload"
dirs = [
  { local = "$T/etc/grafana", link = "grafana/etc", mode = "0750" },
  { local = "$T/etc/caddy/Caddyfile", link = "caddy/Caddyfile", file = true },
]

[[services]]
machine = "otherhost"
service = "ignored"
dirs = [ { local = "$T/etc/ignored", link = "grafana/etc" } ]
TOML

start_gitopper
wait_until 20 grep -qx "start grafana-server" "$T/systemctl.log"

# M/<service> is root's symlink to the live tree, named after its links and commit, which
# holds the service's files and nothing else (no git metadata).
[ -L "$T/srv/grafana-server" ] || fail "$T/srv/grafana-server is not a symlink"
co=$(readlink -f "$T/srv/grafana-server")
head=$(git -C "$T/up" rev-parse HEAD)
case $co in "$T"/srv/.gitopper/trees/grafana-server.????????."${head:0:12}") ;; *) fail "live tree at $co" ;; esac
# The store: partial (blobs on demand), full history, no work tree of its own.
store=$(echo "$T"/srv/.gitopper/stores/*)
[ "$(git -C "$store" config remote.origin.promisor)" = true ] || fail "not a partial clone"
[ "$(git -C "$store" rev-parse --is-shallow-repository)" = false ] || fail "shallow clone"
[ "$(git -C "$store" rev-list --count "$head")" = 6 ] || fail "history is not complete"
[ ! -e "$store/.git/hooks" ] || fail "the store has git's sample hooks"
(cd "$co" && find . ! -type d | sort) >"$T/tree"
printf '%s\n' "./$long" ./caddy/Caddyfile ./grafana/etc/grafana.ini | sort >"$T/want"
diff "$T/want" "$T/tree" || fail "the tree holds more or less than the service's links"
[ "$(stat -c %U "$co")" = nobody ] || fail "checkout not owned by nobody"
[ "$(stat -c %U "$co/grafana/etc/grafana.ini")" = nobody ] || fail "files not owned by nobody"

# Mounts: directory and file, created owned by the user, exactly one each.
[ "$(cat "$T/etc/grafana/grafana.ini")" = v1 ] || fail "directory mount"
[ "$(cat "$T/etc/caddy/Caddyfile")" = "caddy v1" ] || fail "file mount"
[ "$(mounts_on "$T/etc/grafana")" = 1 ] || fail "mounts on etc/grafana: $(mounts_on "$T/etc/grafana")"
[ "$(mounts_on "$T/etc/caddy/Caddyfile")" = 1 ] || fail "mounts on Caddyfile"
# SPEC §11: a created parent is root's (0755); only the target itself is the user's.
[ "$(stat -c %U:%a "$T/etc/caddy")" = root:755 ] || fail "created parent: $(stat -c %U:%a "$T/etc/caddy")"
[ "$(stat -c %U "$T/etc/grafana")" = nobody ] || fail "created target not owned by nobody"
# mode sets the mounted directory's own mode (it is the checkout's directory, seen twice).
[ "$(stat -c %a "$T/etc/grafana")" = 750 ] || fail "mode 0750: the target is $(stat -c %a "$T/etc/grafana")"
[ "$(stat -c %a "$T/etc/grafana/grafana.ini")" = 644 ] || fail "git's file mode not kept"
# The tree and the store are no world-readable copy: 0750 with the user's group, the store's
# .git/config 0600; root's directories on the way are 0711 (passable, not listable).
# Its name ends in a keyed hash of the upstream and user; the key is root's, 0600.
[ "$(stat -c %a:%U "$T/state/gitopper-store-key")" = 600:root ] || fail "store key: $(stat -c %a:%U "$T/state/gitopper-store-key")"
[ "$(stat -c %a:%G "$co")" = "750:$(id -gn nobody)" ] || fail "tree is $(stat -c %a:%G "$co")"
[ "$(stat -c %a:%U "$store")" = "750:nobody" ] || fail "store is $(stat -c %a:%U "$store")"
[ "$(stat -c %a "$store/.git/config")" = 600 ] || fail ".git/config is $(stat -c %a "$store/.git/config")"
for d in .gitopper .gitopper/stores .gitopper/trees; do
  [ "$(stat -c %a:%U "$T/srv/$d")" = 711:root ] || fail "$d is $(stat -c %a:%U "$T/srv/$d")"
done
[ ! -e "$T/etc/ignored" ] || fail "a service for another machine was set up"
[ ! -e "$T/srv/ignored" ] || fail "a service for another machine was cloned"
# systemd is asked whether its unit files changed, and says no: no daemon-reload, which would
# hold up all of systemd for nothing.
[ "$(calls "show -p NeedDaemonReload --value grafana-server")" -ge 1 ] || fail "systemd was not asked before the start"
[ "$(calls "daemon-reload")" = 0 ] || fail "a daemon-reload systemd did not need"

# A change in the service's directory: checkout moves, reload; systemd says its unit files
# changed this time, so a daemon-reload comes first.
touch "$T/need-reload"
before=$(calls "reload grafana-server")
runuser -u nobody -- env GIT_CONFIG_GLOBAL=/dev/null git -C "$T/up" -c user.name=t -c user.email=t@t \
    commit -q --allow-empty -m noop
commit grafana/etc/grafana.ini "v2" >/dev/null
wait_until 20 grep -qx v2 "$T/etc/grafana/grafana.ini"
wait_until 10 calls_above "reload grafana-server" "$before"
[ "$(grep -x -e daemon-reload -e "reload grafana-server" "$T/systemctl.log" | tail -n 2 | head -n 1)" = daemon-reload ] ||
    fail "no daemon-reload before the reload systemd needed it for: $(tail -n 5 "$T/systemctl.log")"
rm "$T/need-reload"

# A change in a single-file link: the file mount shows the new content (new inode).
before=$(calls "reload grafana-server")
commit caddy/Caddyfile "caddy v2" >/dev/null
wait_until 20 grep -qx "caddy v2" "$T/etc/caddy/Caddyfile"
wait_until 10 calls_above "reload grafana-server" "$before"
[ "$(mounts_on "$T/etc/caddy/Caddyfile")" = 1 ] || fail "file mount stacked after refresh"

# The long path changes.
before=$(calls "reload grafana-server")
commit "$long" "long v2" >/dev/null
wait_until 20 grep -qx "long v2" "$T/etc/grafana/${long#grafana/etc/}"
# The files show before the reload is asked for: wait for it, so it is not counted below.
wait_until 10 calls_above "reload grafana-server" "$before"

# A change elsewhere (even one whose name contains ours): the hash advances, no reload.
reloads=$(calls "reload grafana-server")
commit grafana/etcetera/x "not ours" >/dev/null
head=$(commit caddy/other "still not ours")
wait_until 20 deployed grafana-server "$head"
wait_cycles 2
[ "$(calls "reload grafana-server")" = "$reloads" ] || fail "an unrelated change reloaded"
[ ! -e "$T/srv/grafana-server/caddy/other" ] || fail "an unrelated path appeared in the checkout"

stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "SIGTERM: exit $EXIT_STATUS, not 0"
echo PASS
