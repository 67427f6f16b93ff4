#pragma once
// One try at handing one event to one target: an HTTP(S) POST or a command for a notify
// target, an API call for a commit status.

#include <optional>
#include <string>

#include "config/config.hpp"
#include "notify/notice.hpp"

namespace gitopper {

struct Tried {
    enum class Kind { delivered, retry, rejected } kind = Kind::retry;
    std::string why; // for the log: "cannot connect", "HTTP 503", "exited 1"
};

// `secret`: the target's shared secret ("" for none), read by the caller.
Tried deliver(const NotifyTarget& target, const std::string& secret, const Notice& notice);

// The commit status an event sets, SPEC §6: "pending", "success" or "failure", on `to`.
struct StatusCall {
    std::string state;
    std::string description; // at most 140 bytes (GitHub's limit), cut at a character
};
std::optional<StatusCall> status_call(const Notice& notice);

// Whether `path` is a repository path a forge's API takes as it is ("group/sub/name").
bool forge_repository(std::string_view path);

// The forge's API call for `notice` (which status_call() maps), with `token` (never logged).
Tried deliver_status(const StatusTarget& target, const std::string& token, const Notice& notice);

} // namespace gitopper
