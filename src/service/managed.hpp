#pragma once
// One service of this host: its checkout, mounts and systemd unit, its state, its history.
// The poll thread of its group is the only one that calls the non-const members; status()
// and history() may be called from any thread.

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "api/control.hpp"
#include "api/state.hpp"
#include "config/config.hpp"
#include "fleet/rollout.hpp"
#include "git/git.hpp"
#include "git/store.hpp"
#include "host/mount.hpp"
#include "host/package.hpp"
#include "host/systemd.hpp"
#include "notify/notice.hpp"
#include "notify/notifier.hpp"
#include "service/layout.hpp"
#include "service/patches.hpp"
#include "service/store.hpp"
#include "util/atomic_file.hpp"
#include "util/safe_path.hpp"
#include "util/window.hpp"

namespace gitopper {

// `health`: the automatic rollback after a failed health check.
enum class Trigger { start, poll, pull, webhook, drift, rollback, freeze, unfreeze, health };
std::string_view trigger_name(Trigger trigger);

// The machine-wide things a service uses; one instance shared by all services.
struct HostTools {
    ServiceManager& systemd;
    std::optional<PackageManager> packages;
    std::string state_dir;
    StateStore& store;
    std::chrono::milliseconds git_timeout = std::chrono::minutes(2);
    Notifier* notifier = nullptr; // where events go; nullptr: nowhere
    Rollout* rollout = nullptr;   // the fleet's slots (fleet/); nullptr: this host acts alone
};

class ManagedService {
public:
    // `store`: the object store of the service's (upstream, user), shared with its group.
    ManagedService(Service config, HostTools& host, Store& store, SavedService saved);

    // Start-up, SPEC §2.1, in two halves so that a poll group can ask its store once for all
    // its fresh services in between: open() installs the package, finds the user and opens
    // the store; start() makes the work tree, mounts it and starts the unit (running open()'s
    // steps again first, which cost nothing once done). Failures become the state; start()
    // is retried by later reconciles.
    void open();
    void start();
    // After start(): local edits made while the daemon was not running are saved and reverted
    // (nothing to look for in a tree start() just made).
    void check_drift_at_start();
    // No work tree yet: start() will check out the branch head (for the poll group's survey).
    bool fresh() const;
    // One reconcile against the head the poll group saw upstream, already fetched into the
    // store (or why it has none).
    void reconcile(const Result<std::string>& remote_head, Trigger trigger);
    // Whether reconcile() at `head` would deploy: the store fetches only for such services.
    bool wants(const std::string& head, Trigger trigger) const;
    // Inotify (or the periodic scan) saw something under the live tree: save local edits,
    // revert them, act. Edits whose patch cannot be saved whole stay as they are: BROKEN
    // ("drift kept: could not save patch: ..."), until a later check saves them.
    void check_drift();
    // Local edits are waiting to be saved: look again soon, inotify or not.
    bool drift_kept() const { return m_drift_kept; }
    // The poll thread's word, for the next reconcile only, that inotify watched the whole live
    // tree and reported nothing: a deploy then needs no `git status` first.
    void set_watched_clean(bool clean) { m_watched_clean = clean; }

    // Frozen as `order` says; its record (who, when, why, until when) persisted and listed.
    void freeze(const FreezeOrder& order);
    void unfreeze();
    // When a freeze with an expiry ends; nullopt for none.
    std::optional<std::chrono::system_clock::time_point> freeze_expiry() const;
    // Past its expiry: unfrozen (logged, noted, in the history); whether it was.
    bool expire_freeze();
    // A checked commit waits for a maintenance window: when the next one opens, from `now`
    // on (`now` itself when one is open).
    std::optional<std::chrono::system_clock::time_point>
    window_opens(std::chrono::system_clock::time_point now) const;
    // One of this service's steps ended in an exception (a bug, or a library's unusual error):
    // the service turns BROKEN with what it said and is retried like any failure; the daemon
    // and the other services go on.
    void fail_unexpectedly(std::string_view step, std::string_view what);
    // To a commit of the tracked branch's history, or with `force` any fetched commit. A
    // commit that is neither is refused (404) and nothing changes.
    Completion rollback(const std::string& hash, bool force);

    // A slot of the fleet rollout was freed, or a mark changed: the commit this service stands
    // in line for (or is held from) is looked at again, without asking upstream.
    void resume_rollout();

    // What the next deploy would do (/list/diff): upstream asked and fetched as needed, the
    // live tree untouched; the JSON answer, or an error status and why.
    Completion preview();

