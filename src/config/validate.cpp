// The rules of SPEC §1 that apply to the merged services: each field's own rule (fields.cpp)
// and what looks at several fields or several services.

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "config/config.hpp"
#include "config/fields.hpp"
#include "util/duration.hpp"
#include "util/endpoint.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

// The keys that decide what may be deployed: root's, and nobody else may change them.
std::optional<std::string> check_signers_file(const std::string& path)
{
    if (path.empty()) {
        return std::nullopt;
    }
    if (auto read = read_trusted_file(path, Trust::keys); !read) {
        return "allowed_signers: " + read.error().message;
    }
    return std::nullopt;
}

// The files a private upstream needs (git/transport.hpp): each one for its kind of URL, and
// root's: a key or token readable by others is refused, as ssh refuses such a key.
void check_access_files(const Service& service,
                        const std::function<void(Position, const std::string&)>& report)
{
    struct Rule {
        std::string_view field;
        std::string Service::*member;
        Trust trust;
        Endpoint::Kind kind;
    };
    static const std::array<Rule, 4> kRules{{
        {"ssh_key", &Service::ssh_key, Trust::secret, Endpoint::Kind::ssh},
        {"known_hosts", &Service::known_hosts, Trust::keys, Endpoint::Kind::ssh},
        {"token_file", &Service::token_file, Trust::secret, Endpoint::Kind::https},
        {"ca_file", &Service::ca_file, Trust::keys, Endpoint::Kind::https},
    }};
    const auto kind = endpoint_of(service.upstream).kind;
    for (const auto& rule : kRules) {
        const auto& path = service.*rule.member;
        if (path.empty()) {
            continue;
        }
        if (kind != rule.kind) {
            report(service.position_of(rule.field),
                   fmt::format("{} is for {} upstreams, and {} is not one", rule.field,
                               rule.kind == Endpoint::Kind::ssh ? "ssh:// or user@host:path"
                                                                : "https://",
                               quote(redact_credentials(service.upstream))));
        } else if (auto read = read_trusted_file(path, rule.trust); !read) {
            report(service.position_of(rule.field),
                   fmt::format("{}: {}", rule.field, read.error().message));
        }
    }
}

// One notify target: a URL or a command, and only what goes with it.
void check_notify(const NotifyTarget& target,
                  const std::function<void(Position, const std::string&)>& report)
{
    const auto at = target.position;
    if (target.url.empty() == target.exec.empty()) {
        report(at, "a notify entry needs either url or exec");
        return;
    }
    for (const auto& field : config_fields()) {
        const auto* member = std::get_if<std::string NotifyTarget::*>(&field.target);
        if (field.rule != nullptr && member != nullptr) {
            if (auto problem = field.rule(target.**member)) {
                report(at, "notify: " + *problem);
            }
        }
    }
    if (!target.exec.empty()) {
        for (const auto* field : {&target.format, &target.secret_file, &target.ca_file}) {
            if (!field->empty()) {
                report(at, "notify: format, secret_file and ca_file go with url, not exec");
                break;
            }
        }
        const bool dir = std::any_of(target.exec.begin(), target.exec.end(), [](const auto& w) {
            return w.find("{dir}") != std::string::npos;
        });
        if (dir) {
            report(at, "notify: exec runs as root and must not use {dir}, the tree the service's "
                       "user owns");
        }
        return;
    }
    if (!target.ca_file.empty() && !target.url.starts_with("https")) {
        report(at, "notify: ca_file is for an https:// url");
    }
    static const std::array<std::pair<std::string NotifyTarget::*, Trust>, 2> kFiles{
        {{&NotifyTarget::secret_file, Trust::secret}, {&NotifyTarget::ca_file, Trust::keys}}};
    for (const auto& [member, trust] : kFiles) {
        if (const auto& path = target.*member; !path.empty()) {
            if (auto read = read_trusted_file(path, trust); !read) {
                report(at, "notify: " + read.error().message);
            } else if (member == &NotifyTarget::secret_file && trim(*read).empty()) {
                report(at, fmt::format("notify: secret_file {} is empty", path));
            }
        }
    }
}

