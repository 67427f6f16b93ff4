#pragma once
// Where a git URL points, for what reaching it takes: ssh (ssh://, git+ssh://, scp-like
// user@host:path), https, or something else (file://, a local path, git://, http://).

#include <string>
#include <string_view>

#include "util/error.hpp"

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

// An http:// or https:// URL that gitopper sends to (notifications): no user or password in
// it (a secret belongs in a file), no fragment, no space or control character.
struct HttpUrl {
    bool tls = false;
    std::string host;   // a name, an IPv4 address, or an IPv6 address without its brackets
    int port = 0;       // the scheme's default when the URL has none
    std::string target; // "/path?query"; "/" when the URL has no path
    // "https://host" or "http://host:8080": without the path and query, which may be a
    // secret (a Slack webhook's is).
    std::string origin() const;
    // localhost, 127.0.0.0/8 or ::1: where plain http:// leaks nothing to the network.
    bool loopback() const;
};
// Errors say what is wrong without quoting the URL, whose path may be a secret.
[[nodiscard]] Result<HttpUrl> parse_http_url(std::string_view url);

} // namespace gitopper
