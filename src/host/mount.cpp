// Whether a target is already right is decided by inode: a bind mount shows the source's own
// inode. A file bind mount pins the inode it was made with, so after git replaces the file the
// mount shows the old, deleted one ("//deleted" in mountinfo); such a stale mount of ours is
// detached before mounting again. Anything else mounted there is left alone underneath.

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
#include <vector>

#include "util/fd.hpp"
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

bool same_inode(const std::string& a, const std::string& b)
{
    struct stat sa {};
    struct stat sb {};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// The mount at `target` shows a deleted file or directory (the source was replaced).
bool is_stale_mount(const std::string& target)
{
    auto table = read_mounts();
    if (!table) {
        return false;
    }
    libmnt_fs* top = mnt_table_find_target(table.get(), target.c_str(), MNT_ITER_BACKWARD);
    if (top == nullptr || mnt_fs_get_root(top) == nullptr) {
        return false;
    }
    return std::string_view(mnt_fs_get_root(top)).ends_with("//deleted");
}

Result<> chown_to(const std::string& path, const std::optional<Credentials>& owner)
{
    if (owner && ::lchown(path.c_str(), owner->uid, owner->gid) != 0) {
        return fail("chown {} to {}: {}", path, owner->name, std::strerror(errno));
    }
    return {};
}

// Creates the missing parents of `path` (and `path` itself unless it is a file to be created
// afterwards), each owned by `owner`.
Result<> create_dirs(const fs::path& path, const std::optional<Credentials>& owner)
{
    std::vector<fs::path> missing;
    for (auto p = path; !p.empty() && p != p.root_path() && !fs::exists(p); p = p.parent_path()) {
        missing.push_back(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
            return fail("create {}: {}", it->string(), std::strerror(errno));
        }
        if (auto r = chown_to(*it, owner); !r) {
            return r;
        }
    }
    return {};
}

Result<> create_target(const std::string& target, bool file,
                       const std::optional<Credentials>& owner)
{
    if (fs::exists(target)) {
        return {};
    }
    if (!file) {
        return create_dirs(target, owner);
    }
    if (auto r = create_dirs(fs::path(target).parent_path(), owner); !r) {
        return r;
    }
    Fd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) {
        return fail("create {}: {}", target, std::strerror(errno));
    }
    return chown_to(target, owner);
}

Result<> check_source(const std::string& source, bool file)
{
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0) {
        return fail("{} does not exist in the checkout", source);
    }
    if (file && !S_ISREG(st.st_mode)) {
        return fail("{} is not a file in the checkout (file = true)", source);
    }
    if (!file && !S_ISDIR(st.st_mode)) {
        return fail("{} is not a directory in the checkout (set file = true for a file)", source);
    }
    return {};
}

} // namespace

Result<MountResult> ensure_bind_mount(const std::string& source, const std::string& target,
                                      bool file, const std::optional<Credentials>& owner)
{
    if (auto r = check_source(source, file); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = create_target(target, file, owner); !r) {
        return std::unexpected(r.error());
    }
    if (mount_count(target) > 0 && same_inode(source, target)) {
        return MountResult::unchanged;
    }
    const bool stale = is_stale_mount(target);
    if (stale && ::umount2(target.c_str(), MNT_DETACH) != 0) {
        return fail("unmount stale {}: {}", target, std::strerror(errno));
    }
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        return fail("bind mount {} on {}: {}", source, target, std::strerror(errno));
    }
    return stale ? MountResult::refreshed : MountResult::mounted;
}

Result<> release_bind_mount(const std::string& source, const std::string& target)
{
    if (mount_count(target) == 0 || !same_inode(source, target)) {
        return {};
    }
    if (::umount2(target.c_str(), MNT_DETACH) != 0) {
        return fail("unmount {}: {}", target, std::strerror(errno));
    }
    return {};
}

int mount_count(const std::string& target)
{
    auto table = read_mounts();
    if (!table) {
        return 0;
    }
    const auto wanted = fs::weakly_canonical(target).string();
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
