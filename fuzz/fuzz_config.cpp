// The config loader (toml++, merge with [global], SPEC §1 validation) on arbitrary text.
// A config it accepts must be safe to act on: every service names a machine, a valid service,
// an upstream and an absolute mount, its checkout stays inside the mount and its links stay
// inside the checkout. A config it refuses must say why, with the file and position.

#include <filesystem>
#include <string>

#include "check.hpp"
#include "config/config.hpp"

using namespace gitopper;
using fuzz::check;

namespace {

constexpr auto kPath = "fuzz.toml";

bool starts_with_dot_dot(const std::filesystem::path& path)
{
    return !path.empty() && *path.begin() == "..";
}

void check_refused(const Error& error)
{
    check(!error.message.empty(), "a refused config says why");
    std::string_view rest = error.message;
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        const auto line = rest.substr(0, end);
        check(line.starts_with(std::string(kPath) + ":"), "every problem starts with file:line");
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
}

void check_service(const Service& service)
{
    check(!service.name.empty() && !service.machine.empty() && !service.upstream.empty(),
          "service, machine and upstream are set");
    check(service.mount.starts_with('/'), "mount is absolute");
    check(service.name.find('/') == std::string::npos && service.name != "." &&
              service.name != "..",
          "the service name is one path component");
    check(!service.branch.empty() && !service.branch.starts_with('-'),
          "the branch is not a git option");
    check(!service.upstream.starts_with('-'), "the upstream is not a git option");
    for (const auto& link : service.dirs) {
        check(link.local.starts_with('/'), "local is absolute");
        const auto inside = std::filesystem::path(link.path).lexically_normal();
        check(!link.path.empty() && !link.path.starts_with('/') && !starts_with_dot_dot(inside),
              "link stays inside the checkout");
        check(inside.empty() || *inside.begin() != ".git", "link does not point into .git");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const auto config = parse_config(fuzz::text_of(data, size), kPath);
    if (!config) {
        check_refused(config.error());
        return 0;
    }
    for (const auto& service : config->services) {
        check_service(service);
    }
    check(validate(*config).empty(), "an accepted config validates again");
    if (!config->services.empty()) {
        const std::string host = config->services.front().machine;
        const auto mine = services_for_host(*config, std::span(&host, 1), "");
        check(mine ? !mine->empty() : !mine.error().message.empty(),
              "the first service's machine runs something, or the conflict is explained");
    }
    return 0;
}
