// Prometheus label escaping on arbitrary values. The sample MetricsText writes must read back
// the way Prometheus' text parser reads it: one line, the value between the quotes ends at
// the first unescaped quote, only \\, \" and \n are escapes, and unescaping gives back
// exactly the value we started from. Valid UTF-8 stays valid UTF-8.

#include <optional>
#include <string>

#include "check.hpp"
#include "util/prometheus.hpp"

using namespace gitopper;
using fuzz::check;

namespace {

// Reads a quoted label value as Prometheus does; returns it and what follows the closing quote.
std::optional<std::pair<std::string, std::string_view>> read_quoted(std::string_view text)
{
    std::string value;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '"') {
            return std::pair{value, text.substr(i + 1)};
        }
        if (c == '\n') {
            return std::nullopt;
        }
        if (c != '\\') {
            value += c;
            continue;
        }
        if (++i == text.size()) {
            return std::nullopt;
        }
        switch (text[i]) {
        case '\\':
        case '"':
            value += text[i];
            break;
        case 'n':
            value += '\n';
            break;
        default:
            return std::nullopt; // Prometheus: "invalid escape sequence"
        }
    }
    return std::nullopt;
}

// Enough of UTF-8 to tell well-formed text (no overlongs, surrogates or values past U+10FFFF).
bool valid_utf8(std::string_view text)
{
    for (std::size_t i = 0; i < text.size();) {
        const auto byte = static_cast<unsigned char>(text[i]);
        const std::size_t length = byte < 0x80                   ? 1
                                   : byte >= 0xc2 && byte < 0xe0 ? 2
                                   : byte >= 0xe0 && byte < 0xf0 ? 3
                                   : byte >= 0xf0 && byte < 0xf5 ? 4
                                                                 : 0;
        if (length == 0 || i + length > text.size()) {
            return false;
        }
        char32_t code = length == 1 ? byte : byte & (0x7f >> length);
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xc0) != 0x80) {
                return false;
            }
            code = (code << 6) | (next & 0x3f);
        }
        constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < kSmallest[length] || code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) {
            return false;
        }
        i += length;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const auto value = fuzz::text_of(data, size);
    const auto escaped = escape_label_value(value);
    check(escaped.find('\n') == std::string::npos, "an escaped value has no raw newline");
    check(!valid_utf8(value) || valid_utf8(escaped), "valid UTF-8 stays valid");

    MetricsText out;
    out.sample("x_total", {{"service", std::string(value)}, {"code", "0"}}, 1);
    std::string_view line = out.text();
    check(line.ends_with('\n') && line.find('\n') == line.size() - 1, "a sample is one line");
    constexpr std::string_view kStart = "x_total{service=\"";
    check(line.starts_with(kStart), "the sample starts with its name and first label");
    const auto read = read_quoted(line.substr(kStart.size()));
    check(read.has_value(), "the value reads back");
    check(read->first == value, "unescaping gives back the value");
    check(read->second == ",code=\"0\"} 1\n", "the next label follows the value");
    return 0;
}
