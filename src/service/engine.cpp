#include "service/engine.hpp"

#include <fcntl.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "git/git.hpp"
#include "host/mount.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// A poll thread owes progress within the timeout of the child it waits for, or a sleep, plus
// this: room for its own work between children on a loaded host. Past it, the watchdog
// pings stop (SPEC §10).
std::chrono::milliseconds step_slack(Duration git_timeout)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(git_timeout) +
           std::chrono::seconds(10);
}

std::optional<PackageManager> detect_packages(const std::string& os_release)
{
    auto text = read_file(os_release);
    auto manager = text ? package_manager_for(*text) : std::nullopt;
    if (!manager) {
        log::warn("cannot tell the package manager from {}: packages will not be installed",
                  os_release);
    }
    return manager;
}

// Root's secret for the object stores' names (see Store::name_for), made once in the state
// dir; a new one (the state dir was wiped) only gives the stores new names, cloned anew.
std::string store_key(const std::string& state_dir)
{
    constexpr auto kName = "gitopper-store-key";
    auto dir = open_no_symlinks(state_dir, O_PATH | O_DIRECTORY);
    if (dir) {
        if (auto text = read_beneath(dir->get(), kName, 256); text && text->size() == 64) {
            return *text;
        }
    }
    std::array<unsigned char, 32> random{};
    std::string key;
    if (::getrandom(random.data(), random.size(), 0) == static_cast<ssize_t>(random.size())) {
        for (const auto byte : random) {
            key += fmt::format("{:02x}", byte);
        }
    }
    auto written = dir && key.size() == 64
                       ? write_file_atomic_at(dir->get(), kName, key, 0600, state_dir + "/" + kName)
                       : Result<>(fail("no state directory or no randomness"));
    if (!written) {
        log::warn("cannot keep the object stores' key ({}): their names change at the next start",
                  written.error().message);
    }
    return key;
}

} // namespace

Engine::Engine(std::vector<Service> services, EngineOptions options, ServiceManager& systemd)
    : m_options(std::move(options)),
      m_store(m_options.state_dir), m_host{systemd, std::nullopt, m_options.state_dir, m_store}
{
    m_host.git_timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(m_options.git_timeout);
    m_host.notifier = m_options.notifier;
    m_host.rollout = m_options.rollout;
    if (std::any_of(services.begin(), services.end(),
                    [](const Service& s) { return !s.package.empty(); })) {
        m_host.packages = detect_packages(m_options.os_release);
    }
    std::set<std::string> names;
    for (const auto& service : services) {
        names.insert(service.name);
    }
    auto saved = m_store.load(names, m_options.all_services);
    const auto key = store_key(m_options.state_dir);
    // One object store, and one poll group, per (mount base, upstream, user, what reaches
    // the upstream).
    using GroupKey = std::tuple<std::string, std::string, std::string, std::string>;
    std::map<GroupKey, std::size_t> group_of;
    std::vector<std::vector<ManagedService*>> members;
    for (auto& service : services) {
        // "/srv/g/" and "/srv/g" are one mount base, with one store there.
        service.mount = std::filesystem::path(service.mount).lexically_normal().string();
        while (service.mount.size() > 1 && service.mount.ends_with('/')) {
            service.mount.pop_back();
        }
        auto access = std::make_shared<const Access>(Access{
            .ssh_key = service.ssh_key,
            .known_hosts = service.known_hosts,
            .tofu_file = m_options.state_dir + "/known_hosts",
            .token_file = service.token_file,
            .ca_file = service.ca_file,
        });
        const std::array<std::string, 4> files{access->ssh_key, access->known_hosts,
                                               access->token_file, access->ca_file};
        // Empty for a public upstream, whose store keeps the name it always had.
        const bool is_public =
            std::all_of(files.begin(), files.end(), [](const std::string& f) { return f.empty(); });
        const auto reach = is_public ? std::string() : join(files, std::string_view("\0", 1));
        auto [it, added] = group_of.try_emplace(
            GroupKey{service.mount, service.upstream, service.user, reach}, m_stores.size());
        if (added) {
            const auto dir = Layout(service.mount, service.name).stores() + "/" +
                             Store::name_for(service.upstream, service.user + reach, key);
            m_stores.push_back(std::make_unique<Store>(dir, service.upstream, m_host.git_timeout,
                                                       std::move(access)));
            members.emplace_back();
        }
        auto name = service.name;
        m_services.push_back(std::make_unique<ManagedService>(std::move(service), m_host,
                                                              *m_stores[it->second], saved[name]));
        members[it->second].push_back(m_services.back().get());
    }
    for (std::size_t i = 0; i < members.size(); ++i) {
        m_groups.push_back(std::make_unique<PollGroup>(*m_stores[i], std::move(members[i]),
                                                       m_options.interval,
                                                       step_slack(m_options.git_timeout)));
    }
}

