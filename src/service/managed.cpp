#include "service/managed.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "host/mount.hpp"
#include "util/atomic_file.hpp"
#include "util/command_line.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/names.hpp"
#include "util/process.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

// How many changed files a drift's log line, state info and history entry name; the rest
// are counted ("and 29981 more"): a user can change any number of them.
constexpr std::size_t kListedChanges = 20;

constexpr std::string_view kMissing = "missing";

namespace fs = std::filesystem;

constexpr std::array<std::pair<Trigger, std::string_view>, 9> kTriggers{{
    {Trigger::start, "start"},
    {Trigger::poll, "poll"},
    {Trigger::pull, "pull"},
    {Trigger::webhook, "webhook"},
    {Trigger::drift, "drift"},
    {Trigger::rollback, "rollback"},
    {Trigger::freeze, "freeze"},
    {Trigger::unfreeze, "unfreeze"},
    {Trigger::health, "health"},
}};

bool is_manual(Trigger trigger)
{
    return trigger == Trigger::pull || trigger == Trigger::webhook;
}

// The end of what a command wrote to `fd`: describe() quotes its last lines.
std::string tail_of_file(int fd)
{
    constexpr off_t kTail = 4096;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return {};
    }
    std::string text(static_cast<std::size_t>(std::min<off_t>(st.st_size, kTail)), '\0');
    const auto got = ::pread(fd, text.data(), text.size(), st.st_size - std::ssize(text));
    text.resize(static_cast<std::size_t>(std::max<ssize_t>(got, 0)));
    return text;
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
[[nodiscard]] Result<std::pair<Fd, DirTrust>> open_mount_base(const std::string& mount)
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

// Moves an unusable work tree or checkout out of the way: kept for the operator, never
// deleted. Our mounts of it are detached too; left in place, each would stay underneath the
// mount of the new tree, a second mount on the same target.
[[nodiscard]] Result<std::string> move_aside(const Service& config, const std::string& path,
                                             const std::string& why)
{
    const auto stem = fmt::format("{}.broken-{}", config.checkout_dir(), unix_now());
    auto aside = stem;
    // Never onto something already there (an earlier one, or one planted in a sticky base).
    for (int n = 2;
         ::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, aside.c_str(), RENAME_NOREPLACE) != 0; ++n) {
        if (errno != EEXIST || n > 100) {
            return fail("move {} aside: {}", path, errno_message(errno));
        }
        aside = fmt::format("{}-{}", stem, n);
    }
    log::warn("[{}] {} is not a usable work tree ({}); moved it to {} and checking out anew",
              config.name, path, why, aside);
    for (const auto& link : config.dirs) {
        if (link.local.empty()) {
            continue; // checked out only (the bootstrap config)
        }
        if (auto r = release_bind_mount({aside, link.path, link.local, link.file}); !r) {
            log::warn("[{}] {}: the new mount goes on top", config.name, r.error().message);
        }
    }
    return aside;
}

BindMount bind_mount_of(const Link& link, const std::string& tree)
{
    BindMount mount{tree, link.path, link.local, link.file};
    if (auto bits = link.mode_bits()) {
        mount.mode = static_cast<mode_t>(*bits);
    }
    return mount;
}

} // namespace

std::string_view trigger_name(Trigger trigger)
{
    return name_of(kTriggers, trigger, "unknown");
}

ManagedService::ManagedService(Service config, HostTools& host, Store& store, SavedService saved)
    : m_config(std::move(config)), m_host(host), m_store(store),
      m_layout(m_config.mount, m_config.name, links_id(m_config.dirs)),
      m_patches(host.state_dir, m_config.name), m_saved(std::move(saved))
{
    m_status.service = m_config.name;
    m_status.branch = m_config.branch;
    m_status.change = std::chrono::system_clock::now();
    if (m_saved.frozen) {
        m_status.state = State::freeze;
        m_status.info = m_saved.info;
        m_status.freeze = m_saved.freeze;
    }
    for (const auto& text : m_config.windows) {
        if (auto window = parse_window(text)) { // the config was checked: all are
            m_windows.push_back(*window);
        }
    }
}

std::string ManagedService::live_dir() const
{
    return m_tree.empty() ? std::string() : m_layout.trees() + "/" + m_tree;
}

// ---- start-up ------------------------------------------------------------------------------

// SPEC §2.1, in order; each step is a no-op once done, so a retry starts from the top.
const ManagedService::Step ManagedService::kOpen[] = {
    {&ManagedService::install_package, "the package may bring the unit and its user"},
    {&ManagedService::find_user, "git and the work trees are the service user's"},
    {&ManagedService::open_store, "one object store serves every service of the upstream"},
    {&ManagedService::copy_signers, "git reads the trusted keys as the user, from root's copy"},
};
const ManagedService::Step ManagedService::kStart[] = {
    {&ManagedService::prepare_tree, "a live tree at a vetted commit"},
    {&ManagedService::restore_pin, "a freeze or rollback outlives a restart"},
    {&ManagedService::find_old_trees, "a mount may still show a tree a kill -9 left behind"},
    {&ManagedService::mount_all, "the service reads its files where it expects them"},
    {&ManagedService::retire_trees, "a tree goes once no mount shows it"},
    {&ManagedService::retire_migrated, "an old checkout goes once no mount shows it"},
    {&ManagedService::start_unit, "the service runs on git's files"},
    {&ManagedService::act_if_owed, "a deploy a crash cut short still gets its action"},
};

void ManagedService::open()
{
    (void)run_steps(kOpen); // a failure is recorded by start(), which runs these again
}

void ManagedService::start()
{
    const auto outcome = prepare();
    if (!outcome && m_store.is_open()) {
        // The retry rule (wants()): the head it broke at is the one the store has now.
        m_failed_head = m_store.tracking_head(m_config.branch).value_or("");
    }
    finish(outcome);
}

void ManagedService::check_drift_at_start()
{
    // A tree start() just made: only what its user wrote since git did, against git's index
    // of it (one process). Any other: edits made while we were not running.
    if (std::exchange(m_cloned, false) && m_git) {
        if (auto left = m_git->written_changes(0); left && left->count == 0) {
            return;
        }
    }
    check_drift();
}

