#include "service/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kVersion = 1; // of a service's file; the old single file had its own version 1
// Not "services": with the mount base at the state dir (the default), a service's checkout is
// <state>/<service>, and the state dir's own entries are named gitopper-* (which config
// validation then refuses as service names).
constexpr const char* kDirName = "gitopper-state";
constexpr const char* kOldFile = "gitopper-state.json";
// A service's file holds at most 100 history entries of a few hundred bytes (results quote
// at most the tail of a program's output); far larger is not ours. The old file held them all.
constexpr std::size_t kMaxFileBytes = std::size_t(16) << 20;
constexpr std::size_t kMaxOldFileBytes = std::size_t(256) << 20;
constexpr std::size_t kMaxStem = 200;
constexpr std::size_t kHashedStem = kMaxStem - 17; // then "+" and 16 hex digits

bool plain_byte(char c, bool first)
{
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    const bool punct = c == '_' || c == '.' || c == '@' || c == ':' || c == '-';
    return alnum || (punct && !(first && (c == '.' || c == '-')));
}

// A service's entry in the file: what it held in the old file's "services" too.
void put_fields(ordered_json& out, const SavedService& saved)
{
    ordered_json history = ordered_json::array();
    const auto skip = saved.history.size() - std::min(saved.history.size(), kHistoryLimit);
    for (auto entry = saved.history.begin() + static_cast<std::ptrdiff_t>(skip);
         entry != saved.history.end(); ++entry) {
        history.push_back(ordered_json{{"time", entry->time},
                                       {"from", entry->from},
                                       {"to", entry->to},
                                       {"trigger", entry->trigger},
                                       {"result", entry->result}});
    }
    out["frozen"] = saved.frozen;
    out["pin"] = saved.pin;
    out["info"] = saved.info;
    if (saved.frozen && saved.freeze != FreezeRecord{}) {
        // Absent when unknown: files of earlier versions stay as they were.
        out["freeze"] = ordered_json{{"by", saved.freeze.by},
                                     {"at", saved.freeze.at},
                                     {"reason", saved.freeze.reason},
                                     {"until", saved.freeze.until}};
    }
    out["applied"] = saved.applied;
    if (!saved.verified.empty()) {
        out["verified"] = saved.verified;
    }
    if (!saved.quarantined.empty()) {
        out["quarantined"] = saved.quarantined; // absent when none, as "owed"
    }
    if (saved.owed) {
        out["owed"] = true; // absent when false: files of earlier versions stay as they were
    }
    out["history"] = std::move(history);
}