Engine::~Engine()
{
    stop();
}

void Engine::start()
{
    log::info("tracking {} service{} in {} poll group{}, polling every {}", m_services.size(),
              m_services.size() == 1 ? "" : "s", m_groups.size(), m_groups.size() == 1 ? "" : "s",
              format_duration(m_options.interval));
    if (!mount_beneath_supported()) {
        log::warn("this kernel has no MOVE_MOUNT_BENEATH (Linux 6.5): deploys update the live "
                  "trees in place, atomic per file but not for a whole directory");
    }
    for (auto& group : m_groups) {
        group->start();
    }
}

Result<> Engine::bring_up_now(bool pull)
{
    for (std::size_t i = 0; i < m_groups.size(); ++i) {
        for (auto* service : m_groups[i]->services()) {
            service->open();
            service->start();
            const auto& config = service->config();
            if (pull && service->ready()) {
                auto heads = m_stores[i]->fetch_heads({config.branch});
                Result<std::string> head = std::unexpected(Error{"no such branch upstream"});
                if (!heads) {
                    head = std::unexpected(heads.error());
                } else if (auto it = heads->find(config.branch); it != heads->end()) {
                    head = it->second;
                }
                service->reconcile(head, Trigger::pull);
            }
            const auto status = service->status();
            if (!service->ready() || status.hash.empty()) {
                return fail("[{}] no checkout of {}: {}", config.name,
                            redact_credentials(config.upstream), status.info);
            }
            if (status.state != State::ok) {
                log::warn("[{}] {}; going on from the checkout at {}", config.name, status.info,
                          status.hash.substr(0, 8));
            }
        }
    }
    return {};
}

void Engine::stop()
{
    for (auto& group : m_groups) {
        group->stop();
    }
}

Result<Engine::Where> Engine::find(const std::string& service) const
{
    for (const auto& group : m_groups) {
        const auto& members = group->services();
        for (std::size_t i = 0; i < members.size(); ++i) {
            if (members[i]->config().name == service) {
                return Where{group.get(), i, members[i]};
            }
        }
    }
    return fail("service {} not found", quote(service));
}

Result<> Engine::queue(const std::string& service, Request::Kind kind, const std::string& hash)
{
    auto where = find(service);
    if (!where) {
        return std::unexpected(where.error());
    }
    where->group->request({kind, where->index, hash});
    return {};
}

Result<> Engine::freeze(const std::string& service, const FreezeOrder& order)
{
    auto where = find(service);
    if (!where) {
        return std::unexpected(where.error());
    }
    Request request{Request::Kind::freeze, where->index};
    request.freeze = order;
    where->group->request(std::move(request));
    return {};
}

Result<> Engine::unfreeze(const std::string& service)
{
    return queue(service, Request::Kind::unfreeze);
}

Result<> Engine::pull(const std::string& service)
{
    log::debug("pull of {} requested", quote(service)); // bench/run times from here
    return queue(service, Request::Kind::pull);
}

