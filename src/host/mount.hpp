#pragma once
// Bind mounts of a checkout's `link` onto the service's `local` path, made by file descriptor
// (open_tree + move_mount) after both sides were resolved without following any symlink
// (SPEC §11): repository content and the service user shape the source side, and may have
// shaped parts of the target side; neither can redirect a mount.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "util/error.hpp"
#include "util/process.hpp"

namespace gitopper {

enum class MountResult {
    unchanged, // already mounted from this source: never stack a second mount
    mounted,
    refreshed, // a mount of an older version of the source (a replaced inode) was swapped
    switched,  // a mount of ours showing something else was replaced at once (mounted beneath)
};

// Which file a mount shows: device and inode.
struct FileId {
    dev_t device = 0;
    ino_t inode = 0;
    bool operator==(const FileId&) const = default;
};

struct BindMount {
    std::string checkout;       // the work tree, an absolute path
    std::string path;           // relative to it
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
[[nodiscard]] Result<Mounted> ensure_bind_mount(const BindMount& mount,
                                                const std::optional<Credentials>& owner);

// Detaches the mount on `target` if it shows `link` of the checkout; nothing else is touched.
[[nodiscard]] Result<> release_bind_mount(const BindMount& mount);

// Whether this kernel can mount beneath a mount (MOVE_MOUNT_BENEATH, Linux 6.5), which
// switch_bind_mount needs to replace one mount of ours by another. Asked once, by a call that
// fails either way: EBADF when the flag is known, EINVAL when it is not (Linux 6.1).
bool mount_beneath_supported();

// What a mount of `mount` would show: its link's device and inode, looked up beneath the
// checkout without following a symlink; nullopt when there is no such link or a symlink is in
// the way. For the `ours` of switch_bind_mount (the link in the other work tree).
std::optional<FileId> source_id(const BindMount& mount);

// Makes `next.target` show `next.link` of `next.checkout`, for a service that keeps two work
// trees and deploys into the one not mounted: the target goes from the old tree to the new one
// with no moment in between. A mount is ours when it shows one of `ours` (the link in the other
// tree, what our last mount showed), `next.ours`, next's own source, or a file nobody links to
// any more (a file mount of ours whose file git replaced, as in ensure_bind_mount).
// What is on top of the target decides:
//   next's source already                 unchanged
//   nothing, or a mount that is not ours  mounted: next's source on top, the other left alone
//                                         underneath (as ensure_bind_mount does)
//   ours, showing something else          switched: next's source is mounted beneath it
//                                         (MOVE_MOUNT_BENEATH), then it is detached, with
//                                         whatever was mounted inside it
// A mount of someone else's on top of ours is never taken off: ours goes on top of it, so the
// target shows what the config says, and the next switch replaces only that one.
// First, mounts of ours piled on the target (a switch killed between those two steps leaves
// the new one beneath the old) are settled: the top ones are detached until the lowest of
// them is left, the one that switch was going to. Use it at start-up too, for that.
// Creating the target and refusing symlinks on either side are as in ensure_bind_mount.
//
// What is atomic: every path lookup through the target finds the old tree or the new one,
// whole, never an empty target: the new mount lies under the old one until the old one is
// taken off in one step (MNT_DETACH: whoever has a file or directory of it open keeps reading
// the old tree until closing it). Two lookups may straddle a switch, so a reader that needs
// the files of one version opens the target directory once and opens the files relative to
// it. Mounts propagate as usual: namespaces that receive our mounts (the slaves of systemd's
// PrivateTmp= and the like) see the same two steps.
//
// Without MOVE_MOUNT_BENEATH, the third case fails with our old mount left as it was (the
// message names the flag; ask mount_beneath_supported() first): the caller then updates the
// mounted tree in place instead, which is atomic per file (git renames each one), not for the
// tree. The other cases work on any kernel. To see beneath a mount, which the kernel only
// shows by unmounting, settling looks in a private copy of the mount namespace (on a thread of
// its own), and only when our mount on top sits on another mount there.
[[nodiscard]] Result<Mounted> switch_bind_mount(const BindMount& next,
                                                const std::vector<FileId>& ours,
                                                const std::optional<Credentials>& owner);

// How many mounts sit on `target` (0 when it is not a mount point); for tests and checks.
int mount_count(const std::string& target);

} // namespace gitopper
