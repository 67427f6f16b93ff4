#include "util/duration.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>

#include "util/strings.hpp"

namespace gitopper {
namespace {

using namespace std::chrono_literals;

struct Unit {
    std::string_view name;
    Duration size;
};

// Longest names first so "ms" is not read as "m" followed by garbage.
constexpr std::array kUnits{
    Unit{"ns", 1ns}, Unit{"us", 1us}, Unit{"µs", 1us}, Unit{"ms", 1ms},
    Unit{"h", 1h},   Unit{"m", 1min}, Unit{"s", 1s},
};

struct Number {
    std::int64_t whole = 0;
    std::int64_t fraction = 0; // digits after the point
    std::int64_t scale = 1;    // 10^(number of fraction digits)
};

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

// Reads "12" or "1.5" from the front of text.
bool read_number(std::string_view& text, Number& number)
{
    std::size_t i = 0;
    bool any = false;
    for (; i < text.size() && is_digit(text[i]); ++i, any = true) {
        if (number.whole > (std::numeric_limits<std::int64_t>::max() - 9) / 10) {
            return false;
        }
        number.whole = number.whole * 10 + (text[i] - '0');
    }
    if (i < text.size() && text[i] == '.') {
        for (++i; i < text.size() && is_digit(text[i]); ++i, any = true) {
            if (number.scale < 1'000'000'000'000'000) { // digits beyond ns precision are dropped
                number.fraction = number.fraction * 10 + (text[i] - '0');
                number.scale *= 10;
            }
        }
    }
    text.remove_prefix(i);
    return any;
}

const Unit* read_unit(std::string_view& text)
{
    for (const auto& unit : kUnits) {
        if (text.starts_with(unit.name)) {
            text.remove_prefix(unit.name.size());
            return &unit;
        }
    }
    return nullptr;
}

} // namespace

[[nodiscard]] Result<Duration> parse_duration(std::string_view text)
{
    const std::string original(text);
    auto invalid = [&](std::string_view why) {
        return fail("invalid duration {}: {} (examples: 90s, 5m, 1h30m)", quote(original), why);
    };
    if (text.starts_with('+')) {
        text.remove_prefix(1);
    }
    if (text.starts_with('-')) {
        return invalid("must not be negative");
    }
    if (text == "0") {
        return Duration{0};
    }
    if (text.empty()) {
        return invalid("empty");
    }
    Duration total{0};
    while (!text.empty()) {
        Number number;
        if (!read_number(text, number)) {
            return invalid("expected a number");
        }
        const Unit* unit = read_unit(text);
        if (unit == nullptr) {
            return invalid("missing or unknown unit (use ns, us, ms, s, m or h)");
        }
        const auto per_unit = unit->size.count();
        if (number.whole > std::numeric_limits<std::int64_t>::max() / per_unit) {
            return invalid("too large");
        }
        const auto part = number.whole * per_unit + number.fraction * per_unit / number.scale;
        if (total.count() > std::numeric_limits<std::int64_t>::max() - part) {
            return invalid("too large");
        }
        total += Duration{part};
    }
    return total;
}

std::string format_duration(Duration duration)
{
    using std::chrono::duration_cast;
    if (duration == Duration{0}) {
        return "0s";
    }
    std::string out;
    if (duration < Duration{0}) {
        out = "-";
        duration = -duration;
    }
    if (duration < 1s) {
        constexpr std::array<std::pair<Duration, std::string_view>, 2> small{
            {{1ms, "ms"}, {1us, "us"}}};
        for (const auto& [size, name] : small) {
            if (duration >= size && duration % size == Duration{0}) {
                return out + std::to_string(duration / size) + std::string(name);
            }
        }
        return out + std::to_string(duration.count()) + "ns";
    }
    const auto hours = duration_cast<std::chrono::hours>(duration);
    const auto minutes = duration_cast<std::chrono::minutes>(duration - hours);
    const auto rest = duration - hours - minutes;
    if (hours.count() > 0) {
        out += std::to_string(hours.count()) + "h";
    }
    if (minutes.count() > 0) {
        out += std::to_string(minutes.count()) + "m";
    }
    if (rest > Duration{0}) {
        const auto millis = duration_cast<std::chrono::milliseconds>(rest).count();
        out += millis % 1000 == 0 ? std::to_string(millis / 1000)
                                  : fmt::format("{}.{:03}", millis / 1000, millis % 1000);
        out += "s";
    }
    return out;
}

} // namespace gitopper
