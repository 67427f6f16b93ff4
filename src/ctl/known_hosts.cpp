#include "ctl/known_hosts.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace gitopper::ctl {
namespace {

bool names_host(std::string_view hosts, std::string_view name)
{
    const auto names = split(hosts, ',');
    return std::find(names.begin(), names.end(), name) != names.end();
}

} // namespace

std::string known_hosts_name(std::string_view host, int port)
{
    return port == 22 ? std::string(host) : fmt::format("[{}]:{}", host, port);
}

std::vector<std::size_t> known_hosts_lines(std::string_view text, std::string_view name,
                                           std::string_view key_type)
{
    std::vector<std::size_t> found;
    std::size_t number = 0;
    for (const auto& line : split(text, '\n')) {
        ++number;
        const auto f = split_blanks(line);
        // Comments and marker lines (@cert-authority, @revoked) are never the stale entry.
        if (f.size() < 3 || f[0].starts_with('#') || f[0].starts_with('@')) {
            continue;
        }
        if (names_host(f[0], name) && (key_type.empty() || f[1] == key_type)) {
            found.push_back(number);
        }
    }
    return found;
}

} // namespace gitopper::ctl
