#include "util/safe_path.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

constexpr std::uint64_t kNoSymlinks = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// glibc 2.36 has no wrapper for openat2.
int openat2_fd(int dir, const char* path, int flags, std::uint64_t resolve, mode_t mode = 0)
{
    open_how how{};
    how.flags = static_cast<std::uint64_t>(static_cast<unsigned>(flags | O_CLOEXEC));
    how.mode = mode;
    how.resolve = resolve;
    int fd = -1;
    do {
        fd = static_cast<int>(::syscall(SYS_openat2, dir, path, &how, sizeof how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN)); // EAGAIN: a rename raced us
    return fd;
}

std::string joined(const std::vector<std::string>& parts, std::size_t count)
{
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out += (i == 0 ? "" : "/") + parts[i];
    }
    return out;
}

// For the message only: the first component of `relative` (below `dir`) that is a symlink.
// Earlier components were found not to be symlinks, so the lookups below follow none.
std::string first_symlink(int dir, const std::vector<std::string>& parts)
{
    for (std::size_t i = 1; i <= parts.size(); ++i) {
        struct stat st {};
        const auto prefix = joined(parts, i);
        if (::fstatat(dir, prefix.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            return prefix;
        }
    }
    return joined(parts, parts.size());
}

// `shown` is put before paths in messages: "/" when `dir` is the root directory.
std::unexpected<Error> open_error(int dir, const std::vector<std::string>& parts, int error,
                                  std::string_view shown)
{
    const auto path = fmt::format("{}{}", shown, joined(parts, parts.size()));
    switch (error) {
    case ELOOP:
        return fail("{} is a symlink",
                    quote(fmt::format("{}{}", shown, first_symlink(dir, parts))));
    case EXDEV:
        return fail("{} leaves its directory or crosses a mount", quote(path));
    default:
        return fail("{}: {}", quote(path), errno_message(error));
    }
}

[[nodiscard]] Result<Fd> open_root()
{
    Fd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
        return fail("open /: {}", errno_message(errno));
    }
    return root;
}

// An fd, or the errno of the failure (negative); the error is named by the caller.
int open_raw(int dir, const std::vector<std::string>& parts, int flags, std::uint64_t resolve)
{
    const auto path = parts.empty() ? std::string(".") : joined(parts, parts.size());
    const int fd = openat2_fd(dir, path.c_str(), flags, kNoSymlinks | RESOLVE_BENEATH | resolve);
    return fd >= 0 ? fd : -errno;
}

[[nodiscard]] Result<std::optional<Fd>> find_below(int dir, std::string_view relative, int flags,
                                                   std::string_view shown,
                                                   std::uint64_t resolve = 0)
{
    const auto parts = path_components(relative);
    const int fd = open_raw(dir, parts, flags, resolve);
    if (fd == -ENOENT) {
        return std::nullopt;
    }
    if (fd < 0) {
        return open_error(dir, parts, -fd, shown);
    }
    return std::optional<Fd>(Fd(fd));
}

[[nodiscard]] Result<Fd> open_below(int dir, std::string_view relative, int flags,
                                    std::string_view shown)
{
    auto found = find_below(dir, relative, flags, shown);
    if (found && !*found) {
        return open_error(dir, path_components(relative), ENOENT, shown);
    }
    if (!found) {
        return std::unexpected(found.error());
    }
    return std::move(**found);
}

} // namespace

std::vector<std::string> path_components(std::string_view path)
{
    std::vector<std::string> parts;
    for (auto& part : split(path, '/')) {
        if (!part.empty() && part != ".") {
            parts.push_back(std::move(part));
        }
    }
    return parts;
}

[[nodiscard]] Result<Fd> open_beneath(int dir, std::string_view relative, int flags)
{
    return open_below(dir, relative, flags, "");
}

[[nodiscard]] Result<Fd> open_beneath_same_mount(int dir, std::string_view relative, int flags)
{
    auto found = find_below(dir, relative, flags, "", RESOLVE_NO_XDEV);
    if (found && !*found) {
        return open_error(dir, path_components(relative), ENOENT, "");
    }
    if (!found) {
        return std::unexpected(found.error());
    }
    return std::move(**found);
}

[[nodiscard]] Result<std::optional<Fd>> find_beneath(int dir, std::string_view relative, int flags)
{
    return find_below(dir, relative, flags, "");
}

[[nodiscard]] Result<std::optional<Fd>> find_beneath_same_mount(int dir, std::string_view relative,
                                                                int flags)
{
    return find_below(dir, relative, flags, "", RESOLVE_NO_XDEV);
}

[[nodiscard]] Result<Fd> open_no_symlinks(std::string_view path, int flags)
{
    auto root = open_root();
    if (!root) {
        return std::unexpected(root.error());
    }
    return open_below(root->get(), path, flags, "/");
}

[[nodiscard]] Result<bool> exists_no_symlinks(std::string_view path)
{
    auto parts = path_components(path);
    if (parts.empty()) {
        return true; // "/"
    }
    const auto name = std::move(parts.back());
    parts.pop_back();
    auto root = open_root();
    if (!root) {
        return std::unexpected(root.error());
    }
    const int dir = open_raw(root->get(), parts, O_PATH | O_DIRECTORY, 0);
    if (dir == -ENOENT || dir == -ENOTDIR) {
        return false;
    }
    if (dir < 0) {
        return open_error(root->get(), parts, -dir, "/");
    }
    const Fd parent(dir);
    struct stat st {};
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return true;
    }
    if (errno == ENOENT || errno == ENOTDIR) {
        return false;
    }
    return fail("{}: {}", quote(std::string(path)), errno_message(errno));
}

