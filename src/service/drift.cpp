#include "service/drift.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB;
// The checkout's top directory: only entries going away (`.git` last of all, in an `rm -rf`)
// and the directory itself, so that a removal is seen whenever it ends.
constexpr std::uint32_t kRootMask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;

// How deep the walk goes below a link. Each level keeps one descriptor open while the walk is
// below it; configuration trees are a few levels deep, and a deeper one (a user could nest
// thousands) is scanned instead of costing root a descriptor per level.
constexpr int kMaxDepth = 64;

// How far past its budget a checkout is counted for the message that it is over: the user
// could make that walk as long as it likes.
constexpr std::size_t kCountedFor = 16;

} // namespace

// The walk of one checkout's links that watching it takes, by descriptor and without
// following any symlink: the top is opened from "/" without symlinks, each link beneath it
// and each directory beneath its parent (openat2: no symlink, no mount crossed), and only
// what lies on the checkout's file system is visited. `visit` gets each inode once per mask
// as an open descriptor, so a watch is on the inode the walk opened, never on a name looked
// up again. It stops once more than `limit` inodes were visited, when `visit` fails, or at
// the first thing it may not enter (a symlinked link, a mount, too deep): then `refused`
// says why and the checkout is left to the scan, which runs git as the user.
class Walk {
public:
    using Visit = std::function<int(int fd, std::uint32_t mask)>; // 0, or the errno that ends it

    Walk(std::size_t limit, Visit visit) : m_limit(limit), m_visit(std::move(visit)) {}

    void checkout(const Service& service, const std::string& dir);
    std::size_t count() const { return m_seen.size(); }
    bool over() const { return count() > m_limit; }
    const std::string& refused() const { return m_refused; }
    int error() const { return m_error; }

private:
    bool stopped() const { return over() || !m_refused.empty() || m_error != 0; }
    void refuse(std::string why) { m_refused = std::move(why); }
    bool add(int fd, std::uint32_t mask);
    void link(int top, const Link& link);
    void file_link(int top, const Link& link);
    void tree(int dir, const std::string& shown, int depth);

    std::size_t m_limit;
    Visit m_visit;
    dev_t m_device = 0;
    std::set<ino_t> m_seen;
    std::string m_refused;
    int m_error = 0;
};

namespace {

// The names of the directories in `dir` (not "." or ".."; symlinks are not directories),
// until there are more than `limit`.
std::vector<std::string> subdirectories(int dir, std::size_t limit)
{
    std::vector<std::string> names;
    const int copy = ::fcntl(dir, F_DUPFD_CLOEXEC, 0); // closedir closes it, not `dir`
    std::unique_ptr<DIR, int (*)(DIR*)> stream(copy < 0 ? nullptr : ::fdopendir(copy), ::closedir);
    if (!stream) {
        if (copy >= 0) {
            ::close(copy);
        }
        return names;
    }
    while (const auto* entry = ::readdir(stream.get())) {
        const std::string_view name = entry->d_name;
        if (name == "." || name == ".." || names.size() > limit) {
            continue;
        }
        struct stat st {};
        const bool is_dir =
            entry->d_type == DT_DIR ||
            (entry->d_type == DT_UNKNOWN &&
             ::fstatat(dir, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode));
        if (is_dir) {
            names.emplace_back(name);
        }
    }
    return names;
}

} // namespace

void Walk::checkout(const Service& service, const std::string& dir)
{
    auto top = open_no_symlinks(dir, O_RDONLY | O_DIRECTORY);
    if (!top) {
        std::error_code ec;
        if (fs::exists(fs::symlink_status(dir, ec))) {
            refuse(top.error().message); // there, but not a directory reached without symlinks
        }
        return; // not cloned (yet): nothing to watch
    }
    const auto info = file_info(top->get());
    if (!info) {
        return refuse(info.error().message);
    }
    m_device = info->device;
    if (!add(top->get(), kRootMask)) {
        return;
    }
    for (const auto& each : service.dirs) {
        if (stopped()) {
            return;
        }
        each.file ? file_link(top->get(), each) : link(top->get(), each);
    }
}

