#!/bin/sh
# The man pages (dist/man/*.scd): each builds with scdoc, mandoc's lint has nothing to say about
# it, and none has fallen behind what it documents. Taken from the programs and sources
# themselves, each of these must appear in the rendered page:
# - gitopper.8: every flag of `gitopper --help` as an entry of its own ("--state DIR",
#   "-h, --hosts LIST"); every field of the config field table (src/config/fields.cpp) as
#   "NAME (TYPE" with its default or "required"; every metric family the daemon exports (from
#   src/server/exposition.cpp, and from a running daemon's /metrics as "NAME (TYPE"); every
#   route of the control API's table (src/api/router.cpp) and every HTTP route
#   (src/server/http.cpp).
# - gitopperctl.8: every flag of `gitopperctl --help` and of its commands' helps as an entry;
#   every group and verb with its aliases as --help lists them ("list, ls, l"), each verb
#   followed by its arguments as its own --help shows them ("service, s @HOST... [SERVICE]");
#   every request it sends (src/ctl/commands.hpp).
# - gitopperhdr.1: its usage line, an entry for each of its options (src/hdr/main.cpp), and
#   its languages (src/hdr/header.cpp).
# Every problem is reported, each naming what is missing where, before the test fails.
#
# POSIX sh, on its own: lib.sh is bash, and nothing here mounts or needs root.
set -eu

: "${GITOPPER:?set by CTest}"
: "${GITOPPERCTL:?set by CTest}"
: "${GITOPPERHDR:?set by CTest}"
: "${SOURCE_DIR:?set by CTest}"
BUILD_DIR=${BUILD_DIR:-}

T=$(mktemp -d "/tmp/gitopper-e2e-man_pages.XXXXXX")
DAEMON_PID=
cleanup() {
    status=$?
    if [ -n "$DAEMON_PID" ]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    [ -n "${KEEP_T:-}" ] || rm -rf "$T" # KEEP_T=1: keep it for a post-mortem
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() { echo "FAIL: $*" >&2; exit 1; }
problems=0
problem() { echo "FAIL: $*" >&2; problems=$((problems + 1)); }

# scripts/install-deps installs them: their absence is a failure, not a reason to skip.
for tool in scdoc mandoc curl; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps installs it)"
done

# ---- the pages: built by CMake into $BUILD_DIR/man, or here from the sources -------------

pages="gitopper.8 gitopperctl.8 gitopperhdr.1"
if [ -n "$BUILD_DIR" ] && [ -f "$BUILD_DIR/man/gitopper.8" ]; then
    for page in $pages; do
        [ -f "$BUILD_DIR/man/$page" ] || fail "$BUILD_DIR/man/$page is missing"
        if [ -n "$(find "$SOURCE_DIR/dist/man/$page.scd" -newer "$BUILD_DIR/man/$page")" ]; then
            fail "$BUILD_DIR/man/$page is older than dist/man/$page.scd: build again"
        fi
        cp "$BUILD_DIR/man/$page" "$T/$page"
    done
else
    for page in $pages; do
        scdoc <"$SOURCE_DIR/dist/man/$page.scd" >"$T/$page" 2>"$T/scdoc.err" ||
            { cat "$T/scdoc.err" >&2; fail "scdoc cannot build dist/man/$page.scd"; }
    done
fi

# mandoc's lint at warning level must say nothing at all.
for page in $pages; do
    mandoc -T lint -W warning "$T/$page" >"$T/lint" 2>&1 || true
    if [ -s "$T/lint" ]; then
        cat "$T/lint" >&2
        problem "mandoc -T lint -W warning complains about $page (above)"
    fi
done

# Each page as a reader sees it: rendered as wide as mandoc goes, bold and underline
# (overstrike) removed, and a word that was broken after its hyphen at a line end joined again
# (PAGE.lines); and all of that as one line, white space squeezed to single blanks (PAGE.txt).
bs=$(printf '\b')
for page in $pages; do
    mandoc -T ascii -O width=1000 "$T/$page" |
        sed "s/.$bs//g" |
        sed -e ':a' -e '/[[:alnum:]]-$/{' -e 'N' -e 's/-\n[[:space:]]*/-/' -e 'ba' -e '}' \
            >"$T/$page.lines"
    tr -s '[:space:]' ' ' <"$T/$page.lines" >"$T/$page.txt"
    [ -s "$T/$page.txt" ] || fail "mandoc renders $page as nothing"
done

