#pragma once
// What survives a restart (SPEC §3, beyond): freezes, rollback pins and each service's deploy
// history. Each service has a file of its own, <state>/gitopper-state/<state_file_name>, versioned
// JSON written atomically (temp file, fsync, rename, fsync of the directory) and only when its
// text changed: a deploy writes one small file, however many services the host runs.
// gitopper-state/ is root's, 0700, its files 0600; all of them are opened through a descriptor of
// it, and no symlink is followed on the way (SPEC §11). The engine loads once, before any thread
// starts; then only the poll threads save, each its own services. One lock covers the store, writes
// included.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "api/control.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper {

struct SavedService {
    bool frozen = false;
    std::string pin;     // the commit a freeze or rollback holds
    std::string info;    // "ROLLBACK: <hash>" after a rollback
    FreezeRecord freeze; // while frozen by /do/freeze
    // The last commit the service was told about: checked out and its action run (or none
    // was needed). A checkout ahead of it means the action is still owed.
    std::string applied;
    // Its files changed back (local edits saved and reverted) and it was not told yet.
    bool owed = false;
    // A commit whose health check failed and was rolled back: polls never deploy it again,
    // a pull may. "" when none.
    std::string quarantined;
    // With allowed_signers: the newest commit whose signature was verified, which no rollback
    // goes behind unless forced. "" when none.
    std::string verified;
    std::deque<HistoryEntry> history; // oldest first, at most kHistoryLimit saved
};

constexpr std::size_t kHistoryLimit = 100;

// The name of a service's file in gitopper-state/. Service names are systemd unit names
// ("getty@tty1.service", "mnt-data\x2dold.mount"), and the file name is the service name with
// every byte other than an ASCII letter, a digit or one of "_.@:-" written as %XX ('\' is %5C,
// '%' itself %25, '/' %2F), and a leading '.' or '-' too, so that no name is ".", "..", hidden
// or taken for an option; then ".json". Distinct names give distinct files. A name that would
// take more than 200 bytes (NAME_MAX is 255; "<file>.tmp.XXXXXX" and
// "<file>.unreadable-<time>" must fit as well) keeps its first 183 and then "+" and the 16 hex
// digits of the name's 64-bit FNV-1a hash ('+' is never a name's own byte there); since such
// names could in principle collide, every file also holds its service's name, and a file
// holding another name is not taken.
std::string state_file_name(std::string_view service);

class StateStore {
public:
    // `state_dir`: the daemon's --state, checked as ours at start-up. gitopper-state/ is made there
    // (0700) by the first load or save.
    explicit StateStore(std::string state_dir);

    // The saved services of `known`. A missing file is an empty state for that service; an
    // unreadable, corrupt or newer one is a warning and an empty state for that service only
    // (the file kept aside as <file>.unreadable-<time>), never a reason not to start. Files of
    // services not in `known` are skipped with a warning and left as they are; temp files of a
    // write that never finished are removed.
    // The single file of earlier versions, <state>/gitopper-state.json, is taken over: each of
    // its services that has no file of its own yet gets one, then the old file is renamed to
    // gitopper-state.json.migrated (logged once; it is kept where a write failed, to be taken
    // again next time).
    // `all`: `known` are all the services of this host, and the files of others are reported
    // (not for the bootstrap checkout's own start, before the config is read).
    std::map<std::string, SavedService> load(const std::set<std::string>& known, bool all = true);

    // Writes the file of `service` if its text changed; no other service's file is touched.
    // At most the newest kHistoryLimit history entries are written.
    [[nodiscard]] Result<> save(const std::string& service, const SavedService& saved);

    // <state_dir>/gitopper-state
    const std::string& dir() const { return m_dir; }

private:
    [[nodiscard]] Result<> open_locked();
    std::optional<SavedService> read_locked(const std::string& service);
    void migrate_locked(const std::set<std::string>& known,
                        std::map<std::string, SavedService>& services);
    void sweep_locked(const std::set<std::string>& known, bool all);
    [[nodiscard]] Result<> write_locked(const std::string& service, std::string text);

    std::string m_state_dir;
    std::string m_dir;
    std::mutex m_mutex;
    Fd m_top;                                     // the state dir
    Fd m_fd;                                      // gitopper-state/ in it
    std::map<std::string, std::string> m_written; // per service: what its file holds now
};

} // namespace gitopper
