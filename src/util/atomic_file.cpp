#include "util/atomic_file.hpp"

#include <fcntl.h>
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

std::string errno_text(int error)
{
    return std::strerror(error);
}

// The directory holding `path`, whose entry the rename changes.
std::string directory_of(const std::string& path)
{
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return ".";
    }
    return slash == 0 ? "/" : path.substr(0, slash);
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
Result<> sync_and_close(Fd fd)
{
    if (::fsync(fd.get()) != 0) {
        return fail("fsync: {}", errno_text(errno));
    }
    if (::close(fd.release()) != 0) {
        return fail("close: {}", errno_text(errno));
    }
    return {};
}

// Makes the rename itself durable.
Result<> sync_directory(const std::string& directory)
{
    Fd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        return fail("opening directory {}: {}", directory, errno_text(errno));
    }
    if (::fsync(fd.get()) != 0) {
        return fail("fsync of directory {}: {}", directory, errno_text(errno));
    }
    return {};
}

// RENAME_NOREPLACE: checking first and renaming after would leave a moment to lose a file in.
Result<> rename_into_place(const std::string& temp, const std::string& path, Replace replace)
{
    const unsigned flags = replace == Replace::no ? RENAME_NOREPLACE : 0;
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), flags) != 0) {
        return fail("renaming {}: {}", temp, errno_text(errno));
    }
    return {};
}

} // namespace

AtomicFile::AtomicFile(std::string path, std::string temp, Fd fd)
    : m_path(std::move(path)), m_temp(std::move(temp)), m_fd(std::move(fd))
{
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_path(std::move(other.m_path)), m_temp(std::exchange(other.m_temp, {})),
      m_fd(std::move(other.m_fd))
{
}

AtomicFile::~AtomicFile()
{
    if (!m_temp.empty()) {
        ::unlink(m_temp.c_str());
    }
}

Result<AtomicFile> AtomicFile::create(const std::string& path, mode_t mode)
{
    std::string temp = path + ".tmp.XXXXXX";
    // mkostemp makes it 0600; its final mode comes before any content, which is no more
    // private than the file will be.
    Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (!fd) {
        return fail("cannot write {}: creating temporary file: {}", path, errno_text(errno));
    }
    AtomicFile file(path, std::move(temp), std::move(fd));
    if (::fchmod(file.fd(), mode) != 0) {
        return fail("cannot write {}: fchmod: {}", path, errno_text(errno));
    }
    return file;
}

Result<> AtomicFile::commit(Replace replace)
{
    auto committed = sync_and_close(std::move(m_fd));
    if (committed) {
        committed = rename_into_place(m_temp, m_path, replace);
    }
    if (committed) {
        m_temp.clear(); // it is the file now
        committed = sync_directory(directory_of(m_path));
    }
    return with_context(std::move(committed), "cannot write {}", m_path);
}

Result<> write_file_atomic(const std::string& path, std::string_view content, mode_t mode)
{
    auto file = AtomicFile::create(path, mode);
    if (!file) {
        return std::unexpected(file.error());
    }
    if (const int error = write_all(file->fd(), content); error != 0) {
        return fail("cannot write {}: writing: {}", path, errno_text(error));
    }
    return file->commit(Replace::yes);
}

Result<std::string> read_file(const std::string& path)
{
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return fail("cannot read {}: {}", path, errno_text(errno));
    }
    std::string content;
    std::array<char, 65536> buffer;
    while (true) {
        const ssize_t count = ::read(fd.get(), buffer.data(), buffer.size());
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            return fail("cannot read {}: {}", path, errno_text(errno));
        }
        if (count == 0) {
            return content;
        }
        content.append(buffer.data(), static_cast<std::size_t>(count));
    }
}

} // namespace gitopper
