#pragma once
// Bind mounts with mount(2): a checkout's `link` onto the service's `local` path.

#include <optional>
#include <string>

#include "util/error.hpp"
#include "util/process.hpp"

namespace gitopper {

enum class MountResult {
    unchanged, // already mounted from this source: never stack a second mount
    mounted,
    refreshed, // a mount of an older version of the source (a replaced inode) was swapped
};

// Makes `target` show `source`. A missing target is created (a directory, or an empty file
// with `file`), with missing parents; what is created belongs to `owner` when given.
Result<MountResult> ensure_bind_mount(const std::string& source, const std::string& target,
                                      bool file, const std::optional<Credentials>& owner);

// Detaches the mount on `target` if it shows `source`; nothing else mounted there is touched.
Result<> release_bind_mount(const std::string& source, const std::string& target);

// How many mounts sit on `target` (0 when it is not a mount point); for tests and checks.
int mount_count(const std::string& target);

} // namespace gitopper
