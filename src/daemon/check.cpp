// gitopper --check: what this host would run, without touching anything.

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "config/config.hpp"
#include "config/fields.hpp"
#include "daemon/options.hpp"
#include "notify/deliver.hpp"
#include "server/keys.hpp"
#include "util/duration.hpp"
#include "util/strings.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

// Every service field of the table, with what an unset one means; the tree and the mounts.
void print_service(const Config& config, const Service& service)
{
    fmt::print("\n{}\n", service.name);
    const auto row = [](std::string_view name, std::string_view value) {
        fmt::print("  {:<13} {}\n", name, value);
    };
    for (const auto& field : config_fields()) {
        const auto text = field_text(service, field);
        if (field.scope != Scope::service || !text || field.name == "service") {
            continue;
        }
        row(field.name, text->empty()
                            ? fmt::format("({})", field.unset.empty() ? "unset" : field.unset)
                            : redact_credentials(*text));
    }
    row("checkout", service.checkout_dir());
    for (const auto& link : service.dirs) {
        row("dirs", fmt::format("{} <- {}{}{}", link.local, link.path, link.file ? " (file)" : "",
                                link.mode.empty() ? "" : " mode " + link.mode));
    }
    for (const auto& target : service.notify) {
        row("notify", target.describe());
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
    // With -U, the checkout's config as it is now (--check fetches nothing).
    const auto path = config_file(options);
    auto config = load_config(path);
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
    fmt::print("{}: ok; {} of {} services for this host (acting as {})\n", path, services->size(),
               config->services.size(), join(options.hosts, ", "));
    const auto read_only = std::count_if(keys->begin(), keys->end(),
                                         [](const AuthorizedKey& k) { return k.read_only; });
    fmt::print("control API: {} key{} ({} read-only){}\n", keys->size(),
               keys->size() == 1 ? "" : "s", read_only,
               keys->empty() ? "; not started without keys" : "");
    if (const auto& status = config->status) {
        fmt::print("commit status: {} at {}, repository {}, token from {}\n", status->forge,
                   status->api,
                   status->repository.empty() ? "from each upstream's URL" : status->repository,
                   status->token_file);
        for (const auto& service : *services) {
            const auto repository =
                status->repository.empty() ? repository_path(service.upstream) : status->repository;
            if (!forge_repository(repository)) {
                fmt::print(stderr,
                           "{}: warning: {} gets no commit statuses: its upstream names no "
                           "repository the forge would take; set repository in status\n",
                           config->at(service.position_of("upstream")), service.name);
            }
        }
    }
    if (const auto& rollout = config->rollout) {
        fmt::print("fleet rollout: etcd at {}; at most {} host{} at once, keys under {}, lease "
                   "{}{}{}\n",
                   join(std::vector<std::string>(rollout->etcd.begin(), rollout->etcd.end()), ", "),
                   rollout->max_parallel, rollout->max_parallel == 1 ? "" : "s", rollout->prefix,
                   format_duration(rollout->lease_ttl),
                   rollout->user.empty() ? "" : ", as etcd user " + quote(rollout->user),
                   rollout->cert_file.empty() ? "" : ", client certificate " + rollout->cert_file);
    }
    for (const auto& service : *services) {
        print_service(*config, service);
    }
    return 0;
}

} // namespace gitopper
