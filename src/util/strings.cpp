#include "util/strings.hpp"

#include <algorithm>
#include <array>
#include <cstring>
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

std::vector<std::string_view> split_blanks(std::string_view text)
{
    std::vector<std::string_view> words;
    for (auto at = text.find_first_not_of(" \t"); at != std::string_view::npos;
         at = text.find_first_not_of(" \t", at)) {
        const auto end = std::min(text.find_first_of(" \t", at), text.size());
        words.push_back(text.substr(at, end - at));
        at = end;
    }
    return words;
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

std::optional<std::uint64_t> parse_size(std::string_view text)
{
    static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 10> kUnits{{
        {"", 1},
        {"K", 1ULL << 10},
        {"KiB", 1ULL << 10},
        {"M", 1ULL << 20},
        {"MiB", 1ULL << 20},
        {"G", 1ULL << 30},
        {"GiB", 1ULL << 30},
        {"KB", 1000},
        {"MB", 1000 * 1000},
        {"GB", 1000 * 1000 * 1000},
    }};
    const auto digits = text.find_first_not_of("0123456789");
    const auto number = text.substr(0, digits);
    const auto unit = digits == std::string_view::npos ? std::string_view{} : text.substr(digits);
    if (number.empty() || number.size() > 12) {
        return std::nullopt;
    }
    for (const auto& [name, factor] : kUnits) {
        if (name == unit) {
            return std::stoull(std::string(number)) * factor;
        }
    }
    return std::nullopt;
}

std::string redact_credentials(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    std::size_t at = 0;
    while (true) {
        const auto scheme = text.find("://", at);
        if (scheme == std::string_view::npos) {
            break;
        }
        const auto start = scheme + 3;
        // The authority ends at the first '/', blank, quote or control character.
        auto end = start;
        while (end < text.size() && text[end] != '/' && text[end] != '"' && text[end] != '\'' &&
               static_cast<unsigned char>(text[end]) > ' ') {
            ++end;
        }
        const auto authority = text.substr(start, end - start);
        const auto userinfo = authority.rfind('@');
        const auto colon = authority.find(':');
        out.append(text.substr(at, start - at));
        const auto scheme_name = text.substr(0, scheme);
        const bool login = scheme_name.ends_with("ssh") || scheme_name.ends_with("ssh+git");
        if (userinfo != std::string_view::npos && colon != std::string_view::npos &&
            colon < userinfo) {
            out.append(authority.substr(0, colon + 1)).append("***");
            out.append(authority.substr(userinfo));
        } else if (userinfo != std::string_view::npos && !login) {
            out.append("***").append(authority.substr(userinfo)); // a token as the user name
        } else {
            out.append(authority);
        }
        at = end;
    }
    out.append(text.substr(at));
    return out;
}

std::string errno_message(int error)
{
    std::array<char, 128> buffer{};
    return ::strerror_r(error, buffer.data(), buffer.size()); // the GNU one: it returns the text
}

std::uint64_t fnv1a(std::string_view text)
{
    std::uint64_t hash = 0xcbf29ce484222325;
    for (const char c : text) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3;
    }
    return hash;
}

namespace {

char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

std::string to_lower(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

bool equal_nocase(std::string_view a, std::string_view b)
{
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::string short_hash(const std::string& hash)
{
    return hash.substr(0, 8);
}

bool is_commit_hash(std::string_view text)
{
    return text.size() >= 4 && text.size() <= 40 &&
           std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
}

std::string normalize_repository_url(std::string_view url)
{
    std::string_view rest = trim(url);
    std::string_view authority;
    std::string_view path;
    const auto scheme = rest.find("://");
    const auto colon = rest.find(':');
    if (scheme != std::string_view::npos) {
        rest.remove_prefix(scheme + 3);
        const auto slash = rest.find('/');
        authority = rest.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
        if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
            authority.remove_prefix(at + 1); // nor are user and password
        }
        authority = authority.substr(0, authority.find(':')); // the port is not the repository
    } else if (colon != std::string_view::npos && colon < rest.find('/')) {
        authority = rest.substr(0, colon); // scp-like user@host:path
        path = rest.substr(colon + 1);
    } else {
        const auto slash = rest.find('/');
        authority = rest.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    }
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1); // the user is not the repository
    }
    const auto host = to_lower(authority);
    std::string tail(path);
    while (!tail.empty() && tail.front() == '/') {
        tail.erase(0, 1);
    }
    while (!tail.empty() && tail.back() == '/') {
        tail.pop_back();
    }
    if (tail.ends_with(".git")) {
        tail.resize(tail.size() - 4);
    }
    return tail.empty() ? host : host + "/" + tail;
}

std::string repository_path(std::string_view url)
{
    const auto normal = normalize_repository_url(url);
    const auto slash = normal.find('/');
    return slash == std::string::npos ? std::string() : normal.substr(slash + 1);
}

} // namespace gitopper
