#pragma once
// Listen addresses as the Go tool writes them: ":2222", "127.0.0.1:0", "[::1]:9222".

#include <string>

#include "util/error.hpp"

namespace gitopper {

struct ListenAddress {
    std::string host; // "0.0.0.0" when the address gives none
    int port = 0;
};

Result<ListenAddress> parse_listen_address(const std::string& address);

} // namespace gitopper
