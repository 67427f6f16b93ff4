#include "service/drift.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "util/log.hpp"

namespace gitopper {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB;
// The checkout's top directory: only entries going away (`.git` last of all, in an `rm -rf`)
// and the directory itself, so that a removal is seen whenever it ends.
constexpr std::uint32_t kRootMask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;

using Targets = std::map<std::string, std::uint32_t>;

constexpr auto kAll = std::numeric_limits<std::size_t>::max();

// A path met twice (a file link's parent is the top) is one watch with both masks.
void add_target(Targets& targets, const fs::path& path, std::uint32_t mask)
{
    targets[path.string()] |= mask;
}

// Every directory below `path` (symlinks not followed), until there are more than `limit`.
void add_tree(Targets& targets, const fs::path& path, std::size_t limit)
{
    std::error_code ec;
    add_target(targets, path, kMask);
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator() && targets.size() <= limit;
         it.increment(ec)) {
        if (it->is_directory(ec) && !it->is_symlink(ec)) {
            add_target(targets, it->path(), kMask);
        }
    }
}

// What watching the links of `service` takes, stopping once there are more than `limit`.
Targets watch_targets(const Service& service, std::size_t limit)
{
    Targets targets;
    const fs::path dir = service.checkout_dir();
    std::error_code ec;
    if (fs::is_directory(dir, ec)) {
        add_target(targets, dir, kRootMask);
    }
    for (const auto& link : service.dirs) {
        const fs::path path = dir / link.link;
        if (targets.size() > limit) {
            break;
        }
        if (!link.file && fs::is_directory(path, ec)) {
            add_tree(targets, path, limit);
        } else if (link.file && fs::is_directory(path.parent_path(), ec)) {
            add_target(targets, path.parent_path(), kMask);
            if (fs::exists(path, ec)) {
                add_target(targets, path, kMask);
            }
        }
    }
    return targets;
}

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
                  std::strerror(errno));
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

// Returns 0, or the errno of a watch the host could not give. A path that went away since
// the walk (or cannot be watched for another reason) is only left out.
int DriftWatcher::add_all(std::size_t id, const Targets& targets)
{
    for (const auto& [path, mask] : targets) {
        const int wd = ::inotify_add_watch(m_fd.get(), path.c_str(), mask | IN_DONT_FOLLOW);
        if (wd < 0 && out_of_watches(errno)) {
            return errno;
        }
        if (wd < 0) {
            log::warn("cannot watch {} for local changes: {}", path, std::strerror(errno));
            continue;
        }
        m_owner[wd] = id;
    }
    return 0;
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

WatchMode DriftWatcher::give_up(std::size_t id, const Service& service,
                                const std::function<std::string()>& why)
{
    remove_all(id);
    if (m_scanned.insert(id).second) {
        log::warn("[{}] checkout {} {}: not watching it with inotify; local changes are looked "
                  "for with a periodic git status instead",
                  service.service, service.checkout_dir(), why());
    }
    return WatchMode::scan;
}

WatchMode DriftWatcher::watch(std::size_t id, const Service& service)
{
    if (!m_fd) {
        m_scanned.insert(id);
        return WatchMode::scan;
    }
    const auto targets = watch_targets(service, m_budget);
    if (targets.size() > m_budget) {
        return give_up(id, service, [&] {
            // Counted to the end only for the message, once per change of mode.
            return fmt::format("needs {} inotify watches, over its budget of {}",
                               watch_targets(service, kAll).size(), m_budget);
        });
    }
    if (const int error = add_all(id, targets); error != 0) {
        return give_up(id, service, [&] {
            return fmt::format("cannot be watched: {} (fs.inotify.max_user_watches reached?)",
                               std::strerror(error));
        });
    }
    if (m_scanned.erase(id) > 0) {
        log::info("[{}] checkout {} fits its inotify budget again ({} of {} watches)",
                  service.service, service.checkout_dir(), targets.size(), m_budget);
    }
    return WatchMode::inotify;
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
