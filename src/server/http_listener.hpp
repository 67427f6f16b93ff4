#pragma once
// The HTTP endpoint's httplib::Server with connection handling of our own in place of
// httplib's (a fixed pool of workers, a timeout per recv, keep-alive), which a handful of
// slow or idle clients could occupy for ever. Threads: httplib's listener thread accepts,
// admits each connection against ConnectionLimits (per source and in total; over them it is
// answered 503 and closed at once) and starts a thread for it; that thread owns the socket,
// serves one request through a DeadlineStream and closes. shutdown ends them all at once.

#include <chrono>
#include <cstddef>

#include <httplib.h>

#include "server/admission.hpp"
#include "server/deadline_stream.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/wake.hpp"

namespace gitopper {

struct ConnectionLimits {
    std::size_t connections = 0;        // open at once, each on a thread of its own
    std::size_t per_source = 0;         // open at once from one source (see source_of)
    std::chrono::milliseconds read{};   // for the whole request, from accept
    std::chrono::milliseconds write{};  // for the answer too, from accept
    std::chrono::milliseconds linger{}; // after the answer, for the client to close first
    std::size_t header_bytes = 0;       // the request line and headers
    std::size_t body_bytes = 0;         // the body as sent, chunk framing included
};

class HttpListener final : public httplib::Server {
public:
    explicit HttpListener(const ConnectionLimits& limits);
    ~HttpListener() override;
    HttpListener(const HttpListener&) = delete;
    HttpListener& operator=(const HttpListener&) = delete;

    // After bind_to_port or bind_to_any_port: httplib listens with a backlog of 5, too
    // short for a burst of clients, whose connects would then wait for a SYN retry.
    void widen_backlog();

private:
    using Clock = DeadlineStream::Clock;
    class Queue;

    bool process_and_close_socket(socket_t sock) override;
    void serve(Fd socket, Clock::time_point accepted);
    void refuse(Fd socket, const Error& why);
    void end_connections();

    const ConnectionLimits m_limits;
    Admission m_admission;
    Wake m_stop; // signalled once the server stops: ends every connection's wait
    // Refusals are logged at most once per interval (listener thread only).
    Clock::time_point m_refusal_logged{};
    std::size_t m_refusals_unlogged = 0;
};

} // namespace gitopper
