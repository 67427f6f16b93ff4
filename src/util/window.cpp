#include "util/window.hpp"

#include <array>
#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace gitopper {
namespace {

constexpr std::array<std::string_view, 7> kDays{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr int kDay = 24 * 60;

std::optional<int> day_number(std::string_view name)
{
    const auto lower = to_lower(name);
    for (std::size_t i = 0; i < kDays.size(); ++i) {
        if (lower == kDays[i]) {
            return static_cast<int>(i);
        }
    }
    return std::nullopt;
}

// "Mon-Fri", "Sat,Sun", "Mon-Wed,Fri", "daily": the days as bits.
std::optional<std::uint8_t> parse_days(std::string_view text)
{
    if (equal_nocase(text, "daily")) {
        return 0x7f;
    }
    std::uint8_t days = 0;
    for (const auto& item : split(text, ',')) {
        const auto dash = item.find('-');
        const auto first = day_number(item.substr(0, dash));
        const auto last =
            dash == std::string_view::npos ? first : day_number(item.substr(dash + 1));
        if (!first || !last) {
            return std::nullopt;
        }
        for (int day = *first;; day = (day + 1) % 7) {
            days |= static_cast<std::uint8_t>(1U << day);
            if (day == *last) {
                break;
            }
        }
    }
    return days;
}

// "06:00" as minutes after midnight; "24:00" only where `midnight_ok`.
std::optional<int> parse_time(std::string_view text, bool midnight_ok)
{
    int hours = 0;
    int minutes = 0;
    if (text.size() != 5 || text[2] != ':' ||
        std::from_chars(text.data(), text.data() + 2, hours).ptr != text.data() + 2 ||
        std::from_chars(text.data() + 3, text.data() + 5, minutes).ptr != text.data() + 5) {
        return std::nullopt;
    }
    if (hours == 24 && minutes == 0 && midnight_ok) {
        return kDay;
    }
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
        return std::nullopt;
    }
    return hours * 60 + minutes;
}

std::tm local(std::chrono::system_clock::time_point when)
{
    const auto time = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    ::localtime_r(&time, &tm);
    return tm;
}

bool opens_on(const Window& window, int day)
{
    return (window.days & (1U << ((day + 7) % 7))) != 0;
}

} // namespace

Result<Window> parse_window(std::string_view text)
{
    const auto usage = [&] {
        return fail("window {} is not \"DAYS HH:MM-HH:MM\" (such as \"Mon-Fri 06:00-18:00\", "
                    "\"Sat,Sun 10:00-12:00\" or \"daily 03:00-04:00\")",
                    quote(text));
    };
    const auto words = split_blanks(text);
    if (words.empty() || words.size() > 2) {
        return usage();
    }
    Window window{.days = 0x7f};
    if (words.size() == 2) {
        const auto days = parse_days(words[0]);
        if (!days) {
            return fail("window {}: {} is not a day (Mon, Tue, …, Sun), a range (Mon-Fri) or a "
                        "list of them (Sat,Sun)",
                        quote(text), quote(words[0]));
        }
        window.days = *days;
    }
    const auto span = words.back();
    const auto dash = span.find('-');
    const auto start = parse_time(span.substr(0, dash), false);
    const auto end =
        dash == std::string_view::npos ? std::nullopt : parse_time(span.substr(dash + 1), true);
    if (!start || !end) {
        return usage();
    }
    if (*start == *end) {
        return fail("window {} opens and closes at the same time", quote(text));
    }
    window.start = *start;
    window.end = *end;
    return window;
}

bool inside(std::span<const Window> windows, std::chrono::system_clock::time_point when)
{
    const auto tm = local(when);
    const int minute = tm.tm_hour * 60 + tm.tm_min;
    for (const auto& window : windows) {
        if (window.start < window.end) {
            if (opens_on(window, tm.tm_wday) && minute >= window.start && minute < window.end) {
                return true;
            }
        } else if ((opens_on(window, tm.tm_wday) && minute >= window.start) ||
                   (opens_on(window, tm.tm_wday - 1) && minute < window.end)) {
            return true; // past midnight: opened the day before
        }
    }
    return false;
}

std::optional<std::chrono::system_clock::time_point>
next_opening(std::span<const Window> windows, std::chrono::system_clock::time_point now)
{
    if (windows.empty()) {
        return std::nullopt;
    }
    if (inside(windows, now)) {
        return now;
    }
    // Minute by minute on the real clock: a DST change moves the local clock under it. A
    // window that opens in a skipped hour opens when the clock comes out of the gap, if it
    // reaches past it; one wholly inside the skipped hour does not open that day.
    using std::chrono::minutes;
    std::chrono::system_clock::time_point at = std::chrono::ceil<minutes>(now);
    const auto last = now + std::chrono::hours(24 * 8);
    for (; at <= last; at += minutes(1)) {
        if (inside(windows, at)) {
            // Local minutes need not start on UTC's (an offset with seconds): to the second.
            std::chrono::system_clock::time_point first =
                std::max<std::chrono::system_clock::time_point>(at - minutes(1), now);
            while (first < at && !inside(windows, first)) {
                first += std::chrono::seconds(1);
            }
            return std::min(first, at);
        }
    }
    return std::nullopt;
}

std::string local_weekday_time(std::chrono::system_clock::time_point when)
{
    const auto tm = local(when);
    return fmt::format("{} {:02}:{:02}",
                       std::array{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                  "Sat"}[static_cast<std::size_t>(tm.tm_wday)],
                       tm.tm_hour, tm.tm_min);
}

} // namespace gitopper