[[nodiscard]] Result<Fd> make_dirs_no_symlinks(std::string_view path)
{
    auto current = open_root();
    if (!current) {
        return current;
    }
    std::string done;
    for (const auto& part : path_components(path)) {
        done += "/" + part;
        Fd next(openat2_fd(current->get(), part.c_str(), O_PATH | O_DIRECTORY,
                           kNoSymlinks | RESOLVE_BENEATH));
        if (!next && errno == ENOENT) {
            if (::mkdirat(current->get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
                return fail("create {}: {}", done, errno_message(errno));
            }
            next = Fd(openat2_fd(current->get(), part.c_str(), O_PATH | O_DIRECTORY,
                                 kNoSymlinks | RESOLVE_BENEATH));
        }
        if (!next) {
            return errno == ELOOP ? fail("{} is a symlink", quote(done))
                                  : fail("{}: {}", quote(done), errno_message(errno));
        }
        *current = std::move(next);
    }
    return current;
}

[[nodiscard]] Result<std::string> read_beneath(int dir, std::string_view relative,
                                               std::size_t limit)
{
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    auto fd = open_beneath(dir, relative, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd) {
        return std::unexpected(fd.error());
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail("{} is not a regular file", quote(relative));
    }
    if (static_cast<std::size_t>(st.st_size) > limit) {
        return fail("{} is larger than {} bytes", quote(relative), limit);
    }
    // Room for what fstat says and a byte more, to notice a file that grows; never more than
    // limit + 1, and not limit + 1 up front: the limit is far above what files hold.
    std::string text(std::min(limit, static_cast<std::size_t>(st.st_size)) + 1, '\0');
    std::size_t size = 0;
    while (size <= limit) {
        if (size == text.size()) {
            text.resize(std::min(limit + 1, 2 * text.size()));
        }
        const auto n = ::read(fd->get(), text.data() + size, text.size() - size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return fail("read {}: {}", quote(relative), errno_message(errno));
        }
        if (n == 0) {
            break;
        }
        size += static_cast<std::size_t>(n);
    }
    if (size > limit) {
        return fail("{} is larger than {} bytes", quote(relative), limit);
    }
    text.resize(size);
    return text;
}

[[nodiscard]] Result<FileInfo> file_info(int fd)
{
    struct statx stx {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0) {
        return fail("stat: {}", errno_message(errno));
    }
    FileInfo info;
    info.mode = stx.stx_mode;
    info.uid = stx.stx_uid;
    info.gid = stx.stx_gid;
    info.inode = stx.stx_ino;
    info.device = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    info.links = stx.stx_nlink;
    info.mount_root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
                      (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    return info;
}

[[nodiscard]] Result<DirTrust> check_trusted_dir(int fd, const std::string& what)
{
    auto info = file_info(fd);
    if (!info) {
        return fail("{}: {}", what, info.error().message);
    }
    if (!S_ISDIR(info->mode)) {
        return fail("{} is not a directory", what);
    }
    if (info->uid != ::geteuid()) {
        return fail("{} belongs to uid {}, not to us (uid {}); make it root's", what, info->uid,
                    ::geteuid());
    }
    const bool writable = (info->mode & (S_IWGRP | S_IWOTH)) != 0;
    if (writable && (info->mode & S_ISVTX) != 0 && (info->mode & S_IWOTH) != 0) {
        return DirTrust::sticky;
    }
    if (writable) {
        return fail("{} has mode {}: group or others may write to it (chmod go-w)", what,
                    mode_text(info->mode));
    }
    return DirTrust::private_dir;
}

namespace {

// Inside a user namespace (the demo, run by a user) directories of the real root show up as
// the overflow uid; outside one, root is root.
bool owner_is_us(uid_t uid)
{
    static const bool mapped = [] {
        const auto map = read_file("/proc/self/uid_map");
        return map && trim(*map).find("4294967295") == std::string_view::npos;
    }();
    return uid == ::geteuid() || (mapped && uid == 65534);
}

} // namespace

[[nodiscard]] Result<DirTrust> check_trusted_path(std::string_view path, const std::string& what)
{
    auto current = open_root();
    if (!current) {
        return std::unexpected(current.error());
    }
    std::string done;
    for (const auto& part : path_components(path)) {
        auto info = file_info(current->get());
        if (!info) {
            return std::unexpected(info.error());
        }
        const bool writable = (info->mode & (S_IWGRP | S_IWOTH)) != 0;
        if (!owner_is_us(info->uid) || (writable && (info->mode & S_ISVTX) == 0)) {
            return fail("{}: {} is {} with mode {}: someone else could replace what lies in it",
                        what, done.empty() ? "/" : done,
                        owner_is_us(info->uid) ? "ours" : fmt::format("uid {}'s", info->uid),
                        mode_text(info->mode));
        }
        done += "/" + part;
        auto next = open_beneath(current->get(), part, O_PATH | O_DIRECTORY);
        if (!next) {
            return fail("{}: {}: {}", what, done, next.error().message);
        }
        *current = std::move(*next);
    }
    return check_trusted_dir(current->get(), what);
}

std::string mode_text(mode_t mode)
{
    return fmt::format("{:04o}", mode & 07777);
}

Result<std::vector<std::string>> list_directory(int dir)
{
    const int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    std::unique_ptr<DIR, int (*)(DIR*)> stream(fd < 0 ? nullptr : ::fdopendir(fd), ::closedir);
    if (!stream) {
        const int error = errno;
        if (fd >= 0) {
            ::close(fd);
        }
        return fail("list directory: {}", errno_message(error));
    }
    std::vector<std::string> names;
    while (const auto* entry = ::readdir(stream.get())) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") {
            names.emplace_back(name);
        }
    }
    return names;
}

} // namespace gitopper
