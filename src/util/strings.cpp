#include "util/strings.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace gitopper {

std::vector<std::string> split(std::string_view text, char separator)
{
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        const auto end = text.find(separator, start);
        parts.emplace_back(text.substr(start, end - start));
        if (end == std::string_view::npos) {
            return parts;
        }
        start = end + 1;
    }
}

std::string join(std::span<const std::string> parts, std::string_view separator)
{
    std::string joined;
    for (const auto& part : parts) {
        if (!joined.empty()) {
            joined += separator;
        }
        joined += part;
    }
    return joined;
}

std::string_view trim(std::string_view text)
{
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
        }
    }
    return row[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates)
{
    // A typo is at most a third of the word wrong (at least one edit), like ninja's ChooseTool.
    const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
    std::optional<std::string> best;
    std::size_t best_distance = limit + 1;
    for (const auto candidate : candidates) {
        const auto distance = edit_distance(word, candidate);
        const bool contains = word.size() > 3 && candidate.size() > 3 &&
                              (word.find(candidate) != std::string_view::npos ||
                               candidate.find(word) != std::string_view::npos);
        const auto effective = contains ? std::min(distance, limit) : distance;
        if (effective < best_distance) {
            best_distance = effective;
            best = std::string(candidate);
        }
    }
    return best;
}

namespace {

// Appends c, escaped if it is a control character: one line, every byte visible.
void append_visible(std::string& out, char c)
{
    if (c == '\n') {
        out += "\\n";
    } else if (c == '\t') {
        out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
        out += c;
    }
}

} // namespace

std::string quote(std::string_view text)
{
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else {
            append_visible(out, c);
        }
    }
    return out + "\"";
}

std::string escape_controls(std::string_view text)
{
    std::string out;
    for (const char c : text) {
        append_visible(out, c);
    }
    return out;
}

} // namespace gitopper
