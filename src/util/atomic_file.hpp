#pragma once
// Files that never tear: write to a temp file in the same directory, fsync, rename over the
// target, fsync the directory. A crash leaves either the old or the new content.

#include <sys/types.h>

#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gitopper {

Result<> write_file_atomic(const std::string& path, std::string_view content, mode_t mode = 0644);

Result<std::string> read_file(const std::string& path);

} // namespace gitopper