// Counted once per inode; false once the walk is to stop.
bool Walk::add(int fd, std::uint32_t mask)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        m_error = errno;
        return false;
    }
    if (st.st_dev != m_device) {
        refuse("has a directory on another file system");
        return false;
    }
    m_seen.insert(st.st_ino);
    if (over()) {
        return false;
    }
    m_error = m_visit(fd, mask);
    return m_error == 0;
}

// A directory link and every directory below it. A missing one is left out (the checkout's
// top sees it come back); a symlink or a mount is refused.
void Walk::link(int top, const Link& link)
{
    auto dir = find_beneath_same_mount(top, link.path, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        return refuse(dir.error().message);
    }
    if (*dir) {
        tree((*dir)->get(), link.path, 0);
    }
}

// A file link: its directory, and the file itself (O_PATH: a FIFO put there opens nothing).
void Walk::file_link(int top, const Link& link)
{
    const auto parent = fs::path(link.path).parent_path().string();
    auto dir = find_beneath_same_mount(top, parent, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        return refuse(dir.error().message);
    }
    if (!*dir || !add((*dir)->get(), kMask)) {
        return;
    }
    auto file = find_beneath_same_mount(top, link.path, O_PATH);
    if (!file) {
        return refuse(file.error().message);
    }
    if (*file) {
        add((*file)->get(), kMask);
    }
}

void Walk::tree(int dir, const std::string& shown, int depth)
{
    if (!add(dir, kMask)) {
        return;
    }
    for (const auto& name : subdirectories(dir, m_limit)) {
        if (stopped()) {
            return;
        }
        if (depth == kMaxDepth) {
            return refuse(
                fmt::format("{} is nested deeper than {} directories", quote(shown), kMaxDepth));
        }
        auto child = find_beneath_same_mount(dir, name, O_RDONLY | O_DIRECTORY);
        if (!child) {
            return refuse(fmt::format("in {}: {}", quote(shown), child.error().message));
        }
        if (*child) { // else gone since it was listed
            tree((*child)->get(), shown + "/" + name, depth + 1);
        }
    }
}

namespace {

// The host's limit (ENOSPC), or no kernel memory for another watch.
bool out_of_watches(int error)
{
    return error == ENOSPC || error == ENOMEM;
}

} // namespace

DriftWatcher::DriftWatcher(std::size_t budget)
    : m_fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)), m_budget(budget)
{
    if (!m_fd) {
        log::warn("inotify unavailable ({}): local drift is looked for with a periodic git "
                  "status instead",
                  errno_message(errno));
    }
}

std::size_t DriftWatcher::watches(std::size_t id) const
{
    std::size_t count = 0;
    for (const auto& [wd, owner] : m_owner) {
        count += owner == id ? 1 : 0;
    }
    return count;
}

// Walks the checkout of `service` adding a watch for every inode met, through the walk's own
// descriptor; a walk that ends early leaves the watches it took for the caller to give back.
Walk DriftWatcher::add_all(std::size_t id, const Service& service, const std::string& dir,
                           std::set<int>& added)
{
    Walk walk(m_budget, [&](int fd, std::uint32_t mask) {
        // The magic link names the open inode itself. IN_MASK_ADD: an inode met twice (a
        // file link's directory is the top) is one watch with both masks.
        const auto path = fmt::format("/proc/self/fd/{}", fd);
        const int wd = ::inotify_add_watch(m_fd.get(), path.c_str(), mask | IN_MASK_ADD);
        if (wd < 0) {
            return errno;
        }
        m_owner[wd] = id;
        added.insert(wd);
        return 0;
    });
    walk.checkout(service, dir);
    return walk;
}

void DriftWatcher::remove_all(std::size_t id)
{
    for (auto it = m_owner.begin(); it != m_owner.end();) {
        if (it->second == id) {
            ::inotify_rm_watch(m_fd.get(), it->first);
            it = m_owner.erase(it);
        } else {
            ++it;
        }
    }
}

