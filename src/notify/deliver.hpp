#pragma once
// One try at handing one event to one target: an HTTP(S) POST or a command for a notify
// target, an API call for a commit status.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "notify/notice.hpp"

namespace gitopper {

struct Tried {
    enum class Kind { delivered, retry, rejected } kind = Kind::retry;
    std::string why;                     // for the log: "cannot connect", "HTTP 503", "exited 1"
    std::chrono::seconds retry_after{0}; // the receiver's Retry-After, when it gave one
};

// An HTTP answer judged: 2xx delivered; "try later" (408, 429, 5xx, and GitHub's 403 for a
// rate limit, which its headers tell) retried, after `retry_after` (Retry-After in seconds,
// "" for none) if the receiver asks; anything else refused for good.
Tried judge_answer(int status, std::string_view retry_after, std::string_view rate_remaining);

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
