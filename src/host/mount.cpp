// Whether a target is already right is decided by inode: a bind mount shows the source's own
// inode. A file bind mount pins the inode it was made with, so after git replaces the file the
// mount shows the old, deleted one (no links left); such a stale mount of ours is detached
// before mounting again. Anything else mounted there is left alone underneath.
//
// Every step works on file descriptors from util/safe_path: the source opened beneath the
// checkout, the target resolved from "/" with no symlink in any component, the mount moved
// onto the target's descriptor, and an unmount aimed at /proc/self/fd/N of the descriptor we
// checked, so no path can be swapped between a check and the act.
//
// A switch between two trees mounts the new source beneath our mount on the target and then
// detaches ours. The kernel offers no way to look beneath a mount without unmounting it, so a
// pile of mounts on a target is looked at in a private copy of the mount namespace, on a
// thread of its own, where taking them off one at a time changes nothing anyone else sees.

#include "host/mount.hpp"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "util/fd.hpp"
#include "util/last_resort.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200 // Linux 6.5; not in the 6.1 headers
#endif

namespace gitopper {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_stacked = 64; // mounts looked at on one target

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

[[nodiscard]] Result<FileInfo> info_of(const Fd& fd, const std::string& what)
{
    return with_context(file_info(fd.get()), "{}", what);
}

// The link inside the checkout, opened without following a symlink; checked for its type.
[[nodiscard]] Result<Fd> open_source(const BindMount& mount)
{
    auto checkout = open_no_symlinks(mount.checkout, O_PATH | O_DIRECTORY);
    if (!checkout) {
        return fail("checkout {}: {}", mount.checkout, checkout.error().message);
    }
    auto found = find_beneath(checkout->get(), mount.path, O_PATH);
    if (found && *found) {
        // The link may not be another mount inside the checkout (the user's FUSE tree).
        auto same = open_beneath_same_mount(checkout->get(), mount.path, O_PATH);
        if (!same) {
            return fail("link {} in the checkout: {}", quote(mount.path), same.error().message);
        }
    }
    if (!found) {
        return fail("link {} in the checkout: {}", quote(mount.path), found.error().message);
    }
    if (!*found) {
        return fail("link {} does not exist in the checkout", quote(mount.path));
    }
    auto source = std::move(**found);
    auto info = info_of(source, mount.path);
    if (!info) {
        return std::unexpected(info.error());
    }
    if (mount.file && !S_ISREG(info->mode)) {
        return fail("link {} is not a file in the checkout (file = true)", quote(mount.path));
    }
    if (!mount.file && !S_ISDIR(info->mode)) {
        return fail("link {} is not a directory in the checkout (set file = true for a file)",
                    quote(mount.path));
    }
    if (mount.mode) {
        // The mount shows this directory's own inode, so its mode is what readers of the
        // target see. Git does not track directory modes: set it again on every mount.
        auto dir = open_beneath(checkout->get(), mount.path, O_RDONLY | O_DIRECTORY);
        if (!dir || ::fchmod(dir->get(), *mount.mode) != 0) {
            return fail("chmod link {}: {}", quote(mount.path),
                        dir ? errno_message(errno) : dir.error().message);
        }
    }
    return source;
}

[[nodiscard]] Result<> give_to(int parent, const std::string& name, bool file,
                               const std::optional<Credentials>& owner)
{
    if (!owner) {
        return {};
    }
    auto fd = open_beneath(parent, name, file ? O_RDONLY | O_NONBLOCK : O_RDONLY | O_DIRECTORY);
    if (!fd || ::fchown(fd->get(), owner->uid, owner->gid) != 0) {
        return fail("chown {} to {}: {}", name, owner->name,
                    fd ? errno_message(errno) : fd.error().message);
    }
    return {};
}

// Creates `name` in `parent`: a directory, or an empty file; it belongs to `owner`.
[[nodiscard]] Result<> create_target(int parent, const std::string& name, bool file,
                                     const std::optional<Credentials>& owner)
{
    if (file) {
        // The descriptor of the file we created is what we give away: never a name looked up
        // again, which the user could have swapped for a link to another file meanwhile.
        Fd created(::openat(parent, name.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!created) {
            return errno == EEXIST ? Result<>{} : fail("create {}: {}", name, errno_message(errno));
        }
        if (owner && ::fchown(created.get(), owner->uid, owner->gid) != 0) {
            return fail("chown {} to {}: {}", name, owner->name, errno_message(errno));
        }
        return {};
    }
    if (::mkdirat(parent, name.c_str(), 0755) != 0 && errno != EEXIST) {
        return fail("create {}: {}", name, errno_message(errno));
    }
    return give_to(parent, name, file, owner);
}

// The target, resolved from "/" without following a symlink anywhere; created when missing
// (parents root-owned, the target itself `owner`'s).
[[nodiscard]] Result<Fd> open_target(const BindMount& mount,
                                     const std::optional<Credentials>& owner)
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

[[nodiscard]] Result<> detach(const Fd& fd, const std::string& what)
{
    if (::umount2(proc_fd(fd.get()).c_str(), MNT_DETACH) != 0) {
        return fail("unmount {}: {}", what, errno_message(errno));
    }
    return {};
}

[[nodiscard]] Result<> attach(const Fd& source, const Fd& target, const BindMount& mount)
{
    Fd tree(static_cast<int>(
        ::open_tree(source.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!tree) {
        return fail("bind mount {} on {}: open_tree: {}", mount.path, mount.target,
                    errno_message(errno));
    }
    if (::move_mount(tree.get(), "", target.get(), "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return fail("bind mount {} on {}: {}", mount.path, mount.target, errno_message(errno));
    }
    return {};
}

// Mounts `source` beneath the mount `target` is the root of: until that one is detached,
// lookups still find it; then they find the new one.
[[nodiscard]] Result<> attach_beneath(const Fd& source, const Fd& target, const BindMount& mount)
{
    Fd tree(static_cast<int>(
        ::open_tree(source.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    if (!tree) {
        return fail("switch {} to {}: open_tree: {}", mount.target, mount.path,
                    errno_message(errno));
    }
    if (::move_mount(tree.get(), "", target.get(), "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_BENEATH) != 0) {
        return fail("switch {} to {}: mount beneath: {}", mount.target, mount.path,
                    errno_message(errno));
    }
    return {};
}

FileId id_of(const FileInfo& info)
{
    return {info.device, info.inode};
}

// A mount showing one of `ours`, or a file or directory nobody links to any more.
bool is_ours(const FileInfo& shown, const std::vector<FileId>& ours)
{
    return shown.mount_root &&
           (shown.links == 0 || std::ranges::find(ours, id_of(shown)) != ours.end());
}

libmnt_fs* find_mount(libmnt_table* table, int id)
{
    libmnt_iter* iter = mnt_new_iter(MNT_ITER_FORWARD);
    libmnt_fs* entry = nullptr;
    libmnt_fs* found = nullptr;
    while (found == nullptr && mnt_table_next_fs(table, iter, &entry) == 0) {
        found = mnt_fs_get_id(entry) == id ? entry : nullptr;
    }
    mnt_free_iter(iter);
    return found;
}

// Whether the top mount on `target` sits on another mount at the same place (a mount's parent
// is the one it is mounted on); true when that cannot be told, so that someone looks.
bool stacked(const Fd& target)
{
    struct statx stx {};
    if (::statx(target.get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0 ||
        (stx.stx_mask & STATX_MNT_ID) == 0) {
        return true;
    }
    auto table = read_mounts();
    libmnt_fs* top = table ? find_mount(table.get(), static_cast<int>(stx.stx_mnt_id)) : nullptr;
    if (top == nullptr) {
        return true;
    }
    libmnt_fs* under = find_mount(table.get(), mnt_fs_get_parent_id(top));
    return under != nullptr && std::strcmp(mnt_fs_get_target(under), mnt_fs_get_target(top)) == 0;
}

// Runs on a thread of its own, whose mount namespace becomes a private copy of ours (private
// first, so no unmount propagates back) and ends with it: what each mount on `target` shows,
// top first, taking them off one by one.
[[nodiscard]] Result<std::vector<FileInfo>> unmount_privately(const std::string& target)
{
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        return fail("a private mount namespace: {}", errno_message(errno));
    }
    std::vector<FileInfo> stack;
    while (stack.size() < max_stacked) {
        auto fd = open_no_symlinks(target, O_PATH);
        auto info = fd ? file_info(fd->get()) : std::unexpected(fd.error());
        if (!info || !info->mount_root) {
            return info ? Result<std::vector<FileInfo>>(stack) : std::unexpected(info.error());
        }
        stack.push_back(*info);
        if (auto r = detach(*fd, target); !r) {
            return std::unexpected(r.error());
        }
    }
    return fail("more than {} mounts", max_stacked);
}

[[nodiscard]] Result<std::vector<FileInfo>> mount_stack(const std::string& target)
{
    Result<std::vector<FileInfo>> stack;
    std::thread([&] {
        if (auto what = escaped_exception([&] { stack = unmount_privately(target); })) {
            stack = fail("{}", *what);
        }
    }).join();
    return with_context(std::move(stack), "looking beneath the mounts on {}", target);
}

std::unexpected<Error> changed(const BindMount& next)
{
    return fail("local {}: its mounts changed while being settled", next.target);
}

[[nodiscard]] Result<> expect_top(const Fd& target, const FileInfo& expected, const BindMount& next)
{
    auto shown = info_of(target, next.target);
    if (shown && !same_inode(*shown, expected)) {
        return changed(next);
    }
    return shown ? Result<>() : std::unexpected(shown.error());
}

// Detaches the top mount on `target`, checked to show `expected`; returns what is there then.
[[nodiscard]] Result<Fd> take_off(const Fd& target, const FileInfo& expected, const BindMount& next,
                                  const std::optional<Credentials>& owner)
{
    if (auto r = expect_top(target, expected, next); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = detach(target, next.target); !r) {
        return std::unexpected(r.error());
    }
    return open_target(next, owner);
}

// Detaches mounts of ours from the top of `target` while another of ours lies beneath, each
// checked to be the one the private look saw; returns the target as it is then.
[[nodiscard]] Result<Fd> settle(const BindMount& next, Fd target, const std::vector<FileId>& ours,
                                const std::optional<Credentials>& owner)
{
    auto shown = info_of(target, next.target);
    if (!shown || !is_ours(*shown, ours) || !stacked(target)) {
        return shown ? Result<Fd>(std::move(target)) : std::unexpected(shown.error());
    }
    auto stack = mount_stack(next.target);
    if (!stack) {
        return std::unexpected(stack.error());
    }
    // Of the mounts of ours on top, all but the lowest come off.
    const auto beyond = std::ranges::find_if_not(*stack, [&](auto& i) { return is_ours(i, ours); });
    if (beyond == stack->begin()) {
        return changed(next);
    }
    const auto lowest = beyond - 1;
    for (auto top = stack->begin(); top != lowest; ++top) {
        auto below = take_off(target, *top, next, owner);
        if (!below) {
            return std::unexpected(below.error());
        }
        target = std::move(*below);
    }
    auto left = expect_top(target, *lowest, next);
    return left ? Result<Fd>(std::move(target)) : std::unexpected(left.error());
}

// Someone else's mount, or none: ours goes on top, the other is left alone underneath.
[[nodiscard]] Result<MountResult> cover(const Fd& source, const Fd& target, const BindMount& next)
{
    auto r = attach(source, target, next);
    return r ? Result<MountResult>(MountResult::mounted) : std::unexpected(r.error());
}

// Our old mount, still on top, goes once the new one lies beneath it.
[[nodiscard]] Result<MountResult> replace(const Fd& source, const Fd& target, const BindMount& next)
{
    if (!mount_beneath_supported()) {
        return fail("switch {} to {}: this kernel cannot mount beneath a mount "
                    "(MOVE_MOUNT_BENEATH, Linux 6.5)",
                    next.target, next.path);
    }
    if (auto r = attach_beneath(source, target, next); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = detach(target, next.target); !r) {
        return fail("{} (the new mount lies beneath it; the next switch settles them)",
                    r.error().message);
    }
    return MountResult::switched;
}

} // namespace

[[nodiscard]] Result<Mounted> ensure_bind_mount(const BindMount& mount,
                                                const std::optional<Credentials>& owner)
{
    auto source = open_source(mount);
    if (!source) {
        return std::unexpected(source.error());
    }
    auto target = open_target(mount, owner);
    if (!target) {
        return std::unexpected(target.error());
    }
    auto have = info_of(*source, mount.path);
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

[[nodiscard]] Result<> release_bind_mount(const BindMount& mount)
{
    auto checkout = open_no_symlinks(mount.checkout, O_PATH | O_DIRECTORY);
    auto source = checkout ? open_beneath(checkout->get(), mount.path, O_PATH)
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

bool mount_beneath_supported()
{
    // No descriptor is ever INT_MAX (fs.nr_open stops below it), so nothing is moved. The
    // tests run the older kernels' way on this one with GITOPPER_TEST_NO_MOUNT_BENEATH=1: it
    // only ever takes the atomic switch away.
    static const bool supported =
        std::string_view(std::getenv("GITOPPER_TEST_NO_MOUNT_BENEATH") != nullptr
                             ? std::getenv("GITOPPER_TEST_NO_MOUNT_BENEATH")
                             : "") != "1" &&
        ::move_mount(INT_MAX, "", INT_MAX, "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_BENEATH) != 0 &&
        errno == EBADF;
    return supported;
}

std::optional<FileId> source_id(const BindMount& mount)
{
    auto checkout = open_no_symlinks(mount.checkout, O_PATH | O_DIRECTORY);
    auto found = checkout ? find_beneath(checkout->get(), mount.path, O_PATH)
                          : std::unexpected(checkout.error());
    if (!found || !*found) {
        return std::nullopt;
    }
    auto info = file_info((*found)->get());
    return info ? std::optional(id_of(*info)) : std::nullopt;
}

[[nodiscard]] Result<Mounted> switch_bind_mount(const BindMount& next,
                                                const std::vector<FileId>& ours,
                                                const std::optional<Credentials>& owner)
{
    auto source = open_source(next);
    auto target = source ? open_target(next, owner) : std::unexpected(source.error());
    auto have = target ? info_of(*source, next.path) : std::unexpected(target.error());
    if (!have) {
        return std::unexpected(have.error());
    }
    auto mine = ours; // and what else is ours: next's source, what our last mount showed
    mine.push_back(id_of(*have));
    if (next.ours) {
        mine.push_back(*next.ours);
    }
    target = settle(next, std::move(*target), mine, owner);
    auto shown = target ? info_of(*target, next.target) : std::unexpected(target.error());
    if (!shown) {
        return std::unexpected(shown.error());
    }
    if (shown->mount_root && same_inode(*have, *shown)) {
        return Mounted{MountResult::unchanged, id_of(*have)};
    }
    auto done =
        is_ours(*shown, mine) ? replace(*source, *target, next) : cover(*source, *target, next);
    return done ? Result<Mounted>(Mounted{*done, id_of(*have)}) : std::unexpected(done.error());
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