WatchMode DriftWatcher::give_up(std::size_t id, const Service& service, const std::string& dir,
                                const std::function<std::string()>& why)
{
    remove_all(id);
    if (m_scanned.insert(id).second) {
        log::warn("[{}] checkout {} {}: not watching it with inotify; local changes are looked "
                  "for with a periodic git status instead",
                  service.name, dir, why());
    }
    return WatchMode::scan;
}

// Counted first, so that a checkout over its budget takes no watch even for a moment (root's
// watches are shared with every other root process), then watched.
WatchMode DriftWatcher::watch(std::size_t id, const Service& service, const std::string& dir)
{
    if (!m_fd) {
        m_scanned.insert(id);
        return WatchMode::scan;
    }
    Walk counted(m_budget, [](int, std::uint32_t) { return 0; });
    counted.checkout(service, dir);
    if (!counted.refused().empty()) {
        return give_up(id, service, dir,
                       [&] { return "cannot be watched safely: " + counted.refused(); });
    }
    if (counted.over()) {
        return give_up(id, service, dir, [&] { return over_budget(service, dir); });
    }
    std::set<int> added;
    const auto walk = add_all(id, service, dir, added);
    if (walk.error() != 0) {
        return give_up(id, service, dir, [&] {
            return fmt::format(
                "cannot be watched: {}{}", errno_message(walk.error()),
                out_of_watches(walk.error()) ? " (fs.inotify.max_user_watches reached?)" : "");
        });
    }
    if (!walk.refused().empty() || walk.over()) { // it changed since it was counted
        return give_up(id, service, dir, [&] { return "changed while being watched"; });
    }
    remove_other(id, added);
    if (m_scanned.erase(id) > 0) {
        log::info("[{}] checkout {} fits its inotify budget again ({} of {} watches)", service.name,
                  dir, added.size(), m_budget);
    }
    return WatchMode::inotify;
}

// Counted further only for the message, once per change of mode, and not without end.
std::string DriftWatcher::over_budget(const Service& service, const std::string& dir) const
{
    Walk counted(m_budget * kCountedFor, [](int, std::uint32_t) { return 0; });
    counted.checkout(service, dir);
    return fmt::format("needs {}{} inotify watches, over its budget of {}",
                       counted.over() ? "more than " : "",
                       std::min(counted.count(), m_budget * kCountedFor), m_budget);
}

// Watches of service `id` on inodes its checkout no longer holds (a directory moved away).
void DriftWatcher::remove_other(std::size_t id, const std::set<int>& kept)
{
    for (auto it = m_owner.begin(); it != m_owner.end();) {
        if (it->second == id && !kept.contains(it->first)) {
            ::inotify_rm_watch(m_fd.get(), it->first);
            it = m_owner.erase(it);
        } else {
            ++it;
        }
    }
}

std::set<std::size_t> DriftWatcher::drain(std::optional<std::size_t> ignore)
{
    std::set<std::size_t> touched;
    if (!m_fd) {
        return touched;
    }
    alignas(inotify_event) std::array<char, 16384> buffer{};
    while (true) {
        const auto n = ::read(m_fd.get(), buffer.data(), buffer.size());
        if (n <= 0) {
            break; // EAGAIN: nothing more pending
        }
        for (std::size_t at = 0; at < static_cast<std::size_t>(n);) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
            at += sizeof(inotify_event) + event->len;
            if (event->mask & IN_Q_OVERFLOW) {
                // Events were lost (a user can make more than the queue holds): any service
                // may have been edited, so each is looked at.
                for (const auto& [wd, id] : m_owner) {
                    if (id != ignore) {
                        touched.insert(id);
                    }
                }
                continue;
            }
            const auto owner = m_owner.find(event->wd);
            if (owner == m_owner.end()) {
                continue;
            }
            const auto id = owner->second;
            if (event->mask & IN_IGNORED) {
                m_owner.erase(owner); // the watched path is gone
            }
            if (id != ignore && !(event->mask & IN_IGNORED)) {
                touched.insert(id);
            }
        }
    }
    return touched;
}

} // namespace gitopper
