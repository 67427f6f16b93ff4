// The rules of SPEC §1 that apply to the merged services. Each rule is one small function
// returning a problem or nothing; the table at the bottom says which field it checks.

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "config/config.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using Problem = std::optional<std::string>;

bool strings_equal_nocase(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool all_of_chars(std::string_view text, std::string_view extra)
{
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
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

bool is_control(char c)
{
    return static_cast<unsigned char>(c) < ' ' || c == 0x7f;
}

Problem check_local(const Link& link)
{
    if (!link.local.starts_with('/')) {
        return fmt::format("local {} must be an absolute path", quote(link.local));
    }
    if (std::any_of(link.local.begin(), link.local.end(), is_control)) {
        return fmt::format("local {} must not contain control characters", quote(link.local));
    }
    if (std::filesystem::path(link.local).lexically_normal() == "/") {
        return fmt::format("local {} must not be the root directory", quote(link.local));
    }
    if (is_system_dir(link.local)) {
        return fmt::format("local {} must not be a top-level system directory", quote(link.local));
    }
    return std::nullopt;
}

// `link` names a path inside the repository's tree: not the tree itself, not git's own data.
Problem check_link_path(const Link& link)
{
    if (link.path.empty() || link.path.starts_with('/')) {
        return fmt::format("link {} must be a relative path inside the repository",
                           quote(link.path));
    }
    bool inside = false;
    for (const auto& part : split(link.path, '/')) {
        if (part == "..") {
            return fmt::format("link {} must not leave the repository (\"..\")", quote(link.path));
        }
        if (strings_equal_nocase(part, ".git")) {
            return fmt::format("link {} must not point into .git", quote(link.path));
        }
        inside = inside || (!part.empty() && part != ".");
    }
    if (!inside) {
        return fmt::format("link {} must name a path inside the repository, not its root",
                           quote(link.path));
    }
    if (std::any_of(link.path.begin(), link.path.end(), is_control)) {
        return fmt::format("link {} must not contain control characters", quote(link.path));
    }
    return std::nullopt;
}

Problem check_mode(const Link& link)
{
    if (link.mode.empty()) {
        return std::nullopt;
    }
    if (link.file) {
        return fmt::format("mode {} applies to directories only; a file keeps git's mode",
                           quote(link.mode));
    }
    const auto bits = link.mode_bits();
    if (!bits || *bits > 0777) {
        return fmt::format("mode {} must be octal permission bits such as \"0750\" (no "
                           "setuid, setgid or sticky bit)",
                           quote(link.mode));
    }
    if ((*bits & 0700) != 0700) {
        return fmt::format("mode {} must leave the owner rwx (0700), or git cannot update the "
                           "directory",
                           quote(link.mode));
    }
    return std::nullopt;
}

constexpr std::array kLinkRules{check_local, check_link_path, check_mode};

Problem check_file_size(std::string_view text)
{
    if (text.empty() || parse_size(text).value_or(0) > 0) {
        return std::nullopt;
    }
    return fmt::format("max_file_size {} is not a size such as \"100MiB\", \"512K\" or "
                       "\"1G\"",
                       quote(text));
}

struct FieldRule {
    std::string_view field;
    Problem (*check)(std::string_view);
    std::string Service::*member;
};

constexpr std::array kFieldRules{
    FieldRule{"service", check_service_name, &Service::name},
    FieldRule{"machine", check_machine, &Service::machine},
    FieldRule{"branch", check_branch, &Service::branch},
    FieldRule{"user", check_user, &Service::user},
    FieldRule{"package", check_package, &Service::package},
    FieldRule{"action", check_action, &Service::action},
    FieldRule{"mount", check_mount, &Service::mount},
    FieldRule{"upstream", check_upstream, &Service::upstream},
    FieldRule{"max_file_size", check_file_size, &Service::max_file_size},
};

constexpr std::array<std::string_view, 4> kRequired{"machine", "service", "upstream", "mount"};

void check_service(const Config& config, const Service& service, std::vector<std::string>& out)
{
    const auto report = [&](Position at, const std::string& what) {
        out.push_back(fmt::format("{}: {} in {}", config.at(at), what, service.label()));
    };
    bool missing = false;
    for (const auto field : kRequired) {
        const auto rule = std::find_if(kFieldRules.begin(), kFieldRules.end(),
                                       [&](const FieldRule& r) { return r.field == field; });
        if ((service.*rule->member).empty()) {
            report(service.position,
                   fmt::format("missing {} (set it here or in [global])", quote(field)));
            missing = true;
        }
    }
    if (missing) {
        return;
    }
    for (const auto& rule : kFieldRules) {
        if (auto problem = rule.check(service.*rule.member)) {
            report(service.position_of(rule.field), *problem);
        }
    }
    for (const auto& link : service.dirs) {
        for (const auto rule : kLinkRules) {
            if (auto problem = rule(link)) {
                report(link.position, *problem);
            }
        }
    }
}

void check_duplicates(const Config& config, std::vector<std::string>& out)
{
    for (auto later = config.services.begin(); later != config.services.end(); ++later) {
        const auto earlier = std::find_if(config.services.begin(), later, [&](const Service& s) {
            return s.name == later->name && s.machine == later->machine;
        });
        if (earlier != later) {
            out.push_back(
                fmt::format("{}: service {} for machine {} is defined twice (first at {})",
                            config.at(later->position), quote(later->name), quote(later->machine),
                            config.at(earlier->position)));
        }
    }
}

} // namespace

namespace {

std::optional<std::string> readable_by_others(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 044) == 0) {
        return std::nullopt;
    }
    return mode_text(st.st_mode);
}

} // namespace

std::vector<std::string> secret_file_warnings(const Config& config)
{
    std::vector<std::string> warnings;
    const auto with_credential =
        std::find_if(config.services.begin(), config.services.end(),
                     [](const Service& s) { return redact_credentials(s.upstream) != s.upstream; });
    if (with_credential != config.services.end()) {
        if (auto mode = readable_by_others(config.path)) {
            warnings.push_back(fmt::format(
                "{}: warning: the upstream of {} holds a credential and the file is readable by "
                "others (mode {}); chmod go-r",
                config.at(with_credential->position_of("upstream")), with_credential->label(),
                *mode));
        }
    }
    if (!config.webhook_secret_file.empty()) {
        const auto path = config.resolve(config.webhook_secret_file);
        if (auto mode = readable_by_others(path)) {
            warnings.push_back(fmt::format("{}: warning: the webhook secret is readable by others "
                                           "(mode {}); chmod go-r",
                                           path, *mode));
        }
    }
    return warnings;
}

std::vector<std::string> validate(const Config& config)
{
    std::vector<std::string> problems;
    for (const auto& service : config.services) {
        check_service(config, service, problems);
    }
    if (problems.empty()) {
        check_duplicates(config, problems);
    }
    return problems;
}

} // namespace gitopper
