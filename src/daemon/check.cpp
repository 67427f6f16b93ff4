// gitopper --check: what this host would run, without touching anything.

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "config/config.hpp"
#include "daemon/options.hpp"
#include "server/keys.hpp"
#include "util/strings.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

void print_service(const Config& config, const Service& service)
{
    fmt::print("\n{}\n", service.name);
    const auto row = [](std::string_view name, std::string_view value) {
        if (!value.empty()) {
            fmt::print("  {:<9} {}\n", name, value);
        }
    };
    row("machine", service.machine);
    row("branch", service.branch);
    row("upstream", redact_credentials(service.upstream));
    row("checkout", service.checkout_dir());
    row("user", service.user.empty() ? "root" : service.user);
    row("package", service.package);
    row("action", service.action.empty() ? "(none)" : service.action);
    for (const auto& link : service.dirs) {
        row("mount", fmt::format("{} <- {}{}", link.local, link.path, link.file ? " (file)" : ""));
    }
    if (!service.user.empty() && !lookup_user(service.user)) {
        fmt::print(stderr,
                   "{}: warning: user {} does not exist (yet); {} will fail until it does\n",
                   config.at(service.position_of("user")), quote(service.user), service.name);
    }
}

} // namespace

int run_check(const Options& options)
{
    auto config = load_config(options.config);
    if (!config) {
        fmt::print(stderr, "{}\n", redact_credentials(config.error().message));
        return 1;
    }
    auto services = services_for_host(*config, options.hosts, options.state_dir);
    if (!services) {
        fmt::print(stderr, "{}\n", redact_credentials(services.error().message));
        return 1;
    }
    for (const auto& warning : secret_file_warnings(*config)) {
        fmt::print(stderr, "{}\n", warning);
    }
    auto keys = load_authorized_keys(*config);
    if (!keys) {
        fmt::print(stderr, "{}\n", keys.error().message);
        return 1;
    }
    fmt::print("{}: ok; {} of {} services for this host (acting as {})\n", options.config,
               services->size(), config->services.size(), join(options.hosts, ", "));
    const auto read_only = std::count_if(keys->begin(), keys->end(),
                                         [](const AuthorizedKey& k) { return k.read_only; });
    fmt::print("control API: {} key{} ({} read-only){}\n", keys->size(),
               keys->size() == 1 ? "" : "s", read_only,
               keys->empty() ? "; not started without keys" : "");
    for (const auto& service : *services) {
        print_service(*config, service);
    }
    return 0;
}

} // namespace gitopper