# has_text PAGE TEXT: TEXT literally. has_word PAGE WORD: WORD not inside a longer name (no
# letter, digit, '_' or '-' on either side), so --ssh is not found in --ssh-key.
# has_option PAGE FLAG: an entry of its own, a line that starts with FLAG, or with "-x, FLAG",
# followed by its value, its long form, or nothing: "--state DIR", "-h, --hosts LIST",
# "-o, --root[=BOOL]".
# A flag only mentioned in the text of another entry or section does not count.
escaped() { printf '%s\n' "$1" | sed 's/[].[\\*^$+?(){}|]/\\&/g'; }
has_text() { grep -qF -- "$2" "$T/$1.txt"; }
has_word() {
    grep -qE -- "(^|[^[:alnum:]_-])$(escaped "$2")([^[:alnum:]_-]|\$)" "$T/$1.txt"
}
has_option() {
    grep -qE -- "^ +(-[[:alpha:]], )?$(escaped "$2")( |,|\[|=|\$)" "$T/$1.lines"
}
# at_least N WHAT LIST: a parse that found fewer than N items means the source or the help
# changed shape, not that everything is documented.
at_least() {
    count=$(printf '%s\n' "$3" | grep -c . || true)
    [ "$count" -ge "$1" ] || fail "found only $count $2; the way this test reads them needs fixing"
}

# ---- gitopper.8: the daemon's flags -------------------------------------------------------

"$GITOPPER" --help >"$T/gitopper.help" || fail "gitopper --help failed"
flags=$(grep -o -- '--[a-z][a-z-]*' "$T/gitopper.help" | sort -u)
at_least 15 "long flags in gitopper --help" "$flags"
for flag in $flags; do
    has_option gitopper.8 "$flag" ||
        problem "gitopper.8 has no entry for the option $flag (gitopper --help)"
done
# "-h, --hosts": each short flag with its long one, as --help pairs them.
sed -n 's/^ *\(-[A-Za-z]\), \(--[a-z][a-z-]*\).*/\1, \2/p' "$T/gitopper.help" >"$T/pairs"
at_least 10 "flag pairs in gitopper --help" "$(cat "$T/pairs")"
while IFS= read -r pair; do
    has_option gitopper.8 "$pair" ||
        problem "gitopper.8 has no entry for the option \"$pair\" (gitopper --help)"
done <"$T/pairs"

# ---- gitopper.8: the config fields --------------------------------------------------------

# From the field table itself, kFieldRows in src/config/fields.cpp, which the parser, the
# validator, --check and the README's reference are all made from: one line per row with
# name, type, required and fallback. --check alone would not do: it prints only the service
# fields (not [global]'s own, nor those of dirs and keys entries). Its output serves below to
# show that this parse still finds the rows.
awk '
function flush() {
    if (name != "") print name "\t" type "\t" required "\t" fallback
    name = ""; type = ""; required = 0; fallback = ""
}
/kFieldRows\[\] = \{/ { inside = 1; next }
inside && /^};/ { flush(); inside = 0 }
!inside { next }
match($0, /\.name = "[^"]*"/) { flush(); name = substr($0, RSTART + 9, RLENGTH - 10) }
match($0, /\.type = "[^"]*"/) { type = substr($0, RSTART + 9, RLENGTH - 10) }
/\.required = true/ { required = 1 }
match($0, /\.fallback = "[^"]*"/) { fallback = substr($0, RSTART + 13, RLENGTH - 14) }
' "$SOURCE_DIR/src/config/fields.cpp" >"$T/fields"
at_least 30 "rows in the field table of src/config/fields.cpp" "$(cat "$T/fields")"

mkdir -p "$T/check"
cat >"$T/check/config.toml" <<TOML
[[services]]
machine = "man-pages-test"
service = "app"
mount = "$T/check/srv"
upstream = "file://$T/check/up"
dirs = [ { local = "$T/check/target", link = "app" } ]
TOML
"$GITOPPER" --check -c "$T/check/config.toml" -h man-pages-test --state "$T/check/state" \
    >"$T/check/out" 2>&1 || { cat "$T/check/out" >&2; fail "gitopper --check failed"; }
# Its service rows: "  NAME  VALUE" after the service's name; "checkout" is no field.
shown=$(sed -n '/^app$/,$s/^  \([a-z_]*\) .*/\1/p' "$T/check/out" | grep -vx checkout | sort -u)
at_least 20 "fields in the output of gitopper --check" "$shown"
for name in $shown; do
    cut -f1 "$T/fields" | grep -qx -- "$name" ||
        fail "--check shows field $name, which the parse of src/config/fields.cpp missed"
done

