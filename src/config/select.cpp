// Which services this host runs, and the conflicts that only exist on one host: with -h
// aliases a host can be several machines at once.

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "config/config.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

std::string normal(const std::string& path)
{
    auto normalised = std::filesystem::path(path).lexically_normal().string();
    while (normalised.size() > 1 && normalised.ends_with('/')) {
        normalised.pop_back();
    }
    return normalised;
}

void check_conflicts(const Config& config, const std::vector<Service>& services,
                     std::vector<std::string>& problems)
{
    // By name and by checkout directory: a thousand services are not a million comparisons.
    std::map<std::string, std::vector<std::size_t>> by_name;
    std::map<std::string, std::vector<std::size_t>> by_checkout;
    for (std::size_t i = 0; i < services.size(); ++i) {
        const auto& b = services[i];
        auto& named = by_name[b.name];
        auto& placed = by_checkout[normal(b.checkout_dir())];
        for (const auto j : named) {
            const auto& a = services[j];
            problems.push_back(fmt::format("{}: service {} is defined twice for this host "
                                           "(machines {} and {}, first at {})",
                                           config.at(b.position), quote(b.name), quote(a.machine),
                                           quote(b.machine), config.at(a.position)));
        }
        for (const auto j : placed) {
            const auto& a = services[j];
            if (a.branch != b.branch || a.upstream != b.upstream) {
                problems.push_back(fmt::format(
                    "{}: checkout directory {} is shared with {} at {} but the branch or "
                    "upstream differs",
                    config.at(b.position), quote(b.checkout_dir()), a.label(),
                    config.at(a.position)));
            }
        }
        named.push_back(i);
        placed.push_back(i);
    }
}

// The path with its existing part resolved (symlinks included): two spellings of one target
// compare equal. Only for comparing; nothing is ever opened through it.
std::string resolved(const std::string& path)
{
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(path, ec);
    return normal(ec ? path : canonical.string());
}

// `path` is `dir` or lies below it.
bool within(const std::string& path, const std::string& dir)
{
    return path == dir || dir == "/" ||
           (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

struct Target {
    std::string path; // resolved
    const Link* link;
    const Service* service;
};

class TargetRules {
public:
    TargetRules(const Config& config, const std::vector<Service>& services,
                const std::string& state_dir, std::vector<std::string>& problems)
        : m_config(config), m_services(services),
          m_state_dir(state_dir.empty() ? "" : resolved(state_dir)), m_problems(problems)
    {
        for (const auto& service : services) {
            for (const auto& link : service.dirs) {
                m_targets.push_back({resolved(link.local), &link, &service});
            }
            // Once per service: the checks below compare every pair (a thousand services
            // would otherwise resolve a million paths).
            auto [base, added] = m_bases.try_emplace(service.mount);
            if (added) {
                base->second = resolved(service.mount);
            }
            m_checkouts.push_back(normal(base->second + "/" + service.name));
        }
    }

    void check()
    {
        for (const auto& service : m_services) {
            check_mount_base(service);
        }
        for (std::size_t i = 0; i < m_targets.size(); ++i) {
            check_target(m_targets[i], i);
        }
    }

private:
    void report(Position at, const std::string& what)
    {
        m_problems.push_back(fmt::format("{}: {}", m_config.at(at), what));
    }

    void check_mount_base(const Service& service)
    {
        const auto& base = m_bases.at(service.mount);
        const auto at = service.position_of("mount");
        if (!m_state_dir.empty() && base == m_state_dir && service.name.starts_with("gitopper-")) {
            report(service.position_of("service"),
                   fmt::format("service {} collides with the state directory's own entries "
                               "(gitopper-*) in {}; rename it or use another mount",
                               quote(service.name), service.mount));
        }
        check_checkout_place(service, base);
        for (const auto& target : m_targets) {
            if (within(base, target.path)) {
                report(at,
                       fmt::format("mount {} of {} lies inside local {} (at {}), which a "
                                   "mount covers",
                                   quote(service.mount), service.label(), quote(target.link->local),
                                   m_config.at(target.link->position)));
            }
        }
    }

    // A checkout is the user's: it may not be, hold or lie inside the state dir (root's), nor
    // may checkouts nest. The mount base may be the state dir itself (the default layout).
    void check_checkout_place(const Service& service, const std::string& base)
    {
        const auto checkout = normal(base + "/" + service.name);
        const auto at = service.position_of("mount");
        if (!m_state_dir.empty() &&
            (within(m_state_dir, checkout) || (within(base, m_state_dir) && base != m_state_dir))) {
            report(at, fmt::format("checkout {} of {} must not be, hold or lie inside the "
                                   "state directory {}",
                                   quote(checkout), service.label(), m_state_dir));
        }
        for (std::size_t i = 0; i < m_services.size(); ++i) {
            const auto& other = m_services[i];
            const auto& theirs = m_checkouts[i];
            if (&other != &service && theirs != checkout && within(base, theirs)) {
                report(at, fmt::format("mount {} of {} lies inside the checkout {} of {}",
                                       quote(service.mount), service.label(), quote(theirs),
                                       other.label()));
            }
        }
    }

    void check_target(const Target& target, std::size_t index)
    {
        const auto& local = target.link->local;
        const auto at = target.link->position;
        if (!m_state_dir.empty() &&
            (within(target.path, m_state_dir) || within(m_state_dir, target.path))) {
            report(at,
                   fmt::format("local {} must not be, hold or lie inside the state directory {}",
                               quote(local), m_state_dir));
        }
        for (const auto& service : m_services) {
            if (within(target.path, m_bases.at(service.mount))) {
                report(at, fmt::format("local {} lies inside the mount base {} of {}, where "
                                       "checkouts live",
                                       quote(local), service.mount, service.label()));
                break;
            }
        }
        for (std::size_t j = 0; j < m_targets.size(); ++j) {
            const auto& other = m_targets[j];
            if (j < index && other.path == target.path) {
                report(at, fmt::format("local {} is already a mount target at {}", quote(local),
                                       m_config.at(other.link->position)));
            } else if (j != index && other.path != target.path && within(target.path, other.path)) {
                report(at, fmt::format("local {} lies inside local {} (at {}), which is "
                                       "mounted over",
                                       quote(local), quote(other.link->local),
                                       m_config.at(other.link->position)));
            }
        }
    }

    const Config& m_config;
    const std::vector<Service>& m_services;
    std::string m_state_dir;
    std::vector<std::string>& m_problems;
    std::vector<Target> m_targets;
    std::map<std::string, std::string> m_bases; // mount as configured -> resolved
    std::vector<std::string> m_checkouts;       // per service, resolved
};

} // namespace

[[nodiscard]] Result<std::vector<Service>> services_for_host(const Config& config,
                                                             std::span<const std::string> hosts,
                                                             const std::string& state_dir)
{
    std::vector<Service> selected;
    for (const auto& service : config.services) {
        if (std::any_of(hosts.begin(), hosts.end(), [&](const std::string& host) {
                return equal_nocase(host, service.machine); // RFC 4343
            })) {
            selected.push_back(service);
        }
    }
    std::vector<std::string> problems;
    check_conflicts(config, selected, problems);
    TargetRules(config, selected, state_dir, problems).check();
    if (!problems.empty()) {
        return std::unexpected(Error{join(problems, "\n")});
    }
    return selected;
}

} // namespace gitopper