    Status status() const;
    std::deque<HistoryEntry> history() const;
    const Service& config() const { return m_config; }
    bool ready() const { return m_ready; }
    // The work tree the mounts show now (empty before there is one): drift is watched there.
    std::string live_dir() const;
    // Counts what changed the live tree's files or made another tree live: watches taken
    // before a change are stale.
    std::uint64_t generation() const { return m_generation; }

private:
    struct Failure {
        Event event;
        std::string message;
    };
    using Outcome = std::expected<void, Failure>;
    // One step of a flow, with why it is there (logged at debug as it runs).
    struct Step {
        Outcome (ManagedService::*run)();
        std::string_view why;
    };
    struct Reverted {
        std::string files; // for logs and history: "a/x.conf, a/y.conf"
        std::string saved_as;
    };
    using Taken = std::expected<std::optional<Reverted>, Failure>;

    static const Step kOpen[];
    static const Step kStart[];
    Outcome run_steps(std::span<const Step> steps);
    Outcome prepare();

    // The steps of open() and start().
    Outcome install_package();
    Outcome find_user();
    Outcome open_store();
    Outcome prepare_tree();
    Outcome restore_pin();
    [[nodiscard]] Result<std::string> find_fetching(const std::string& commit);
    std::string not_found_on_branch(const std::string& commit, const Result<>& fetched) const;
    Outcome find_old_trees();
    Outcome mount_all();
    Outcome retire_trees();
    Outcome start_unit();
    void owe_action_if_running();
    Outcome act_if_owed();
    Outcome retire_migrated();
    bool save_migrated_edits();
    void remove_old_layout();

    // prepare_tree(), by what M/<service> was.
    Outcome first_tree(int mount_fd);
    Outcome reuse_tree(int mount_fd, const std::string& name);
    Outcome relink_tree(int mount_fd, const std::string& commit, const std::string& old);
    Outcome migrate_checkout(int mount_fd, const std::string& path);
    Outcome replace_tree(int mount_fd, const std::string& path, const std::string& why);
    // Why a tree cannot be used as it is.
    struct Unusable {
        enum class Kind { missing, broken } kind;
        std::string why;
    };
    std::optional<Unusable> unusable_tree(int trees_fd, const std::string& name) const;
    Outcome switch_store(int mount_fd, const std::string& old);
    Outcome vet_at_start(const std::string& from, const std::string& commit);
    Outcome copy_signers();
    [[nodiscard]] Result<> copy_signers_now();
    [[nodiscard]] Result<std::optional<std::string>> signature_refusal(const std::string& commit);
    void note_verified(const std::string& commit);
    // `keep_index`: git's index of what it wrote stays for Git::written_changes().
    [[nodiscard]] Result<Git> build_tree(int trees_fd, const std::string& commit,
                                         bool keep_index = false);
    [[nodiscard]] Result<> clear_name(int trees_fd, const std::string& name);
    [[nodiscard]] Result<> discard_tree(int trees_fd, const std::string& name,
                                        const std::string& keep_why, std::string commit);
    [[nodiscard]] Result<> save_tree_edits(const Git& tree);
    std::optional<std::string> only_tree(int trees_fd) const;
    [[nodiscard]] Result<Fd> open_trees() const;
    void make_live(const std::string& commit, Git tree);
    Git plain_tree(const std::string& dir, const std::string& commit) const;
    Outcome use_new_tree(int mount_fd, Git tree, const std::string& commit,
                         const std::string& note);
    void retire(const std::string& name, std::string keep_why = "", std::string commit = "");

    static std::unexpected<Failure> host_failure(std::string message)
    {
        return std::unexpected(Failure{Event::host_failed, std::move(message)});
    }
    static std::unexpected<Failure> git_failure(const Error& error)
    {
        return std::unexpected(Failure{Event::git_failed, error.message});
    }

