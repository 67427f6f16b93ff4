#pragma once
// gitopperhdr (SPEC §8): the two-line comment telling readers a file is managed by gitopper
// and where its source is.

#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gitopper {

// "git@host:a/b.git" -> "https://host/a/b"; ssh:// and https:// likewise, without ".git".
std::string web_url(std::string_view origin);

// The file's web address: GitHub uses /blob/<branch>/<path>, GitLab and Gitea /-/blob/….
std::string file_url(std::string_view origin, std::string_view branch, std::string_view path);

// The comment, in "en" or "nl", each line starting with `prefix`.
[[nodiscard]] Result<std::string> managed_header(std::string_view prefix, std::string_view language,
                                                 std::string_view url);

// Asks git (in the current directory) for origin, branch and the file's path in the repo.
[[nodiscard]] Result<std::string> header_for_file(const std::string& file, std::string_view prefix,
                                                  std::string_view language);

} // namespace gitopper
