// Whether a target is already right is decided by inode: a bind mount shows the source's own
// inode. A file bind mount pins the inode it was made with, so after git replaces the file the
// mount shows the old, deleted one (no links left); such a stale mount of ours is detached
// before mounting again. Anything else mounted there is left alone underneath.
//
// Every step works on file descriptors from util/safe_path: the source opened beneath the
// checkout, the target resolved from "/" with no symlink in any component, the mount moved
// onto the target's descriptor, and an unmount aimed at /proc/self/fd/N of the descriptor we
// checked, so no path can be swapped between a check and the act.

#include "host/mount.hpp"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "util/fd.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

namespace fs = std::filesystem;

struct TableDeleter {
    void operator()(libmnt_table* table) const { mnt_unref_table(table); }
};
using Table = std::unique_ptr<libmnt_table, TableDeleter>;

Table read_mounts()
{
    Table table(mnt_new_table());
    if (table && mnt_table_parse_file(table.get(), "/proc/self/mountinfo") != 0) {
        table.reset();
    }
    return table;
}

std::string proc_fd(int fd)
{
    return fmt::format("/proc/self/fd/{}", fd);
}

bool same_inode(const FileInfo& a, const FileInfo& b)
{
    return a.device == b.device && a.inode == b.inode;
}

Result<FileInfo> info_of(const Fd& fd, const std::string& what)
{
    return with_context(file_info(fd.get()), "{}", what);
}

// The link inside the checkout, opened without following a symlink; checked for its type.
Result<Fd> open_source(const BindMount& mount)
{
    auto checkout = open_no_symlinks(mount.checkout, O_PATH | O_DIRECTORY);
    if (!checkout) {
        return fail("checkout {}: {}", mount.checkout, checkout.error().message);
    }
    auto found = find_beneath(checkout->get(), mount.link, O_PATH);
    if (found && *found) {
        // The link may not be another mount inside the checkout (the user's FUSE tree).
        auto same = open_beneath_same_mount(checkout->get(), mount.link, O_PATH);
        if (!same) {
            return fail("link {} in the checkout: {}", quote(mount.link), same.error().message);
        }
    }
    if (!found) {
        return fail("link {} in the checkout: {}", quote(mount.link), found.error().message);
    }
    if (!*found) {
        return fail("link {} does not exist in the checkout", quote(mount.link));
    }
    auto source = std::move(**found);
    auto info = info_of(source, mount.link);
    if (!info) {
        return std::unexpected(info.error());
    }
    if (mount.file && !S_ISREG(info->mode)) {
        return fail("link {} is not a file in the checkout (file = true)", quote(mount.link));
    }
    if (!mount.file && !S_ISDIR(info->mode)) {
        return fail("link {} is not a directory in the checkout (set file = true for a file)",
                    quote(mount.link));
    }
    if (mount.mode) {
        // The mount shows this directory's own inode, so its mode is what readers of the
        // target see. Git does not track directory modes: set it again on every mount.
        auto dir = open_beneath(checkout->get(), mount.link, O_RDONLY | O_DIRECTORY);
        if (!dir || ::fchmod(dir->get(), *mount.mode) != 0) {
            return fail("chmod link {}: {}", quote(mount.link),
                        dir ? std::strerror(errno) : dir.error().message);
        }
    }
    return source;
}

Result<> give_to(int parent, const std::string& name, bool file,
                 const std::optional<Credentials>& owner)
{
    if (!owner) {
        return {};
    }
    auto fd = open_beneath(parent, name, file ? O_RDONLY | O_NONBLOCK : O_RDONLY | O_DIRECTORY);
    if (!fd || ::fchown(fd->get(), owner->uid, owner->gid) != 0) {
        return fail("chown {} to {}: {}", name, owner->name,
                    fd ? std::strerror(errno) : fd.error().message);
    }
    return {};
}

