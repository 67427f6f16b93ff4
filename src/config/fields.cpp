// The config file's keys and the rules for one value of each (SPEC §1). Rules that look at
// several fields or several services are in validate.cpp.

#include "config/fields.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <type_traits>

#include <fmt/format.h>

#include "util/endpoint.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"
#include "util/window.hpp"

namespace gitopper {
namespace {

bool all_of_chars(std::string_view text, std::string_view extra)
{
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
}

bool is_control(char c)
{
    return static_cast<unsigned char>(c) < ' ' || c == 0x7f;
}

bool has_control_or_space(std::string_view text)
{
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

Problem check_service_name(std::string_view name)
{
    if (!all_of_chars(name, ":_.@\\-") || name.starts_with('-') || name.starts_with('.') ||
        name.size() > 255) {
        return fmt::format("service {} is not a valid name (letters, digits and \":_.@\\-\"; "
                           "not starting with '-' or '.')",
                           quote(name));
    }
    // Next to a service's symlink, <service>.gitopper-link and <service>.broken-<time> are ours.
    if (name.find(".gitopper-") != std::string_view::npos ||
        name.find(".broken-") != std::string_view::npos) {
        return fmt::format("service {} is reserved: \".gitopper-\" and \".broken-\" name "
                           "gitopper's own entries next to a service's work tree",
                           quote(name));
    }
    return std::nullopt;
}

Problem check_machine(std::string_view machine)
{
    if (has_control_or_space(machine)) {
        return fmt::format("machine {} must not contain spaces or control characters",
                           quote(machine));
    }
    return std::nullopt;
}

// The subset of git-check-ref-format(1) that matters for a branch name we pass to git.
Problem check_branch(std::string_view branch)
{
    const bool bad = branch.empty() || branch.starts_with('-') || branch.starts_with('/') ||
                     branch.ends_with('/') || branch.ends_with('.') || branch.ends_with(".lock") ||
                     branch.find("..") != std::string_view::npos ||
                     branch.find("//") != std::string_view::npos ||
                     branch.find("@{") != std::string_view::npos || branch == "@" ||
                     has_control_or_space(branch) ||
                     branch.find_first_of("~^:?*[\\") != std::string_view::npos;
    if (bad) {
        return fmt::format("branch {} is not a valid git branch name", quote(branch));
    }
    return std::nullopt;
}

Problem check_user(std::string_view user)
{
    if (!user.empty() && (!all_of_chars(user, "_.-$") || user.starts_with('-'))) {
        return fmt::format("user {} is not a valid user name", quote(user));
    }
    return std::nullopt;
}

Problem check_package(std::string_view package)
{
    if (!package.empty() &&
        (!all_of_chars(package, ".+_:~-") || !all_of_chars(package.substr(0, 1), ""))) {
        return fmt::format("package {} is not a valid package name", quote(package));
    }
    return std::nullopt;
}

constexpr std::array<std::string_view, 8> kActions{
    "",      "reload", "restart", "try-restart", "reload-or-restart", "try-reload-or-restart",
    "start", "stop"};

Problem check_action(std::string_view action)
{
    if (std::find(kActions.begin(), kActions.end(), action) != kActions.end()) {
        return std::nullopt;
    }
    std::string what = fmt::format("action {} is not a systemctl action gitopper runs (one of "
                                   "reload, restart, try-restart, reload-or-restart, "
                                   "try-reload-or-restart, start, stop, or \"\" for none)",
                                   quote(action));
    if (auto guess = closest_match(action, kActions)) {
        what += fmt::format("; did you mean {}?", quote(*guess));
    }
    return what;
}

// "/", and the top-level directories that a bind mount must never cover and in which
// gitopper must never make or move aside checkouts.
bool is_system_dir(std::string_view path)
{
    static constexpr std::array<std::string_view, 12> kSystem{"/etc",  "/usr",  "/bin",  "/sbin",
                                                              "/boot", "/dev",  "/proc", "/sys",
                                                              "/run",  "/root", "/var",  "/home"};
    auto normal = std::filesystem::path(path).lexically_normal().string();
    while (normal.size() > 1 && normal.ends_with('/')) {
        normal.pop_back();
    }
    if (normal == "/") {
        return true;
    }
    if (normal.find('/', 1) != std::string::npos) {
        return false;
    }
    return normal.starts_with("/lib") ||
           std::find(kSystem.begin(), kSystem.end(), normal) != kSystem.end();
}

Problem check_mount(std::string_view mount)
{
    if (!mount.starts_with('/')) {
        return fmt::format("mount {} must be an absolute path", quote(mount));
    }
    if (is_system_dir(mount)) {
        return fmt::format("mount {} must not be / or a top-level system directory (checkouts "
                           "are made and moved aside there)",
                           quote(mount));
    }
    return std::nullopt;
}

// Lenient on purpose: git knows URLs best. We only refuse what could make git do something
// other than fetch: options, remote helpers such as "ext::", and control characters.
Problem check_upstream(std::string_view upstream)
{
    const auto helper = upstream.find("::");
    const auto scheme = upstream.find("://");
    if (upstream.starts_with('-') || has_control_or_space(upstream) ||
        (helper != std::string_view::npos &&
         (scheme == std::string_view::npos || helper < scheme))) {
        return fmt::format("upstream {} is not a git URL (https://, ssh://, git://, file:// or "
                           "user@host:path)",
                           quote(upstream));
    }
    return std::nullopt;
}

Problem check_file_size(std::string_view text)
{
    if (text.empty() || parse_size(text).value_or(0) > 0) {
        return std::nullopt;
    }
    return fmt::format("max_file_size {} is not a size such as \"100MiB\", \"512K\" or "
                       "\"1G\"",
                       quote(text));
}

// How long one git command may run before it is killed and the service goes to DIFF.
Problem check_git_timeout(std::string_view text)
{
    const auto timeout = parse_duration(text);
    if (!timeout) {
        return "git_timeout: " + timeout.error().message;
    }
    if (*timeout < std::chrono::seconds(1) || *timeout > std::chrono::hours(1)) {
        return fmt::format("git_timeout {} is out of range (1s to 1h)", quote(text));
    }
    return std::nullopt;
}

Problem duration_between(std::string_view name, std::string_view text, Duration least,
                         Duration most)
{
    const auto duration = parse_duration(text);
    if (!duration) {
        return fmt::format("{}: {}", name, duration.error().message);
    }
    if (*duration < least || *duration > most) {
        return fmt::format("{} {} is out of range ({} to {})", name, quote(text),
                           format_duration(least), format_duration(most));
    }
    return std::nullopt;
}

Problem check_check_timeout(std::string_view text)
{
    return duration_between("check_timeout", text, std::chrono::seconds(1), std::chrono::hours(1));
}

Problem check_health_timeout(std::string_view text)
{
    return duration_between("health_timeout", text, std::chrono::seconds(1), std::chrono::hours(1));
}

Problem check_health_interval(std::string_view text)
{
    return duration_between("health_interval", text, Duration{0}, std::chrono::minutes(10));
}

// An integer as written (its digits), within [least, most].
Problem integer_between(std::string_view name, std::string_view text, std::int64_t least,
                        std::int64_t most)
{
    std::int64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value < least || value > most) {
        return fmt::format("{} {} is out of range ({} to {})", name, text, least, most);
    }
    return std::nullopt;
}

Problem check_health_retries(std::string_view text)
{
    return integer_between("health_retries", text, 1, 100);
}

Problem check_interval(std::string_view text)
{
    return duration_between("interval", text, std::chrono::seconds(1), std::chrono::hours(24));
}

Problem check_window(std::string_view text)
{
    auto window = parse_window(text);
    return window ? Problem() : Problem(window.error().message);
}

Problem check_local(std::string_view local)
{
    if (!local.starts_with('/')) {
        return fmt::format("local {} must be an absolute path", quote(local));
    }
    if (std::any_of(local.begin(), local.end(), is_control)) {
        return fmt::format("local {} must not contain control characters", quote(local));
    }
    if (std::filesystem::path(local).lexically_normal() == "/") {
        return fmt::format("local {} must not be the root directory", quote(local));
    }
    if (is_system_dir(local)) {
        return fmt::format("local {} must not be a top-level system directory", quote(local));
    }
    return std::nullopt;
}

// `link` names a path inside the repository's tree: not the tree itself, not git's own data.
Problem check_link_path(std::string_view path)
{
    if (path.empty() || path.starts_with('/')) {
        return fmt::format("link {} must be a relative path inside the repository", quote(path));
    }
    bool inside = false;
    for (const auto& part : split(path, '/')) {
        if (part == "..") {
            return fmt::format("link {} must not leave the repository (\"..\")", quote(path));
        }
        if (equal_nocase(part, ".git")) {
            return fmt::format("link {} must not point into .git", quote(path));
        }
        inside = inside || (!part.empty() && part != ".");
    }
    if (!inside) {
        return fmt::format("link {} must name a path inside the repository, not its root",
                           quote(path));
    }
    if (std::any_of(path.begin(), path.end(), is_control)) {
        return fmt::format("link {} must not contain control characters", quote(path));
    }
    return std::nullopt;
}

Problem check_mode(std::string_view mode)
{
    if (mode.empty()) {
        return std::nullopt;
    }
    const auto bits = Link{.mode = std::string(mode)}.mode_bits();
    if (!bits || *bits > 0777) {
        return fmt::format("mode {} must be octal permission bits such as \"0750\" (no "
                           "setuid, setgid or sticky bit)",
                           quote(mode));
    }
    if ((*bits & 0700) != 0700) {
        return fmt::format("mode {} must leave the owner rwx (0700), or git cannot update the "
                           "directory",
                           quote(mode));
    }
    return std::nullopt;
}

// An URL gitopper sends to: https://, or plain http:// to this host only, since `why`.
Problem sending_url(std::string_view field, std::string_view url, std::string_view why)
{
    if (url.empty()) {
        return std::nullopt;
    }
    auto parsed = parse_http_url(url);
    if (!parsed) {
        return fmt::format("{} {}", field, parsed.error().message);
    }
    if (!parsed->tls && !parsed->loopback()) {
        return fmt::format("{} must be https:// (http:// only to this host): {}", field, why);
    }
    return std::nullopt;
}

Problem check_notify_url(std::string_view url)
{
    return sending_url("url", url, "a webhook URL's path is often its secret");
}

Problem check_api_url(std::string_view url)
{
    return sending_url("api", url, "the token goes with every call");
}

// An etcd member's client URL. Plain http:// is etcd's own default inside a private network;
// the rule across fields (validate.cpp) wants https:// where a password goes with it.
Problem check_etcd_url(std::string_view url)
{
    auto parsed = parse_http_url(url);
    if (!parsed) {
        return fmt::format("etcd {}", parsed.error().message);
    }
    // etcd listens on 2379, not on the scheme's port, and its API is at the root.
    const auto authority = url.substr(url.find("//") + 2);
    const auto host_end = authority.find_first_of("/?");
    const auto host = authority.substr(0, host_end);
    const auto colon = host.rfind(':');
    if (colon == std::string_view::npos || colon < host.rfind(']') + 1 ||
        colon + 1 == host.size()) {
        return fmt::format("etcd member {} needs its port (etcd's is 2379)", parsed->origin());
    }
    if (host_end != std::string_view::npos && authority.substr(host_end) != "/") {
        return fmt::format("etcd member {}: no path (etcd's API is at the root)", parsed->origin());
    }
    return std::nullopt;
}

Problem check_max_parallel(std::string_view text)
{
    return integer_between("max_parallel", text, 1, 10000);
}

// The keys' prefix: an absolute key path, so that `etcdctl get --prefix` finds them.
Problem check_rollout_prefix(std::string_view prefix)
{
    const bool printable =
        std::all_of(prefix.begin(), prefix.end(), [](char c) { return c > ' ' && c < 0x7f; });
    if (!prefix.starts_with('/') || prefix.ends_with('/') || !printable ||
        prefix.find("//") != std::string_view::npos) {
        return fmt::format("prefix {} must be a key path such as \"/gitopper\" (a leading /, "
                           "no trailing /, no spaces)",
                           quote(prefix));
    }
    return std::nullopt;
}

// etcd refuses TTLs below about 1.5 times its election timeout (2 s by its defaults).
Problem check_lease_ttl(std::string_view text)
{
    return duration_between("lease_ttl", text, std::chrono::seconds(2), std::chrono::minutes(5));
}

Problem check_etcd_timeout(std::string_view text)
{
    return duration_between("timeout", text, std::chrono::seconds(1), std::chrono::minutes(1));
}

Problem check_notify_format(std::string_view format)
{
    if (format.empty() || format == "json" || format == "slack") {
        return std::nullopt;
    }
    return fmt::format("format {} is not \"json\" or \"slack\"", quote(format));
}

Problem check_notify_timeout(std::string_view text)
{
    return duration_between("timeout", text, std::chrono::seconds(1), std::chrono::minutes(5));
}

Problem check_forge(std::string_view forge)
{
    static constexpr std::array<std::string_view, 4> kForges{"github", "gitea", "forgejo",
                                                             "gitlab"};
    if (std::find(kForges.begin(), kForges.end(), forge) != kForges.end()) {
        return std::nullopt;
    }
    std::string what =
        fmt::format("forge {} is not github, gitea, forgejo or gitlab", quote(forge));
    if (auto guess = closest_match(forge, kForges)) {
        what += fmt::format("; did you mean {}?", quote(*guess));
    }
    return what;
}

Problem check_status_repository(std::string_view repository)
{
    const bool bad = repository.starts_with('/') || repository.ends_with('/') ||
                     repository.find("..") != std::string_view::npos ||
                     !all_of_chars(repository, "/_.-");
    if (!repository.empty() && (bad || repository.find('/') == std::string_view::npos)) {
        return fmt::format("repository {} is not a forge's \"owner/name\" (groups/subgroup/name "
                           "for GitLab)",
                           quote(repository));
    }
    return std::nullopt;
}

constexpr std::monostate kByEntry{};

// Order: as the README lists them, a table's keys together.
const Field kFieldRows[] = {
    {.name = "global",
     .scope = Scope::top,
     .target = kByEntry,
     .type = "table",
     .meaning = "defaults for every service, and the daemon's own settings"},
    {.name = "services",
     .scope = Scope::top,
     .target = kByEntry,
     .type = "array of tables",
     .meaning = "one `[[services]]` table per service and host"},

    {.name = "machine",
     .scope = Scope::service,
     .target = &Service::machine,
     .type = "string",
     .required = true,
     .rule = check_machine,
     .meaning = "the host that runs this service: its host name or a `-h` alias",
     .example = R"(`"web1.example.org"`)"},
    {.name = "service",
     .scope = Scope::service,
     .target = &Service::name,
     .type = "string",
     .required = true,
     .rule = check_service_name,
     .meaning = "the service's name; the systemd unit that `action` acts on",
     .example = R"(`"grafana-server"`)"},
    {.name = "branch",
     .scope = Scope::service,
     .target = &Service::branch,
     .type = "string",
     .fallback = "main",
     .rule = check_branch,
     .meaning = "the branch deployed; per service for canarying",
     .example = R"(`"canary"`)"},
    {.name = "user",
     .scope = Scope::service,
     .target = &Service::user,
     .type = "string",
     .unset = "root",
     .rule = check_user,
     .meaning = "who owns the service's tree and runs git for it",
     .example = R"(`"grafana"`)"},
    {.name = "package",
     .scope = Scope::service,
     .target = &Service::package,
     .type = "string",
     .unset = "none",
     .rule = check_package,
     .meaning = "a Debian package installed if missing (never upgraded)",
     .example = R"(`"grafana"`)"},
    {.name = "action",
     .scope = Scope::service,
     .target = &Service::action,
     .type = "string",
     .unset = "none",
     .rule = check_action,
     .meaning = "`systemctl ACTION SERVICE` after a change: `reload`, `restart`, `try-restart`, "
                "`reload-or-restart`, `try-reload-or-restart`, `start`, `stop`",
     .example = R"(`"reload"`)"},
    {.name = "mount",
     .scope = Scope::service,
     .target = &Service::mount,
     .type = "string",
     .required = true,
     .rule = check_mount,
     .meaning = "the mount base: the service's tree is `MOUNT/SERVICE`",
     .example = R"(`"/var/lib/gitopper"`)"},
    {.name = "upstream",
     .scope = Scope::service,
     .target = &Service::upstream,
     .type = "string",
     .required = true,
     .rule = check_upstream,
     .meaning = "the git URL: `https://`, `ssh://`, `git://`, `file://` or `user@host:path`",
     .example = R"(`"https://example.org/ops/config"`)"},
    {.name = "dirs",
     .scope = Scope::service,
     .target = kByEntry,
     .type = "array of tables",
     .meaning = "what is mounted where: one `{ local, link }` table per bind mount",
     .example = R"(`[ { local = "/etc/grafana", link = "grafana/etc" } ]`)"},
    {.name = "max_file_size",
     .scope = Scope::service,
     .target = &Service::max_file_size,
     .type = "size string",
     .fallback = "100MiB",
     .rule = check_file_size,
     .meaning = "a commit with a larger file in the service's links is refused before it is "
                "checked out; `K`/`M`/`G`, `KiB`/`MiB`/`GiB`, `KB`/`MB`/`GB` or bytes",
     .example = R"(`"20MiB"`)"},

    {.name = "check",
     .scope = Scope::service,
     .target = &Service::check,
     .type = "command",
     .unset = "none",
     .meaning = "run on the new commit's staged tree before anything live moves (`{dir}` its "
                "root, `{commit}`, `{service}`; as `user` when set, else root); not exit 0: the "
                "live tree stays, no action, BROKEN with its output, the commit not checked "
                "again until upstream moves or a pull",
     .example = R"(`["nginx", "-t", "-c", "{dir}/nginx/nginx.conf"]`)"},
    {.name = "check_timeout",
     .scope = Scope::service,
     .target = &Service::check_timeout,
     .type = "duration string",
     .fallback = "60s",
     .rule = check_check_timeout,
     .meaning = "a `check` running longer (`1s` to `1h`) is killed with its children and fails",
     .example = R"(`"2m"`)"},

    {.name = "health",
     .scope = Scope::service,
     .target = &Service::health,
     .type = "command",
     .unset = "`systemctl is-active SERVICE` when `action` is start, restart, reload or "
              "reload-or-restart, else none",
     .meaning = "run after the action (`{dir}` the live tree; as `user` when set); every try "
                "failing: the previous commit goes back live and is told again, BROKEN, and "
                "the failed commit is quarantined: polls never deploy it again, a pull may",
     .example = R"(`"curl -fsS http://127.0.0.1:3000/api/health"`)"},
    {.name = "health_timeout",
     .scope = Scope::service,
     .target = &Service::health_timeout,
     .type = "duration string",
     .fallback = "10s",
     .rule = check_health_timeout,
     .meaning = "one `health` try running longer (`1s` to `1h`) is killed and fails",
     .example = R"(`"30s"`)"},
    {.name = "health_retries",
     .scope = Scope::service,
     .target = &Service::health_retries,
     .type = "integer",
     .fallback = "3",
     .rule = check_health_retries,
     .meaning = "how many times `health` is tried (1 to 100) before the commit counts as failed",
     .example = "`5`"},
    {.name = "health_interval",
     .scope = Scope::service,
     .target = &Service::health_interval,
     .type = "duration string",
     .fallback = "2s",
     .rule = check_health_interval,
     .meaning = "the pause between two `health` tries (`0s` to `10m`)",
     .example = R"(`"5s"`)"},

    {.name = "exec",
     .scope = Scope::service,
     .target = &Service::exec,
     .type = "command",
     .unset = "`systemctl ACTION SERVICE`",
     .meaning = "run after a change instead of the `action`, as root (`{dir}` the live tree), "
                "for hosts without systemd: gitopper then runs no systemctl at all for the "
                "service (no daemon-reload, start or enable); not with `action`, nor `{dir}` "
                "with a `user`",
     .example = R"(`"/usr/sbin/nginx -s reload"`)"},

    {.name = "allowed_signers",
     .scope = Scope::service,
     .target = &Service::allowed_signers,
     .type = "string",
     .unset = "any commit",
     .meaning = "an OpenSSH allowed_signers file (relative to the config file; root's, not "
                "writable by others): only commits with a good SSH signature by one of its keys "
                "are deployed, and no rollback goes behind the last verified one unless forced",
     .example = R"(`"signers/ops"`)"},

    {.name = "ssh_key",
     .scope = Scope::service,
     .target = &Service::ssh_key,
     .type = "string",
     .unset = "the user's own ssh identity",
     .meaning = "the deploy key for an `ssh://` or `user@host:path` upstream (relative to the "
                "config file; root's, readable by root alone): ssh uses this key only, with no "
                "agent and no ssh_config; git, as the service's user, gets it for each run "
                "through a descriptor, never as a file",
     .example = R"(`"keys/deploy_ed25519"`)"},

    {.name = "known_hosts",
     .scope = Scope::service,
     .target = &Service::known_hosts,
     .type = "string",
     .unset = "trust on first use, kept in `<state>/known_hosts`",
     .meaning = "the ssh upstream's pinned host keys (a known_hosts file, e.g. from "
                "`ssh-keyscan`; root's, not writable by others); any other key is refused",
     .example = R"(`"keys/known_hosts"`)"},

    {.name = "token_file",
     .scope = Scope::service,
     .target = &Service::token_file,
     .type = "string",
     .unset = "none",
     .meaning = "the password or token for an `https://` upstream (user from the URL, else "
                "`git`; root's, readable by root alone): given to git by its askpass prompt, "
                "never in a URL, argv, environment or `.git/config`",
     .example = R"(`"keys/forge-token"`)"},

    {.name = "ca_file",
     .scope = Scope::service,
     .target = &Service::ca_file,
     .type = "string",
     .unset = "the system's CAs",
     .meaning = "the CA bundle (PEM) that an `https://` upstream's certificate must chain to, "
                "for a private CA (root's, not writable by others)",
     .example = R"(`"keys/ca.pem"`)"},

    {.name = "interval",
     .scope = Scope::service,
     .target = &Service::interval,
     .type = "duration string",
     .unset = "`-t`",
     .rule = check_interval,
     .meaning = "this service's poll interval (`1s` to `24h`, with the same jitter); services "
                "of one upstream share each `ls-remote`, run when one of them is due",
     .example = R"(`"1h"`)"},

    {.name = "windows",
     .scope = Scope::service,
     .target = &Service::windows,
     .type = "array of strings",
     .unset = "at any time",
     .rule = check_window,
     .meaning = "when new commits may go live, in the host's local time: `DAYS HH:MM-HH:MM` "
                "(`Mon-Fri`, `Sat,Sun`, `daily`; an end before the start runs past midnight); "
                "outside them a new commit is fetched, verified and checked but waits (`waiting "
                "for window (next: Tue 06:00)`), and goes live when one opens; a pull or a "
                "rollback goes at once",
     .example = R"(`["Mon-Fri 06:00-18:00", "Sat 10:00-12:00"]`)"},
    {.name = "max_parallel",
     .scope = Scope::service,
     .target = &Service::max_parallel,
     .type = "integer",
     .unset = "`rollout`'s",
     .rule = check_max_parallel,
     .meaning = "with `[global] rollout`: how many hosts may apply this service's new commit at "
                "once (1 to 10000)",
     .example = R"(`5`)"},
    {.name = "notify",
     .scope = Scope::service,
     .target = kByEntry,
     .type = "array of tables",
     .unset = "none",
     .meaning = "where the service's events go (deploy, failed check or health, automatic "
                "rollback, drift reverted, BROKEN, DIFF): one `{ url }` or `{ exec }` table per "
                "target, each sent every event once, from a queue of its own that never holds up "
                "a deploy; a service's own list replaces [global]'s",
     .example =
         R"(`[ { url = "https://hooks.example.org/gitopper", secret_file = "notify.key" } ]`)"},

    {.name = "keys",
     .scope = Scope::global,
     .target = kByEntry,
     .type = "array of tables",
     .unset = "no control API",
     .meaning = "the SSH public keys allowed on the control API",
     .example = R"(`[ { path = "keys/alice.pub" } ]`)"},
    {.name = "webhook_secret_file",
     .scope = Scope::global,
     .target = &Config::webhook_secret_file,
     .type = "string",
     .unset = "no webhooks",
     .meaning = "the file holding the webhooks' shared secret (relative to the config file)",
     .example = R"(`"webhook.secret"`)"},
    {.name = "status",
     .scope = Scope::global,
     .target = kByEntry,
     .type = "table",
     .unset = "no commit statuses",
     .meaning = "report each deploy to the forge as a commit status on the commit: `pending` while "
                "it deploys, then `success`, or `failure` for a failed check, health check or "
                "deploy; context `gitopper/<host>/<service>`",
     .example = R"(`{ forge = "github", token_file = "keys/status-token" }`)"},
    {.name = "rollout",
     .scope = Scope::global,
     .target = kByEntry,
     .type = "table",
     .unset = "every host applies a new commit when it sees it",
     .meaning = "fleet rollouts: a new commit goes live on at most `max_parallel` hosts at once, "
                "each holding a slot in etcd until its health check passes; a commit whose "
                "health fails on one host is held everywhere (`held: …`)",
     .example = R"(`{ etcd = ["http://10.0.0.5:2379"], max_parallel = 2 }`)"},
    {.name = "git_timeout",
     .scope = Scope::global,
     .target = &Config::git_timeout,
     .type = "duration string",
     .fallback = "2m",
     .rule = check_git_timeout,
     .meaning = "a git command running longer (`1s` to `1h`) is killed and the service goes to "
                "DIFF until the next poll",
     .example = R"(`"5m"`)"},

    {.name = "local",
     .scope = Scope::link,
     .target = &Link::local,
     .type = "string",
     .required = true,
     .rule = check_local,
     .meaning = "the absolute path mounted onto",
     .example = R"(`"/etc/grafana"`)"},
    {.name = "link",
     .scope = Scope::link,
     .target = &Link::path,
     .type = "string",
     .required = true,
     .rule = check_link_path,
     .meaning = "the path in the repository mounted there",
     .example = R"(`"grafana/etc"`)"},
    {.name = "file",
     .scope = Scope::link,
     .target = &Link::file,
     .type = "boolean",
     .fallback = "false",
     .meaning = "`link` is a single file, not a directory",
     .example = R"(`true`)"},
    {.name = "mode",
     .scope = Scope::link,
     .target = &Link::mode,
     .type = "string",
     .unset = "git's",
     .rule = check_mode,
     .meaning = "the mounted directory's permission bits (`\"0750\"`, owner rwx); directories only",
     .example = R"(`"0750"`)"},

    {.name = "url",
     .scope = Scope::notify,
     .target = &NotifyTarget::url,
     .type = "string",
     .unset = "(or `exec`)",
     .rule = check_notify_url,
     .meaning = "an `http://` or `https://` URL each event is POSTed to (JSON, `Content-Type: "
                "application/json`); 2xx is delivered, 408, 429, 5xx and no answer are retried "
                "with back-off, any other answer drops the event (logged, counted)",
     .example = R"(`"https://hooks.slack.com/services/T0/B0/XXXX"`)"},
    {.name = "format",
     .scope = Scope::notify,
     .target = &NotifyTarget::format,
     .type = "string",
     .fallback = "json",
     .rule = check_notify_format,
     .meaning = "`json`: the event's fields (`host`, `service`, `event`, `from`, `to`, `state`, "
                "`info`, `trigger`, `time`); `slack`: `{\"text\": …}`, one line for a chat",
     .example = R"(`"slack"`)"},
    {.name = "secret_file",
     .scope = Scope::notify,
     .target = &NotifyTarget::secret_file,
     .type = "string",
     .unset = "unsigned",
     .meaning = "a file holding a shared secret (root's, readable by root alone): each POST "
                "carries `X-Gitopper-Signature-256: sha256=<HMAC-SHA256 of the body>`",
     .example = R"(`"keys/notify.secret"`)"},
    {.name = "ca_file",
     .scope = Scope::notify,
     .target = &NotifyTarget::ca_file,
     .type = "string",
     .unset = "the system's CAs",
     .meaning = "the CA bundle (PEM) an `https://` receiver's certificate must chain to",
     .example = R"(`"keys/ca.pem"`)"},
    {.name = "exec",
     .scope = Scope::notify,
     .target = &NotifyTarget::exec,
     .type = "command",
     .unset = "(or `url`)",
     .meaning = "run as root for each event, with `GITOPPER_EVENT`, `GITOPPER_SERVICE`, "
                "`GITOPPER_FROM`, `GITOPPER_TO`, `GITOPPER_STATE`, `GITOPPER_INFO`, "
                "`GITOPPER_HOST`, `GITOPPER_TRIGGER`, `GITOPPER_TIME` set and the JSON event "
                "on stdin; exit 0 is delivered, anything else is retried",
     .example = R"(`["/usr/local/bin/page-oncall"]`)"},
    {.name = "timeout",
     .scope = Scope::notify,
     .target = &NotifyTarget::timeout,
     .type = "duration string",
     .fallback = "10s",
     .rule = check_notify_timeout,
     .meaning = "one try (`1s` to `5m`): a receiver slower than this counts as down",
     .example = R"(`"30s"`)"},
    {.name = "name",
     .scope = Scope::notify,
     .target = &NotifyTarget::name,
     .type = "string",
     .unset = "the URL's scheme, host and port, or exec's program",
     .meaning = "the target's name in logs and in the metrics' `target` label",
     .example = R"(`"chat"`)"},

    {.name = "forge",
     .scope = Scope::status,
     .target = &StatusTarget::forge,
     .type = "string",
     .required = true,
     .rule = check_forge,
     .meaning = "whose API: `github`, `gitea` or `forgejo`, `gitlab`",
     .example = R"(`"gitea"`)"},
    {.name = "api",
     .scope = Scope::status,
     .target = &StatusTarget::api,
     .type = "string",
     .unset = "`https://api.github.com` for github; required otherwise",
     .rule = check_api_url,
     .meaning = "the API's base URL: `https://HOST/api/v1` for Gitea and Forgejo, "
                "`https://HOST/api/v4` for GitLab, `https://HOST/api/v3` for GitHub Enterprise",
     .example = R"(`"https://git.example.org/api/v1"`)"},
    {.name = "token_file",
     .scope = Scope::status,
     .target = &StatusTarget::token_file,
     .type = "string",
     .required = true,
     .meaning = "a file holding an API token that may set commit statuses (root's, readable by "
                "root alone); never logged",
     .example = R"(`"keys/status-token"`)"},
    {.name = "repository",
     .scope = Scope::status,
     .target = &StatusTarget::repository,
     .type = "string",
     .unset = "the path of each service's upstream URL",
     .rule = check_status_repository,
     .meaning = "the repository at the forge, `owner/name`, when the upstream is a mirror of it",
     .example = R"(`"ops/config"`)"},

    {.name = "ca_file",
     .scope = Scope::status,
     .target = &StatusTarget::ca_file,
     .type = "string",
     .unset = "the system's CAs",
     .meaning = "the CA bundle (PEM) the API's certificate must chain to, for a forge behind a "
                "private CA",
     .example = R"(`"keys/ca.pem"`)"},

    {.name = "etcd",
     .scope = Scope::rollout,
     .target = &RolloutConfig::etcd,
     .type = "array of strings",
     .required = true,
     .rule = check_etcd_url,
     .meaning = "the client URLs of the etcd cluster's members (`http://` or `https://`), tried "
                "in turn until one answers",
     .example = R"(`["https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"]`)"},
    {.name = "max_parallel",
     .scope = Scope::rollout,
     .target = &RolloutConfig::max_parallel,
     .type = "integer",
     .fallback = "1",
     .rule = check_max_parallel,
     .meaning = "how many hosts may apply a service's new commit at once (a service's own "
                "`max_parallel` overrides it)",
     .example = R"(`2`)"},
    {.name = "prefix",
     .scope = Scope::rollout,
     .target = &RolloutConfig::prefix,
     .type = "string",
     .fallback = "/gitopper",
     .rule = check_rollout_prefix,
     .meaning = "where gitopper's keys live in etcd: `PREFIX/SERVICE/COMMIT/queue/HOST-LEASE` "
                "for the slots, `PREFIX/SERVICE/bad/COMMIT` for a commit marked bad",
     .example = R"(`"/fleet/web"`)"},
    {.name = "lease_ttl",
     .scope = Scope::rollout,
     .target = &RolloutConfig::lease_ttl,
     .type = "duration string",
     .fallback = "15s",
     .rule = check_lease_ttl,
     .meaning = "the lease the daemon keeps alive (`2s` to `5m`): a host that crashed or lost "
                "etcd frees its slot this long after",
     .example = R"(`"30s"`)"},
    {.name = "timeout",
     .scope = Scope::rollout,
     .target = &RolloutConfig::timeout,
     .type = "duration string",
     .fallback = "5s",
     .rule = check_etcd_timeout,
     .meaning = "one request to one member (`1s` to `1m`, at most a third of `lease_ttl`, so "
                "that a silent member cannot make the lease lapse); then the next member is tried",
     .example = R"(`"2s"`)"},
    {.name = "ca_file",
     .scope = Scope::rollout,
     .target = &RolloutConfig::ca_file,
     .type = "string",
     .unset = "the system's CAs",
     .meaning = "the CA bundle (PEM) an `https://` member's certificate must chain to",
     .example = R"(`"keys/etcd-ca.pem"`)"},
    {.name = "cert_file",
     .scope = Scope::rollout,
     .target = &RolloutConfig::cert_file,
     .type = "string",
     .unset = "no client certificate",
     .meaning = "a client certificate (PEM) for members run with `--client-cert-auth`, with "
                "`key_file`; with `user` too it must have no Common Name (etcd's gateway "
                "refuses one when its auth is on)",
     .example = R"(`"keys/etcd-client.pem"`)"},
    {.name = "key_file",
     .scope = Scope::rollout,
     .target = &RolloutConfig::key_file,
     .type = "string",
     .unset = "(with `cert_file`)",
     .meaning = "the client certificate's private key (root's, readable by root alone)",
     .example = R"(`"keys/etcd-client.key"`)"},
    {.name = "user",
     .scope = Scope::rollout,
     .target = &RolloutConfig::user,
     .type = "string",
     .unset = "no etcd authentication",
     .meaning = "an etcd user (`etcdctl user add`) whose role may read and write the prefix, "
                "with `password_file`; needs `https://` members, or members on this host",
     .example = R"(`"gitopper"`)"},
    {.name = "password_file",
     .scope = Scope::rollout,
     .target = &RolloutConfig::password_file,
     .type = "string",
     .unset = "(with `user`)",
     .meaning = "a file holding that user's password (root's, readable by root alone); never "
                "logged",
     .example = R"(`"keys/etcd-password"`)"},

    {.name = "path",
     .scope = Scope::key,
     .target = &Key::path,
     .type = "string",
     .required = true,
     .meaning = "a key file in authorized_keys format (relative to the config file)",
     .example = R"(`"keys/alice.pub"`)"},
    {.name = "ro",
     .scope = Scope::key,
     .target = &Key::ro,
     .type = "boolean",
     .fallback = "false",
     .meaning = "read-only: `/list/*` only",
     .example = R"(`true`)"},
};
const std::span<const Field> kFields(kFieldRows);

bool in_scope(const Field& field, Scope scope)
{
    return field.scope == scope || (scope == Scope::global && field.scope == Scope::service);
}

std::string_view scope_text(Scope scope)
{
    switch (scope) {
    case Scope::top:
        return "top level";
    case Scope::service:
        return "`[[services]]`, `[global]`";
    case Scope::global:
        return "`[global]`";
    case Scope::link:
        return "a `dirs` entry";
    case Scope::key:
        return "a `keys` entry";
    case Scope::notify:
        return "a `notify` entry";
    case Scope::status:
        return "`status`";
    case Scope::rollout:
        return "`rollout`";
    }
    return "";
}

} // namespace

std::span<const Field> config_fields()
{
    return kFields;
}

const Field* find_field(Scope scope, std::string_view name)
{
    const auto found = std::find_if(kFields.begin(), kFields.end(), [&](const Field& field) {
        return field.name == name && in_scope(field, scope);
    });
    return found == kFields.end() ? nullptr : &*found;
}

std::vector<std::string_view> field_names(Scope scope)
{
    std::vector<std::string_view> names;
    for (const auto& field : kFields) {
        if (in_scope(field, scope)) {
            names.push_back(field.name);
        }
    }
    return names;
}

std::optional<std::string> field_text(const Service& service, const Field& field)
{
    return std::visit(
        [&]<typename M>(const M& target) -> std::optional<std::string> {
            if constexpr (std::is_same_v<M, std::string Service::*>) {
                return service.*target;
            } else if constexpr (std::is_same_v<M, Duration Service::*>) {
                // Zero is how a duration that falls back to something else (interval: -t) is
                // left unset; shown as what that means, not as "0s".
                const bool unset = service.*target == Duration{0} && !field.unset.empty();
                return unset ? std::string() : format_duration(service.*target);
            } else if constexpr (std::is_same_v<M, std::int64_t Service::*>) {
                // Zero likewise (max_parallel: the rollout's).
                const bool unset = service.*target == 0 && !field.unset.empty();
                return unset ? std::string() : std::to_string(service.*target);
            } else if constexpr (std::is_same_v<M, Argv Service::*>) {
                return printable(service.*target);
            } else if constexpr (std::is_same_v<M, Strings Service::*>) {
                return join(service.*target, ", ");
            } else {
                return std::nullopt;
            }
        },
        field.target);
}

std::string field_reference()
{
    std::string out =
        "| key | in | type | default | meaning | example |\n|---|---|---|---|---|---|\n";
    for (const auto& field : kFields) {
        const auto fallback = field.required            ? std::string("required")
                              : !field.fallback.empty() ? fmt::format("`{}`", field.fallback)
                                                        : std::string(field.unset);
        out +=
            fmt::format("| `{}` | {} | {} | {} | {} | {} |\n", field.name, scope_text(field.scope),
                        field.type, fallback, field.meaning, field.example);
    }
    return out;
}

} // namespace gitopper
