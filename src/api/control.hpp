#pragma once
// What the control API acts on and answers with: the Control interface the Engine implements,
// and the value types of a service's status and history. Nothing above util: the routes
// (api/router) and the services (service/) both build on it, neither on the other.

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "api/state.hpp"
#include "util/error.hpp"

namespace gitopper {

// One entry of a service's deploy history, as the state file keeps it and the API lists it.
struct HistoryEntry {
    std::int64_t time = 0; // Unix seconds
    std::string from;      // deployed commit before
    std::string to;        // commit after (or asked for)
    std::string trigger;   // start, poll, pull, webhook, drift, rollback
    std::string result;    // "ok" or the error
};

// Who froze a service, when, why and until when (the audited freeze of /do/freeze).
struct FreezeRecord {
    std::string by;         // the key's comment, else its SHA256 fingerprint; "" if unknown
    std::int64_t at = 0;    // Unix seconds
    std::string reason;     // "" when none was given
    std::int64_t until = 0; // Unix seconds; 0: until someone unfreezes it
    bool operator==(const FreezeRecord&) const = default;
};

// What an operator request carried out by the poll thread ended in: status 0 (done), or an
// HTTP-like code (404, 409, 500) and why.
struct Completion {
    int status = 0;
    std::string message;
};

// What the API and the metrics see of a service.
struct Status {
    std::string service;
    std::string branch;
    State state = State::ok;
    std::string info;
    std::string hash;                             // deployed commit
    std::string upstream;                         // last seen remote head
    std::chrono::system_clock::time_point change; // last change of state or hash
    std::chrono::system_clock::time_point synced; // last reconcile that ended well
    std::uint64_t drift_events = 0;               // local edits reverted
    std::uint64_t actions_ok = 0;                 // systemctl daemon-reload/<action> runs
    std::uint64_t actions_failed = 0;
    std::uint64_t checks_passed = 0; // `check` runs on a staged commit
    std::uint64_t checks_failed = 0;
    std::uint64_t health_passed = 0; // `health` after an action, by its outcome (all tries)
    std::uint64_t health_failed = 0;
    std::uint64_t rollbacks = 0;     // automatic, after a failed health
    FreezeRecord freeze;             // while FREEZE by /do/freeze (empty for a rollback's pin)
    bool waiting_for_window = false; // a checked commit waits for a maintenance window
    // With a fleet rollout (SPEC §6): where this host stands for the upstream commit.
    bool waiting_for_slot = false; // in line for one of its slots
    bool holding_slot = false;     // deploying it in one
    bool held = false;             // it failed its health check on a host: not applied here
    std::uint64_t slots_taken = 0;
    double slot_wait_seconds = 0; // in line, in all
    std::uint64_t marked_bad = 0; // commits this host marked bad
};

// A freeze as an operator asked for it (SPEC §4 beyond): who, why, and for how long.
struct FreezeOrder {
    std::string by;                   // the key's comment or fingerprint; "" when not known
    std::string reason;               // "" when none was given
    std::chrono::seconds duration{0}; // 0: until someone unfreezes it
};

// What the routes act on; the Engine implements it.
class Control {
public:
    virtual ~Control() = default;
    [[nodiscard]] virtual Result<> freeze(const std::string& service, const FreezeOrder& order) = 0;
    [[nodiscard]] virtual Result<> unfreeze(const std::string& service) = 0;
    [[nodiscard]] virtual Result<> pull(const std::string& service) = 0;
    // Carried out before it returns (SPEC §4: "OK once carried out").
    virtual Completion rollback(const std::string& service, const std::string& hash,
                                bool force) = 0;
    // What the next deploy would do, as /list/diff answers it (JSON in `message`).
    virtual Completion diff(const std::string& service) = 0;
    // The fleet rollout's mark on a commit (a hash or its start) of `service` removed.
    virtual Completion release(const std::string& service, const std::string& commit) = 0;
    virtual std::vector<Status> statuses() const = 0;
    [[nodiscard]] virtual Result<std::deque<HistoryEntry>>
    history(const std::string& service) const = 0;
};

} // namespace gitopper