    Completion check_rollback_target(const std::string& hash, bool force, std::string& full);
    Completion check_signed_target(const std::string& full, bool force);
    void retry_at_head();
    Outcome deploy(const std::string& commit, Trigger trigger, bool force_action);
    // Whether `commit` may go live now (a fleet rollout's slot taken); false: it waits in
    // line or is held (m_waiting says which), nothing moved.
    std::expected<bool, Failure> take_turn(const std::string& from, const std::string& commit,
                                           Trigger trigger);
    std::expected<bool, Failure> ask_turn(const std::string& commit);
    std::expected<bool, Failure> still_my_turn(const std::string& commit);
    void took_slot(const std::string& commit);
    void set_turn(bool waiting, bool holding, bool held);
    void leave_line(); // out of any line and slot of the rollout
    void leave_slot(); // the deploy in a slot ended: the slot is free for the next host
    void mark_bad(const std::string& commit, const std::string& why);
    bool held_by_window(Trigger trigger) const;
    Outcome wait_for_window(const std::string& from, const std::string& commit, Trigger trigger);
    void stop_waiting();
    std::string next_action(bool changes) const;
    [[nodiscard]] Result<Git> stage(const std::string& commit);
    [[nodiscard]] Result<> check_staged(const std::string& commit, const std::string& dir);
    [[nodiscard]] Result<> check_health(const std::string& commit);
    [[nodiscard]] Result<> health_try(const std::string& commit);
    Command gate_command(const Argv& argv, const std::string& dir, const std::string& commit,
                         Duration timeout, bool as_user = true) const;
    Outcome roll_back_unhealthy(const std::string& from, const std::string& commit, Trigger trigger,
                                const std::string& why);
    bool quarantined(const std::string& commit, Trigger trigger) const;
    [[nodiscard]] Result<> check_in_scratch_tree(const std::string& commit);
    [[nodiscard]] Result<> discard_staged(const std::string& commit);
    Outcome publish(const std::string& commit, Git tree);
    Outcome act(); // systemctl daemon-reload, then the action; or `exec`
    Outcome run_exec();
    [[nodiscard]] Result<> reload_units_if_needed();
    void mark_applied(const std::string& commit);
    void clear_quarantine(const std::string& commit); // it went live and is healthy
    void owe_action(); // its files changed back: act_if_owed() acts, after a crash too
    Taken take_drift();
    Taken take_drift_of(const Git& tree);
    std::expected<bool, Failure> take_drift_before(const std::string& commit, Trigger trigger);
    std::string note_reverted(const Result<Git::Changes>& changes, const std::string& saved_as);
    [[nodiscard]] Result<AtomicFile> new_patch_file() const;
    std::vector<FileId> our_sources(const Link& link) const;

    void finish(const Outcome& outcome, const std::string& success_info = "");
    // The state that follows `event`; the events noted since the last one go out with it.
    void record(Event event, const std::string& info);
    // An event for the service's notify targets, sent by the next record() with the state
    // it leads to (a failed check and the BROKEN it causes are one notification).
    void note(const char* event, const std::string& from, const std::string& to, Trigger trigger,
              const std::string& info = "");
    void send_notes(State state, bool entered, const std::string& info);
    void end_freeze(const std::string& why, Trigger trigger);
    void announce_deploy(const std::string& from, const std::string& to, Trigger trigger);
    bool reports() const; // whether events go anywhere
    Notice notice(const char* event, const std::string& from, const std::string& to,
                  Trigger trigger, const std::string& info = "") const;
    void add_history(const std::string& from, const std::string& to, Trigger trigger,
                     const std::string& result);
    void persist();
    State state() const;

    Service m_config;
    HostTools& m_host;
    Store& m_store;
    Layout m_layout;
    PatchDir m_patches; // drift patches under the state dir, bounded
    std::optional<Credentials> m_user;
    std::optional<Git> m_git;  // the live tree
    std::string m_tree;        // the live tree's name in Layout::trees(), "" before there is one
    std::string m_tree_commit; // its commit in full
    // Trees of ours that mounts may still show: removed once none does (or, `keep_why` given,
    // moved aside for the operator, when their local edits could not be looked at).
    struct Retired {
        std::string name; // in Layout::trees()
        std::string keep_why;
        std::string commit; // in full, when known (its name has the first digits)
    };
    std::vector<Retired> m_retired;
    bool m_package_done = false;
    bool m_ready = false;    // work tree, mounts and first start done
    bool m_cloned = false;   // start() made a fresh tree: only its user's writes since to look for
    bool m_migrated = false; // an old checkout waits in Layout::migrated() for its mounts
    bool m_drift_kept = false; // local edits found whose patch could not be saved
    bool m_watched_clean = false;
    std::uint64_t m_generation = 0;
    Trigger m_trigger = Trigger::start; // of the reconcile, request or drift look under way
    std::vector<Window> m_windows;      // the config's `windows`, parsed
    std::string m_window_checked;       // the commit that passed its check and waits for one
    std::string m_waiting;              // "waiting for window (next: Tue 06:00)", or ""
    std::vector<Notice> m_notes;        // noted, not yet sent (see note())
    // The fleet rollout (fleet/): the commit this service stands in line for, holds a slot
    // for, or is held from; "" for none.
    std::string m_turn_commit;
    Trigger m_turn_trigger = Trigger::poll;             // of the deploy that waits
    std::chrono::steady_clock::time_point m_turn_since; // in line since
    std::string m_failed_head; // upstream head at which we last broke (retry when it moves)
    std::string m_unverified;  // upstream head whose signature failed (retry when it moves)
    std::map<std::string, FileId> m_mounted; // local -> what our mount there showed last
    bool m_newly_mounted = false; // a link got its first mount: the unit may run on other files

    mutable std::mutex m_mutex; // guards the members below
    Status m_status;
    SavedService m_saved;
};

} // namespace gitopper
