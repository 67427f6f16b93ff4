#pragma once
// Reading the known-hosts file well enough to tell a person which line to remove when a
// daemon's host key changed. libssh does the checking and writing; it does not say where.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gitopper::ctl {

// How OpenSSH and libssh name a host in known_hosts: "web1" on port 22, else "[web1]:2222".
std::string known_hosts_name(std::string_view host, int port);

// The 1-based numbers of the lines in `text` that list `name` in plain text (hashed names
// cannot be matched without the salt's HMAC) and, unless `key_type` is empty, hold a key of
// that type ("ssh-ed25519").
std::vector<std::size_t> known_hosts_lines(std::string_view text, std::string_view name,
                                           std::string_view key_type);

} // namespace gitopper::ctl
