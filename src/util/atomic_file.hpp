#pragma once
// Files that never tear: write to a temp file in the same directory, fsync, rename over the
// target, fsync the directory. A crash leaves either the old or the new content.

#include <sys/types.h>

#include <string>
#include <string_view>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper {

[[nodiscard]] Result<> write_file_atomic(const std::string& path, std::string_view content,
                                         mode_t mode = 0644);
// As write_file_atomic, for the entry `name` of the directory open as `dir` (see
// AtomicFile::create_at). `shown` is the file's path for messages.
[[nodiscard]] Result<> write_file_atomic_at(int dir, const std::string& name,
                                            std::string_view content, mode_t mode,
                                            const std::string& shown);

[[nodiscard]] Result<std::string> read_file(const std::string& path);
// The rest of the open file `fd`, at most `limit` bytes (more is an error); `shown` is its path
// for messages.
[[nodiscard]] Result<std::string> read_all(int fd, const std::string& shown,
                                           std::size_t limit = std::string().max_size());

// Whether a commit may replace a file already at the path (a state file) or must fail rather
// than overwrite it (a saved patch).
enum class Replace { yes, no };

// A new file filled through its descriptor, by us or by a child handed the descriptor, that
// appears under its name only once complete and durable: a temp file next to it, created with
// its final mode, then fsync, close, rename, fsync of the directory. A file never committed is
// removed when the object goes. Move-only; used by one thread.
class AtomicFile {
public:
    // The directory of `path` is opened once; the temp file, the rename and the fsync all go
    // through that descriptor.
    [[nodiscard]] static Result<AtomicFile> create(const std::string& path, mode_t mode);
    // The entry `name` (no '/') of the directory open as `dir` (O_RDONLY, for its fsync), which
    // is duplicated: the path to it is never looked up, so a directory resolved without symlinks
    // stays the one written to. A symlink at `name` is replaced, never followed. `shown` is the
    // file's path for messages and path().
    [[nodiscard]] static Result<AtomicFile> create_at(int dir, std::string name, mode_t mode,
                                                      std::string shown);
    AtomicFile(AtomicFile&& other) noexcept;
    AtomicFile& operator=(AtomicFile&&) = delete;
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();

    int fd() const { return m_fd.get(); } // open for reading and writing, at offset 0
    const std::string& path() const { return m_path; }
    // Errors name the path and the step (writing, fsync, close, rename).
    [[nodiscard]] Result<> commit(Replace replace);

private:
    AtomicFile(std::string path, Fd dir, std::string name, std::string temp, Fd fd);

    std::string m_path; // for messages
    Fd m_dir;
    std::string m_name;
    std::string m_temp; // its name in m_dir; empty once committed or moved from
    Fd m_fd;
};

} // namespace gitopper