bool ManagedService::fresh() const
{
    struct stat st {};
    return ::fstatat(AT_FDCWD, m_layout.link().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 &&
           errno == ENOENT;
}

ManagedService::Outcome ManagedService::run_steps(std::span<const Step> steps)
{
    for (const auto& step : steps) {
        log::debug("[{}] {}", m_config.name, step.why);
        if (auto r = (this->*step.run)(); !r) {
            return r;
        }
    }
    return {};
}

ManagedService::Outcome ManagedService::prepare()
{
    if (auto r = run_steps(kOpen); !r) {
        return r;
    }
    if (auto r = run_steps(kStart); !r) {
        return r;
    }
    m_ready = true;
    return {};
}

ManagedService::Outcome ManagedService::install_package()
{
    if (m_package_done || m_config.package.empty()) {
        return {};
    }
    if (!m_host.packages) {
        log::warn("[{}] unknown OS: not installing package {}", m_config.name,
                  quote(m_config.package));
    } else if (auto r = ensure_package(*m_host.packages, m_config.package); !r) {
        return host_failure(r.error().message);
    }
    m_package_done = true;
    return {};
}

ManagedService::Outcome ManagedService::find_user()
{
    if (m_config.user.empty() || m_user) {
        return {};
    }
    auto user = lookup_user(m_config.user);
    if (!user) {
        return host_failure(user.error().message + " (create it, or fix \"user\")");
    }
    m_user = *user;
    return {};
}

// The store is cloned next to its place and renamed into it, so it is never half made; one
// that is there is the user's (a store of another owner is another store's name).
ManagedService::Outcome ManagedService::open_store()
{
    auto opened = m_store.open(m_user, [&]() -> Result<> {
        auto base = open_mount_base(m_config.mount);
        auto stores =
            base ? m_layout.open_stores(base->first.get()) : std::unexpected(base.error());
        if (!stores) {
            return std::unexpected(stores.error());
        }
        const auto name = fs::path(m_store.dir()).filename().string();
        struct stat st {};
        const uid_t uid = m_user ? m_user->uid : ::geteuid();
        if (::fstatat(stores->get(), (name + "/.git").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode) && st.st_uid == uid) {
            // What a killed git left (locks, half-written packs), before any git runs in it.
            m_store.git().remove_leftovers(m_config.name);
            return {};
        }
        const auto fresh = name + ".new";
        const auto stores_path = m_layout.stores();
        if (auto r = remove_tree(stores->get(), stores_path, fresh, m_user); !r) {
            return r;
        }
        if (auto r = make_owned_dir(stores->get(), fresh, m_user, stores_path + "/" + fresh); !r) {
            return r;
        }
        // The log's sink shows a password as "***".
        log::info("[{}] cloning {} ({}) into the object store {}", m_config.name, m_config.upstream,
                  m_config.branch, m_store.dir());
        if (auto r = m_store.clone_into(stores_path + "/" + fresh, m_config.branch); !r) {
            (void)remove_tree(stores->get(), stores_path, fresh, m_user);
            return r;
        }
        // Anything in the old place is not a store of ours: kept for the operator.
        if (::renameat(stores->get(), name.c_str(), stores->get(),
                       fmt::format("{}.broken-{}", name, unix_now()).c_str()) != 0 &&
            errno != ENOENT) {
            return fail("move {} aside: {}", m_store.dir(), errno_message(errno));
        }
        if (::renameat(stores->get(), fresh.c_str(), stores->get(), name.c_str()) != 0) {
            return fail("rename {}/{} to {}: {}", stores_path, fresh, m_store.dir(),
                        errno_message(errno));
        }
        return {};
    });
    return opened ? Outcome{} : git_failure(opened.error());
}

// M/<service>: our symlink to a live tree, nothing yet, or a checkout of the old layout. In a
// sticky (shared) base someone else may have put it there: then only root's or the user's own
// is touched.
ManagedService::Outcome ManagedService::prepare_tree()
{
    auto base = open_mount_base(m_config.mount);
    if (!base) {
        return host_failure(base.error().message);
    }
    const int mount_fd = base->first.get();
    const auto found = m_layout.inspect(mount_fd);
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    const bool shared = base->second == DirTrust::sticky;
    if (shared && found.kind == Layout::Found::Kind::other && found.symlink) {
        return host_failure(fmt::format("{}: \"{}\" is a symlink; not following it",
                                        m_layout.link(), m_config.name));
    }
    if (found.kind != Layout::Found::Kind::nothing && shared && found.owner != uid &&
        found.owner != 0) {
        return host_failure(
            fmt::format("{} belongs to uid {}, neither root nor {}: not touching it",
                        m_layout.link(), found.owner, m_user ? m_user->name : "us"));
    }
    switch (found.kind) {
    case Layout::Found::Kind::nothing:
        return first_tree(mount_fd);
    case Layout::Found::Kind::live:
        return reuse_tree(mount_fd, found.path);
    case Layout::Found::Kind::checkout:
        return migrate_checkout(mount_fd, found.path);
    case Layout::Found::Kind::other:
        break;
    }
    return replace_tree(mount_fd, m_layout.link(), found.why);
}

// allowed_signers is root's and may be unreadable to the user git runs as: a copy goes where
// the user can read it and nobody but root can change it (M/.gitopper is root's, 0711). It is
// made again before each verification, so that an edit of the file counts from the next one.
Result<> ManagedService::copy_signers_now()
{
    auto text = read_trusted_file(m_config.allowed_signers, Trust::keys);
    if (!text) {
        return fail("allowed_signers: {}", text.error().message);
    }
    auto base = open_mount_base(m_config.mount);
    auto dir = base ? open_beneath(base->first.get(), ".gitopper", O_PATH | O_DIRECTORY)
                    : std::unexpected(base.error());
    if (!dir) {
        return std::unexpected(dir.error());
    }
    const auto name = "signers-" + m_config.name;
    return write_file_atomic_at(dir->get(), name, *text, 0644, m_layout.signers());
}

ManagedService::Outcome ManagedService::copy_signers()
{
    if (m_config.allowed_signers.empty()) {
        return {};
    }
    if (auto r = copy_signers_now(); !r) {
        return host_failure(r.error().message);
    }
    return {};
}

// With allowed_signers, `commit` must carry a good SSH signature by one of its keys and
// descend from the last verified commit (SPEC §6): no force-push takes the service back to an
// older signed commit. nullopt: it may be deployed; else why not, git's verdict. An error:
// git could not tell.
Result<std::optional<std::string>> ManagedService::signature_refusal(const std::string& commit)
{
    if (m_config.allowed_signers.empty()) {
        return std::nullopt;
    }
    if (auto r = copy_signers_now(); !r) {
        return std::unexpected(r.error());
    }
    auto verdict = m_store.git().signature_status(commit, m_layout.signers());
    if (!verdict) {
        return std::unexpected(verdict.error());
    }
    if (*verdict != 'G') {
        return fmt::format("commit {} not signed by a trusted key", short_hash(commit));
    }
    const auto verified = [&] {
        std::lock_guard lock(m_mutex);
        return m_saved.verified;
    }();
    if (verified.empty() || verified == commit) {
        return std::nullopt;
    }
    auto newer = m_store.git().is_ancestor(verified, commit);
    if (!newer) {
        return std::unexpected(newer.error());
    }
    if (!*newer) {
        return fmt::format("commit {} does not descend from {}, the last verified commit (a "
                           "rollback with \"force\" goes there)",
                           short_hash(commit), short_hash(verified));
    }
    return std::nullopt;
}

// The newest commit whose signature was verified moves forward only.
void ManagedService::note_verified(const std::string& commit)
{
    if (m_config.allowed_signers.empty()) {
        return;
    }
    std::lock_guard lock(m_mutex);
    m_saved.verified = commit;
}

// Whether `commit` may be checked out for the links at all (SPEC §11); a refusal is in the
// history, from `from`.
ManagedService::Outcome ManagedService::vet_at_start(const std::string& from,
                                                     const std::string& commit)
{
    auto refusal = signature_refusal(commit);
    if (!refusal) {
        return git_failure(refusal.error());
    }
    if (*refusal) {
        add_history(from, commit, Trigger::start, **refusal);
        return std::unexpected(Failure{Event::git_failed, **refusal});
    }
    note_verified(commit);
    auto survey = m_store.survey("", commit, m_config.dirs, m_config.file_size_limit());
    if (!survey) {
        return git_failure(survey.error());
    }
    if (survey->refusal) {
        add_history(from, commit, Trigger::start, *survey->refusal);
        return host_failure(*survey->refusal);
    }
    return {};
}

// A fresh service: a work tree at the branch head, vetted before anything is checked out.
ManagedService::Outcome ManagedService::first_tree(int mount_fd)
{
    auto head = m_store.tracking_head(m_config.branch);
    if (!head) {
        if (auto r = m_store.fetch({m_config.branch}); !r) {
            return git_failure(r.error());
        }
        head = m_store.tracking_head(m_config.branch);
    }
    if (!head) {
        return git_failure(head.error());
    }
    if (auto vetted = vet_at_start("", *head); !vetted) {
        return vetted;
    }
    auto trees = m_layout.open_trees(mount_fd);
    if (!trees) {
        return host_failure(trees.error().message);
    }
    log::info("[{}] checking out {} ({}) into {}", m_config.name, short_hash(*head),
              m_config.branch, m_layout.tree(*head));
    auto tree = build_tree(trees->get(), *head, true); // its index for check_drift_at_start()
    if (!tree) {
        add_history("", *head, Trigger::start, "checkout failed: " + tree.error().message);
        return git_failure(tree.error());
    }
    m_cloned = true;
    if (auto checked = check_staged(*head, tree->dir()); !checked) {
        (void)discard_staged(*head);
        add_history("", *head, Trigger::start, checked.error().message);
        return host_failure(checked.error().message);
    }
    return use_new_tree(mount_fd, std::move(*tree), *head, "ok");
}

// Our symlink names the tree `name`: it must still be the user's directory, and the store
// must have its commit (a tree of another upstream's, one the config named before, may hold
// anything). A tree of other links (the config changed them) is made anew.
ManagedService::Outcome ManagedService::reuse_tree(int mount_fd, const std::string& name)
{
    auto trees = m_layout.open_trees(mount_fd);
    if (!trees) {
        return host_failure(trees.error().message);
    }
    if (auto unusable = unusable_tree(trees->get(), name)) {
        if (unusable->kind == Unusable::Kind::missing) {
            m_tree.clear();
            // A kill -9 between the older kernels' rename and the symlink's: the tree is there
            // under its new name. Otherwise it was removed under us: nothing to keep.
            if (auto only = only_tree(trees->get()); only && *only != name) {
                log::warn("[{}] {} is gone; taking {}, its only tree", m_config.name, name, *only);
                if (auto r = m_layout.publish_tree(mount_fd, *only); !r) {
                    return host_failure(r.error().message);
                }
                return reuse_tree(mount_fd, *only);
            }
            return first_tree(mount_fd);
        }
        return replace_tree(mount_fd, m_layout.trees() + "/" + name, unusable->why);
    }
    // The name holds the commit's first digits: the store tells the rest.
    auto found = m_store.git().find_commit(m_layout.commit_of(name).value_or(""));
    if (!found) {
        return git_failure(found.error()); // git could not tell: the tree stays, tried again
    }
    if (!*found) {
        return switch_store(mount_fd, name);
    }
    const auto commit = **found;
    if (name != m_layout.tree_name(commit)) {
        return relink_tree(mount_fd, commit, name);
    }
    m_tree = name;
    m_tree_commit = commit;
    m_git = plain_tree(m_layout.tree(commit), commit);
    std::lock_guard lock(m_mutex);
    m_status.hash = commit;
    return {};
}

// The live tree holds other links than the config names now: a tree of the same commit with
// the config's links replaces it, and the service is told (its files changed). What the old
// tree held besides git's files (local edits made while the daemon was not running) cannot be
// told apart from the other links' files: the old tree goes whole.
ManagedService::Outcome ManagedService::relink_tree(int mount_fd, const std::string& commit,
                                                    const std::string& old)
{
    auto survey = m_store.survey("", commit, m_config.dirs, m_config.file_size_limit());
    if (!survey) {
        return git_failure(survey.error()); // tried again; the tree stays
    }
    if (survey->refusal) {
        // Not one to check out with these links: from the head.
        retire(old, "", commit);
        return first_tree(mount_fd);
    }
    auto trees = m_layout.open_trees(mount_fd);
    if (!trees) {
        return host_failure(trees.error().message);
    }
    log::info("[{}] its links changed: making its tree of {} anew", m_config.name,
              short_hash(commit));
    auto tree = build_tree(trees->get(), commit);
    if (!tree) {
        return git_failure(tree.error());
    }
    retire(old, "", commit);
    owe_action(); // the service's files change: saved before they do
    persist();
    return use_new_tree(mount_fd, std::move(*tree), commit, "links changed");
}

// The name of this service's one tree, when it has exactly one.
std::optional<std::string> ManagedService::only_tree(int trees_fd) const
{
    std::optional<std::string> only;
    for (const auto& name : list_directory(trees_fd).value_or(std::vector<std::string>{})) {
        if (m_layout.commit_of(name)) {
            if (only) {
                return std::nullopt;
            }
            only = name;
        }
    }
    return only;
}

// Why the tree `name` cannot be used as it is, or nullopt: it must be a directory of the user's.
std::optional<ManagedService::Unusable> ManagedService::unusable_tree(int trees_fd,
                                                                      const std::string& name) const
{
    using Kind = Unusable::Kind;
    auto entry = find_beneath(trees_fd, name, O_PATH);
    if (!entry || !*entry) {
        return Unusable{entry ? Kind::missing : Kind::broken,
                        entry ? std::string(kMissing) : entry.error().message};
    }
    auto info = file_info((*entry)->get());
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    if (!info || !S_ISDIR(info->mode)) {
        return Unusable{Kind::broken, "not a directory"};
    }
    if (info->uid != uid) {
        // Never chown an old tree: its old owner may still hold files, hooks or links in it.
        return Unusable{Kind::broken, fmt::format("it belongs to uid {}, not {}", info->uid, uid)};
    }
    return std::nullopt;
}

// The live tree holds a commit this store does not have (the config names another upstream):
// its local edits cannot be told from the commit's files, so after the switch it is kept
// aside, not removed. A tree of this store's branch head is made beside it, vetted first, and
// switched to; until then, and when the head is refused, the service keeps its files.
ManagedService::Outcome ManagedService::switch_store(int mount_fd, const std::string& old)
{
    m_tree = old;
    m_tree_commit.clear();
    const auto old_commit = m_layout.commit_of(old).value_or("");
    auto head = m_store.tracking_head(m_config.branch);
    if (!head) {
        return git_failure(head.error());
    }
    if (auto vetted = vet_at_start(old_commit, *head); !vetted) {
        return vetted;
    }
    auto trees = m_layout.open_trees(mount_fd);
    if (!trees) {
        return host_failure(trees.error().message);
    }
    log::info("[{}] the tree holds {}, which {} does not have; switching to its {}", m_config.name,
              short_hash(old_commit), public_url(m_config.upstream), m_config.branch);
    auto tree = build_tree(trees->get(), *head);
    if (!tree) {
        return git_failure(tree.error());
    }
    if (auto checked = check_staged(*head, tree->dir()); !checked) {
        (void)discard_staged(*head);
        add_history(old_commit, *head, Trigger::start, checked.error().message);
        return host_failure(checked.error().message);
    }
    retire(old, fmt::format("its commit {} is not in the object store of {}",
                            short_hash(old_commit), public_url(m_config.upstream)));
    return use_new_tree(mount_fd, std::move(*tree), *head, "switched upstream");
}

ManagedService::Outcome ManagedService::replace_tree(int mount_fd, const std::string& path,
                                                     const std::string& why)
{
    if (auto r = move_aside(m_config, path, why); !r) {
        return host_failure(r.error().message);
    }
    return first_tree(mount_fd);
}

// A checkout of an earlier layout at `path`: a clone of its own at M/<service> (gitopper
// before object stores, or the Go tool), or a git worktree of the store (before plain trees).
// A plain tree takes its commit, the symlink its place; mount_all() then moves every mount
// onto the tree at once, and retire_migrated() saves the checkout's local edits and removes
// it. Its files do not change, so nothing is reloaded, unless it had local edits.
ManagedService::Outcome ManagedService::migrate_checkout(int mount_fd, const std::string& path)
{
    // A kill -9 after the worktree moved to migrated() and before the symlink named a tree:
    // it is taken from there.
    const bool moved = !exists_no_symlinks(path).value_or(true) &&
                       exists_no_symlinks(m_layout.migrated()).value_or(false);
    const auto& source = moved ? m_layout.migrated() : path;
    auto entry = open_no_symlinks(source, O_PATH);
    auto info = entry ? file_info(entry->get()) : Result<FileInfo>(fail("gone"));
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    Git old(source, m_user, m_host.git_timeout, m_config.upstream, m_store.dir());
    auto repository = info && info->uid == uid ? old.is_repository() : Result<bool>(false);
    if (!repository) {
        return git_failure(repository.error()); // git could not tell: kept, tried again
    }
    if (!*repository) {
        return replace_tree(mount_fd, path,
                            info && info->uid != uid
                                ? fmt::format("it belongs to uid {}, not {}", info->uid, uid)
                                : "not a git checkout");
    }
    old.remove_leftovers(m_config.name);
    m_git = old;
    m_tree.clear();
    m_tree_commit.clear();
    auto commit = old.detached_head();
    auto known = commit ? m_store.git().find_commit(*commit)
                        : Result<std::optional<std::string>>(std::nullopt);
    if (!known) {
        return git_failure(known.error());
    }
    if (!*known) {
        log::warn("[{}] the commit of {} is not upstream's any more: taking the branch head",
                  m_config.name, path);
        commit = m_store.tracking_head(m_config.branch);
    }
    if (!commit) {
        return git_failure(commit.error());
    }
    auto survey = m_store.survey("", *commit, m_config.dirs, m_config.file_size_limit());
    if (!survey || survey->refusal) {
        return survey ? host_failure(*survey->refusal) : git_failure(survey.error());
    }
    auto trees = m_layout.open_trees(mount_fd);
    if (!trees) {
        return host_failure(trees.error().message);
    }
    auto tree = build_tree(trees->get(), *commit);
    if (!tree) {
        return git_failure(tree.error());
    }
    if (!moved && ::renameat(AT_FDCWD, path.c_str(), AT_FDCWD, m_layout.migrated().c_str()) != 0) {
        return host_failure(
            fmt::format("move {} to {}: {}", path, m_layout.migrated(), errno_message(errno)));
    }
    // A git worktree moved: the store's record of it names its new place, or another
    // service's `git worktree prune` would forget it before its edits are saved.
    m_git = Git(m_layout.migrated(), m_user, m_host.git_timeout, m_config.upstream, m_store.dir());
    if (m_git->worktree_git_dir()) {
        if (auto r = m_git->repair_worktree(); !r) {
            log::warn("[{}] {}", m_config.name, r.error().message);
        }
    }
    log::info("[{}] moved {} into the object store {} (its old clone waits in {})", m_config.name,
              path, m_store.dir(), m_layout.migrated());
    m_migrated = true;
    return use_new_tree(mount_fd, std::move(*tree), *commit, "moved to the object store");
}

// An empty directory of the user's for the tree of `commit`, then git writes the commit's files
// under the links into it. What is there by that name is a leftover (a tree a kill -9 left half
// made, or one the operator copied): the user's is removed, another owner's (the service's
// user changed) is not the user's to remove: kept aside.
Result<Git> ManagedService::build_tree(int trees_fd, const std::string& commit, bool keep_index)
{
    const auto name = m_layout.tree_name(commit);
    const auto path = m_layout.tree(commit);
    if (auto r = clear_name(trees_fd, name); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = make_owned_dir(trees_fd, name, m_user, path); !r) {
        return std::unexpected(r.error());
    }
    auto tree = plain_tree(path, commit);
    if (auto r = tree.write_plain(keep_index); !r) {
        return std::unexpected(r.error());
    }
    return tree;
}

// Nothing at `name` in the trees for a new tree: a tree of ours that was retired (it was live)
// goes as discard_tree() lets it; anything else is a leftover (half made by a kill -9, or put
// there by the operator): the user's is removed, another owner's kept aside.
Result<> ManagedService::clear_name(int trees_fd, const std::string& name)
{
    const auto was_live = std::find_if(m_retired.begin(), m_retired.end(),
                                       [&](const Retired& r) { return r.name == name; });
    if (was_live != m_retired.end()) {
        const auto retired = *was_live;
        m_retired.erase(was_live);
        return discard_tree(trees_fd, name, retired.keep_why, retired.commit);
    }
    struct stat st {};
    if (::fstatat(trees_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return {};
    }
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    if (st.st_uid != uid) {
        auto aside = move_aside(m_config, m_layout.trees() + "/" + name,
                                fmt::format("it belongs to uid {}", st.st_uid));
        return aside ? Result<>{} : std::unexpected(aside.error());
    }
    return remove_tree(trees_fd, m_layout.trees(), name, m_user);
}

// M/.gitopper/trees, through the checked mount base.
Result<Fd> ManagedService::open_trees() const
{
    auto base = open_mount_base(m_config.mount);
    return base ? m_layout.open_trees(base->first.get()) : std::unexpected(base.error());
}

// Git for the tree at `dir` holding `commit`; its steps' index is the service's own.
Git ManagedService::plain_tree(const std::string& dir, const std::string& commit) const
{
    return m_store.plain_tree(dir, fmt::format("gitopper-{}.index", state_file_name(m_config.name)),
                              commit, m_config.dirs);
}

ManagedService::Outcome ManagedService::use_new_tree(int mount_fd, Git tree,
                                                     const std::string& commit,
                                                     const std::string& note)
{
    if (auto r = m_layout.publish(mount_fd, commit); !r) {
        return host_failure(r.error().message);
    }
    make_live(commit, std::move(tree));
    {
        std::lock_guard lock(m_mutex);
        m_status.hash = commit;
        m_status.change = std::chrono::system_clock::now();
        // A first tree is what `systemctl start` will start on; saved with the history
        // entry, so it costs one state write. A tree replacing an applied commit leaves the
        // comparison to act_if_owed().
        if (m_saved.applied.empty()) {
            m_saved.applied = commit;
        }
    }
    add_history("", commit, Trigger::start, note);
    return {};
}

// The symlink names the tree of `commit` now: the one it named before is retired, and this
// one is no longer (a deploy back to a commit whose tree still waited to go).
void ManagedService::make_live(const std::string& commit, Git tree)
{
    const auto name = m_layout.tree_name(commit);
    if (!m_tree.empty() && m_tree != name) {
        retire(m_tree, "", m_tree_commit);
    }
    std::erase_if(m_retired, [&](const Retired& retired) { return retired.name == name; });
    m_tree = name;
    m_tree_commit = commit;
    m_git = std::move(tree);
    ++m_generation;
}

// The tree `name` is live no more; retire_trees() takes it once no mount shows it.
void ManagedService::retire(const std::string& name, std::string keep_why, std::string commit)
{
    for (auto& retired : m_retired) {
        if (retired.name == name) {
            retired.keep_why = keep_why.empty() ? retired.keep_why : std::move(keep_why);
            retired.commit = commit.empty() ? retired.commit : std::move(commit);
            return;
        }
    }
    m_retired.push_back({name, std::move(keep_why), std::move(commit)});
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
    auto full = find_fetching(pin);
    if (!full) {
        return std::unexpected(
            Failure{Event::git_failed, "restoring pinned commit: " + full.error().message});
    }
    log::info("[{}] restoring pinned commit {}", m_config.name, short_hash(*full));
    return deploy(*full, Trigger::start, false);
}

// "commit X not found on BRANCH", with the fetch's error when the fetch failed: a commit missing
// only because upstream could not be reached must not read like one that does not exist.
std::string ManagedService::not_found_on_branch(const std::string& commit,
                                                const Result<>& fetched) const
{
    return fmt::format("commit {} not found on {}{}", quote(commit), quote(m_config.branch),
                       fetched ? "" : " (fetching it failed: " + fetched.error().message + ")");
}

// `commit` in the store, fetching the branch once when it is not there yet.
Result<std::string> ManagedService::find_fetching(const std::string& commit)
{
    auto found = m_store.git().find_commit(commit);
    Result<> fetched;
    if (found && !*found) {
        fetched = m_store.fetch({m_config.branch});
        found = m_store.git().find_commit(commit);
    }
    if (!found) {
        return std::unexpected(found.error());
    }
    if (!*found) {
        return std::unexpected(Error{not_found_on_branch(commit, fetched)});
    }
    return **found;
}

// What our mounts on a target may show besides the live tree: the other tree's link, the old
// checkout's, our last mount's. Those are replaced, never stacked on.
std::vector<FileId> ManagedService::our_sources(const Link& link) const
{
    std::vector<FileId> ours;
    if (auto last = m_mounted.find(link.local); last != m_mounted.end()) {
        ours.push_back(last->second);
    }
    std::vector<std::string> trees{m_layout.migrated()};
    for (const auto& retired : m_retired) {
        trees.push_back(m_layout.trees() + "/" + retired.name);
    }
    for (const auto& tree : trees) {
        if (auto id = source_id(bind_mount_of(link, tree))) {
            ours.push_back(*id);
        }
    }
    return ours;
}

// This service's trees other than the live one: a stage a kill -9 cut short, or the tree a
// switch replaced before it could be removed. Some mount may still show one.
ManagedService::Outcome ManagedService::find_old_trees()
{
    auto trees = open_trees();
    auto names = trees ? list_directory(trees->get()) : std::unexpected(trees.error());
    if (!names) {
        return host_failure(names.error().message);
    }
    for (const auto& name : *names) {
        if (m_layout.commit_of(name) && name != m_tree) {
            retire(name);
        }
    }
    return {};
}

// Trees no mount shows any more: removed as the user, or moved aside when they must be kept.
// One that cannot go is looked for again at the next start.
ManagedService::Outcome ManagedService::retire_trees()
{
    if (m_retired.empty()) {
        return {};
    }
    auto trees = open_trees();
    if (!trees) {
        log::warn("[{}] {}; old trees stay until the next start", m_config.name,
                  trees.error().message);
        return {};
    }
    for (const auto& [name, keep_why, commit] : std::exchange(m_retired, {})) {
        if (name == m_tree) {
            continue; // live again: never removed
        }
        if (auto gone = discard_tree(trees->get(), name, keep_why, commit); !gone) {
            log::warn("[{}] {}", m_config.name, gone.error().message);
        }
    }
    return {};
}

// A tree of this service that is not live goes: what its user wrote there since git did (it
// was live, or a mount still showed it) is saved like drift first. Kept aside instead when
// that cannot be told or saved, when `keep_why` says so, or when it is another owner's (not
// the user's to remove).
Result<> ManagedService::discard_tree(int trees_fd, const std::string& name,
                                      const std::string& keep_why, std::string commit)
{
    const auto path = m_layout.trees() + "/" + name;
    struct stat st {};
    if (::fstatat(trees_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return {}; // gone already
    }
    const uid_t uid = m_user ? m_user->uid : ::geteuid();
    auto why = !keep_why.empty()  ? keep_why
               : st.st_uid != uid ? fmt::format("it belongs to uid {}", st.st_uid)
                                  : std::string();
    if (why.empty() && S_ISDIR(st.st_mode) && commit.empty()) {
        auto found = m_store.git().find_commit(m_layout.commit_of(name).value_or(""));
        commit = found && *found ? **found : std::string();
        why = commit.empty() ? "its commit cannot be read from the object store" : "";
    }
    if (why.empty() && S_ISDIR(st.st_mode)) {
        if (auto saved = save_tree_edits(plain_tree(path, commit)); !saved) {
            why = saved.error().message;
        }
    }
    if (!why.empty()) {
        auto aside = move_aside(m_config, path, why);
        return aside ? Result<>{} : std::unexpected(aside.error());
    }
    return remove_tree(trees_fd, m_layout.trees(), name, m_user);
}

// What the user wrote into a tree that is not live, saved as a drift patch and reverted.
Result<> ManagedService::save_tree_edits(const Git& tree)
{
    if (auto left = tree.local_changes(0); left && left->count == 0) {
        return {};
    }
    log::warn("[{}] {} holds files that are not git's: saving them", m_config.name, tree.dir());
    auto taken = take_drift_of(tree);
    return taken ? Result<>{} : fail("{}", taken.error().message);
}

// Every target switched to the live tree at once (see switch_bind_mount). A kernel without
// MOVE_MOUNT_BENEATH (before 6.5) updates the live tree in place instead (see stage()), and
// only a file mount, pinned to its old inode, is detached and mounted again.
ManagedService::Outcome ManagedService::mount_all()
{
    for (const auto& link : m_config.dirs) {
        if (link.local.empty()) {
            continue; // checked out only, mounted nowhere (the bootstrap config, SPEC §9)
        }
        auto spec = bind_mount_of(link, live_dir());
        const auto ours = our_sources(link);
        auto mounted = switch_bind_mount(spec, ours, m_user);
        if (!mounted && !mount_beneath_supported()) {
            const auto shown = source_id(BindMount{"/", link.local.substr(1), "", link.file});
            if (shown && std::find(ours.begin(), ours.end(), *shown) != ours.end()) {
                spec.ours = *shown;
            }
            mounted = ensure_bind_mount(spec, m_user);
        }
        if (!mounted) {
            return host_failure(mounted.error().message);
        }
        m_mounted[link.local] = mounted->source;
        m_newly_mounted = m_newly_mounted || mounted->result == MountResult::mounted;
        if (mounted->result != MountResult::unchanged) {
            log::info("[{}] {} {}/{} on {}", m_config.name,
                      mounted->result == MountResult::mounted ? "mounted" : "switched", live_dir(),
                      link.path, link.local);
        }
    }
    return {};
}

ManagedService::Outcome ManagedService::retire_migrated()
{
    const auto there = exists_no_symlinks(m_layout.migrated());
    if (!there) {
        log::warn("[{}] {}; looking again later", m_config.name, there.error().message);
        return {};
    }
    if (!m_migrated && !*there) {
        return {};
    }
    m_migrated = false;
    if (!save_migrated_edits()) {
        return {}; // the clone stays, with its edits, until a start can save them
    }
    auto base = open_no_symlinks(m_config.mount + "/.gitopper", O_PATH | O_DIRECTORY);
    if (base) {
        const auto name = fs::path(m_layout.migrated()).filename().string();
        if (auto r = remove_tree(base->get(), m_config.mount + "/.gitopper", name, m_user); !r) {
            log::warn("[{}] {}", m_config.name, r.error().message);
        }
    }
    remove_old_layout();
    return {};
}

// What the worktree layout left besides the migrated tree: the other tree of the two in
// root's M/.gitopper/trees/<service>/, and git's records of both in the store.
void ManagedService::remove_old_layout()
{
    const auto dir = m_layout.old_trees();
    auto old = open_no_symlinks(dir, O_PATH | O_DIRECTORY);
    if (!old) {
        return; // none: a clone of its own was migrated, or it went already
    }
    for (const auto* name : {"0", "1"}) {
        if (auto r = remove_tree(old->get(), dir, name, m_user); !r) {
            log::warn("[{}] {}", m_config.name, r.error().message);
        }
    }
    auto trees = open_no_symlinks(m_layout.trees(), O_PATH | O_DIRECTORY);
    const auto service = fs::path(dir).filename().string();
    if (!trees || ::unlinkat(trees->get(), service.c_str(), AT_REMOVEDIR) != 0) {
        log::warn("[{}] cannot remove {}: {}", m_config.name, dir,
                  trees ? errno_message(errno) : trees.error().message);
    }
    m_store.prune_worktrees();
}

// Local edits in the old clone, saved before it goes. They were not reverted under the
// service: they left its files when the mounts switched to the new tree, all at once, and the
// service is told, as after any revert. A clone that is no repository any more (a kill during
// its removal) holds nothing to save.
bool ManagedService::save_migrated_edits()
{
    Git old(m_layout.migrated(), m_user, m_host.git_timeout, m_config.upstream, m_store.dir());
    struct stat st {};
    if (::fstatat(AT_FDCWD, (m_layout.migrated() + "/.git").c_str(), &st, AT_SYMLINK_NOFOLLOW) !=
        0) {
        return true; // git failing in it is no reason to delete it: only a missing .git
    }
    const auto hash = status().hash;
    const bool owed = [&] {
        std::lock_guard lock(m_mutex);
        return std::exchange(m_saved.owed, true);
    }();
    persist(); // saved before anything is reverted: a kill -9 during the revert still owes it
    auto taken = take_drift_of(old);
    if (!taken || !*taken) {
        std::lock_guard lock(m_mutex);
        m_saved.owed = owed; // nothing reverted (yet): owed as before
    }
    if (!taken) {
        log::warn("[{}] {}; the old checkout stays in {}", m_config.name, taken.error().message,
                  m_layout.migrated());
        persist();
        return false;
    }
    if (*taken) {
        add_history(hash, hash, Trigger::drift, "reverted " + (*taken)->files);
    } else {
        persist();
    }
    return true;
}

ManagedService::Outcome ManagedService::start_unit()
{
    if (!m_config.exec.empty() || m_config.self) {
        return {}; // no systemd here, or gitopper's own config: nothing to start
    }
    if (is_template_instance(m_config.name)) {
        if (auto r = m_host.systemd.run("enable", m_config.name); !r) {
            return host_failure(r.error().message);
        }
    }
    if (auto r = reload_units_if_needed(); !r) {
        return host_failure(r.error().message);
    }
    owe_action_if_running();
    if (auto r = m_host.systemd.run("start", m_config.name); !r) {
        return host_failure(r.error().message);
    }
    return {};
}

// A unit that ran before its files were first mounted read the files beneath the mounts, and
// `systemctl start` tells a running unit nothing: its action is owed, as after a deploy, and
// act_if_owed runs it. Owed also when systemd cannot say: a reload too many beats a service
// left on its old files.
void ManagedService::owe_action_if_running()
{
    if (!std::exchange(m_newly_mounted, false) || m_config.action.empty()) {
        return;
    }
    auto running = m_host.systemd.is_running(m_config.name);
    if (running && !*running) {
        return;
    }
    log::info("[{}] {}: its {} runs once it is started", m_config.name,
              running ? "was running before its files were mounted"
                      : "cannot tell whether it runs (" + running.error().message + ")",
              m_config.action);
    {
        std::lock_guard lock(m_mutex);
        m_saved.owed = true;
    }
    persist(); // a kill -9 before the action still owes it: the mount is not new then
}

// A daemon stopped (kill -9, power loss) between a switch and its action leaves the service
// running on files it was never told about; `systemctl start` does nothing to a running one.
ManagedService::Outcome ManagedService::act_if_owed()
{
    const auto head = status().hash;
    auto [applied, owed] = [&] {
        std::lock_guard lock(m_mutex);
        return std::pair{m_saved.applied, m_saved.owed}; // owed: it ran on edits now reverted
    }();
    const bool was_owed = owed;
    bool cut_short = false; // a deploy whose action, and so its health, never ran
    if (applied != head && !applied.empty()) {
        auto survey = m_store.survey(applied, head, m_config.dirs, m_config.file_size_limit());
        if (!survey || !survey->changed.empty()) {
            log::warn("[{}] {} was checked out but its action never ran; running it now",
                      m_config.name, short_hash(head));
            owed = cut_short = true;
        }
    }
    if (owed) {
        if (auto r = act(); !r) {
            return r;
        }
        std::lock_guard lock(m_mutex);
        m_saved.owed = false;
    }
    if (auto healthy = cut_short ? check_health(head) : Result<>{}; !healthy) {
        if (processes_cancelled()) {
            return host_failure("stopped during the health check"); // judged at the next start
        }
        return roll_back_unhealthy(applied, head, Trigger::start, healthy.error().message);
    }
    if (cut_short) {
        clear_quarantine(head); // healthy after all, as after a deploy
    }
    if (applied != head || was_owed) {
        mark_applied(head);
        persist();
    }
    return {};
}

// ---- tracking upstream ---------------------------------------------------------------------

// The retry rule, in one place: a BROKEN service is tried again when upstream moved past the
// head it broke at, or when an operator (pull, webhook) asks.
bool ManagedService::wants(const std::string& head, Trigger trigger) const
{
    const auto now = status();
    if (!tracks_upstream(now.state) && m_ready) {
        return false;
    }
    if (quarantined(head, trigger) || (head == m_unverified && trigger != Trigger::pull)) {
        return false;
    }
    if (now.state == State::broken) {
        return is_manual(trigger) || head != m_failed_head;
    }
    return head != now.hash || !m_ready;
}

void ManagedService::reconcile(const Result<std::string>& remote_head, Trigger trigger)
{
    m_trigger = trigger;
    const auto head = remote_head ? *remote_head : std::string();
    if (!m_ready) {
        if (!wants(head, trigger)) {
            return;
        }
        if (auto r = prepare(); !r) {
            m_failed_head = head;
            finish(r);
            return;
        }
        finish({});
        if (!remote_head) {
            return; // asked before the store could be opened: the next poll comes soon
        }
    }
    const auto now = status(); // one snapshot for the decisions below
    if (!tracks_upstream(now.state)) {
        return;
    }
    if (!remote_head) {
        record(Event::git_failed, remote_head.error().message);
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_status.upstream = head;
        if (head == now.hash && now.state != State::broken) {
            m_status.synced = std::chrono::system_clock::now(); // in sync, nothing to do
        }
    }
    if (head == now.hash) {
        leave_line(); // upstream came back to what is live
        if (!m_window_checked.empty()) {
            stop_waiting(); // upstream came back to what is live
            record(Event::succeeded, "");
        }
        if (now.state == State::diff) {
            record(Event::succeeded, "");
        } else if (now.state == State::broken && is_manual(trigger)) {
            retry_at_head();
        }
        return;
    }
    if (quarantined(head, trigger)) {
        leave_line();
        std::lock_guard lock(m_mutex);
        if (m_status.state == State::ok) {
            m_status.info = fmt::format("{} quarantined: its health check failed; a pull tries it "
                                        "again",
                                        short_hash(head));
        }
        return;
    }
    if (!wants(head, trigger)) {
        return;
    }
    // An unsigned head moves nothing: DIFF, until upstream moves or an operator pulls. (When
    // git could not tell, the next poll asks again.)
    auto refusal = signature_refusal(head);
    if (!refusal || *refusal) {
        leave_line();
        m_unverified = refusal ? head : m_unverified;
        record(Event::git_failed, refusal ? **refusal : refusal.error().message);
        return;
    }
    note_verified(head);
    // A BROKEN service retries what failed: its action runs even if nothing of it changed
    // since the commit whose action failed.
    auto outcome = deploy(head, trigger, now.state == State::broken);
    if (!outcome && outcome.error().event == Event::host_failed) {
        m_failed_head = head;
    }
    finish(outcome, m_waiting);
}

// A pull for a BROKEN service already at upstream's head: retry what failed.
void ManagedService::retry_at_head()
{
    if (m_drift_kept) {
        check_drift();
        return;
    }
    auto outcome = mount_all();
    if (outcome) {
        outcome = act();
    }
    if (outcome) {
        mark_applied(status().hash); // or the next start would run the action again
        persist();
    }
    finish(outcome);
}

// From the deployed commit to `commit`, as a script: each step says why it is there.
ManagedService::Outcome ManagedService::deploy(const std::string& commit, Trigger trigger,
                                               bool force_action)
{
    const auto from = status().hash;
    const auto failed = [&](Failure failure) {
        add_history(from, commit, trigger, failure.message);
        if (m_notes.empty()) { // a refused check has said so already
            note(kEventDeployFailed, from, commit, trigger, failure.message);
        }
        return std::unexpected(std::move(failure));
    };
    // Which of our paths change, and may the new tree be checked out at all (SPEC §11).
    auto survey = m_store.survey(from, commit, m_config.dirs, m_config.file_size_limit());
    if (!survey) {
        return failed({Event::git_failed, survey.error().message});
    }
    if (survey->refusal) {
        // Nothing of it is checked out: the service keeps its current files and mounts.
        return failed({Event::host_failed, *survey->refusal});
    }
    // Nothing of ours changed: the recorded commit moves, no file is written, nothing runs,
    // and no git runs in the tree either (its local edits are drift's to find).
    if (survey->changed.empty() && !force_action && trigger != Trigger::rollback) {
        leave_line();
        std::lock_guard lock(m_mutex);
        m_status.hash = commit;
        log::debug("[{}] at {}: none of its paths changed", m_config.name, short_hash(commit));
        return {};
    }
    // Outside its maintenance windows a new commit is checked, not published (SPEC §6).
    if (held_by_window(trigger)) {
        leave_line(); // a host that waits for its window must not hold a slot meanwhile
        return wait_for_window(from, commit, trigger);
    }
    stop_waiting();
    // With a fleet rollout, only in one of the commit's slots (SPEC §6), left however the
    // deploy ends (a failed health check marks the commit bad first).
    auto turn = take_turn(from, commit, trigger);
    if (!turn || !*turn) {
        return turn ? Outcome{} : std::unexpected(turn.error());
    }
    const struct Slot {
        ManagedService& service;
        ~Slot() { service.leave_slot(); }
    } slot{*this};
    // Local edits are saved and reverted first: the live tree is the next deploy's spare, and
    // an edit is never lost unsaved.
    auto reverted = take_drift_before(commit, trigger);
    if (!reverted) {
        return std::unexpected(reverted.error());
    }
    force_action = force_action || *reverted; // the service's files changed back
    const auto changed = survey->changed.size();
    Outcome outcome;
    // The new files go into a tree nobody reads, are checked there, then every mount switches
    // to them at once. (A rollback to the commit whose files the live tree holds has nothing
    // to write.)
    if (trigger != Trigger::health) {
        announce_deploy(from, commit, trigger);
    }
    if (m_layout.tree_name(commit) != m_tree) {
        const bool in_place = !mount_beneath_supported() && !m_tree.empty();
        if (auto checked =
                in_place && trigger != Trigger::health ? check_in_scratch_tree(commit) : Result<>{};
            !checked) {
            return failed({Event::host_failed, checked.error().message});
        }
        // In a slot, the commit may have been marked bad on another host meanwhile: asked
        // again before anything live moves (in place, staging moves the live files).
        const auto marked_meanwhile = [&](bool staged) -> std::optional<Outcome> {
            auto go = still_my_turn(commit);
            if (go && *go) {
                return std::nullopt;
            }
            if (staged) {
                (void)discard_staged(commit);
            }
            return go ? Outcome{} : Outcome(std::unexpected(go.error()));
        };
        if (auto stop = in_place ? marked_meanwhile(false) : std::nullopt) {
            return *stop;
        }
        auto staged = stage(commit);
        if (!staged) {
            return failed({Event::git_failed, staged.error().message});
        }
        // A rollback goes back to a commit that passed its check when it went live.
        const bool checked_before = trigger == Trigger::health;
        if (auto checked =
                in_place || checked_before ? Result<>{} : check_staged(commit, staged->dir());
            !checked) {
            (void)discard_staged(commit);
            note(kEventCheckFailed, from, commit, trigger, checked.error().message);
            return failed({Event::host_failed, checked.error().message});
        }
        if (auto stop = in_place ? std::nullopt : marked_meanwhile(true)) {
            return *stop;
        }
        log::info("[{}] deployed {} -> {} ({}, {} changed path{})", m_config.name, short_hash(from),
                  short_hash(commit), trigger_name(trigger), changed, changed == 1 ? "" : "s");
        outcome = publish(commit, std::move(*staged));
    }
    if (m_tree == m_layout.tree_name(commit)) { // the new tree is live (its mounts may have failed)
        std::lock_guard lock(m_mutex);
        m_status.hash = commit;
        m_status.change = std::chrono::system_clock::now();
    }
    // The service is told, by its action, and must be healthy after it (a rollback's own
    // commit was healthy before: it is not tried again, so a rollback never loops).
    if (outcome && (force_action || changed != 0)) {
        outcome = act();
        if (!outcome && status().holding_slot) {
            mark_bad(commit, outcome.error().message); // the next host's would fail too
        }
        auto healthy = outcome && trigger != Trigger::health ? check_health(commit) : Result<>{};
        if (!healthy && processes_cancelled()) {
            // Cut short by the shutdown, which says nothing of the commit: it stays, owed its
            // health no more than a deploy the shutdown did not reach.
            add_history(from, commit, trigger, "stopped during the health check");
            return host_failure("stopped during the health check");
        }
        if (!healthy) {
            return roll_back_unhealthy(from, commit, trigger, healthy.error().message);
        }
        leave_slot(); // healthy: the next host need not wait for what is left to tidy here
    }
    if (outcome) {
        mark_applied(commit);
        clear_quarantine(commit);
        (void)retire_trees(); // after the action: its removal is no part of the deploy's time
    }
    const auto result = !outcome                     ? outcome.error().message
                        : trigger == Trigger::health ? "automatic rollback"
                                                     : std::string("ok");
    add_history(from, commit, trigger, result);
    if (outcome) {
        note(trigger == Trigger::health ? kEventRollback : kEventDeploy, from, commit, trigger);
    }
    return outcome;
}

// An operator's rollback and the automatic one go back to what was live before: no slot for
// them. Everything else stands in line for one, unless the commit is marked bad. A commit is
// checked once (in a tree of its own) before it stands in line, so that no host holds a slot
// for a commit its check refuses.
std::expected<bool, ManagedService::Failure>
ManagedService::take_turn(const std::string& from, const std::string& commit, Trigger trigger)
{
    auto* rollout = m_host.rollout;
    if (rollout == nullptr || trigger == Trigger::rollback || trigger == Trigger::health) {
        return true;
    }
    if (m_turn_commit != commit) {
        leave_line();
        if (auto checked = check_in_scratch_tree(commit); !checked) {
            add_history(from, commit, trigger, checked.error().message);
            note(kEventCheckFailed, from, commit, trigger, checked.error().message);
            return std::unexpected(Failure{Event::host_failed, checked.error().message});
        }
        m_turn_commit = commit;
        m_turn_since = std::chrono::steady_clock::now();
    }
    m_turn_trigger = trigger;
    return ask_turn(commit);
}

// Where this host stands for `commit` now, as etcd says: in its state, its info, its log.
std::expected<bool, ManagedService::Failure> ManagedService::ask_turn(const std::string& commit)
{
    auto* rollout = m_host.rollout;
    auto turn = rollout->take(m_config.name, commit, rollout->slots(m_config));
    if (!turn) {
        set_turn(false, false, false);
        return std::unexpected(Failure{Event::git_failed, "rollout: " + turn.error().message});
    }
    const auto before = status();
    if (turn->kind == Turn::Kind::held) {
        set_turn(false, false, true);
        m_waiting = fmt::format("held: {} failed on {}", short_hash(commit), turn->held_by);
        if (!before.held) {
            log::warn("[{}] {} ({}); the next commit goes out as usual", m_config.name, m_waiting,
                      turn->held_why);
        }
        return false;
    }
    if (turn->kind == Turn::Kind::wait) {
        set_turn(true, false, false);
        m_waiting = fmt::format("waiting for a rollout slot ({} hosts in line for {})",
                                turn->in_line, rollout->slots(m_config));
        if (!before.waiting_for_slot) {
            log::info("[{}] {} is ready; {}", m_config.name, short_hash(commit), m_waiting);
        }
        return false;
    }
    if (!before.holding_slot) {
        took_slot(commit);
    }
    return true;
}

void ManagedService::took_slot(const std::string& commit)
{
    const auto waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - m_turn_since).count();
    set_turn(false, true, false);
    {
        std::lock_guard lock(m_mutex);
        ++m_status.slots_taken;
        m_status.slot_wait_seconds += waited;
    }
    m_waiting.clear();
    log::info("[{}] took a rollout slot for {} after {:.1f} s", m_config.name, short_hash(commit),
              waited);
}

void ManagedService::set_turn(bool waiting, bool holding, bool held)
{
    std::lock_guard lock(m_mutex);
    m_status.waiting_for_slot = waiting;
    m_status.holding_slot = holding;
    m_status.held = held;
}

// Just before the switch, in a slot: the commit may have been marked bad on another host
// while this one wrote and checked its tree.
std::expected<bool, ManagedService::Failure>
ManagedService::still_my_turn(const std::string& commit)
{
    if (m_host.rollout == nullptr || !status().holding_slot) {
        return true;
    }
    return ask_turn(commit);
}

void ManagedService::leave_line()
{
    if (m_turn_commit.empty()) {
        return;
    }
    if (m_host.rollout != nullptr) {
        m_host.rollout->leave(m_config.name, m_turn_commit);
    }
    m_turn_commit.clear();
    set_turn(false, false, false);
}

void ManagedService::leave_slot()
{
    if (!status().holding_slot) {
        return;
    }
    leave_line();
}

// Health (or the action) failed here: no other host of the fleet applies the commit. Also
// for a failure at start, where the deploy before the restart may have been cut short.
void ManagedService::mark_bad(const std::string& commit, const std::string& why)
{
    if (m_host.rollout == nullptr) {
        return;
    }
    log::warn("[{}] marking {} bad for the fleet: no other host applies it", m_config.name,
              short_hash(commit));
    m_host.rollout->mark_bad(m_config.name, commit, why);
    std::lock_guard lock(m_mutex);
    ++m_status.marked_bad;
}

void ManagedService::resume_rollout()
{
    if (m_turn_commit.empty() || !tracks_upstream(state())) {
        return;
    }
    const std::string head = m_turn_commit;
    reconcile(head, m_turn_trigger);
}

// Polls, webhooks and unfreezes wait for a window; a pull or a rollback is an operator's
// decision, and an automatic rollback undoes what a window let through.
bool ManagedService::held_by_window(Trigger trigger) const
{
    const bool operator_said =
        trigger == Trigger::pull || trigger == Trigger::rollback || trigger == Trigger::health;
    return !m_windows.empty() && !operator_said &&
           !inside(m_windows, std::chrono::system_clock::now());
}

// The commit is checked once, in a tree of its own (nothing live moves), then waits: state
// info says until when, and the poll thread comes back when the window opens.
ManagedService::Outcome ManagedService::wait_for_window(const std::string& from,
                                                        const std::string& commit, Trigger trigger)
{
    const auto opens = next_opening(m_windows, std::chrono::system_clock::now());
    m_waiting = fmt::format("waiting for window (next: {})",
                            opens ? local_weekday_time(*opens) : std::string("none within 8 days"));
    if (m_window_checked != commit) {
        if (auto checked = check_in_scratch_tree(commit); !checked) {
            add_history(from, commit, trigger, checked.error().message);
            note(kEventCheckFailed, from, commit, trigger, checked.error().message);
            stop_waiting();
            return host_failure(checked.error().message);
        }
        m_window_checked = commit;
        log::info("[{}] {} is ready; {}", m_config.name, short_hash(commit), m_waiting);
    }
    std::lock_guard lock(m_mutex);
    m_status.waiting_for_window = true;
    return {};
}

void ManagedService::stop_waiting()
{
    m_waiting.clear();
    m_window_checked.clear();
    std::lock_guard lock(m_mutex);
    m_status.waiting_for_window = false;
}

std::optional<std::chrono::system_clock::time_point>
ManagedService::window_opens(std::chrono::system_clock::time_point now) const
{
    if (m_window_checked.empty() || !tracks_upstream(state())) {
        return std::nullopt;
    }
    return next_opening(m_windows, now);
}

// `commit` written into a tree of its own beside the live one. A kernel that cannot switch
// mounts atomically (before 6.5) has the live tree's files moved to `commit` in place, and
// the tree renamed after its commit (the mounts of its directories follow it): a reader may
// see a mix while git writes, and a kill -9 between the two leaves a tree whose files are
// newer than its name says, which the next start reverts as drift (saved) and deploys again.
Result<Git> ManagedService::stage(const std::string& commit)
{
    auto trees = open_trees();
    if (!trees) {
        return std::unexpected(trees.error());
    }
    if (mount_beneath_supported() || m_tree.empty()) {
        auto tree = build_tree(trees->get(), commit, true);
        if (!tree) {
            return tree;
        }
        // The user owns the new tree from the start and may write into it before it is live
        // (its name is easy to guess): what is not git's is saved like drift, never published.
        if (auto left = tree->written_changes(0); !left || left->count != 0) {
            log::warn("[{}] {} holds files that are not git's: saving them", m_config.name,
                      m_layout.tree(commit));
            if (auto taken = take_drift_of(*tree); !taken) {
                return fail("{}", taken.error().message);
            }
        }
        return tree;
    }
    const auto name = m_layout.tree_name(commit);
    if (auto r = clear_name(trees->get(), name); !r) {
        return std::unexpected(r.error());
    }
    // Git is about to write the live tree itself: whatever is not git's there is saved first,
    // whatever the watches said.
    if (auto r = save_tree_edits(*m_git); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = m_git->move_plain(commit); !r) {
        return std::unexpected(r.error());
    }
    if (::renameat(trees->get(), m_tree.c_str(), trees->get(), name.c_str()) != 0) {
        return fail("rename {} to {}: {}", live_dir(), name, errno_message(errno));
    }
    return plain_tree(m_layout.tree(commit), commit);
}

// A `check` or `health` command: its placeholders filled, GITOPPER_* set, killed at
// `timeout`. It runs as the service's user when there is one: root never works in a tree the
// user controls (SPEC §11), and the user owns the trees. Without a user it runs as root.
Command ManagedService::gate_command(const Argv& argv, const std::string& dir,
                                     const std::string& commit, Duration timeout,
                                     bool as_user) const
{
    const auto& user = as_user ? m_user : std::nullopt;
    const std::array<std::pair<std::string_view, std::string>, 3> values{
        {{"dir", dir}, {"commit", commit}, {"service", m_config.name}}};
    const std::vector<std::string> ours{"GITOPPER_DIR=" + dir, "GITOPPER_COMMIT=" + commit,
                                        "GITOPPER_SERVICE=" + m_config.name};
    static constexpr std::array<std::string_view, 5> kKept{"PATH", "LANG", "LC_ALL", "LC_CTYPE",
                                                           "TZ"};
    return Command{.argv = fill_placeholders(argv, values),
                   .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                   .as_user = user,
                   .env = user ? environment_of(kKept, ours) : environment_with(ours),
                   .cwd = "/"};
}

// The `health` (SPEC §6) after the action: tried health_retries times, health_interval apart.
// Without one, a service with an action is asked about through systemd (`is-active`).
Result<> ManagedService::check_health(const std::string& commit)
{
    // `stop` and the try-* actions may leave the unit inactive on purpose: no default there.
    static constexpr std::array<std::string_view, 4> kRunning{"start", "restart", "reload",
                                                              "reload-or-restart"};
    const bool by_default =
        std::find(kRunning.begin(), kRunning.end(), m_config.action) != kRunning.end();
    if (m_config.health.empty() && !by_default) {
        return {};
    }
    Result<> tried;
    for (std::int64_t attempt = 1; attempt <= m_config.health_retries; ++attempt) {
        if (attempt > 1 &&
            !sleep_unless_cancelled(
                std::chrono::duration_cast<std::chrono::milliseconds>(m_config.health_interval))) {
            break;
        }
        tried = health_try(commit);
        if (tried) {
            break;
        }
        log::warn("[{}] health of {}, try {} of {}: {}", m_config.name, short_hash(commit), attempt,
                  m_config.health_retries, tried.error().message);
    }
    {
        std::lock_guard lock(m_mutex);
        ++(tried ? m_status.health_passed : m_status.health_failed);
    }
    if (!tried) {
        return fail("health failed for {}: {}", short_hash(commit), tried.error().message);
    }
    return {};
}

Result<> ManagedService::health_try(const std::string& commit)
{
    if (m_config.health.empty()) {
        return m_host.systemd.run("is-active", m_config.name);
    }
    auto output =
        run(gate_command(m_config.health, m_layout.link(), commit, m_config.health_timeout));
    if (!output) {
        return std::unexpected(output.error());
    }
    return output->ok() ? Result<>{} : fail("{}", output->describe());
}

// Every health try failed: `commit` is quarantined, and the commit before it goes back live
// and is told again. The service ends BROKEN either way, still tracking upstream.
ManagedService::Outcome ManagedService::roll_back_unhealthy(const std::string& from,
                                                            const std::string& commit,
                                                            Trigger trigger, const std::string& why)
{
    add_history(from, commit, trigger, why);
    note(kEventHealthFailed, from, commit, trigger, why);
    mark_bad(commit, why);
    {
        std::lock_guard lock(m_mutex);
        m_saved.quarantined = commit;
    }
    if (from.empty()) {
        persist();
        return host_failure(why + "; no earlier commit to roll back to");
    }
    log::warn("[{}] {}; {} quarantined, rolling back to {}", m_config.name, why, short_hash(commit),
              short_hash(from));
    auto back = deploy(from, Trigger::health, true);
    {
        std::lock_guard lock(m_mutex);
        ++m_status.rollbacks;
    }
    persist();
    if (!back) {
        return host_failure(fmt::format("{}; rolling back to {} failed: {}", why, short_hash(from),
                                        back.error().message));
    }
    return host_failure(fmt::format("{}; rolled back to {}, {} quarantined", why, short_hash(from),
                                    short_hash(commit)));
}

// A commit whose health failed is deployed again only when an operator pulls it.
bool ManagedService::quarantined(const std::string& commit, Trigger trigger) const
{
    std::lock_guard lock(m_mutex);
    return trigger != Trigger::pull && !commit.empty() && commit == m_saved.quarantined;
}

// The `check` (SPEC §6) on the staged tree of `commit`, before it goes live. It runs as the
// service's user when there is one: root never works in a tree the user controls (SPEC §11),
// and the user owns the staged tree. Without a user it runs as root.
Result<> ManagedService::check_staged(const std::string& commit, const std::string& dir)
{
    if (m_config.check.empty()) {
        return {};
    }
    const auto command = gate_command(m_config.check, dir, commit, m_config.check_timeout);
    log::info("[{}] checking {}: {}", m_config.name, short_hash(commit), printable(command.argv));
    const auto started = std::chrono::steady_clock::now();
    auto output = run(command);
    const bool passed = output && output->ok();
    log::debug("[{}] check of {} took {:.1f} ms", m_config.name, short_hash(commit),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                   .count());
    {
        std::lock_guard lock(m_mutex);
        ++(passed ? m_status.checks_passed : m_status.checks_failed);
    }
    if (!output) {
        return fail("check of {} could not run: {}", short_hash(commit), output.error().message);
    }
    if (!passed) {
        return fail("check failed for {}: {}", short_hash(commit), output->describe());
    }
    return {};
}

// Where the live tree's files are moved in place (a kernel before 6.5), `commit` is first written
// into a tree of its own to be checked, and removed again: the live files move only once the
// check passed.
Result<> ManagedService::check_in_scratch_tree(const std::string& commit)
{
    if (m_config.check.empty()) {
        return {};
    }
    auto trees = open_trees();
    if (!trees) {
        return std::unexpected(trees.error());
    }
    auto tree = build_tree(trees->get(), commit);
    auto checked =
        tree ? check_staged(commit, tree->dir()) : Result<>(std::unexpected(tree.error()));
    if (auto removed = discard_staged(commit); !removed && checked) {
        return removed;
    }
    return checked;
}

// A staged tree that will not go live: what the user wrote there is saved, the tree removed.
Result<> ManagedService::discard_staged(const std::string& commit)
{
    auto trees = open_trees();
    if (!trees) {
        return std::unexpected(trees.error());
    }
    return discard_tree(trees->get(), m_layout.tree_name(commit), "", commit);
}

// take_drift() in another tree than the live one (the spare, an old clone); what it finds
// there does not count as the live tree's.
ManagedService::Taken ManagedService::take_drift_of(const Git& tree)
{
    auto live = std::exchange(m_git, tree);
    const bool kept = m_drift_kept;
    auto taken = take_drift();
    m_git = std::move(live);
    m_drift_kept = kept;
    return taken;
}

// M/<service> and every mount switch to the tree of `commit`.
ManagedService::Outcome ManagedService::publish(const std::string& commit, Git tree)
{
    auto base = open_mount_base(m_config.mount);
    if (!base) {
        return host_failure(base.error().message);
    }
    if (auto r = m_layout.publish(base->first.get(), commit); !r) {
        return host_failure(r.error().message);
    }
    make_live(commit, std::move(tree));
    return mount_all();
}

ManagedService::Outcome ManagedService::act()
{
    auto outcome = [&]() -> Outcome {
        if (m_config.self) {
            return {}; // gitopper's own config: a change is for the daemon (-r), not systemd
        }
        if (!m_config.exec.empty()) {
            return run_exec();
        }
        if (auto r = reload_units_if_needed(); !r) {
            return std::unexpected(Failure{Event::host_failed, r.error().message});
        }
        if (m_config.action.empty()) {
            return {};
        }
        if (auto r = m_host.systemd.run(m_config.action, m_config.name); !r) {
            return std::unexpected(Failure{Event::host_failed, r.error().message});
        }
        log::info("[{}] systemctl {} {}", m_config.name, m_config.action, m_config.name);
        return {};
    }();
    std::lock_guard lock(m_mutex);
    ++(outcome ? m_status.actions_ok : m_status.actions_failed);
    return outcome;
}

// A daemon-reload makes systemd read every unit file again and holds up all its other work
// meanwhile (0.3 s on a small host, far more on a large one): only when a unit file may have
// changed through our mounts, or systemd says this unit's did (asking is cheap). When it
// cannot say, reload.
Result<> ManagedService::reload_units_if_needed()
{
    const bool mounts_units =
        std::any_of(m_config.dirs.begin(), m_config.dirs.end(),
                    [](const Link& l) { return may_hold_unit_files(l.local); });
    if (!mounts_units) {
        auto needed = m_host.systemd.needs_daemon_reload(m_config.name);
        if (needed && !*needed) {
            return {};
        }
    }
    return m_host.systemd.daemon_reload();
}

// `exec` instead of systemctl, as root like the systemctl it replaces, killed after 90 s. Its
// job may be to start a daemon, which then outlives it: stdout and stderr, the daemon's too,
// go to <state>/exec-<service>.log (root's alone), and what was left running is not killed.
// Each run starts a new file; the last one's becomes .log.1, where a daemon it started goes
// on writing (O_APPEND: copytruncate rotation works too).
ManagedService::Outcome ManagedService::run_exec()
{
    const auto path = fmt::format("{}/exec-{}.log", m_host.state_dir, m_config.name);
    if (::rename(path.c_str(), (path + ".1").c_str()) != 0 && errno != ENOENT) {
        log::warn("[{}] cannot keep {} as {}.1: {}", m_config.name, path, path,
                  errno_message(errno));
    }
    const Fd log_file(
        ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!log_file) {
        return host_failure(fmt::format("exec: cannot open {}: {}", path, errno_message(errno)));
    }
    auto command = gate_command(m_config.exec, m_layout.link(), status().hash,
                                std::chrono::seconds(90), false);
    command.stdout_fd = command.stderr_fd = log_file.get();
    command.starts_daemons = true;
    log::info("[{}] running {}", m_config.name, printable(command.argv));
    auto output = run(command);
    if (!output) {
        return host_failure(fmt::format("exec: {}", output.error().message));
    }
    if (!output->ok()) {
        output->err = tail_of_file(log_file.get());
        return host_failure(fmt::format("exec: {}", output->describe()));
    }
    return {};
}

void ManagedService::owe_action()
{
    std::lock_guard lock(m_mutex);
    m_saved.owed = true;
}

void ManagedService::clear_quarantine(const std::string& commit)
{
    std::lock_guard lock(m_mutex);
    if (m_saved.quarantined == commit) {
        m_saved.quarantined.clear();
    }
}

void ManagedService::mark_applied(const std::string& commit)
{
    std::lock_guard lock(m_mutex);
    m_saved.applied = commit;
}

// ---- local drift ---------------------------------------------------------------------------

void ManagedService::check_drift()
{
    m_trigger = Trigger::drift;
    if (!m_ready) {
        return;
    }
    const auto present = exists_no_symlinks(live_dir());
    if (!present) {
        finish(host_failure("cannot look at the work tree: " + present.error().message));
        return;
    }
    if (!*present) {
        // Someone removed the tree under us: check it out again and remount, now.
        log::warn("[{}] work tree {} disappeared; checking it out again", m_config.name,
                  live_dir());
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
        note(kEventDriftReverted, hash, hash, Trigger::drift, files);
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
                  m_config.name, escape_controls(changes.error().message));
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
    ++m_generation;
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
    log::warn("[{}] local changes reverted to git's version (saved in {}): {}", m_config.name,
              saved_as, files);
    return files;
}

// The checkout of `commit` would overwrite local edits: they are saved and reverted first,
// or it waits. Whether there were any.
std::expected<bool, ManagedService::Failure>
ManagedService::take_drift_before(const std::string& commit, Trigger trigger)
{
    if (std::exchange(m_watched_clean, false)) {
        return false; // inotify watched every directory and saw nothing
    }
    const auto from = status().hash;
    auto taken = take_drift();
    if (!taken) {
        add_history(from, commit, trigger, taken.error().message);
        return std::unexpected(taken.error());
    }
    if (*taken) {
        add_history(from, from, Trigger::drift, "reverted " + (*taken)->files);
        note(kEventDriftReverted, from, from, Trigger::drift, (*taken)->files);
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

namespace {

// "frozen by alice@laptop until Fri, 04 Dec 2026 03:00:00 UTC: the release" for INFO.
std::string freeze_text(const FreezeRecord& freeze)
{
    std::string text = "frozen";
    if (!freeze.by.empty()) {
        text += " by " + freeze.by;
    }
    if (freeze.until != 0) {
        text += fmt::format(" until {:%a, %d %b %Y %H:%M:%S} UTC",
                            fmt::gmtime(static_cast<std::time_t>(freeze.until)));
    }
    if (!freeze.reason.empty()) {
        text += ": " + freeze.reason;
    }
    return text;
}

} // namespace

void ManagedService::freeze(const FreezeOrder& order)
{
    leave_line(); // a frozen host must not stand in a line it would block at its head
    const auto now = unix_now();
    const FreezeRecord record_of{
        .by = order.by,
        .at = now,
        .reason = order.reason,
        .until = order.duration.count() == 0 ? 0 : now + order.duration.count()};
    const auto text = freeze_text(record_of);
    std::string hash;
    {
        std::lock_guard lock(m_mutex);
        m_saved.frozen = true;
        m_saved.pin = m_status.hash;
        m_saved.info = text;
        m_saved.freeze = record_of;
        m_status.freeze = record_of;
        hash = m_status.hash;
    }
    log::info("[{}] {}", m_config.name, text);
    record(Event::freeze, "");
    add_history(hash, hash, Trigger::freeze, text);
}

void ManagedService::unfreeze()
{
    end_freeze("unfrozen", Trigger::unfreeze);
}

std::optional<std::chrono::system_clock::time_point> ManagedService::freeze_expiry() const
{
    std::lock_guard lock(m_mutex);
    if (m_status.state != State::freeze || m_saved.freeze.until == 0) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(static_cast<std::time_t>(m_saved.freeze.until));
}

bool ManagedService::expire_freeze()
{
    const auto expiry = freeze_expiry();
    if (!expiry || std::chrono::system_clock::now() < *expiry) {
        return false;
    }
    const auto text = [&] {
        std::lock_guard lock(m_mutex);
        return "freeze expired (" + m_saved.info + ")";
    }();
    log::info("[{}] {}", m_config.name, text);
    const auto hash = status().hash;
    note(kEventFreezeExpired, hash, hash, Trigger::unfreeze, text);
    end_freeze(text, Trigger::unfreeze);
    return true;
}

void ManagedService::end_freeze(const std::string& why, Trigger trigger)
{
    if (state() != State::freeze) {
        return;
    }
    std::string hash;
    {
        std::lock_guard lock(m_mutex);
        m_saved.frozen = false;
        m_saved.pin.clear();
        m_saved.info.clear();
        m_saved.freeze = {};
        m_status.freeze = {};
        hash = m_status.hash;
    }
    record(Event::unfreeze, "");
    add_history(hash, hash, trigger, why);
}

Completion ManagedService::rollback(const std::string& hash, bool force)
{
    m_trigger = Trigger::rollback;
    leave_line();
    if (!m_ready) {
        if (auto r = prepare(); !r) {
            finish(r);
            return {500, "rollback: " + r.error().message};
        }
        finish({});
    }
    std::string full;
    if (auto refused = check_rollback_target(hash, force, full); refused.status != 0) {
        log::warn("[{}] rollback to {} refused: {}", m_config.name, hash, refused.message);
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
        // A rollback's pin holds until an unfreeze: no earlier freeze's end undoes it.
        m_saved.freeze = {};
        m_status.freeze = {};
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
    const auto fetched = m_store.fetch({m_config.branch}); // the branch as upstream has it now
    auto found = m_store.git().find_commit(hash);
    if (!found) {
        return {500, found.error().message};
    }
    if (!*found) {
        return {404, not_found_on_branch(hash, fetched)};
    }
    full = **found;
    auto in_history = m_store.git().is_ancestor(full, "origin/" + m_config.branch);
    if (!in_history) {
        return {500, in_history.error().message};
    }
    if (auto refused = check_signed_target(full, force); refused.status != 0) {
        return refused;
    }
    if (*in_history) {
        return {};
    }
    if (!force) {
        return {404, fmt::format("commit {} is not in the history of branch {} (add \"force\" "
                                 "to roll back to it anyway)",
                                 short_hash(full), quote(m_config.branch))};
    }
    log::warn("[{}] forced rollback to {}, which is not in the history of branch {}", m_config.name,
              short_hash(full), quote(m_config.branch));
    return {};
}

// With allowed_signers, a rollback goes only to a signed commit, and, unless forced, not
// behind the last verified one.
Completion ManagedService::check_signed_target(const std::string& full, bool force)
{
    if (m_config.allowed_signers.empty()) {
        return {};
    }
    if (auto r = copy_signers_now(); !r) {
        return {500, r.error().message};
    }
    auto verdict = m_store.git().signature_status(full, m_layout.signers());
    if (!verdict) {
        return {500, verdict.error().message};
    }
    if (*verdict != 'G') {
        return {404, fmt::format("commit {} not signed by a trusted key", short_hash(full))};
    }
    const auto verified = [&] {
        std::lock_guard lock(m_mutex);
        return m_saved.verified;
    }();
    if (force || verified.empty() || verified == full) {
        return {};
    }
    auto older = m_store.git().is_ancestor(full, verified);
    if (!older) {
        return {500, older.error().message};
    }
    if (*older) {
        return {404, fmt::format("commit {} is older than {}, the last verified commit (add "
                                 "\"force\" to roll back to it anyway)",
                                 short_hash(full), short_hash(verified))};
    }
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
        if (outcome.error().event == Event::git_failed && m_store.is_open()) {
            m_store.git().remove_leftovers(m_config.name);
        }
    }
}

void ManagedService::fail_unexpectedly(std::string_view step, std::string_view what)
{
    record(Event::host_failed, fmt::format("internal error while {}: {}", step, what));
}

void ManagedService::record(Event event, const std::string& raw_info)
{
    // Git's messages may quote the upstream URL; names may hold control characters.
    const auto info = redact_credentials(raw_info);
    std::unique_lock lock(m_mutex);
    const auto from = m_status.state;
    const auto to = transition(from, event);
    // A frozen service shows what holds it; errors while frozen are still shown.
    const bool failed = event == Event::git_failed || event == Event::host_failed;
    const auto text = to == State::freeze && !failed ? m_saved.info : info;
    if (from != to || text != m_status.info) {
        if (from != to) {
            m_status.change = std::chrono::system_clock::now();
        }
        m_status.state = to;
        m_status.info = text;
        const auto line = fmt::format("[{}] state {} -> {}{}{}", m_config.name, state_name(from),
                                      state_name(to), text.empty() ? "" : ": ", text);
        if (failed) {
            log::error("{}", line);
        } else {
            log::info("{}", line);
        }
    }
    lock.unlock();
    send_notes(to, from != to, text);
}

bool ManagedService::reports() const
{
    return m_host.notifier != nullptr &&
           (!m_config.notify.empty() || m_host.notifier->reports_status());
}

Notice ManagedService::notice(const char* event, const std::string& from, const std::string& to,
                              Trigger trigger, const std::string& info) const
{
    return Notice{.service = m_config.name,
                  .event = event,
                  .from = from,
                  .to = to,
                  .info = redact_credentials(info),
                  .trigger = std::string(trigger_name(trigger)),
                  .time = unix_now(),
                  .repository = repository_path(m_config.upstream)};
}

void ManagedService::note(const char* event, const std::string& from, const std::string& to,
                          Trigger trigger, const std::string& info)
{
    if (reports()) {
        m_notes.push_back(notice(event, from, to, trigger, info));
    }
}

// A commit status of `pending` goes out as the deploy begins, not with its outcome.
void ManagedService::announce_deploy(const std::string& from, const std::string& to,
                                     Trigger trigger)
{
    if (reports()) {
        auto now = notice(kEventDeploying, from, to, trigger);
        now.state = std::string(state_name(state()));
        m_host.notifier->post(std::move(now), m_config.notify);
    }
}

// `entered`: the service has just come to `state`. A change to BROKEN or DIFF is an event of
// its own unless a noted one (a failed check, say) already says why.
void ManagedService::send_notes(State state, bool entered, const std::string& info)
{
    if (!reports()) {
        return;
    }
    if (m_notes.empty() && entered && (state == State::broken || state == State::diff)) {
        const auto now = status();
        note(state == State::broken ? kEventBroken : kEventDiff, now.hash, now.upstream, m_trigger,
             info);
    }
    for (auto& notice : m_notes) {
        notice.state = std::string(state_name(state));
        if (notice.info.empty() && state != State::ok) {
            notice.info = info;
        }
        m_host.notifier->post(std::move(notice), m_config.notify);
    }
    m_notes.clear();
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
    if (auto r = m_host.store.save(m_config.name, saved); !r) {
        log::error("[{}] saving state: {}", m_config.name, r.error().message);
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
