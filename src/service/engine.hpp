#pragma once
// All services of this host: builds them from the config, groups them by object store (mount
// base, upstream, user) into poll groups, restores their saved state, and is the control interface
// the API uses (freeze, unfreeze, pull, rollback, status, history). Arguments are validated here,
// before anything is queued.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "api/control.hpp"
#include "config/config.hpp"
#include "service/managed.hpp"
#include "service/poller.hpp"
#include "service/store.hpp"
#include "util/duration.hpp"

namespace gitopper {

struct EngineOptions {
    Duration interval = std::chrono::minutes(5);
    Duration git_timeout = std::chrono::minutes(2); // per git command
    std::string state_dir;
    std::string os_release = "/etc/os-release";
    bool all_services = true;     // false for the bootstrap checkout's own engine (bring_up_now)
    Notifier* notifier = nullptr; // where the services' events go (outlives the engine)
    Rollout* rollout = nullptr;   // the fleet's slots (outlives the engine); nullptr: none
};

class Engine final : public Control {
public:
    Engine(std::vector<Service> services, EngineOptions options, ServiceManager& systemd);
    ~Engine() override;

    void start();
    void stop();
    // For the bootstrap checkout, before there is a config (SPEC §9): every service brought
    // up on this thread instead of the poll threads: its start-up steps, then with `pull` a
    // fetch and deploy of its branch head. An error when one has no live tree; a failed pull
    // of one that has is a warning, and it goes on from that tree.
    [[nodiscard]] Result<> bring_up_now(bool pull);

    [[nodiscard]] Result<> freeze(const std::string& service, const FreezeOrder& order) override;
    [[nodiscard]] Result<> unfreeze(const std::string& service) override;
    [[nodiscard]] Result<> pull(const std::string& service) override;
    Completion rollback(const std::string& service, const std::string& hash, bool force) override;
    Completion diff(const std::string& service) override;
    Completion release(const std::string& service, const std::string& commit) override;
    // The rollout's word that a slot of `service` was freed or its marks changed ("": of any):
    // the services in its lines look again. Thread-safe.
    void rollout_changed(const std::string& service);
    // Wakes every service that tracks `branch` of one of `repositories` (normalised URLs,
    // see normalize_repository_url); returns how many.
    std::size_t wake(const std::vector<std::string>& repositories, const std::string& branch);

    // Poll threads past their deadline (see Progress): the watchdog's question. Thread-safe.
    struct Stuck {
        std::string upstream; // without credentials
        std::chrono::milliseconds late;
    };
    std::vector<Stuck> stuck() const;

    std::vector<Status> statuses() const override;
    [[nodiscard]] Result<std::deque<HistoryEntry>>
    history(const std::string& service) const override;

private:
    struct Where {
        PollGroup* group;
        std::size_t index;
        ManagedService* service;
    };
    [[nodiscard]] Result<Where> find(const std::string& service) const;
    // Validated and handed to the service's poll thread.
    [[nodiscard]] Result<> queue(const std::string& service, Request::Kind kind,
                                 const std::string& hash = "");
    // Queued for the service's poll thread, whose answer it waits for (at most 25 s).
    Completion ask(const std::string& service, Request request);

    EngineOptions m_options;
    StateStore m_store;
    HostTools m_host;
    std::vector<std::unique_ptr<Store>> m_stores;
    std::vector<std::unique_ptr<ManagedService>> m_services;
    std::vector<std::unique_ptr<PollGroup>> m_groups;
};

} // namespace gitopper
