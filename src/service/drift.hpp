#pragma once
// Noticing local edits without running anything: inotify watches on every checked-out
// directory (and file) of a poll group's services. An event only marks the service; the
// poll thread then asks git what really changed.
// The checkout belongs to the service user, so root walks it by descriptor and follows no
// symlink and crosses no mount on the way: a link that is a symlink, a mount inside a link
// or a tree nested too deep takes no watches and is scanned instead.
// A checkout that would take more than its watch budget, or more than the host has left,
// takes none: its edits are found by the poll thread's periodic `git status` instead.
// Owned and used by one poll thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "config/config.hpp"
#include "util/fd.hpp"

namespace gitopper {

class Walk; // of a checkout's directories, by descriptor (drift.cpp)

// The inotify watches one checkout may take: one per directory of its links, its top, and a
// file link's file. Root's watches share one limit, fs.inotify.max_user_watches, with
// systemd, udev, journald, polkit and every other root process, and that limit is 8192 on
// kernels before 5.11 and on small machines since (1% of RAM at about 1 KiB a watch, at
// least 8192). 4096 leaves one checkout at most half of the smallest limit, while
// configuration trees, with tens or hundreds of directories, stay watched.
constexpr std::size_t kDefaultWatchBudget = 4096;

// How a checkout's local edits are noticed.
enum class WatchMode {
    inotify, // at once, through its watches
    scan,    // by a periodic look with git: over its budget, or the host is out of watches
};

class DriftWatcher {
public:
    explicit DriftWatcher(std::size_t budget = kDefaultWatchBudget);

    int fd() const { return m_fd.get(); }

    // (Re)watches the links of service number `id` under its live work tree `dir`: directories
    // recursively, files with their parent directory, and the checkout's top. Over the budget,
    // or when inotify_add_watch finds the host's limit reached, the checkout gives back the
    // watches it holds and is left to scan; the change either way is logged once.
    WatchMode watch(std::size_t id, const Service& service, const std::string& dir);

    bool scanned(std::size_t id) const { return m_scanned.contains(id); }
    std::size_t watches(std::size_t id) const; // held by service `id`; for tests

    // Reads every pending event; returns the services touched, leaving out `ignore` (whose
    // events were caused by our own git run).
    std::set<std::size_t> drain(std::optional<std::size_t> ignore = std::nullopt);

private:
    Walk add_all(std::size_t id, const Service& service, const std::string& dir,
                 std::set<int>& added);
    void remove_all(std::size_t id);
    void remove_other(std::size_t id, const std::set<int>& kept);
    std::string over_budget(const Service& service, const std::string& dir) const;
    // `why` is asked only when the mode changes, which is when it is logged.
    WatchMode give_up(std::size_t id, const Service& service, const std::string& dir,
                      const std::function<std::string()>& why);

    Fd m_fd;
    std::size_t m_budget;
    std::map<int, std::size_t> m_owner; // watch descriptor -> service id
    std::set<std::size_t> m_scanned;    // services left to the periodic scan
};

} // namespace gitopper
