#include "util/trusted_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/fd.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

bool ours(uid_t uid)
{
    return uid == 0 || uid == ::geteuid();
}

std::string octal(mode_t mode)
{
    return fmt::format("{:04o}", mode & 07777);
}

// Whether others may write `dir`, which is otherwise ours: a sticky one (/tmp) lets them add
// entries but not rename or remove ours. An error when they could replace what is in it.
[[nodiscard]] Result<bool> check_directory(const std::string& path, const std::string& dir)
{
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        return fail("{}: {}: {}", path, dir, errno_message(errno));
    }
    const bool others_write = (st.st_mode & 022) != 0;
    if (!ours(st.st_uid) || (others_write && (st.st_mode & S_ISVTX) == 0)) {
        return fail("{}: directory {} must be root's and writable by root alone (it is uid {}, "
                    "mode {}): whoever can write it can put another file in its place",
                    path, dir, st.st_uid, octal(st.st_mode));
    }
    return others_write;
}

// In a directory others may add to: only an entry of ours counts (a symlink or a file
// someone else put there under the expected name does not), and a file with other links is
// refused (a hard link to some root file, made where fs.protected_hardlinks is off).
[[nodiscard]] Result<> check_shared_entry(const std::string& path, const std::string& entry,
                                          const struct stat& st)
{
    if (!ours(st.st_uid)) {
        return fail("{}: {} is in a directory others can write and is not root's (it is uid {})",
                    path, entry, st.st_uid);
    }
    if (S_ISREG(st.st_mode) && st.st_nlink != 1) {
        return fail("{}: {} is in a directory others can write and has {} links", path, entry,
                    st.st_nlink);
    }
    return {};
}

// Pushes the components of `path` so that the first is on top.
void push_components(std::vector<std::string>& pending, std::string_view path)
{
    auto parts = split(path, '/');
    pending.insert(pending.end(), parts.rbegin(), parts.rend());
}

std::string parent_of(const std::string& dir)
{
    const auto slash = dir.rfind('/');
    return slash == 0 ? "/" : dir.substr(0, slash);
}

// `path` resolved one component at a time as the kernel would, following symlinks (40 at
// most), with every directory it passes through checked: a symlink can only be changed by
// whoever can write the directory it is in, and that is one of them.
[[nodiscard]] Result<std::string> resolve_checked(const std::string& path)
{
    std::vector<std::string> pending;
    std::string at = "/";
    if (!path.starts_with('/')) {
        const std::unique_ptr<char, decltype(&std::free)> cwd(::getcwd(nullptr, 0), &std::free);
        if (!cwd) {
            return fail("{}: getcwd: {}", path, errno_message(errno));
        }
        push_components(pending, path);
        push_components(pending, cwd.get());
    } else {
        push_components(pending, path);
    }
    auto shared = check_directory(path, at);
    if (!shared) {
        return std::unexpected(shared.error());
    }
    for (int links = 0; !pending.empty();) {
        const auto name = std::move(pending.back());
        pending.pop_back();
        if (name.empty() || name == ".") {
            continue;
        }
        if (name == "..") {
            at = parent_of(at); // checked on the way down
            shared = check_directory(path, at);
            if (!shared) {
                return std::unexpected(shared.error());
            }
            continue;
        }
        const auto next = at == "/" ? "/" + name : at + "/" + name;
        struct stat st {};
        if (::lstat(next.c_str(), &st) != 0) {
            return fail("cannot read {}: {}: {}", path, next, errno_message(errno));
        }
        if (*shared) {
            if (auto r = check_shared_entry(path, next, st); !r) {
                return std::unexpected(r.error());
            }
        }
        if (S_ISLNK(st.st_mode)) {
            std::array<char, PATH_MAX> target{};
            const auto size = ::readlink(next.c_str(), target.data(), target.size() - 1);
            if (size < 0 || ++links > 40) {
                return fail("cannot read {}: {}: {}", path, next,
                            size < 0 ? errno_message(errno) : "too many symlinks");
            }
            const std::string_view to(target.data(), static_cast<std::size_t>(size));
            push_components(pending, to);
            if (to.starts_with('/')) {
                at.assign(1, '/'); // not `= "/"`: GCC 12 warns falsely (-Wrestrict)
                shared = check_directory(path, at);
                if (!shared) {
                    return std::unexpected(shared.error());
                }
            }
            continue;
        }
        if (pending.empty()) {
            // Not opened unless it is one: opening a device or a FIFO may do something.
            if (!S_ISREG(st.st_mode)) {
                return fail("{} is not a regular file", path);
            }
            return next;
        }
        if (!S_ISDIR(st.st_mode)) {
            return fail("cannot read {}: {} is not a directory", path, next);
        }
        shared = check_directory(path, next);
        if (!shared) {
            return std::unexpected(shared.error());
        }
        at = next;
    }
    return at;
}

[[nodiscard]] Result<> check_file(const std::string& path, int fd, Trust trust)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return fail("{}: {}", path, errno_message(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return fail("{} is not a regular file", path);
    }
    if (!ours(st.st_uid) || (st.st_mode & 022) != 0) {
        return fail("{} must be root's and writable by root alone (it is uid {}, mode {})", path,
                    st.st_uid, octal(st.st_mode));
    }
    if (trust == Trust::secret && (st.st_mode & 044) != 0) {
        return fail("{} holds a secret and is readable by others (mode {}): chmod go-r", path,
                    octal(st.st_mode));
    }
    return {};
}

} // namespace

[[nodiscard]] Result<std::string> read_trusted_file(const std::string& path, Trust trust,
                                                    std::size_t limit)
{
    const auto real = resolve_checked(path);
    if (!real) {
        return std::unexpected(real.error());
    }
    // Nobody else can change what `real` names now. O_NONBLOCK: a FIFO there does not hang us
    // before the check refuses it.
    Fd fd(::open(real->c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
    if (!fd) {
        return fail("cannot read {}: {}", path, errno_message(errno));
    }
    if (auto r = check_file(path, fd.get(), trust); !r) {
        return std::unexpected(r.error());
    }
    return read_all(fd.get(), path, limit);
}

[[nodiscard]] Result<Fd> sealed_copy(std::string_view name, std::string_view content, uid_t uid,
                                     gid_t gid)
{
    Fd fd(::memfd_create(std::string(name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) {
        return fail("memfd_create: {}", errno_message(errno));
    }
    for (std::size_t done = 0; done < content.size();) {
        const auto count = ::write(fd.get(), content.data() + done, content.size() - done);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count <= 0) {
            return fail("writing {}: {}", name, errno_message(errno));
        }
        done += static_cast<std::size_t>(count);
    }
    constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), 0400) != 0 ||
        ::fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0) {
        return fail("sealing {}: {}", name, errno_message(errno));
    }
    return fd;
}

} // namespace gitopper
