// Which services this host runs, and the conflicts that only exist on one host: with -h
// aliases a host can be several machines at once.

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <fmt/format.h>

#include "config/config.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// Host names compare case-insensitively (RFC 4343).
bool same_host(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

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
    for (std::size_t i = 0; i < services.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            const auto& a = services[j];
            const auto& b = services[i];
            if (a.service == b.service) {
                problems.push_back(fmt::format("{}: service {} is defined twice for this host "
                                               "(machines {} and {}, first at {})",
                                               config.at(b.position), quote(b.service),
                                               quote(a.machine), quote(b.machine),
                                               config.at(a.position)));
            }
            if (normal(a.checkout_dir()) == normal(b.checkout_dir()) &&
                (a.branch != b.branch || a.upstream != b.upstream)) {
                problems.push_back(fmt::format(
                    "{}: checkout directory {} is shared with {} at {} but the branch or "
                    "upstream differs",
                    config.at(b.position), quote(b.checkout_dir()), a.label(),
                    config.at(a.position)));
            }
        }
    }
}

void check_targets(const Config& config, const std::vector<Service>& services,
                   std::vector<std::string>& problems)
{
    std::vector<std::pair<std::string, const Link*>> seen;
    for (const auto& service : services) {
        for (const auto& link : service.dirs) {
            const auto target = normal(link.local);
            const auto earlier = std::find_if(seen.begin(), seen.end(),
                                              [&](const auto& s) { return s.first == target; });
            if (earlier != seen.end()) {
                problems.push_back(fmt::format("{}: local {} is already a mount target at {}",
                                               config.at(link.position), quote(link.local),
                                               config.at(earlier->second->position)));
            }
            seen.emplace_back(target, &link);
        }
    }
}

} // namespace

Result<std::vector<Service>> services_for_host(const Config& config,
                                               std::span<const std::string> hosts)
{
    std::vector<Service> selected;
    for (const auto& service : config.services) {
        if (std::any_of(hosts.begin(), hosts.end(), [&](const std::string& host) {
                return same_host(host, service.machine);
            })) {
            selected.push_back(service);
        }
    }
    std::vector<std::string> problems;
    check_conflicts(config, selected, problems);
    check_targets(config, selected, problems);
    if (!problems.empty()) {
        return std::unexpected(Error{join(problems, "\n")});
    }
    return selected;
}

} // namespace gitopper