// The version first, then whose file it is.
std::string serialize(const std::string& service, const SavedService& saved)
{
    ordered_json root{{"version", kVersion}, {"service", service}};
    put_fields(root, saved);
    // History results and infos quote git's output, which need not be UTF-8 (or is cut
    // inside a character): replace such bytes instead of throwing on the poll thread.
    return root.dump(1, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

// Throws json::exception on a wrong shape.
SavedService from_json(const json& object)
{
    SavedService saved;
    saved.frozen = object.value("frozen", false);
    saved.pin = object.value("pin", "");
    saved.info = object.value("info", "");
    if (const auto freeze = object.find("freeze"); freeze != object.end() && saved.frozen) {
        saved.freeze = {freeze->value("by", std::string()), freeze->value("at", std::int64_t{0}),
                        freeze->value("reason", std::string()),
                        freeze->value("until", std::int64_t{0})};
    }
    saved.applied = object.value("applied", "");
    saved.owed = object.value("owed", false);
    saved.quarantined = object.value("quarantined", std::string());
    saved.verified = object.value("verified", std::string());
    for (const auto& entry : object.value("history", json::array())) {
        saved.history.push_back({entry.value("time", std::int64_t{0}), entry.value("from", ""),
                                 entry.value("to", ""), entry.value("trigger", ""),
                                 entry.value("result", "")});
    }
    while (saved.history.size() > kHistoryLimit) {
        saved.history.pop_front();
    }
    return saved;
}

// Messages complete "state file X ...".
[[nodiscard]] Result<SavedService> parse_service_file(const std::string& text,
                                                      const std::string& service)
{
    try {
        const auto root = json::parse(text);
        if (const auto version = root.value("version", 0); version != kVersion) {
            return fail("has version {}, not {}", version, kVersion);
        }
        if (const auto name = root.value("service", ""); name != service) {
            return fail("holds service {}, not {}", quote(name), quote(service));
        }
        return from_json(root);
    } catch (const json::exception& e) {
        return fail("is damaged ({})", e.what());
    }
}

[[nodiscard]] Result<std::map<std::string, SavedService>> parse_old_file(const std::string& text)
{
    try {
        const auto root = json::parse(text);
        if (const auto version = root.value("version", 0); version != 1) {
            return fail("has version {}, not 1", version);
        }
        std::map<std::string, SavedService> services;
        for (const auto& [name, object] : root.at("services").items()) {
            services[name] = from_json(object);
        }
        return services;
    } catch (const json::exception& e) {
        return fail("is damaged ({})", e.what());
    }
}

// The service a file names, for a message; empty when it cannot be told.
std::string service_named_in(int dir, const std::string& file)
{
    const auto text = read_beneath(dir, file, kMaxFileBytes);
    const auto root = text ? json::parse(*text, nullptr, false) : json();
    return root.is_object() && root.contains("service") && root["service"].is_string()
               ? root["service"].get<std::string>()
               : "";
}

bool present(int dir, const std::string& name)
{
    struct stat st {};
    return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

// The text of the regular file `name` in `dir`, nullopt when there is none; a symlink, a FIFO
// or a file over `limit` is an error.
[[nodiscard]] Result<std::optional<std::string>> read_if_present(int dir, const std::string& name,
                                                                 std::size_t limit)
{
    if (!present(dir, name)) {
        return std::nullopt;
    }
    auto text = read_beneath(dir, name, limit);
    if (!text) {
        return std::unexpected(text.error());
    }
    return std::optional(std::move(*text));
}

// `name` renamed to `name + suffix` in `dir`, or that with "-2", "-3", ... when it is taken:
// never over an earlier one. Returns the new name.
[[nodiscard]] Result<std::string> move_aside(int dir, const std::string& name,
                                             const std::string& suffix)
{
    for (int n = 1; n <= 100; ++n) {
        const auto aside = name + suffix + (n == 1 ? "" : fmt::format("-{}", n));
        if (::renameat2(dir, name.c_str(), dir, aside.c_str(), RENAME_NOREPLACE) == 0) {
            return aside;
        }
        if (errno != EEXIST) {
            return fail("renaming it to {}: {}", aside, errno_message(errno));
        }
    }
    return fail("renaming it: {} and 99 more such names are taken", name + suffix);
}

// An unreadable (or newer) state file is kept for the operator rather than overwritten by the
// next save. `shown` is the directory's path.
void keep_aside(int dir, const std::string& name, const std::string& shown)
{
    auto aside = move_aside(dir, name, fmt::format(".unreadable-{}", std::time(nullptr)));
    if (aside) {
        log::warn("kept the unreadable state file as {}/{}", shown, *aside);
    } else {
        log::warn("state file {}/{}: {}", shown, name, aside.error().message);
    }
}

// "<file>.json.tmp.XXXXXX": an AtomicFile of ours that a crash kept from its rename.
bool is_temp_file(std::string_view name)
{
    constexpr std::string_view kTemp = ".tmp.XXXXXX";
    if (name.size() <= kTemp.size() || name.ends_with(".json")) {
        return false;
    }
    const auto stem = name.substr(0, name.size() - kTemp.size());
    return stem.ends_with(".json") && name.substr(stem.size(), 5) == ".tmp.";
}

// The entries of the old single file in the state dir `top`, nullopt when there is none or it
// cannot be taken (a warning; a damaged or newer one is kept aside).
std::optional<std::map<std::string, SavedService>> read_old_file(int top,
                                                                 const std::string& state_dir)
{
    const auto shown = state_dir + "/" + kOldFile;
    auto text = read_if_present(top, kOldFile, kMaxOldFileBytes);
    if (!text) {
        log::warn("state file {}: {}; not taken over", shown, text.error().message);
        return std::nullopt;
    }
    if (!*text) {
        return std::nullopt;
    }
    auto old = parse_old_file(**text);
    if (!old) {
        log::warn("state file {} {}; starting with default state", shown, old.error().message);
        keep_aside(top, kOldFile, state_dir);
        return std::nullopt;
    }
    return std::move(*old);
}

// Relative to the working directory when not absolute.
[[nodiscard]] Result<Fd> open_directory(const std::string& path)
{
    return path.starts_with('/') ? open_no_symlinks(path, O_RDONLY | O_DIRECTORY)
                                 : open_beneath(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
}

} // namespace

std::string state_file_name(std::string_view service)
{
    std::string stem;
    std::size_t cut = 0; // the longest run of whole bytes (plain or %XX) that leaves room
    for (std::size_t i = 0; i < service.size(); ++i) {
        const char c = service[i];
        stem += plain_byte(c, i == 0) ? std::string(1, c)
                                      : fmt::format("%{:02X}", static_cast<unsigned char>(c));
        cut = stem.size() <= kHashedStem ? stem.size() : cut;
    }
    if (stem.size() > kMaxStem) {
        stem = fmt::format("{}+{:016x}", stem.substr(0, cut), fnv1a(service));
    }
    return (stem.empty() ? "%" : stem) + ".json"; // the empty name is no service's
}

StateStore::StateStore(std::string state_dir)
    : m_state_dir(std::move(state_dir)), m_dir(m_state_dir + "/" + kDirName)
{
}

std::map<std::string, SavedService> StateStore::load(const std::set<std::string>& known, bool all)
{
    std::lock_guard lock(m_mutex);
    std::map<std::string, SavedService> services;
    if (auto opened = open_locked(); !opened) {
        log::warn("{}; starting with default state", opened.error().message);
        return services;
    }
    for (const auto& name : known) {
        if (auto saved = read_locked(name)) {
            services[name] = std::move(*saved);
        }
    }
    migrate_locked(known, services);
    sweep_locked(known, all);
    return services;
}

Result<> StateStore::save(const std::string& service, const SavedService& saved)
{
    std::lock_guard lock(m_mutex);
    auto text = serialize(service, saved);
    if (const auto it = m_written.find(service); it != m_written.end() && it->second == text) {
        return {};
    }
    if (auto opened = open_locked(); !opened) {
        return opened;
    }
    return write_locked(service, std::move(text));
}

// The state dir and gitopper-state/ in it (made when missing), each opened once without following a
// symlink. gitopper-state/ must be ours and closed to others; it is made 0700 whatever umask says.
Result<> StateStore::open_locked()
{
    if (m_fd) {
        return {};
    }
    auto top = open_directory(m_state_dir);
    if (!top) {
        return fail("state directory {}: {}", m_state_dir, top.error().message);
    }
    if (::mkdirat(top->get(), kDirName, 0700) != 0 && errno != EEXIST) {
        return fail("creating {}: {}", m_dir, errno_message(errno));
    }
    auto dir = open_beneath(top->get(), kDirName, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        return fail("state directory {}: {}", m_state_dir, dir.error().message);
    }
    auto trust = check_trusted_dir(dir->get(), "state directory " + m_dir);
    if (trust && *trust == DirTrust::sticky) {
        return fail("state directory {} is writable by others", m_dir);
    }
    if (!trust) {
        return std::unexpected(trust.error());
    }
    if (::fchmod(dir->get(), 0700) != 0) {
        return fail("chmod {}: {}", m_dir, errno_message(errno));
    }
    m_top = std::move(*top);
    m_fd = std::move(*dir);
    return {};
}

// A damaged file costs this service its saved state, nothing more.
std::optional<SavedService> StateStore::read_locked(const std::string& service)
{
    const auto file = state_file_name(service);
    auto text = read_if_present(m_fd.get(), file, kMaxFileBytes);
    if (!text) {
        log::warn("[{}] state file {}/{}: {}; starting with default state", service, m_dir, file,
                  text.error().message);
        return std::nullopt;
    }
    if (!*text) {
        return std::nullopt; // a new service
    }
    auto saved = parse_service_file(**text, service);
    if (!saved) {
        log::warn("[{}] state file {}/{} {}; starting with default state", service, m_dir, file,
                  saved.error().message);
        keep_aside(m_fd.get(), file, m_dir);
        return std::nullopt;
    }
    m_written[service] = std::move(**text);
    return std::move(*saved);
}

// The single file of earlier versions. A service's own file is newer than its entry there
// (written by this version since), so it wins. The old file is renamed, not deleted, once every
// entry is in its own file.
void StateStore::migrate_locked(const std::set<std::string>& known,
                                std::map<std::string, SavedService>& services)
{
    auto old = read_old_file(m_top.get(), m_state_dir);
    if (!old) {
        return;
    }
    const auto shown = m_state_dir + "/" + kOldFile;
    std::size_t taken = 0;
    bool failed = false; // then the rest is only used, not written: the old file stays
    for (const auto& [name, saved] : *old) {
        if (present(m_fd.get(), state_file_name(name))) {
            continue;
        }
        if (known.contains(name)) {
            services[name] = saved;
        }
        auto written = failed ? Result<>{} : write_locked(name, serialize(name, saved));
        if (!written) {
            log::warn("[{}] taking over its state from {}: {}", name, shown,
                      written.error().message);
            failed = true;
        }
        taken += !failed;
    }
    if (failed) {
        log::warn("state file {} stays, to be taken over again at the next start", shown);
        return;
    }
    auto moved = move_aside(m_top.get(), kOldFile, ".migrated");
    if (!moved) {
        log::warn("state file {}: {}", shown, moved.error().message);
        return;
    }
    log::info("took over the state of {} service{} from {} into {}/; the old file is now {}/{}",
              taken, taken == 1 ? "" : "s", shown, m_dir, m_state_dir, *moved);
}

// Files of services this host does not run stay (the service may come back); a temp file left
// by a crash between a write and its rename goes.
void StateStore::sweep_locked(const std::set<std::string>& known, bool all)
{
    std::set<std::string> ours;
    for (const auto& name : known) {
        ours.insert(state_file_name(name));
    }
    for (const auto& entry : list_directory(m_fd.get()).value_or(std::vector<std::string>{})) {
        if (entry.ends_with(".json") && !ours.contains(entry)) {
            if (!all) {
                continue;
            }
            const auto service = service_named_in(m_fd.get(), entry);
            log::warn("state file {}/{}{}: skipped, this host does not run it (the file stays)",
                      m_dir, entry, service.empty() ? "" : " of service " + quote(service));
        } else if (is_temp_file(entry) && ::unlinkat(m_fd.get(), entry.c_str(), 0) == 0) {
            log::info("removed {}/{}, left by a write that never finished", m_dir, entry);
        }
    }
}

Result<> StateStore::write_locked(const std::string& service, std::string text)
{
    const auto file = state_file_name(service);
    if (auto r = write_file_atomic_at(m_fd.get(), file, text, 0600, m_dir + "/" + file); !r) {
        return r;
    }
    m_written[service] = std::move(text);
    return {};
}

} // namespace gitopper
