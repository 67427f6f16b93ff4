#pragma once
// Go-style durations ("90s", "5m", "1h30m", "1.5h", "250ms") as used on the command line.

#include <chrono>
#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gitopper {

using Duration = std::chrono::nanoseconds;

[[nodiscard]] Result<Duration> parse_duration(std::string_view text);

// The shortest Go-like spelling: 5m, 1h30m, 1m30s, 250ms, 0s.
std::string format_duration(Duration duration);

} // namespace gitopper
