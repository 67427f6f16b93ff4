#include "service/drift.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/log.hpp"

namespace gitopper {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB;
// The checkout's top directory: only entries going away (`.git` last of all, in an `rm -rf`)
// and the directory itself, so that a removal is seen whenever it ends.
constexpr std::uint32_t kRootMask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF;

} // namespace

DriftWatcher::DriftWatcher() : m_fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
{
    if (!m_fd) {
        log::warn("inotify unavailable ({}): local drift will not be detected",
                  std::strerror(errno));
    }
}

void DriftWatcher::add(std::size_t id, const std::string& path, std::uint32_t mask)
{
    const int wd = ::inotify_add_watch(m_fd.get(), path.c_str(), mask | IN_DONT_FOLLOW);
    if (wd < 0) {
        log::warn("cannot watch {} for local changes: {}", path, std::strerror(errno));
        return;
    }
    m_owner[wd] = id;
}

void DriftWatcher::watch(std::size_t id, const std::string& dir, const std::vector<Link>& links)
{
    if (!m_fd) {
        return;
    }
    if (std::error_code ec; fs::is_directory(dir, ec)) {
        add(id, dir, kRootMask);
    }
    for (const auto& link : links) {
        const fs::path path = fs::path(dir) / link.link;
        std::error_code ec;
        if (link.file) {
            if (!fs::is_directory(path.parent_path(), ec)) {
                continue;
            }
            add(id, path.parent_path().string(), kMask);
            if (fs::exists(path, ec)) {
                add(id, path.string(), kMask);
            }
            continue;
        }
        if (!fs::is_directory(path, ec)) {
            continue;
        }
        add(id, path.string(), kMask);
        for (auto it = fs::recursive_directory_iterator(path, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_directory(ec) && !it->is_symlink(ec)) {
                add(id, it->path().string(), kMask);
            }
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
