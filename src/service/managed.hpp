#pragma once
// One service of this host: its checkout, mounts and systemd unit, its state, its history.
// The poll thread of its group is the only one that calls the non-const members; status()
// and history() may be called from any thread.

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "git/git.hpp"
#include "host/mount.hpp"
#include "host/package.hpp"
#include "host/systemd.hpp"
#include "service/patches.hpp"
#include "service/state.hpp"
#include "service/store.hpp"
#include "util/atomic_file.hpp"
#include "util/safe_path.hpp"

namespace gitopper {

enum class Trigger { start, poll, pull, webhook, drift, rollback, unfreeze };
std::string_view trigger_name(Trigger trigger);

// What an operator request carried out by the poll thread ended in: status 0 (done), or an
// HTTP-like code (404, 409, 500) and why.
struct Completion {
    int status = 0;
    std::string message;
};

// What the API and the metrics see of a service.
struct Status {
    std::string service;
    std::string branch;
    State state = State::ok;
    std::string info;
    std::string hash;                             // deployed commit
    std::string upstream;                         // last seen remote head
    std::chrono::system_clock::time_point change; // last change of state or hash
    std::chrono::system_clock::time_point synced; // last reconcile that ended well
    std::uint64_t drift_events = 0;               // local edits reverted
    std::uint64_t actions_ok = 0;                 // systemctl daemon-reload/<action> runs
    std::uint64_t actions_failed = 0;
};

// The machine-wide things a service uses; one instance shared by all services.
struct HostTools {
    ServiceManager& systemd;
    std::optional<PackageManager> packages;
    std::string state_dir;
    StateStore& store;
    std::chrono::milliseconds git_timeout = std::chrono::minutes(2);
};

class ManagedService {
public:
    ManagedService(Service config, HostTools& host, SavedService saved);

    // Start-up, SPEC §2.1: package, checkout, mounts, systemctl start, restore a pin.
    // Failures become the state; start() is retried by later reconciles.
    void start();
    // One reconcile against the head the poll group saw upstream (or why it saw none).
    void reconcile(const Result<std::string>& remote_head, Trigger trigger);
    // Inotify (or the periodic scan) saw something under the checkout: save local edits,
    // revert them, act. Edits whose patch cannot be saved whole stay as they are: BROKEN
    // ("drift kept: could not save patch: ..."), until a later check saves them.
    void check_drift();
    // Local edits are waiting to be saved: look again soon, inotify or not.
    bool drift_kept() const { return m_drift_kept; }

    void freeze();
    void unfreeze();
    // To a commit of the tracked branch's history, or with `force` any fetched commit. A
    // commit that is neither is refused (404) and nothing changes.
    Completion rollback(const std::string& hash, bool force);

    Status status() const;
    std::deque<HistoryEntry> history() const;
    const Service& config() const { return m_config; }
    bool ready() const { return m_ready; }

private:
    struct Failure {
        Event event;
        std::string message;
    };
    using Outcome = std::expected<void, Failure>;
    struct Reverted {
        std::string files; // for logs and history: "a/x.conf, a/y.conf"
        std::string saved_as;
    };
    using Taken = std::expected<std::optional<Reverted>, Failure>;

    // What prepare_checkout found in the checkout's place.
    struct Found {
        enum class Kind { nothing, ours, unusable, refused } kind;
        std::string why; // unusable: moved aside and cloned anew; refused: left, BROKEN
    };

    Outcome prepare();
    Outcome prepare_checkout();
    Found inspect_checkout(int base, DirTrust trust) const;
    Outcome replace_checkout(const std::string& why);
    Outcome reuse_checkout(std::string head);
    static std::unexpected<Failure> host_failure(std::string message)
    {
        return std::unexpected(Failure{Event::host_failed, std::move(message)});
    }
    static std::unexpected<Failure> git_failure(const Error& error)
    {
        return std::unexpected(Failure{Event::git_failed, error.message});
    }
    Outcome clone_fresh();
    Outcome switch_upstream(const std::string& from);
    Result<> vet(const Git& git, const std::string& commit, bool& refused) const;
    Result<> restrict_checkout(int base) const;
    Result<> make_checkout_dir(int base, const std::string& name) const;
    Outcome mount_all();
    Outcome restore_pin();
    Completion check_rollback_target(const std::string& hash, bool force, std::string& full);
    void retry_at_head();
    Outcome deploy(const std::string& commit, Trigger trigger, bool force_action);
    Outcome act(); // systemctl daemon-reload, then the action
    Outcome act_if_owed();
    void mark_applied(const std::string& commit);
    Taken take_drift();
    std::expected<bool, Failure> take_drift_before(const std::string& commit, Trigger trigger);
    std::string note_reverted(const Result<Git::Changes>& changes, const std::string& saved_as);
    Result<AtomicFile> new_patch_file() const;

    bool wants_attempt(const std::string& head, Trigger trigger) const;
    void finish(const Outcome& outcome, const std::string& success_info = "");
    void record(Event event, const std::string& info);
    void add_history(const std::string& from, const std::string& to, Trigger trigger,
                     const std::string& result);
    void persist();
    State state() const;

    Service m_config;
    HostTools& m_host;
    PatchDir m_patches; // drift patches under the state dir, bounded
    std::optional<Credentials> m_user;
    std::optional<Git> m_git;
    bool m_package_done = false;
    bool m_ready = false;      // checkout, mounts and first start done
    bool m_cloned = false;     // start() made a fresh clone: no local edits to look for
    bool m_drift_kept = false; // local edits found whose patch could not be saved
    std::string m_failed_head; // upstream head at which we last broke (retry when it moves)
    std::map<std::string, FileId> m_mounted; // local -> what our mount there showed last

    mutable std::mutex m_mutex; // guards the members below
    Status m_status;
    SavedService m_saved;
};

} // namespace gitopper
