#include "service/patches.hpp"
#include "util/strings.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "util/log.hpp"
#include "util/safe_path.hpp"

namespace gitopper {
namespace {

namespace fs = std::filesystem;

struct Patch {
    timespec mtime{};
    std::string name;
    std::uint64_t size = 0;
};

bool newer(const Patch& a, const Patch& b)
{
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec, a.name) >
           std::tie(b.mtime.tv_sec, b.mtime.tv_nsec, b.name);
}

// The patches in `dir`, newest first. Temp files of a patch being written end in
// ".tmp.XXXXXX", not ".patch", and stay.
std::vector<Patch> patches_in(const std::string& dir)
{
    std::vector<Patch> patches;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const auto name = it->path().filename().string();
        struct stat st {};
        if (name.ends_with(".patch") && ::lstat(it->path().c_str(), &st) == 0 &&
            S_ISREG(st.st_mode)) {
            patches.push_back({st.st_mtim, name, static_cast<std::uint64_t>(st.st_size)});
        }
    }
    std::sort(patches.begin(), patches.end(), newer);
    return patches;
}

} // namespace

PatchDir::PatchDir(const std::string& state_dir, std::string service, PatchLimits limits)
    : m_top(state_dir + "/gitopper-drift"), m_dir(m_top + "/" + service),
      m_service(std::move(service)), m_limits(limits)
{
}

// The state dir is root's alone (checked at start), and gitopper-drift/ is made 0700 here.
Result<AtomicFile> PatchDir::create(const std::string& stem) const
{
    std::error_code ec;
    fs::create_directories(m_dir, ec);
    if (ec) {
        return fail("creating {}: {}", m_dir, ec.message());
    }
    if (::chmod(m_top.c_str(), 0700) != 0) {
        return fail("chmod {}: {}", m_top, errno_message(errno));
    }
    auto path = fmt::format("{}/{}.patch", m_dir, stem);
    for (int n = 2;; ++n) {
        const auto taken = exists_no_symlinks(path);
        if (!taken) {
            return std::unexpected(taken.error());
        }
        if (!*taken) {
            break;
        }
        path = fmt::format("{}/{}-{}.patch", m_dir, stem, n);
    }
    return AtomicFile::create(path, 0600);
}

void PatchDir::prune() const
{
    std::size_t kept = 0;
    std::uint64_t bytes = 0;
    bool full = false; // once one does not fit, no older one is kept either
    for (const auto& patch : patches_in(m_dir)) {
        full = full || kept == m_limits.count || bytes + patch.size > m_limits.bytes;
        if (!full || kept == 0) {
            ++kept;
            bytes += patch.size;
            continue;
        }
        const auto path = m_dir + "/" + patch.name;
        if (::unlink(path.c_str()) != 0) {
            log::warn("[{}] cannot delete old drift patch {}: {}", m_service, path,
                      errno_message(errno));
            continue;
        }
        log::info("[{}] deleted old drift patch {} (keeping at most {} patches, {} MiB)", m_service,
                  path, m_limits.count, m_limits.bytes >> 20);
    }
}

} // namespace gitopper
