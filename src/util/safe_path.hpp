#pragma once
// Path resolution that never follows a symlink: what root uses for every path that someone
// less trusted (repository content, a service user) could shape. Built on openat2(2) with
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS (and RESOLVE_BENEATH below a directory), so a
// symlink anywhere in a path is an error, never a detour; callers then act on the file
// descriptor, not on the path, so nothing can be swapped in between.

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper {

// Opens `relative` beneath the directory `dir` (it may not leave it, by ".." or otherwise)
// without following any symlink. `flags` as for open(2); O_NOFOLLOW and O_CLOEXEC are added.
// Errors name the component that is a symlink: "a/b is a symlink".
[[nodiscard]] Result<Fd> open_beneath(int dir, std::string_view relative, int flags);

// As open_beneath, and the path may not cross into another mount either (RESOLVE_NO_XDEV):
// for sources inside a checkout, where the user could mount a FUSE tree of its own.
[[nodiscard]] Result<Fd> open_beneath_same_mount(int dir, std::string_view relative, int flags);

// As open_beneath, but a missing path (ENOENT) is nullopt rather than an error.
[[nodiscard]] Result<std::optional<Fd>> find_beneath(int dir, std::string_view relative, int flags);
// Both: beneath, within one mount, and a missing path is nullopt.
[[nodiscard]] Result<std::optional<Fd>> find_beneath_same_mount(int dir, std::string_view relative,
                                                                int flags);

// Opens the absolute `path` from "/" without following a symlink in any component.
[[nodiscard]] Result<Fd> open_no_symlinks(std::string_view path, int flags);

// Whether anything is at the absolute `path`: its last component is not followed (a dangling
// symlink is there), no component on the way may be a symlink, and a missing directory (or a
// file) on the way means nothing is there. Other failures are errors, never an exception.
[[nodiscard]] Result<bool> exists_no_symlinks(std::string_view path);

// The names in the directory `dir` (not "." or ".."), read through a descriptor of its own (a
// duplicate would share the position of `dir`).
[[nodiscard]] Result<std::vector<std::string>> list_directory(int dir);

// The absolute directory `path`, with every missing component created (mode 0755, owned by
// whoever we are, i.e. root) one at a time without following symlinks. Returns an O_PATH fd.
[[nodiscard]] Result<Fd> make_dirs_no_symlinks(std::string_view path);

// Reads at most `limit` bytes of the regular file `relative` beneath `dir`: a symlink, a FIFO,
// a device or a file larger than `limit` is refused, so nothing placed there can make root
// read elsewhere, block or run out of memory.
[[nodiscard]] Result<std::string> read_beneath(int dir, std::string_view relative,
                                               std::size_t limit);

// The mode and owner of `fd`, for checks such as "root-owned, not writable by others".
struct FileInfo {
    mode_t mode = 0; // st_mode
    uid_t uid = 0;
    gid_t gid = 0;
    ino_t inode = 0;
    dev_t device = 0;
    nlink_t links = 0;
    bool mount_root = false; // the root of a mount (statx STATX_ATTR_MOUNT_ROOT)
};
[[nodiscard]] Result<FileInfo> file_info(int fd);

// How far a directory can be trusted for root to create entries in it by name.
enum class DirTrust {
    private_dir, // owned by us (root), not writable by group or others
    sticky,      // world-writable with the sticky bit (like /tmp): others own entries there
};
// Refuses a directory another user owns, or one that group or others may write to without the
// sticky bit; `what` names it in the message ("state directory /var/lib/gitopper").
[[nodiscard]] Result<DirTrust> check_trusted_dir(int fd, const std::string& what);

// The directory `path` (resolved without symlinks) and every directory on its way checked as
// check_trusted_dir does, except that directories on the way may be sticky and writable by
// all (/tmp): nobody else may rename or replace any of them. Returns the directory's trust.
[[nodiscard]] Result<DirTrust> check_trusted_path(std::string_view path, const std::string& what);

// "0755"-style text of the permission bits, for messages.
std::string mode_text(mode_t mode);

// The component names of an absolute or relative path ("/a//b/" -> a, b); "." is dropped.
std::vector<std::string> path_components(std::string_view path);

} // namespace gitopper
