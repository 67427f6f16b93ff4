#include "service/managed.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "host/mount.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

// How many changed files a drift's log line, state info and history entry name; the rest
// are counted ("and 29981 more"): a user can change any number of them.
constexpr std::size_t kListedChanges = 20;

namespace fs = std::filesystem;

constexpr std::array<std::pair<Trigger, std::string_view>, 7> kTriggers{{
    {Trigger::start, "start"},
    {Trigger::poll, "poll"},
    {Trigger::pull, "pull"},
    {Trigger::webhook, "webhook"},
    {Trigger::drift, "drift"},
    {Trigger::rollback, "rollback"},
    {Trigger::unfreeze, "unfreeze"},
}};

bool is_manual(Trigger trigger)
{
    return trigger == Trigger::pull || trigger == Trigger::webhook;
}

std::string short_hash(const std::string& hash)
{
    return hash.substr(0, 8);
}

std::int64_t unix_now()
{
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The directory that holds the checkouts: created root-owned when missing, and refused when
// someone else could replace entries in it (a sticky world-writable one such as /tmp is
// allowed; there every entry's owner is checked instead).
Result<std::pair<Fd, DirTrust>> open_mount_base(const std::string& mount)
{
    auto base = make_dirs_no_symlinks(mount);
    if (!base) {
        return fail("mount {}: {}", mount, base.error().message);
    }
    auto trust = check_trusted_path(mount, "mount " + mount);
    if (!trust) {
        return std::unexpected(trust.error());
    }
    return std::pair{std::move(*base), *trust};
}

// Removes a tree of the service user's as that user: root never walks a tree that someone
// else can change under it. Only the emptied top, in root's own directory, is root's to remove.
Result<> remove_tree(int base, const std::string& base_path, const std::string& name,
                     const std::optional<Credentials>& user)
{
    auto removed =
        run(Command{.argv = {"rm", "-rf", "--one-file-system", "--", base_path + "/" + name},
                    .timeout = std::chrono::minutes(5),
                    .as_user = user,
                    .cwd = "/"});
    if (::unlinkat(base, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return fail("remove {}/{}: {}{}", base_path, name, std::strerror(errno),
                    removed && !removed->ok() ? " (" + removed->describe() + ")" : "");
    }
    return {};
}

// Moves an unusable checkout out of the way: kept for the operator, never deleted. Our mounts
// of its work tree are detached too; left in place, each would stay underneath the mount of
// the new checkout, a second mount on the same target.
Result<> move_aside(const Service& config, const std::string& why)
{
    const auto dir = config.checkout_dir();
    const auto stem = fmt::format("{}.broken-{}", dir, unix_now());
    auto aside = stem;
    // Never onto something already there (an earlier one, or one planted in a sticky base).
    for (int n = 2;
         ::renameat2(AT_FDCWD, dir.c_str(), AT_FDCWD, aside.c_str(), RENAME_NOREPLACE) != 0; ++n) {
        if (errno != EEXIST || n > 100) {
            return fail("move {} aside: {}", dir, std::strerror(errno));
        }
        aside = fmt::format("{}-{}", stem, n);
    }
    log::warn("[{}] {} is not a usable checkout ({}); moved it to {} and cloning again",
              config.service, dir, why, aside);
    for (const auto& link : config.dirs) {
        if (auto r = release_bind_mount({aside, link.link, link.local, link.file}); !r) {
            log::warn("[{}] {}: the new mount goes on top", config.service, r.error().message);
        }
    }
    return {};
}

BindMount bind_mount_of(const Service& config, const Link& link)
{
    BindMount mount{config.checkout_dir(), link.link, link.local, link.file};
    if (auto bits = link.mode_bits()) {
        mount.mode = static_cast<mode_t>(*bits);
    }
    return mount;
}

} // namespace

std::string_view trigger_name(Trigger trigger)
{
    for (const auto& [value, name] : kTriggers) {
        if (value == trigger) {
            return name;
        }
    }
    return "unknown";
}

ManagedService::ManagedService(Service config, HostTools& host, SavedService saved)
    : m_config(std::move(config)), m_host(host), m_patches(host.state_dir, m_config.service),
      m_saved(std::move(saved))
{
    m_status.service = m_config.service;
    m_status.branch = m_config.branch;
    m_status.change = std::chrono::system_clock::now();
    if (m_saved.frozen) {
        m_status.state = State::freeze;
        m_status.info = m_saved.info;
    }
}

// ---- start-up ------------------------------------------------------------------------------

void ManagedService::start()
{
    finish(prepare());
    if (!std::exchange(m_cloned, false)) {
        check_drift(); // edits made while we were not running
    }
}

ManagedService::Outcome ManagedService::prepare()
{
    if (!m_package_done && !m_config.package.empty()) {
        if (!m_host.packages) {
            log::warn("[{}] unknown OS: not installing package {}", m_config.service,
                      quote(m_config.package));
        } else if (auto r = ensure_package(*m_host.packages, m_config.package); !r) {
            return host_failure(r.error().message);
        }
        m_package_done = true;
    }
    if (!m_config.user.empty() && !m_user) {
        auto user = lookup_user(m_config.user);
        if (!user) {
            return host_failure(user.error().message + " (create it, or fix \"user\")");
        }
        m_user = *user;
    }
    if (!m_git) {
        m_git.emplace(m_config.checkout_dir(), m_user, m_host.git_timeout, m_config.upstream);
    }
    if (auto r = prepare_checkout(); !r) {
        return r;
    }
    if (auto r = restore_pin(); !r) {
        return r;
    }
    if (auto r = mount_all(); !r) {
        return r;
    }
    if (is_template_instance(m_config.service)) {
        if (auto r = m_host.systemd.run("enable", m_config.service); !r) {
            return host_failure(r.error().message);
        }
    }
    if (auto r = m_host.systemd.daemon_reload(); !r) {
        return host_failure(r.error().message);
    }
    if (auto r = m_host.systemd.run("start", m_config.service); !r) {
        return host_failure(r.error().message);
    }
    if (auto r = act_if_owed(); !r) {
        return r;
    }
    m_ready = true;
    return {};
}

ManagedService::Outcome ManagedService::prepare_checkout()
{
    auto base = open_mount_base(m_config.mount);
    if (!base) {
        return host_failure(base.error().message);
    }
    const int base_fd = base->first.get();
    const auto found = inspect_checkout(base_fd, base->second);
    switch (found.kind) {
    case Found::Kind::nothing:
        return clone_fresh();
    case Found::Kind::refused:
        return host_failure(found.why);
    case Found::Kind::unusable:
        return replace_checkout(found.why);
    case Found::Kind::ours:
        break;
    }
    if (auto r = restrict_checkout(base_fd); !r) {
        return host_failure(r.error().message);
    }
    if (!m_git->is_repository().value_or(false)) {
        return replace_checkout("not a git checkout");
    }
    m_git->remove_leftovers(m_config.service);
    auto head = m_git->head();
    if (!head) {
        return replace_checkout(head.error().message);
    }
    return reuse_checkout(*head);
}

// What lies at <mount>/<service>, looked at without following it. In a sticky (shared) base
// someone else may have put it there: then only root's or the user's own is touched.
ManagedService::Found ManagedService::inspect_checkout(int base, DirTrust trust) const
{
    const bool shared = trust == DirTrust::sticky;
    auto entry = find_beneath(base, m_config.service, O_PATH);
    if (!entry) {
        const auto why = fmt::format("{}: {}", m_config.checkout_dir(), entry.error().message);
        return shared ? Found{Found::Kind::refused, why + "; not following it"}
                      : Found{Found::Kind::unusable, why};
    }
    if (!*entry) {
        return {Found::Kind::nothing, ""};
    }
    auto info = file_info((*entry)->get());
    if (!info) {
        return {Found::Kind::refused, info.error().message};
    }
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    if (info->uid != uid && info->uid != 0 && shared) {
        return {Found::Kind::refused,
                fmt::format("{} belongs to uid {}, neither root nor {}: not touching it",
                            m_config.checkout_dir(), info->uid, m_user ? m_user->name : "us")};
    }
    if (!S_ISDIR(info->mode)) {
        return {Found::Kind::unusable, "not a directory"};
    }
    if (info->uid != uid) {
        // Never chown an old tree: its old owner may still hold files, hooks or links in it.
        return {Found::Kind::unusable, fmt::format("it belongs to uid {}, not {}", info->uid, uid)};
    }
    return {Found::Kind::ours, ""};
}

ManagedService::Outcome ManagedService::replace_checkout(const std::string& why)
{
    if (auto r = move_aside(m_config, why); !r) {
        return host_failure(r.error().message);
    }
    return clone_fresh();
}

// An existing checkout of ours at `head`: pointed at the configured upstream (moved to its
// vetted branch head when that changed) with the configured links.
ManagedService::Outcome ManagedService::reuse_checkout(std::string head)
{
    auto url = m_git->remote_url();
    const bool moved_upstream = !url || *url != public_url(m_config.upstream);
    if (moved_upstream) {
        // The URL comes from the user's .git/config: no control character reaches the log.
        log::info("[{}] checkout tracked {}; switching it to {}", m_config.service,
                  url ? escape_controls(*url) : "nothing", public_url(m_config.upstream));
        if (auto r = m_git->set_remote_url(m_config.upstream); !r) {
            return git_failure(r.error());
        }
    }
    if (auto r = m_git->set_sparse(m_config.dirs); !r) {
        return git_failure(r.error());
    }
    if (moved_upstream) {
        // The service must not start on the old upstream's files, nor on new ones unvetted.
        if (auto r = switch_upstream(head); !r) {
            return r;
        }
        auto moved = m_git->head();
        if (!moved) {
            return git_failure(moved.error());
        }
        head = *moved;
    }
    std::lock_guard lock_status(m_mutex);
    m_status.hash = head;
    return {};
}

ManagedService::Outcome ManagedService::switch_upstream(const std::string& from)
{
    if (auto r = m_git->fetch(m_config.branch); !r) {
        return git_failure(r.error());
    }
    auto head = m_git->resolve("origin/" + m_config.branch);
    if (!head) {
        return git_failure(head.error());
    }
    auto refused = m_git->vet_tree(from, *head, m_config.dirs, m_config.file_size_limit());
    if (!refused) {
        return git_failure(refused.error());
    }
    if (*refused) {
        add_history(from, *head, Trigger::start, **refused);
        return std::unexpected(Failure{Event::host_failed, **refused});
    }
    if (auto r = m_git->checkout(*head); !r) {
        return git_failure(r.error());
    }
    return {};
}

// The checkout is no second, world-readable copy of the repository: 0750 with the user's
// group. The service reads it through the mounts, as its own user.
Result<> ManagedService::restrict_checkout(int base) const
{
    auto dir = open_beneath(base, m_config.service, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        return fail("{}: {}", m_config.checkout_dir(), dir.error().message);
    }
    const gid_t gid = m_user ? m_user->gid : ::getegid();
    if (::fchown(dir->get(), static_cast<uid_t>(-1), gid) != 0 || ::fchmod(dir->get(), 0750) != 0) {
        return fail("restrict {}: {}", m_config.checkout_dir(), std::strerror(errno));
    }
    return {};
}

// Clones next to the checkout and renames into place, so a checkout is never half made.
ManagedService::Outcome ManagedService::clone_fresh()
{
    const auto dir = m_config.checkout_dir();
    const auto name = m_config.service + ".gitopper-clone";
    const auto fresh = m_config.mount + "/" + name;
    auto base = open_mount_base(m_config.mount);
    if (!base) {
        return host_failure(base.error().message);
    }
    const int base_fd = base->first.get();
    // A leftover of an interrupted clone of ours, written by git as the user.
    if (auto r = remove_tree(base_fd, m_config.mount, name, m_user); !r) {
        return host_failure(r.error().message);
    }
    if (auto r = make_checkout_dir(base_fd, name); !r) {
        return host_failure(r.error().message);
    }
    log::info("[{}] cloning {} ({}) into {}", m_config.service, m_config.upstream, m_config.branch,
              dir);
    const Git git(fresh, m_user, m_host.git_timeout, m_config.upstream);
    bool refused = false; // the branch head holds what we must not check out
    auto cloned = git.clone(m_config.upstream, m_config.branch, m_config.dirs,
                            [&](const std::string& commit) { return vet(git, commit, refused); });
    auto head = cloned ? git.detached_head() : std::unexpected(cloned.error());
    if (head) {
        ::unlinkat(base_fd, m_config.service.c_str(), AT_REMOVEDIR); // only ever an empty dir
    }
    if (head && ::renameat(base_fd, name.c_str(), base_fd, m_config.service.c_str()) != 0) {
        return host_failure(fmt::format("rename {} to {}: {}", fresh, dir, std::strerror(errno)));
    }
    if (!head) {
        (void)remove_tree(base_fd, m_config.mount, name, m_user);
        add_history("", "", Trigger::start, "clone failed: " + head.error().message);
        return std::unexpected(
            Failure{refused ? Event::host_failed : Event::git_failed, head.error().message});
    }
    {
        std::lock_guard lock(m_mutex);
        m_status.hash = *head;
        m_status.change = std::chrono::system_clock::now();
        // A first clone is what `systemctl start` will start on; saved with the history
        // entry, so a clone costs one state write. A clone replacing an applied commit
        // leaves the comparison to act_if_owed().
        if (m_saved.applied.empty()) {
            m_saved.applied = *head;
        }
    }
    add_history("", *head, Trigger::start, "ok");
    m_cloned = true;
    return {};
}

// For a clone: the branch head may be checked out, or `refused` says why not (an error).
Result<> ManagedService::vet(const Git& git, const std::string& commit, bool& refused) const
{
    auto vetted = git.vet_tree("", commit, m_config.dirs, m_config.file_size_limit());
    if (!vetted) {
        return std::unexpected(vetted.error());
    }
    refused = vetted->has_value();
    return refused ? fail("{}", **vetted) : Result<>{};
}

// `name` in the mount base, made by root without following anything: 0750, the user's.
Result<> ManagedService::make_checkout_dir(int base, const std::string& name) const
{
    if (::mkdirat(base, name.c_str(), 0700) != 0) {
        return fail("create {}/{}: {}", m_config.mount, name, std::strerror(errno));
    }
    auto dir = open_beneath(base, name, O_RDONLY | O_DIRECTORY);
    const auto owner = m_user ? *m_user : current_credentials();
    if (!dir || ::fchown(dir->get(), owner.uid, owner.gid) != 0 ||
        ::fchmod(dir->get(), 0750) != 0) {
        return fail("create {}/{}: {}", m_config.mount, name,
                    dir ? std::strerror(errno) : dir.error().message);
    }
    return {};
}

ManagedService::Outcome ManagedService::restore_pin()
{
    const auto [frozen, pin] = [&] {
        std::lock_guard lock(m_mutex);
        return std::pair{m_saved.frozen, m_saved.pin};
    }();
    if (!frozen || pin.empty() || pin == status().hash) {
        return {};
    }
    auto full = m_git->resolve(pin);
    if (!full) {
        (void)m_git->fetch(m_config.branch);
        full = m_git->resolve(pin);
    }
    if (!full) {
        return std::unexpected(
            Failure{Event::git_failed, "restoring pinned commit: " + full.error().message});
    }
    log::info("[{}] restoring pinned commit {}", m_config.service, short_hash(*full));
    return deploy(*full, Trigger::start, false);
}

ManagedService::Outcome ManagedService::mount_all()
{
    for (const auto& link : m_config.dirs) {
        const auto source = m_config.checkout_dir() + "/" + link.link;
        auto spec = bind_mount_of(m_config, link);
        if (auto last = m_mounted.find(link.local); last != m_mounted.end()) {
            spec.ours = last->second;
        }
        auto mounted = ensure_bind_mount(spec, m_user);
        if (!mounted) {
            return std::unexpected(Failure{Event::host_failed, mounted.error().message});
        }
        m_mounted[link.local] = mounted->source;
        if (mounted->result != MountResult::unchanged) {
            log::info("[{}] {} {} on {}", m_config.service,
                      mounted->result == MountResult::mounted ? "mounted" : "refreshed mount of",
                      source, link.local);
        }
    }
    return {};
}

// ---- tracking upstream ---------------------------------------------------------------------

void ManagedService::reconcile(const Result<std::string>& remote_head, Trigger trigger)
{
    const auto head = remote_head ? *remote_head : std::string();
    const bool retry_broken = is_manual(trigger) || head != m_failed_head;
    if (!m_ready) {
        if (state() == State::broken && !retry_broken) {
            return;
        }
        if (auto r = prepare(); !r) {
            m_failed_head = head;
            finish(r);
            return;
        }
        finish({});
    }
    if (!tracks_upstream(state())) {
        return;
    }
    if (!remote_head) {
        record(Event::git_failed, remote_head.error().message);
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_status.upstream = head;
    }
    if (head == status().hash && state() != State::broken) {
        std::lock_guard lock(m_mutex);
        m_status.synced = std::chrono::system_clock::now(); // in sync, nothing to do
    }
    if (head == status().hash) {
        if (state() == State::diff) {
            record(Event::succeeded, "");
        } else if (state() == State::broken && is_manual(trigger)) {
            retry_at_head();
        }
        return;
    }
    if (state() == State::broken && !retry_broken) {
        return;
    }
    auto outcome = [&]() -> Outcome {
        if (auto r = m_git->fetch(m_config.branch); !r) {
            return std::unexpected(Failure{Event::git_failed, r.error().message});
        }
        return deploy(head, trigger, false);
    }();
    if (!outcome && outcome.error().event == Event::host_failed) {
        m_failed_head = head;
    }
    finish(outcome);
}

// A pull for a BROKEN service already at upstream's head: retry what failed.
void ManagedService::retry_at_head()
{
    if (m_drift_kept) {
        check_drift();
        return;
    }
    auto outcome = mount_all();
    finish(outcome ? act() : outcome);
}

ManagedService::Outcome ManagedService::deploy(const std::string& commit, Trigger trigger,
                                               bool force_action)
{
    const auto from = status().hash;
    const auto git_failure = [&](const Error& e) {
        add_history(from, commit, trigger, e.message);
        return std::unexpected(Failure{Event::git_failed, e.message});
    };
    auto reverted = take_drift_before(commit, trigger);
    if (!reverted) {
        return std::unexpected(reverted.error());
    }
    // The service's files changed back, whatever the commit changes.
    force_action = force_action || *reverted;
    auto changed = from.empty() ? Result<std::vector<std::string>>{std::vector<std::string>{"*"}}
                                : m_git->changed_paths(from, commit, m_config.dirs);
    if (!changed) {
        return git_failure(changed.error());
    }
    auto refused = m_git->vet_tree(from, commit, m_config.dirs, m_config.file_size_limit());
    if (!refused) {
        return git_failure(refused.error());
    }
    if (*refused) {
        // Nothing of it is checked out: the service keeps its current files and mounts.
        add_history(from, commit, trigger, **refused);
        return std::unexpected(Failure{Event::host_failed, **refused});
    }
    if (auto r = m_git->checkout(commit); !r) {
        return git_failure(r.error());
    }
    {
        std::lock_guard lock(m_mutex);
        m_status.hash = commit;
        m_status.change = std::chrono::system_clock::now();
    }
    log::info("[{}] deployed {} -> {} ({}, {} changed path{})", m_config.service, short_hash(from),
              short_hash(commit), trigger_name(trigger), changed->size(),
              changed->size() == 1 ? "" : "s");
    auto outcome = mount_all();
    if (outcome && (force_action || !changed->empty())) {
        outcome = act();
    }
    if (outcome) {
        mark_applied(commit);
    }
    add_history(from, commit, trigger, outcome ? "ok" : outcome.error().message);
    return outcome;
}

ManagedService::Outcome ManagedService::act()
{
    auto outcome = [&]() -> Outcome {
        if (auto r = m_host.systemd.daemon_reload(); !r) {
            return std::unexpected(Failure{Event::host_failed, r.error().message});
        }
        if (m_config.action.empty()) {
            return {};
        }
        if (auto r = m_host.systemd.run(m_config.action, m_config.service); !r) {
            return std::unexpected(Failure{Event::host_failed, r.error().message});
        }
        log::info("[{}] systemctl {} {}", m_config.service, m_config.action, m_config.service);
        return {};
    }();
    std::lock_guard lock(m_mutex);
    ++(outcome ? m_status.actions_ok : m_status.actions_failed);
    return outcome;
}

// A daemon stopped (kill -9, power loss) between a checkout and its action leaves the service
// running on the old files; `systemctl start` at start-up does nothing to a running service.
ManagedService::Outcome ManagedService::act_if_owed()
{
    const auto head = status().hash;
    const auto applied = [&] {
        std::lock_guard lock(m_mutex);
        return m_saved.applied;
    }();
    if (applied == head) {
        return {};
    }
    if (!applied.empty()) {
        auto changed = m_git->changed_paths(applied, head, m_config.dirs);
        if (!changed || !changed->empty()) {
            log::warn("[{}] {} was checked out but its action never ran; running it now",
                      m_config.service, short_hash(head));
            if (auto r = act(); !r) {
                return r;
            }
        }
    }
    mark_applied(head);
    persist();
    return {};
}

void ManagedService::mark_applied(const std::string& commit)
{
    std::lock_guard lock(m_mutex);
    m_saved.applied = commit;
}

// ---- local drift ---------------------------------------------------------------------------

void ManagedService::check_drift()
{
    if (!m_ready) {
        return;
    }
    if (!fs::exists(m_config.checkout_dir() + "/.git")) {
        // Someone removed the checkout under us: clone it again and remount, now.
        log::warn("[{}] checkout {} disappeared; cloning it again", m_config.service,
                  m_config.checkout_dir());
        m_ready = false;
        finish(prepare());
        return;
    }
    const auto hash = status().hash;
    auto taken = take_drift();
    if (!taken) {
        finish(std::unexpected(taken.error()));
        return;
    }
    if (!*taken) {
        return;
    }
    const auto& [files, saved_as] = **taken;
    auto outcome = mount_all();
    if (outcome) {
        outcome = act();
    }
    add_history(hash, hash, Trigger::drift,
                outcome ? "reverted " + files : outcome.error().message);
    if (outcome) {
        record(Event::succeeded, fmt::format("drift reverted: {} (saved in {})", files, saved_as));
    } else {
        finish(outcome);
    }
}

// Local edits, if any, saved as a patch and then reverted to git's version. The patch is
// written by git itself into a file of root's and is durable before anything is reverted;
// when that fails (or it would be over the patches' size limit), the edits stay exactly as
// they are. Edits that cannot even be listed (git status failed: millions of files) are
// still there: they are saved and reverted like any others.
ManagedService::Taken ManagedService::take_drift()
{
    const auto changes = m_git->local_changes(kListedChanges);
    if (changes && changes->count == 0) {
        m_drift_kept = false;
        return std::nullopt;
    }
    if (!changes) {
        log::warn("[{}] cannot list local changes ({}); saving and reverting whatever is there",
                  m_config.service, escape_controls(changes.error().message));
    }
    const auto kept = [&](const Error& e) {
        m_drift_kept = true;
        return std::unexpected(
            Failure{Event::host_failed, "drift kept: could not save patch: " + e.message});
    };
    auto file = new_patch_file();
    if (!file) {
        return kept(file.error());
    }
    bool saved = false;
    auto taken = m_git->take_local_changes(
        file->fd(),
        [&] {
            auto committed = file->commit(Replace::no);
            saved = committed.has_value();
            return committed;
        },
        m_patches.limits().bytes);
    if (!taken && !saved) {
        return kept(taken.error());
    }
    m_drift_kept = false;
    m_patches.prune();
    if (!taken) {
        return std::unexpected(
            Failure{Event::git_failed, fmt::format("local changes saved in {} but not reverted: {}",
                                                   file->path(), taken.error().message)});
    }
    return Reverted{note_reverted(changes, file->path()), file->path()};
}

// Logs and counts a revert; returns the file list for the state info and history: the first
// kListedChanges names, and how many more.
std::string ManagedService::note_reverted(const Result<Git::Changes>& changes,
                                          const std::string& saved_as)
{
    std::string files = "files not listed";
    if (changes) {
        // A file name is the user's to choose: a newline in it must not forge a log line.
        std::vector<std::string> names;
        for (const auto& change : changes->listed) {
            names.push_back(escape_controls(change));
        }
        files = join(names, ", ");
        if (changes->count > changes->listed.size()) {
            files += fmt::format(" and {} more", changes->count - changes->listed.size());
        }
    }
    {
        std::lock_guard lock(m_mutex);
        ++m_status.drift_events;
    }
    log::warn("[{}] local changes reverted to git's version (saved in {}): {}", m_config.service,
              saved_as, files);
    return files;
}

// The checkout of `commit` would overwrite local edits: they are saved and reverted first,
// or it waits. Whether there were any.
std::expected<bool, ManagedService::Failure>
ManagedService::take_drift_before(const std::string& commit, Trigger trigger)
{
    const auto from = status().hash;
    auto taken = take_drift();
    if (!taken) {
        add_history(from, commit, trigger, taken.error().message);
        return std::unexpected(taken.error());
    }
    if (*taken) {
        add_history(from, from, Trigger::drift, "reverted " + (*taken)->files);
    }
    return taken->has_value();
}

// A new patch file under the state dir, named by time and deployed commit.
Result<AtomicFile> ManagedService::new_patch_file() const
{
    return m_patches.create(fmt::format("{:%Y%m%dT%H%M%SZ}-{}", fmt::gmtime(std::time(nullptr)),
                                        short_hash(status().hash)));
}

// ---- operator requests ---------------------------------------------------------------------

void ManagedService::freeze()
{
    {
        std::lock_guard lock(m_mutex);
        m_saved.frozen = true;
        m_saved.pin = m_status.hash;
        m_saved.info = "";
    }
    record(Event::freeze, "");
    persist();
}

void ManagedService::unfreeze()
{
    if (state() != State::freeze) {
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_saved.frozen = false;
        m_saved.pin.clear();
        m_saved.info.clear();
    }
    record(Event::unfreeze, "");
    persist();
}

Completion ManagedService::rollback(const std::string& hash, bool force)
{
    if (!m_ready) {
        if (auto r = prepare(); !r) {
            finish(r);
            return {500, "rollback: " + r.error().message};
        }
        finish({});
    }
    std::string full;
    if (auto refused = check_rollback_target(hash, force, full); refused.status != 0) {
        log::warn("[{}] rollback to {} refused: {}", m_config.service, hash, refused.message);
        add_history(status().hash, hash, Trigger::rollback, "refused: " + refused.message);
        return refused;
    }
    record(Event::rollback, "ROLLBACK: " + full);
    auto outcome = deploy(full, Trigger::rollback, false);
    if (outcome) {
        std::lock_guard lock(m_mutex);
        m_saved.frozen = true;
        m_saved.pin = full;
        m_saved.info = "ROLLBACK: " + full;
    }
    finish(outcome);
    persist();
    return outcome ? Completion{} : Completion{500, "rollback: " + outcome.error().message};
}

// Whoever may roll back may not move a service onto any commit the upstream ever had (an
// unmerged branch, a commit that was force-pushed away): only onto the tracked branch's
// history, unless they say `force`. The state is left as it was when refused.
Completion ManagedService::check_rollback_target(const std::string& hash, bool force,
                                                 std::string& full)
{
    (void)m_git->fetch(m_config.branch); // the branch as upstream has it now
    auto resolved = m_git->resolve(hash);
    if (!resolved) {
        return {404, fmt::format("commit {} not found", quote(hash))};
    }
    full = *resolved;
    auto in_history = m_git->is_ancestor(full, "origin/" + m_config.branch);
    if (!in_history) {
        return {500, in_history.error().message};
    }
    if (*in_history) {
        return {};
    }
    if (!force) {
        return {404, fmt::format("commit {} is not in the history of branch {} (add \"force\" "
                                 "to roll back to it anyway)",
                                 short_hash(full), quote(m_config.branch))};
    }
    log::warn("[{}] forced rollback to {}, which is not in the history of branch {}",
              m_config.service, short_hash(full), quote(m_config.branch));
    return {};
}

// ---- bookkeeping ---------------------------------------------------------------------------

void ManagedService::finish(const Outcome& outcome, const std::string& success_info)
{
    if (outcome) {
        {
            std::lock_guard lock(m_mutex);
            m_status.synced = std::chrono::system_clock::now();
        }
        record(Event::succeeded, success_info);
    } else {
        record(outcome.error().event, outcome.error().message);
        if (outcome.error().event == Event::git_failed && m_git) {
            m_git->remove_leftovers(m_config.service);
        }
    }
}

void ManagedService::record(Event event, const std::string& raw_info)
{
    // Git's messages may quote the upstream URL; names may hold control characters.
    const auto info = redact_credentials(raw_info);
    std::lock_guard lock(m_mutex);
    const auto from = m_status.state;
    const auto to = transition(from, event);
    // A frozen service shows what holds it; errors while frozen are still shown.
    const bool failed = event == Event::git_failed || event == Event::host_failed;
    const auto text = to == State::freeze && !failed ? m_saved.info : info;
    if (from == to && text == m_status.info) {
        return;
    }
    if (from != to) {
        m_status.change = std::chrono::system_clock::now();
    }
    m_status.state = to;
    m_status.info = text;
    const auto line = fmt::format("[{}] state {} -> {}{}{}", m_config.service, state_name(from),
                                  state_name(to), text.empty() ? "" : ": ", text);
    if (failed) {
        log::error("{}", line);
    } else {
        log::info("{}", line);
    }
}

void ManagedService::add_history(const std::string& from, const std::string& to, Trigger trigger,
                                 const std::string& result)
{
    {
        std::lock_guard lock(m_mutex);
        m_saved.history.push_back(
            {unix_now(), from, to, std::string(trigger_name(trigger)), redact_credentials(result)});
        while (m_saved.history.size() > kHistoryLimit) {
            m_saved.history.pop_front();
        }
    }
    persist();
}

void ManagedService::persist()
{
    const auto saved = [&] {
        std::lock_guard lock(m_mutex);
        return m_saved;
    }();
    if (auto r = m_host.store.save(m_config.service, saved); !r) {
        log::error("[{}] saving state: {}", m_config.service, r.error().message);
    }
}

State ManagedService::state() const
{
    std::lock_guard lock(m_mutex);
    return m_status.state;
}

Status ManagedService::status() const
{
    std::lock_guard lock(m_mutex);
    return m_status;
}

std::deque<HistoryEntry> ManagedService::history() const
{
    std::lock_guard lock(m_mutex);
    return m_saved.history;
}

} // namespace gitopper