// `checked`: notify entries of [global] are every service's; each is checked once.
void check_service(const Config& config, const Service& service, std::vector<std::string>& out,
                   std::set<std::pair<long, long>>& checked)
{
    const auto report = [&](Position at, const std::string& what) {
        out.push_back(fmt::format("{}: {} in {}", config.at(at), what, service.label()));
    };
    const auto fields = config_fields();
    bool missing = false;
    for (const auto& field : fields) {
        const auto* member = std::get_if<std::string Service::*>(&field.target);
        if (field.required && member != nullptr && (service.**member).empty()) {
            report(service.position,
                   fmt::format("missing {} (set it here or in [global])", quote(field.name)));
            missing = true;
        }
    }
    if (missing) {
        return;
    }
    for (const auto& field : fields) {
        const auto* member = std::get_if<std::string Service::*>(&field.target);
        if (field.rule == nullptr || member == nullptr) {
            continue;
        }
        if (auto problem = field.rule(service.**member)) {
            report(service.position_of(field.name), *problem);
        }
    }
    if (auto problem = check_signers_file(service.allowed_signers)) {
        report(service.position_of("allowed_signers"), *problem);
    }
    check_access_files(service, report);
    const bool exec_in_tree =
        std::any_of(service.exec.begin(), service.exec.end(),
                    [](const auto& w) { return w.find("{dir}") != std::string::npos; });
    if (exec_in_tree && !service.user.empty()) {
        report(service.position_of("exec"),
               "exec runs as root and must not use {dir}, the tree the service's user owns "
               "(SPEC §11)");
    }
    if (!service.exec.empty() && !service.action.empty()) {
        report(service.position_of("exec"),
               "action and exec exclude each other: exec runs instead of systemctl");
    }
    for (const auto& target : service.notify) {
        if (checked.emplace(target.position.line, target.position.column).second) {
            check_notify(target, report);
        }
    }
    for (const auto& link : service.dirs) {
        for (const auto& field : fields) {
            const auto* member = std::get_if<std::string Link::*>(&field.target);
            if (field.rule == nullptr || member == nullptr) {
                continue;
            }
            if (auto problem = field.rule(link.**member)) {
                report(link.position, *problem);
            }
        }
        if (link.file && !link.mode.empty()) {
            report(link.position, fmt::format("mode {} applies to directories only; a file "
                                              "keeps git's mode",
                                              quote(link.mode)));
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

// `[global] status`: its own rules, and its token root's alone.
void check_status(const Config& config, std::vector<std::string>& out)
{
    if (!config.status) {
        return;
    }
    const auto& status = *config.status;
    const auto report = [&](const std::string& what) {
        out.push_back(fmt::format("{}: status: {}", config.at(status.position), what));
    };
    for (const auto& field : config_fields()) {
        const auto* member = std::get_if<std::string StatusTarget::*>(&field.target);
        if (field.rule != nullptr && member != nullptr) {
            if (auto problem = field.rule(status.**member)) {
                report(*problem);
            }
        }
    }
    if (status.api.empty()) {
        report(fmt::format("api is required for forge {}", quote(status.forge)));
    }
    if (!status.ca_file.empty()) {
        if (auto read = read_trusted_file(status.ca_file, Trust::keys); !read) {
            report("ca_file: " + read.error().message);
        }
    }
    if (auto read = read_trusted_file(status.token_file, Trust::secret); !read) {
        report("token_file: " + read.error().message);
    } else if (trim(*read).empty()) {
        report(fmt::format("token_file {} is empty", status.token_file));
    }
}

// `[global] rollout`: the fields that go together, the files root's, a password never in clear
// beyond this host.
void check_rollout(const Config& config, std::vector<std::string>& out)
{
    if (!config.rollout) {
        for (const auto& service : config.services) {
            if (service.max_parallel > 0) {
                out.push_back(fmt::format("{}: max_parallel of {} needs [global] rollout",
                                          config.at(service.position_of("max_parallel")),
                                          service.label()));
            }
        }
        return;
    }
    const auto& rollout = *config.rollout;
    const auto report = [&](const std::string& what) {
        out.push_back(fmt::format("{}: rollout: {}", config.at(rollout.position), what));
    };
    if (auto problem = find_field(Scope::rollout, "prefix")->rule(rollout.prefix)) {
        report(*problem);
    }
    if (rollout.etcd.empty()) {
        report("etcd lists no member");
    }
    if (rollout.timeout * 3 > rollout.lease_ttl) {
        report(fmt::format("timeout {} is more than a third of lease_ttl {}: one silent member "
                           "could let the lease lapse while the next is tried",
                           format_duration(rollout.timeout), format_duration(rollout.lease_ttl)));
    }
    if (rollout.cert_file.empty() != rollout.key_file.empty()) {
        report("cert_file and key_file go together");
    }
    if (rollout.user.empty() != rollout.password_file.empty()) {
        report("user and password_file go together");
    }
    if (!rollout.user.empty()) {
        for (const auto& member : rollout.etcd) {
            auto url = parse_http_url(member);
            if (url && !url->tls && !url->loopback()) {
                report(fmt::format("etcd member {} must be https:// to be sent a password (http:// "
                                   "only to this host)",
                                   url->origin()));
            }
        }
    }
    struct File {
        std::string_view name;
        const std::string& path;
        Trust trust;
    };
    const std::array<File, 4> files{{
        {"ca_file", rollout.ca_file, Trust::keys},
        {"cert_file", rollout.cert_file, Trust::keys},
        {"key_file", rollout.key_file, Trust::secret},
        {"password_file", rollout.password_file, Trust::secret},
    }};
    for (const auto& file : files) {
        if (file.path.empty()) {
            continue;
        }
        if (auto read = read_trusted_file(file.path, file.trust); !read) {
            report(fmt::format("{}: {}", file.name, read.error().message));
        } else if (file.trust == Trust::secret && trim(*read).empty()) {
            report(fmt::format("{} {} is empty", file.name, file.path));
        }
    }
}

std::vector<std::string> validate(const Config& config)
{
    std::vector<std::string> problems;
    check_status(config, problems);
    check_rollout(config, problems);
    std::set<std::pair<long, long>> checked;
    for (const auto& service : config.services) {
        check_service(config, service, problems, checked);
    }
    if (problems.empty()) {
        check_duplicates(config, problems);
    }
    return problems;
}

} // namespace gitopper
