#pragma once
// What survives a restart (SPEC §3, beyond): freezes, rollback pins and each service's deploy
// history, in one versioned JSON file written atomically. Only the poll threads write it, one
// at a time (the store has its own lock).

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "util/error.hpp"

namespace gitopper {

struct HistoryEntry {
    std::int64_t time = 0; // Unix seconds
    std::string from;      // deployed commit before
    std::string to;        // commit after (or asked for)
    std::string trigger;   // start, poll, pull, webhook, drift, rollback
    std::string result;    // "ok" or the error
};

struct SavedService {
    bool frozen = false;
    std::string pin;  // the commit a freeze or rollback holds
    std::string info; // "ROLLBACK: <hash>" after a rollback
    // The last commit the service was told about: checked out and its action run (or none
    // was needed). A checkout ahead of it means the action is still owed.
    std::string applied;
    std::deque<HistoryEntry> history;
};

constexpr std::size_t kHistoryLimit = 100;

class StateStore {
public:
    explicit StateStore(std::string path) : m_path(std::move(path)) {}

    // The saved services. A missing file is an empty state; an unreadable, corrupt or newer
    // file is a warning and an empty state, never a reason not to start.
    // Entries of services not in `known` are skipped with a warning.
    std::map<std::string, SavedService> load(const std::set<std::string>& known);

    // Replaces the entry of one service and writes the file if anything changed.
    Result<> save(const std::string& service, const SavedService& saved);

    const std::string& path() const { return m_path; }

private:
    Result<> write_locked();

    std::string m_path;
    std::mutex m_mutex;
    std::map<std::string, SavedService> m_services;
    std::string m_written; // what the file holds now, to skip writes that change nothing
};

} // namespace gitopper