// Creates `name` in `parent`: a directory, or an empty file; it belongs to `owner`.
Result<> create_target(int parent, const std::string& name, bool file,
                       const std::optional<Credentials>& owner)
{
    if (file) {
        // The descriptor of the file we created is what we give away: never a name looked up
        // again, which the user could have swapped for a link to another file meanwhile.
        Fd created(::openat(parent, name.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!created) {
            return errno == EEXIST ? Result<>{} : fail("create {}: {}", name, std::strerror(errno));
        }
        if (owner && ::fchown(created.get(), owner->uid, owner->gid) != 0) {
            return fail("chown {} to {}: {}", name, owner->name, std::strerror(errno));
        }
        return {};
    }
    if (::mkdirat(parent, name.c_str(), 0755) != 0 && errno != EEXIST) {
        return fail("create {}: {}", name, std::strerror(errno));
    }
    return give_to(parent, name, file, owner);
}

// The target, resolved from "/" without following a symlink anywhere; created when missing
// (parents root-owned, the target itself `owner`'s).
Result<Fd> open_target(const BindMount& mount, const std::optional<Credentials>& owner)
{
    const auto path = fs::path(mount.target).lexically_normal();
    const auto refuse = [&](const std::string& why) {
        return fail("local {}: {}", mount.target, why);
    };
    auto parent = make_dirs_no_symlinks(path.parent_path().string());
    if (!parent) {
        return refuse(parent.error().message);
    }
    const auto name = path.filename().string();
    auto found = find_beneath(parent->get(), name, O_PATH);
    if (found && !*found) {
        if (auto r = create_target(parent->get(), name, mount.file, owner); !r) {
            return refuse(r.error().message);
        }
        found = find_beneath(parent->get(), name, O_PATH);
    }
    if (!found || !*found) {
        return refuse(found ? "it disappeared while being created" : found.error().message);
    }
    auto target = std::move(**found);
    auto info = info_of(target, mount.target);
    if (!info) {
        return std::unexpected(info.error());
    }
    if (mount.file != S_ISREG(info->mode) || (!mount.file && !S_ISDIR(info->mode))) {
        return refuse(mount.file ? "exists and is not a regular file"
                                 : "exists and is not a directory");
    }
    return target;
}

Result<> detach(const Fd& fd, const std::string& what)
{
    if (::umount2(proc_fd(fd.get()).c_str(), MNT_DETACH) != 0) {
        return fail("unmount {}: {}", what, std::strerror(errno));
    }
    return {};
}

Result<> attach(const Fd& source, const Fd& target, const BindMount& mount)
{
    Fd tree(static_cast<int>(
        ::open_tree(source.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!tree) {
        return fail("bind mount {} on {}: open_tree: {}", mount.link, mount.target,
                    std::strerror(errno));
    }
    if (::move_mount(tree.get(), "", target.get(), "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return fail("bind mount {} on {}: {}", mount.link, mount.target, std::strerror(errno));
    }
    return {};
}

} // namespace

Result<Mounted> ensure_bind_mount(const BindMount& mount, const std::optional<Credentials>& owner)
{
    auto source = open_source(mount);
    if (!source) {
        return std::unexpected(source.error());
    }
    auto target = open_target(mount, owner);
    if (!target) {
        return std::unexpected(target.error());
    }
    auto have = info_of(*source, mount.link);
    auto shown = info_of(*target, mount.target);
    if (!have || !shown) {
        return std::unexpected(have ? shown.error() : have.error());
    }
    const FileId shows{have->device, have->inode};
    if (shown->mount_root && same_inode(*have, *shown)) {
        return Mounted{MountResult::unchanged, shows};
    }
    const bool ours = mount.ours && *mount.ours == FileId{shown->device, shown->inode};
    const bool stale = shown->mount_root && (shown->links == 0 || ours);
    if (stale) {
        if (auto r = detach(*target, mount.target); !r) {
            return std::unexpected(r.error());
        }
        target = open_target(mount, owner); // what lies underneath now
        if (!target) {
            return std::unexpected(target.error());
        }
    }
    if (auto r = attach(*source, *target, mount); !r) {
        return std::unexpected(r.error());
    }
    return Mounted{stale ? MountResult::refreshed : MountResult::mounted, shows};
}

Result<> release_bind_mount(const BindMount& mount)
{
    auto checkout = open_no_symlinks(mount.checkout, O_PATH | O_DIRECTORY);
    auto source = checkout ? open_beneath(checkout->get(), mount.link, O_PATH)
                           : std::unexpected(checkout.error());
    auto target = open_no_symlinks(mount.target, O_PATH);
    if (!source || !target) {
        return {}; // nothing of ours can be mounted there
    }
    auto have = file_info(source->get());
    auto shown = file_info(target->get());
    if (!have || !shown || !shown->mount_root || !same_inode(*have, *shown)) {
        return {};
    }
    return detach(*target, mount.target);
}

int mount_count(const std::string& target)
{
    auto table = read_mounts();
    if (!table) {
        return 0;
    }
    const auto wanted = fs::path(target).lexically_normal().string();
    int count = 0;
    libmnt_iter* iter = mnt_new_iter(MNT_ITER_FORWARD);
    libmnt_fs* entry = nullptr;
    while (mnt_table_next_fs(table.get(), iter, &entry) == 0) {
        if (const char* at = mnt_fs_get_target(entry); at != nullptr && wanted == at) {
            ++count;
        }
    }
    mnt_free_iter(iter);
    return count;
}

} // namespace gitopper
