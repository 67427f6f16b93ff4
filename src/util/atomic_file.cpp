#include "util/atomic_file.hpp"
#include "util/strings.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "util/fd.hpp"

namespace gitopper {

namespace {

// The directory holding `path`, whose entry the rename changes, and the entry's name.
std::string directory_of(const std::string& path)
{
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path)
{
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A new file `<name>.tmp.XXXXXX` in `dir`, as mkostemp(3) makes one, but beneath a descriptor
// (mkostemp takes a path). Returns 0 or an errno value.
int create_temp(int dir, const std::string& name, std::string& temp, Fd& fd)
{
    constexpr std::string_view kLetters =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::array<unsigned char, 6> random{};
        if (::getrandom(random.data(), random.size(), 0) != static_cast<ssize_t>(random.size())) {
            return errno;
        }
        temp = name + ".tmp.";
        for (const auto byte : random) {
            temp += kLetters[byte % kLetters.size()];
        }
        fd = Fd(
            ::openat(dir, temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (fd || errno != EEXIST) {
            return fd ? 0 : errno;
        }
    }
    return EEXIST;
}

// Returns 0 or an errno value.
int write_all(int fd, std::string_view content)
{
    while (!content.empty()) {
        const ssize_t written = ::write(fd, content.data(), content.size());
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written < 0) {
            return errno;
        }
        if (written == 0) {
            return EIO; // no progress and no reason: do not spin
        }
        content.remove_prefix(static_cast<std::size_t>(written));
    }
    return 0;
}

// Makes the content durable and reports what close() may only now say (a delayed write error
// on NFS): it must not pass unnoticed.
[[nodiscard]] Result<> sync_and_close(Fd fd)
{
    if (::fsync(fd.get()) != 0) {
        return fail("fsync: {}", errno_message(errno));
    }
    if (::close(fd.release()) != 0) {
        return fail("close: {}", errno_message(errno));
    }
    return {};
}

// Makes the rename itself durable; `shown` names the directory. `dir` may be an O_PATH
// descriptor, which fsync refuses (EBADF): the directory is opened again through it.
[[nodiscard]] Result<> sync_directory(int dir, const std::string& shown)
{
    const Fd readable(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!readable || ::fsync(readable.get()) != 0) {
        return fail("fsync of directory {}: {}", shown, errno_message(errno));
    }
    return {};
}

// RENAME_NOREPLACE: checking first and renaming after would leave a moment to lose a file in.
[[nodiscard]] Result<> rename_into_place(int dir, const std::string& temp, const std::string& name,
                                         Replace replace)
{
    const unsigned flags = replace == Replace::no ? RENAME_NOREPLACE : 0;
    if (::renameat2(dir, temp.c_str(), dir, name.c_str(), flags) != 0) {
        return fail("renaming {}: {}", temp, errno_message(errno));
    }
    return {};
}

[[nodiscard]] Result<> fill_and_commit(Result<AtomicFile> file, std::string_view content)
{
    if (!file) {
        return std::unexpected(file.error());
    }
    if (const int error = write_all(file->fd(), content); error != 0) {
        return fail("cannot write {}: writing: {}", file->path(), errno_message(error));
    }
    return file->commit(Replace::yes);
}

} // namespace

AtomicFile::AtomicFile(std::string path, Fd dir, std::string name, std::string temp, Fd fd)
    : m_path(std::move(path)), m_dir(std::move(dir)), m_name(std::move(name)),
      m_temp(std::move(temp)), m_fd(std::move(fd))
{
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_path(std::move(other.m_path)), m_dir(std::move(other.m_dir)),
      m_name(std::move(other.m_name)), m_temp(std::exchange(other.m_temp, {})),
      m_fd(std::move(other.m_fd))
{
}

AtomicFile::~AtomicFile()
{
    if (!m_temp.empty()) {
        ::unlinkat(m_dir.get(), m_temp.c_str(), 0);
    }
}

Result<AtomicFile> AtomicFile::create(const std::string& path, mode_t mode)
{
    Fd dir(::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        return fail("cannot write {}: creating temporary file: {}", path, errno_message(errno));
    }
    return create_at(dir.get(), name_of(path), mode, path);
}

Result<AtomicFile> AtomicFile::create_at(int dir, std::string name, mode_t mode, std::string shown)
{
    Fd copy(::fcntl(dir, F_DUPFD_CLOEXEC, 0));
    if (!copy) {
        return fail("cannot write {}: {}", shown, errno_message(errno));
    }
    std::string temp;
    Fd fd;
    if (const int error = create_temp(copy.get(), name, temp, fd); error != 0) {
        return fail("cannot write {}: creating temporary file: {}", shown, errno_message(error));
    }
    AtomicFile file(std::move(shown), std::move(copy), std::move(name), std::move(temp),
                    std::move(fd));
    // Made 0600; its final mode comes before any content, which is no more private than the
    // file will be.
    if (::fchmod(file.fd(), mode) != 0) {
        return fail("cannot write {}: fchmod: {}", file.path(), errno_message(errno));
    }
    return file;
}

Result<> AtomicFile::commit(Replace replace)
{
    auto committed = sync_and_close(std::move(m_fd));
    if (committed) {
        committed = rename_into_place(m_dir.get(), m_temp, m_name, replace);
    }
    if (committed) {
        m_temp.clear(); // it is the file now
        committed = sync_directory(m_dir.get(), directory_of(m_path));
    }
    return with_context(std::move(committed), "cannot write {}", m_path);
}

[[nodiscard]] Result<> write_file_atomic(const std::string& path, std::string_view content,
                                         mode_t mode)
{
    return fill_and_commit(AtomicFile::create(path, mode), content);
}

[[nodiscard]] Result<> write_file_atomic_at(int dir, const std::string& name,
                                            std::string_view content, mode_t mode,
                                            const std::string& shown)
{
    return fill_and_commit(AtomicFile::create_at(dir, name, mode, shown), content);
}

[[nodiscard]] Result<std::string> read_file(const std::string& path)
{
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return fail("cannot read {}: {}", path, errno_message(errno));
    }
    return read_all(fd.get(), path);
}

[[nodiscard]] Result<std::string> read_all(int fd, const std::string& shown, std::size_t limit)
{
    std::string content;
    std::array<char, 65536> buffer;
    while (true) {
        const ssize_t count = ::read(fd, buffer.data(), buffer.size());
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            return fail("cannot read {}: {}", shown, errno_message(errno));
        }
        if (count == 0) {
            return content;
        }
        content.append(buffer.data(), static_cast<std::size_t>(count));
        if (content.size() > limit) {
            return fail("{} is larger than {} bytes", shown, limit);
        }
    }
}

} // namespace gitopper