Completion Engine::rollback(const std::string& service, const std::string& hash, bool force)
{
    if (!is_commit_hash(hash)) {
        return {406,
                fmt::format("{} is not a commit hash (4 to 40 hexadecimal digits)", quote(hash))};
    }
    return ask(service, Request{Request::Kind::rollback, 0, hash, force});
}

Completion Engine::diff(const std::string& service)
{
    return ask(service, Request{Request::Kind::diff, 0});
}

Completion Engine::release(const std::string& service, const std::string& commit)
{
    if (m_options.rollout == nullptr) {
        return {409, "no fleet rollout: the config has no [global] rollout"};
    }
    auto released = m_options.rollout->release(service, commit);
    if (!released) {
        return {503, released.error().message};
    }
    if (released->empty()) {
        return {404,
                fmt::format("no commit of {} starting with {} is marked bad", service, commit)};
    }
    if (released->size() > 1) {
        return {409, fmt::format("{} commits of {} marked bad start with {}: give more of the hash",
                                 released->size(), service, commit)};
    }
    return {};
}

void Engine::rollout_changed(const std::string& service)
{
    for (const auto& group : m_groups) {
        const auto& services = group->services();
        for (std::size_t id = 0; id < services.size(); ++id) {
            const auto& config = services[id]->config();
            if (!service.empty() && config.name != service) {
                continue;
            }
            const auto now = services[id]->status();
            if (now.waiting_for_slot || now.held) {
                group->request({Request::Kind::rollout, id});
            }
        }
    }
}

Completion Engine::ask(const std::string& service, Request request)
{
    // Within the SSH session's 30 s; a slow fetch may take longer, and the request goes on.
    constexpr auto kWait = std::chrono::seconds(25);
    auto where = find(service);
    if (!where) {
        return {404, where.error().message};
    }
    auto done = std::make_shared<std::promise<Completion>>();
    auto answer = done->get_future();
    request.service = where->index;
    request.done = done;
    const auto what = request.kind == Request::Kind::rollback ? "rollback" : "diff";
    where->group->request(std::move(request));
    if (answer.wait_for(kWait) != std::future_status::ready) {
        return {500, fmt::format("{} of {} still running after {}s; see /list/service", what,
                                 quote(service), kWait.count())};
    }
    try {
        return answer.get();
    } catch (const std::future_error&) {
        return {500, "shutting down"}; // the poll thread ended before it got to it
    }
}

std::size_t Engine::wake(const std::vector<std::string>& repositories, const std::string& branch)
{
    std::size_t woken = 0;
    for (const auto& group : m_groups) {
        const auto upstream = normalize_repository_url(group->upstream());
        if (std::find(repositories.begin(), repositories.end(), upstream) == repositories.end()) {
            continue;
        }
        // A group holds the services of one upstream on any branches: those of this one count.
        const auto& services = group->services();
        const auto on_branch = std::count_if(services.begin(), services.end(),
                                             [&](auto* s) { return s->config().branch == branch; });
        if (on_branch > 0) {
            group->request({Request::Kind::webhook, 0, ""});
            woken += static_cast<std::size_t>(on_branch);
        }
    }
    return woken;
}

std::vector<Engine::Stuck> Engine::stuck() const
{
    std::vector<Stuck> stuck;
    for (const auto& group : m_groups) {
        if (const auto late = group->late(); late.count() > 0) {
            stuck.push_back({public_url(group->upstream()), late});
        }
    }
    return stuck;
}

std::vector<Status> Engine::statuses() const
{
    std::vector<Status> all;
    for (const auto& service : m_services) {
        all.push_back(service->status());
    }
    return all;
}

Result<std::deque<HistoryEntry>> Engine::history(const std::string& service) const
{
    auto where = find(service);
    if (!where) {
        return std::unexpected(where.error());
    }
    return where->service->history();
}

} // namespace gitopper
