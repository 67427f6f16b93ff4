#pragma once
// The drift patches of one service under root's state dir (<state>/gitopper-drift/<service>/,
// the top 0700): a new patch never replaces an earlier one, and what is kept is bounded, so
// that a service user who keeps causing drift cannot fill root's disk with them.
// Used by the service's poll thread only.

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/atomic_file.hpp"
#include "util/error.hpp"

namespace gitopper {

// At most this many patches per service, the newest. They are for an operator to look at
// recent edits; a user who edits in a loop leaves one per drift cycle (a few a second, or one
// per scan interval), which without a bound piles up forever.
constexpr std::size_t kMaxDriftPatches = 100;
// At most this many bytes of patches per service, the newest; a single patch larger than
// that is refused while git writes it (the drift stays, BROKEN "drift kept: ...") rather than
// letting one edit fill the disk. An edit of a configuration tree is kilobytes; 256 MiB still
// holds the odd binary file, and is small next to the file system of /var/lib.
constexpr std::uint64_t kMaxDriftPatchBytes = std::uint64_t(256) << 20;

struct PatchLimits {
    std::size_t count = kMaxDriftPatches;
    std::uint64_t bytes = kMaxDriftPatchBytes;
};

class PatchDir {
public:
    PatchDir(const std::string& state_dir, std::string service, PatchLimits limits = {});

    // A new file `<stem>.patch` (or `<stem>-2.patch`, ...), 0600, committed by the caller.
    [[nodiscard]] Result<AtomicFile> create(const std::string& stem) const;
    // Deletes the oldest patches (by modification time) until at most `limits` remain; the
    // newest is always kept. Each deletion is logged.
    void prune() const;

    const PatchLimits& limits() const { return m_limits; }
    const std::string& dir() const { return m_dir; }

private:
    std::string m_top;
    std::string m_dir;
    std::string m_service;
    PatchLimits m_limits;
};

} // namespace gitopper
