#include "util/command_line.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace gitopper {
namespace {

bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

// What a shell would do with an unquoted character that is not plain text; nullptr: nothing.
const char* unquoted_meaning(char c, bool word_start)
{
    switch (c) {
    case '|':
        return "a pipe";
    case '&':
    case ';':
    case '\n':
        return "a command list";
    case '<':
    case '>':
        return "a redirection";
    case '(':
    case ')':
    case '`':
        return "a subshell";
    case '$':
        return "an expansion";
    case '*':
    case '?':
    case '[':
        return "a glob";
    case '#':
        return word_start ? "a comment" : nullptr;
    case '~':
        return word_start ? "a home directory" : nullptr;
    default:
        return nullptr;
    }
}

// "NAME=value" before the command is an environment assignment to a shell.
bool is_assignment(std::string_view word)
{
    const auto equals = word.find('=');
    if (equals == std::string_view::npos || equals == 0) {
        return false;
    }
    return std::all_of(word.begin(), word.begin() + static_cast<std::ptrdiff_t>(equals),
                       [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                  (c >= '0' && c <= '9') || c == '_';
                       });
}

// Splits words: one pass, a state per kind of quoting.
class Splitter {
public:
    explicit Splitter(std::string_view text) : m_text(text) {}

    Result<std::vector<std::string>> run()
    {
        while (m_at < m_text.size()) {
            if (auto r = step(); !r) {
                return std::unexpected(r.error());
            }
        }
        end_word();
        if (m_words.empty()) {
            return fail("the command is empty");
        }
        if (is_assignment(m_words.front())) {
            return fail("{} would set a variable in a shell; commands run without one",
                        quote(m_words.front()));
        }
        return std::move(m_words);
    }

private:
    Result<> step()
    {
        const char c = m_text[m_at];
        if (is_blank(c)) {
            end_word();
            ++m_at;
            return {};
        }
        if (c == '\'') {
            return single_quoted();
        }
        if (c == '"') {
            return double_quoted();
        }
        if (c == '\\') {
            return escaped();
        }
        if (const char* meaning = unquoted_meaning(c, !m_word)) {
            return fail("column {}: {} would be {} in a shell; commands run without one: quote "
                        "it, or write the command as an array",
                        m_at + 1, quote(std::string_view(&c, 1)), meaning);
        }
        word() += c;
        ++m_at;
        return {};
    }

    Result<> single_quoted()
    {
        const auto end = m_text.find('\'', m_at + 1);
        if (end == std::string_view::npos) {
            return fail("column {}: unterminated single quote", m_at + 1);
        }
        word() += m_text.substr(m_at + 1, end - m_at - 1);
        m_at = end + 1;
        return {};
    }

    // Inside double quotes a backslash escapes only $ ` " \ and newline, and $ and ` would
    // expand: refused, as unquoted.
    Result<> double_quoted()
    {
        const auto open = m_at++;
        auto& text = word();
        while (m_at < m_text.size() && m_text[m_at] != '"') {
            const char c = m_text[m_at];
            if (c == '$' || c == '`') {
                return fail("column {}: {} would be an expansion in a shell, even in double "
                            "quotes; use single quotes",
                            m_at + 1, quote(std::string_view(&c, 1)));
            }
            if (c == '\\' && m_at + 1 < m_text.size() &&
                std::string_view("$`\"\\\n").find(m_text[m_at + 1]) != std::string_view::npos) {
                if (m_text[m_at + 1] != '\n') {
                    text += m_text[m_at + 1];
                }
                m_at += 2;
                continue;
            }
            text += c;
            ++m_at;
        }
        if (m_at >= m_text.size()) {
            return fail("column {}: unterminated double quote", open + 1);
        }
        ++m_at;
        return {};
    }

    Result<> escaped()
    {
        if (m_at + 1 >= m_text.size()) {
            return fail("column {}: a backslash at the end escapes nothing", m_at + 1);
        }
        if (m_text[m_at + 1] != '\n') { // backslash-newline joins lines
            word() += m_text[m_at + 1];
        }
        m_at += 2;
        return {};
    }

    std::string& word()
    {
        if (!m_word) {
            m_word.emplace();
        }
        return *m_word;
    }

    void end_word()
    {
        if (m_word) {
            m_words.push_back(std::move(*m_word));
            m_word.reset();
        }
    }

    std::string_view m_text;
    std::size_t m_at = 0;
    std::optional<std::string> m_word; // set once a word has begun, even an empty one ('')
    std::vector<std::string> m_words;
};

bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

} // namespace

Result<std::vector<std::string>> split_command(std::string_view text)
{
    return Splitter(text).run();
}

Result<> check_placeholders(std::span<const std::string> argv,
                            std::span<const std::string_view> known)
{
    for (const auto& word : argv) {
        for (auto open = word.find('{'); open != std::string::npos;
             open = word.find('{', open + 1)) {
            auto close = open + 1;
            while (close < word.size() && is_name_char(word[close])) {
                ++close;
            }
            if (close == open + 1 || close >= word.size() || word[close] != '}') {
                continue; // not a placeholder: braces are plain text
            }
            const auto name = std::string_view(word).substr(open + 1, close - open - 1);
            if (std::find(known.begin(), known.end(), name) != known.end()) {
                continue;
            }
            std::string what = fmt::format("unknown placeholder {{{}}}", name);
            if (auto guess = closest_match(name, known)) {
                what += fmt::format(" (did you mean {{{}}}?)", *guess);
            }
            return fail("{}", what);
        }
    }
    return {};
}

// One pass left to right, so a value that holds "{commit}" (a directory name) stays as it is.
std::vector<std::string>
fill_placeholders(std::vector<std::string> argv,
                  std::span<const std::pair<std::string_view, std::string>> values)
{
    for (auto& word : argv) {
        std::string out;
        for (std::size_t at = 0; at < word.size();) {
            const auto rest = std::string_view(word).substr(at);
            const auto found = std::find_if(values.begin(), values.end(), [&](const auto& value) {
                return rest.starts_with('{') && rest.substr(1).starts_with(value.first) &&
                       rest.substr(1 + value.first.size()).starts_with('}');
            });
            if (found == values.end()) {
                out += word[at++];
                continue;
            }
            out += found->second;
            at += found->first.size() + 2;
        }
        word = std::move(out);
    }
    return argv;
}

} // namespace gitopper
