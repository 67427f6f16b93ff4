#pragma once
// Where a git URL points, for what reaching it takes: ssh (ssh://, git+ssh://, scp-like
// user@host:path), https, or something else (file://, a local path, git://, http://).

#include <string>
#include <string_view>

namespace gitopper {

// Where an upstream URL points, for ssh (ssh://, git+ssh://, user@host:path) and https.
struct Endpoint {
    enum class Kind { other, ssh, https } kind = Kind::other;
    std::string user; // from the URL; may be empty
    std::string host;
    int port = 0; // 0: the scheme's default
    // The host's name in known_hosts: "host", or "[host]:port" for another port than 22.
    std::string known_hosts_name() const;
    std::string shown() const; // "host" or "host:port", for messages
};
Endpoint endpoint_of(std::string_view url);

} // namespace gitopper
