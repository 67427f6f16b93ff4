#pragma once
// Bind mounts of a checkout's `link` onto the service's `local` path, made by file descriptor
// (open_tree + move_mount) after both sides were resolved without following any symlink
// (SPEC §11): repository content and the service user shape the source side, and may have
// shaped parts of the target side; neither can redirect a mount.

#include <sys/types.h>

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

// Which file a mount shows: device and inode.
struct FileId {
    dev_t device = 0;
    ino_t inode = 0;
    bool operator==(const FileId&) const = default;
};

struct BindMount {
    std::string checkout;       // the work tree, an absolute path
    std::string link;           // relative to it
    std::string target;         // absolute
    bool file = false;          // a single file rather than a directory
    std::optional<mode_t> mode; // the mounted directory's own permission bits
    // What our last mount on `target` showed: a mount still showing it is ours and outdated
    // (the user replaced the directory in the checkout), detached rather than stacked on.
    std::optional<FileId> ours;
};

struct Mounted {
    MountResult result;
    FileId source; // what the target shows now, for BindMount::ours next time
};

// Makes `target` show `link` of the checkout. A missing target is created (a directory, or an
// empty file with `file`), owned by `owner` when given; its missing parents are created
// owned by root, mode 0755. A symlink on either side is an error, never followed.
Result<Mounted> ensure_bind_mount(const BindMount& mount, const std::optional<Credentials>& owner);

// Detaches the mount on `target` if it shows `link` of the checkout; nothing else is touched.
Result<> release_bind_mount(const BindMount& mount);

// How many mounts sit on `target` (0 when it is not a mount point); for tests and checks.
int mount_count(const std::string& target);

} // namespace gitopper
