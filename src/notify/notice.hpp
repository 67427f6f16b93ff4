#pragma once
// What a notification says (SPEC §6): one event of one service, and the forms it is sent in.

#include <cstdint>
#include <string>
#include <vector>

namespace gitopper {

// The events a service reports; each has its one name, sent as `event`.
inline constexpr const char* kEventDeploy = "deploy";                // new files are live
inline constexpr const char* kEventCheckFailed = "check_failed";     // `check` refused a commit
inline constexpr const char* kEventHealthFailed = "health_failed";   // `health` failed after it
inline constexpr const char* kEventRollback = "rollback";            // the automatic one after that
inline constexpr const char* kEventDriftReverted = "drift_reverted"; // local edits saved, undone
inline constexpr const char* kEventBroken = "broken";                // the state became BROKEN
inline constexpr const char* kEventDiff = "diff";                    // the state became DIFF
inline constexpr const char* kEventDeployFailed = "deploy_failed";   // a deploy failed otherwise
inline constexpr const char* kEventFreezeExpired = "freeze_expired"; // unfrozen at its end
// For commit statuses only (never a notify target's): a deploy of `to` has begun.
inline constexpr const char* kEventDeploying = "deploying";

struct Notice {
    std::string host; // this host's name
    std::string service;
    std::string event;
    std::string from;      // the commit deployed before (full hash; "" before the first)
    std::string to;        // the commit the event is about
    std::string state;     // the service's state after it: "OK", "BROKEN", …
    std::string info;      // why, in a line (never a secret: credentials are redacted before)
    std::string trigger;   // what started it: poll, pull, webhook, drift, rollback, health, …
    std::int64_t time = 0; // Unix seconds
    // The upstream's repository path ("ops/config"), for a commit status; not in the JSON.
    std::string repository;

    bool operator==(const Notice&) const = default;
};

// {"host","service","event","from","to","state","info","trigger","time"}, time in RFC 3339.
std::string notice_json(const Notice& notice);
// {"text": "…"}: one line that reads well in a chat.
std::string slack_json(const Notice& notice);
// The line itself: "web1: nginx deployed 1a2b3c4d → 5e6f7a8b (webhook)".
std::string notice_text(const Notice& notice);
// GITOPPER_EVENT=…, GITOPPER_SERVICE=…, … for an exec target.
std::vector<std::string> notice_environment(const Notice& notice);

// For the pending events a clean stop keeps (notify/notifier): the JSON above and back.
[[nodiscard]] bool notice_from_json(const std::string& text, Notice& notice);

} // namespace gitopper
