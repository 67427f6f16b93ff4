#pragma once
// Listen addresses as the Go tool writes them (":2222", "127.0.0.1:0", "[::1]:9222"), and
// the client addresses both listeners count connections by.

#include <sys/socket.h>

#include <string>

#include "util/error.hpp"

namespace gitopper {

struct ListenAddress {
    std::string host; // "0.0.0.0" when the address gives none
    int port = 0;
};

[[nodiscard]] Result<ListenAddress> parse_listen_address(const std::string& address);

// A client's address as text, IPv4 also when mapped into IPv6 ("127.0.0.2", "2001:db8::1").
std::string peer_address(const sockaddr_storage& peer);

// Who a peer counts as: its IPv4 address ("127.0.0.2", also when mapped into IPv6) or its
// IPv6 /64 ("2001:db8:1:2::/64"), since one host commonly holds a whole /64. Empty when the
// address is neither.
std::string source_of(const sockaddr_storage& peer);

} // namespace gitopper
