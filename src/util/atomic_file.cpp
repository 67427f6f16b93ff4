#include "util/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

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

// Everything up to the rename, on the open temp file; the caller removes it on failure.
Result<> fill_temp_file(Fd fd, std::string_view content, mode_t mode)
{
    if (const int error = write_all(fd.get(), content); error != 0) {
        return fail("writing: {}", errno_text(error));
    }
    if (::fchmod(fd.get(), mode) != 0) {
        return fail("fchmod: {}", errno_text(errno));
    }
    if (::fsync(fd.get()) != 0) {
        return fail("fsync: {}", errno_text(errno));
    }
    // close() can report a delayed write error (NFS); it must not pass unnoticed.
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

Result<> replace_with_temp(const std::string& path, std::string& temp, std::string_view content,
                           mode_t mode)
{
    Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (!fd) {
        return fail("creating temporary file: {}", errno_text(errno));
    }
    auto filled = fill_temp_file(std::move(fd), content, mode);
    if (filled && ::rename(temp.c_str(), path.c_str()) != 0) {
        filled = fail("renaming {}: {}", temp, errno_text(errno));
    }
    if (!filled) {
        ::unlink(temp.c_str());
        return filled;
    }
    return sync_directory(directory_of(path));
}

} // namespace

Result<> write_file_atomic(const std::string& path, std::string_view content, mode_t mode)
{
    std::string temp = path + ".tmp.XXXXXX";
    return with_context(replace_with_temp(path, temp, content, mode), "cannot write {}", path);
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
