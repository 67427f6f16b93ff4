#pragma once
// Commands from the config file (`check`, `health`, `exec`): an argv, written as a TOML array of
// strings or as one string split into words as a POSIX shell would split it (quotes,
// backslashes), with no expansion at all. No shell ever runs them, so what a shell would
// expand (variables, globs, pipes, redirections, `~`, comments) is refused when unquoted
// rather than passed on as text that looks like it works; quoted, it is plain text.
// Placeholders `{dir}`, `{commit}` and `{service}` are replaced inside words when it runs.

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.hpp"

namespace gitopper {

// The words of `text`; an error names what is wrong and where (1-based column).
[[nodiscard]] Result<std::vector<std::string>> split_command(std::string_view text);

// Checks the placeholders of every word: a `{name}` that is not one of `known` is an error
// ("unknown placeholder {comit} (did you mean {commit}?)").
[[nodiscard]] Result<> check_placeholders(std::span<const std::string> argv,
                                          std::span<const std::string_view> known);

// Every `{name}` of `values` replaced by its value, inside any word.
std::vector<std::string>
fill_placeholders(std::vector<std::string> argv,
                  std::span<const std::pair<std::string_view, std::string>> values);

} // namespace gitopper
