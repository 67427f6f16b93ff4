#pragma once
// The public keys allowed on the control API, read from the config's `keys` files
// (authorized_keys format: one key per line, options before the key type tolerated).

#include <libssh/libssh.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/error.hpp"

namespace gitopper {

struct AuthorizedKey {
    std::shared_ptr<ssh_key_struct> key;
    bool read_only = false;
    std::string path; // the file it came from, for logs
};

// Relative paths are relative to the config file's directory. A missing or unreadable file,
// or a line that is not a key, is an error naming file and line.
Result<std::vector<AuthorizedKey>> load_authorized_keys(const Config& config);

// Parses one authorized_keys line; an empty result for blank and comment lines.
Result<std::shared_ptr<ssh_key_struct>> parse_authorized_key(std::string_view line);

} // namespace gitopper