# Each field as "NAME (TYPE; default VALUE)", the value quoted for a string, or
# "NAME (TYPE; required)", or at least "NAME (TYPE" where the default is a phrase.
tab=$(printf '\t')
while IFS="$tab" read -r name type required fallback; do
    if [ "$required" = 1 ]; then
        has_text gitopper.8 "$name ($type; required)" ||
            problem "gitopper.8 does not document config field $name as \"$name ($type; required)\""
    elif [ -n "$fallback" ]; then
        has_text gitopper.8 "$name ($type; default \"$fallback\")" ||
            has_text gitopper.8 "$name ($type; default $fallback)" ||
            problem "gitopper.8 does not document config field $name as \"$name ($type; default $fallback)\""
    else
        has_text gitopper.8 "$name ($type" ||
            problem "gitopper.8 does not document config field $name as \"$name ($type...\""
    fi
done <"$T/fields"

# ---- gitopper.8: the metrics --------------------------------------------------------------

# The names in the source, and the families a running daemon exports (with no services it
# still writes every family's TYPE line): names built elsewhere are caught too.
grep -o '"gitopper_[a-z_]*"' "$SOURCE_DIR/src/server/exposition.cpp" | tr -d '"' | sort -u \
    >"$T/metric_names"
at_least 10 "metric names in src/server/exposition.cpp" "$(cat "$T/metric_names")"
while IFS= read -r metric; do
    has_word gitopper.8 "$metric" ||
        problem "gitopper.8 does not document metric $metric (src/server/exposition.cpp)"
done <"$T/metric_names"

