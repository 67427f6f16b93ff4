#pragma once
// Maintenance windows (the `windows` field, SPEC §1): when new commits may go live, as days of
// the week and a span of the day in the host's local time ("Mon-Fri 06:00-18:00"). Whether a
// moment is inside is asked of the local wall clock at that moment, so a DST change moves a
// window with the clock, as an administrator reading the config expects.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gitopper {

struct Window {
    std::uint8_t days = 0; // bit N: the window opens on weekday N (0 Sunday, as tm_wday)
    int start = 0;         // minutes after local midnight
    int end = 0;           // minutes after midnight (1440: midnight); <= start: into the next day
};

// "Mon-Fri 06:00-18:00", "Sat,Sun 10:00-12:00", "Fri 22:00-02:00" (into Saturday), "daily
// 03:00-04:00" or "03:00-04:00" (every day). Days: Mon … Sun in any case, ranges may wrap
// ("Fri-Mon"). The error says what is wrong with the text.
[[nodiscard]] Result<Window> parse_window(std::string_view text);

bool inside(std::span<const Window> windows, std::chrono::system_clock::time_point when);

// The first moment from `now` on that is inside one of `windows` (`now` itself when it is),
// to the second; nullopt when there are no windows or none opens within the next 8 days.
std::optional<std::chrono::system_clock::time_point>
next_opening(std::span<const Window> windows, std::chrono::system_clock::time_point now);

// "Tue 06:00", in local time: when a window opens, for state info.
std::string local_weekday_time(std::chrono::system_clock::time_point when);

} // namespace gitopper
