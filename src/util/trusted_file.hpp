#pragma once
// Files that decide what root does: the keys that may steer the daemon, the keys that sign what
// may be deployed, secrets. sshd's StrictModes, for root: the file and every directory above
// it belong to root (or to us) and nobody else can write them, so nobody else can change the
// file or put another in its place. A world-writable directory passes only when sticky (/tmp):
// there nobody else can rename or remove root's entries. Symlinks on the way are followed (an
// administrator's /etc may use them); what is checked is where they lead.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper {

enum class Trust {
    keys,   // others may read it
    secret, // others may not read it either
};

// The file's content, at most `limit` bytes, once the checks above hold for the file it read
// (checked through its descriptor) and the directories of its real path. Errors name the path
// and what is wrong: "/etc/gitopper/signers must be root's and writable by root alone (it is
// uid 1000, mode 0644)".
[[nodiscard]] Result<std::string> read_trusted_file(const std::string& path, Trust trust,
                                                    std::size_t limit = std::size_t{1} << 20);

// `content` in an anonymous memory file (memfd), sealed so nobody can change it, that only
// `uid` may read (mode 0400): how root hands a key or token to a child that runs as another
// user, for that run only. The child opens /proc/<pid>/fd/N, or reads N; nothing is on disk,
// and it is gone with the last descriptor.
[[nodiscard]] Result<Fd> sealed_copy(std::string_view name, std::string_view content, uid_t uid,
                                     gid_t gid);

} // namespace gitopper