# The daemon takes a state directory only on a path that nobody else could change, and to a
# daemon run as another user even root's / is somebody else's: this part takes root, as the
# other scenarios do.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$T/daemon"
    printf '[global]\nmount = "%s/daemon/srv"\n' "$T" >"$T/daemon/config.toml"
    "$GITOPPER" -c "$T/daemon/config.toml" --state "$T/daemon/state" -h man-pages-test -o=false \
        -m 127.0.0.1:0 -s 127.0.0.1:0 -t 1h >"$T/daemon/log" 2>&1 &
    DAEMON_PID=$!
    port=
    tries=0
    while [ -z "$port" ]; do
        port=$(sed -n 's/.*http: .*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/daemon/log")
        tries=$((tries + 1))
        if [ -z "$port" ] && { [ "$tries" -gt 200 ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; }; then
            cat "$T/daemon/log" >&2
            fail "the daemon did not start its HTTP endpoint"
        fi
        [ -n "$port" ] || sleep 0.1
    done
    curl -sS "http://127.0.0.1:$port/metrics" >"$T/daemon/metrics" || fail "cannot scrape /metrics"
    kill "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=
    sed -n 's/^# TYPE \([^ ]*\) \([a-z]*\)$/\1 \2/p' "$T/daemon/metrics" >"$T/families"
    at_least 10 "metric families on a running daemon's /metrics" "$(cat "$T/families")"
    while read -r metric type; do
        has_text gitopper.8 "$metric ($type" ||
            problem "gitopper.8 does not document metric $metric as \"$metric ($type\" (/metrics)"
    done <"$T/families"
else
    echo "NOTE: not root: the families of a running daemon's /metrics are not compared" >&2
fi

# ---- gitopper.8: the control API and HTTP routes ------------------------------------------

grep -o 'Route{"/[a-z/]*"' "$SOURCE_DIR/src/api/router.cpp" | sed 's/Route{"\(.*\)"/\1/' \
    >"$T/routes"
at_least 5 "routes in src/api/router.cpp" "$(cat "$T/routes")"
while IFS= read -r route; do
    has_word gitopper.8 "$route" ||
        problem "gitopper.8 does not document the control API request $route (src/api/router.cpp)"
done <"$T/routes"

# m_server->Get("/metrics", ...) and ->Get(R"(/list/service/([^/]+))", ...): "GET /metrics" and
# "GET /list/service/".
awk 'match($0, /->(Get|Post)\(R?"\(?\/[a-z\/]*/) {
         route = substr($0, RSTART + 2, RLENGTH - 2)
         method = route ~ /^Get/ ? "GET" : "POST"
         sub(/^[A-Za-z]*\(R?"\(?/, "", route)
         print method " " route
     }' "$SOURCE_DIR/src/server/http.cpp" >"$T/http_routes"
at_least 5 "HTTP routes in src/server/http.cpp" "$(cat "$T/http_routes")"
while IFS= read -r route; do
    has_text gitopper.8 "$route" ||
        problem "gitopper.8 does not document the HTTP request \"$route\" (src/server/http.cpp)"
done <"$T/http_routes"

# ---- gitopperctl.8: flags, groups, verbs and their aliases and arguments ------------------

# subcommands HELP-FILE: the "name, alias, alias" of each entry under "Subcommands:".
subcommands() {
    awk '/^Subcommands:/ { inside = 1; next }
         inside && /^  [a-z]/ { sub(/^  /, ""); sub(/   .*/, ""); print; next }
         inside { inside = 0 }' "$1"
}
"$GITOPPERCTL" --help >"$T/ctl.help" || fail "gitopperctl --help failed"
cp "$T/ctl.help" "$T/ctl.all-help"
groups=$(subcommands "$T/ctl.help")
at_least 2 "groups in gitopperctl --help" "$groups"
verbs=0
printf '%s\n' "$groups" >"$T/groups"
while IFS= read -r names; do
    has_text gitopperctl.8 "$names" ||
        problem "gitopperctl.8 does not document the group \"$names\" (gitopperctl --help)"
    group=${names%%,*}
    "$GITOPPERCTL" "$group" --help >"$T/ctl.$group.help" ||
        fail "gitopperctl $group --help failed"
    cat "$T/ctl.$group.help" >>"$T/ctl.all-help"
    subcommands "$T/ctl.$group.help" >"$T/verbs.$group"
    while IFS= read -r verb_names; do
        verbs=$((verbs + 1))
        verb=${verb_names%%,*}
        "$GITOPPERCTL" "$group" "$verb" --help >"$T/ctl.$group.$verb.help" </dev/null ||
            fail "gitopperctl $group $verb --help failed"
        cat "$T/ctl.$group.$verb.help" >>"$T/ctl.all-help"
        # "Usage: gitopperctl [-i FILE] ... list service @HOST... [SERVICE]": what follows the verb.
        arguments=$(sed -n "s/^Usage: gitopperctl .* $group $verb \(.*\)$/\1/p" \
            "$T/ctl.$group.$verb.help" | sed 's/ *$//')
        [ -n "$arguments" ] || fail "no usage line in gitopperctl $group $verb --help"
        has_text gitopperctl.8 "$verb_names $arguments" ||
            problem "gitopperctl.8 does not document \"$verb_names $arguments\" (gitopperctl $group $verb --help)"
    done <"$T/verbs.$group"
done <"$T/groups"
[ "$verbs" -ge 7 ] || fail "found only $verbs verbs in gitopperctl's help"

flags=$(grep -o -- '--[a-z][a-z-]*' "$T/ctl.all-help" | sort -u)
at_least 5 "long flags in gitopperctl's help" "$flags"
for flag in $flags; do
    has_option gitopperctl.8 "$flag" ||
        problem "gitopperctl.8 has no entry for the option $flag (gitopperctl --help)"
done
# CLI11 writes "-i,--identity FILE"; the page "-i, --identity".
sed -n 's/^ *\(-[A-Za-z]\),\(--[a-z][a-z-]*\).*/\1, \2/p' "$T/ctl.help" >"$T/ctl.pairs"
at_least 4 "flag pairs in gitopperctl --help" "$(cat "$T/ctl.pairs")"
while IFS= read -r pair; do
    has_option gitopperctl.8 "$pair" ||
        problem "gitopperctl.8 has no entry for the option \"$pair\" (gitopperctl --help)"
done <"$T/ctl.pairs"

grep -o '"/[a-z]*/[a-z]*"' "$SOURCE_DIR/src/ctl/commands.hpp" | tr -d '"' | sort -u >"$T/requests"
at_least 7 "requests in src/ctl/commands.hpp" "$(cat "$T/requests")"
while IFS= read -r request; do
    has_word gitopperctl.8 "$request" ||
        problem "gitopperctl.8 does not name the request $request (src/ctl/commands.hpp)"
done <"$T/requests"

# ---- gitopperhdr.1 ------------------------------------------------------------------------

"$GITOPPERHDR" --help >"$T/hdr.help" || fail "gitopperhdr --help failed"
usage=$(sed -n 's/^Usage: //p' "$T/hdr.help")
[ -n "$usage" ] || fail "no usage line in gitopperhdr --help"
has_text gitopperhdr.1 "$usage" ||
    problem "gitopperhdr.1 does not show the usage \"$usage\" (gitopperhdr --help)"
options=$(grep -o 'arg == "-[-a-z]*"' "$SOURCE_DIR/src/hdr/main.cpp" | sed 's/.*"\(.*\)"/\1/' | sort -u)
at_least 4 "options in src/hdr/main.cpp" "$options"
for option in $options; do
    has_option gitopperhdr.1 "$option" ||
        problem "gitopperhdr.1 has no entry for the option $option (src/hdr/main.cpp)"
done
languages=$(grep -o 'Language{"[a-z]*"' "$SOURCE_DIR/src/hdr/header.cpp" | sed 's/.*"\(.*\)"/\1/')
at_least 2 "languages in src/hdr/header.cpp" "$languages"
for language in $languages; do
    has_word gitopperhdr.1 "$language" ||
        problem "gitopperhdr.1 does not name the language $language (src/hdr/header.cpp)"
done

[ "$problems" = 0 ] || fail "$problems problem(s) with the man pages (above)"
echo PASS
