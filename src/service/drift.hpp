#pragma once
// Noticing local edits without running anything: inotify watches on every checked-out
// directory (and file) of a poll group's services. An event only marks the service; the
// poll thread then asks git what really changed.
// Owned and used by one poll thread.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/fd.hpp"

namespace gitopper {

class DriftWatcher {
public:
    DriftWatcher();

    int fd() const { return m_fd.get(); }

    // (Re)watches the links of service number `id` under its checkout `dir`: directories
    // recursively, files with their parent directory.
    void watch(std::size_t id, const std::string& dir, const std::vector<Link>& links);

    // Reads every pending event; returns the services touched, leaving out `ignore` (whose
    // events were caused by our own git run).
    std::set<std::size_t> drain(std::optional<std::size_t> ignore = std::nullopt);

private:
    void add(std::size_t id, const std::string& path, std::uint32_t mask);

    Fd m_fd;
    std::map<int, std::size_t> m_owner; // watch descriptor -> service id
};

} // namespace gitopper
