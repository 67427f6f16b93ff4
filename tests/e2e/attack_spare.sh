#!/usr/bin/env bash
# The service user ("nobody") owns the tree a deploy writes from the moment it is made, before
# any mount shows it, and can guess its name. What it writes there while git fills it (an
# edited file, a new file) must not be published by the deploy, nor lost: it is saved as a
# drift patch before the tree goes live.
NEEDS_MOUNTS=1
. "$(dirname "$0")/lib.sh"

# A git that, as the user it runs as, writes into the tree right after git restore filled it.
real_git=$(command -v git)
mkdir -m 777 "$T/flags" # the wrapper runs as the user
cat >"$T/bin/git" <<SH
#!/bin/bash
"$real_git" "\$@"; status=\$?
tree=""
for arg; do case \$arg in --work-tree=*) tree=\${arg#--work-tree=} ;; esac; done
if [ -e "$T/flags/plant" ] && [ "\$status" = 0 ] && [ -n "\$tree" ] && [[ " \$* " == *" restore "* ]]; then
    rm -f "$T/flags/plant"
    echo 'planted by the user' >"\$tree/app/app.conf" && echo evil >"\$tree/app/planted.conf"
fi
exit \$status
SH
chmod +x "$T/bin/git"

make_upstream
commit app/app.conf "app 1" >/dev/null
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
start_gitopper -t 1s
wait_until 20 grep -qx "start svc" "$T/systemctl.log"

touch "$T/flags/plant"
commit app/other.conf "other 2" >/dev/null
chown -R nobody: "$T/up"
wait_until 20 grep -qx "other 2" "$T/etc/svc/other.conf"
[ ! -e "$T/flags/plant" ] || fail "the user never wrote into the new tree"
[ "$(cat "$T/etc/svc/app.conf")" = "app 1" ] || fail "the user's edit was published: $(cat "$T/etc/svc/app.conf")"
[ ! -e "$T/etc/svc/planted.conf" ] || fail "the user's new file was published"
expect_in "$T/gitopper.log" "holds files that are not git's: saving them"
grep -rqx "+planted by the user" "$T/state/gitopper-drift/svc/" || fail "the edit was not saved"
grep -rqx "+evil" "$T/state/gitopper-drift/svc/" || fail "the new file was not saved"
[ "$(mounts_on "$T/etc/svc")" = 1 ] || fail "$(mounts_on "$T/etc/svc") mounts on etc/svc"
# The old tree goes after the action and the health check, so after the new files show.
one_tree() { [ "$(ls "$T/srv/.gitopper/trees" | grep -c '^svc\.')" = 1 ]; }
wait_until 20 one_tree
stop_gitopper TERM
[ "$EXIT_STATUS" = 0 ] || fail "exit $EXIT_STATUS"
echo PASS
