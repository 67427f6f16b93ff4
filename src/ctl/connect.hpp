#pragma once
// The TCP connection under a session. gitopperctl opens it itself rather than letting libssh
// do it: libssh reports an unreachable network as "socket error: disconnected", while a person
// needs "network is unreachable" or "connection refused".

#include <chrono>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper::ctl {

// A connected, blocking socket with TCP_NODELAY set (a request is a few small packets that
// must not wait for each other). Tries every address of `host` until one answers or `timeout`
// has passed; the error is the first address's, lowercase ("connection refused").
[[nodiscard]] Result<Fd> connect_tcp(const std::string& host, int port,
                                     std::chrono::milliseconds timeout);

} // namespace gitopper::ctl
