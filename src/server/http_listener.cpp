#include "server/http_listener.hpp"

#include <sys/socket.h>

#include <cstdint>
#include <exception>
#include <string_view>
#include <system_error>
#include <thread>

#include "util/last_resort.hpp"
#include "util/log.hpp"

namespace gitopper {
namespace {

using namespace std::chrono_literals;

constexpr int kBacklog = 128;
constexpr auto kRefusalLogInterval = 10s; // under attack, one line per interval, not per connect
constexpr std::string_view kBusy = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                                   "Content-Length: 0\r\n\r\n";

[[nodiscard]] Result<std::string> peer_source(int socket)
{
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(socket, reinterpret_cast<sockaddr*>(&peer), &length) != 0) {
        return fail("the client is gone");
    }
    return source_of(peer);
}

} // namespace

// httplib hands each accepted socket to a task queue. Ours runs the hand-off at once on the
// listener thread: process_and_close_socket only admits the connection and starts its
// thread, so a refused connection costs no thread and the listener never waits for a worker.
class HttpListener::Queue final : public httplib::TaskQueue {
public:
    explicit Queue(HttpListener& listener) : m_listener(listener) {}
    void enqueue(std::function<void()> fn) override { fn(); }
    void shutdown() override { m_listener.end_connections(); }

private:
    HttpListener& m_listener;
};

HttpListener::HttpListener(const ConnectionLimits& limits)
    : m_limits(limits), m_admission(limits.per_source, limits.connections)
{
    new_task_queue = [this] { return new Queue(*this); };
}

HttpListener::~HttpListener()
{
    end_connections(); // in case the listener never ran its queue's shutdown
}

void HttpListener::widen_backlog()
{
    // listen() on a listening socket changes only its backlog.
    ::listen(svr_sock_, kBacklog);
}

bool HttpListener::process_and_close_socket(socket_t sock)
{
    const auto accepted = Clock::now();
    Fd socket(sock);
    auto source = peer_source(socket.get());
    if (!source) {
        return false;
    }
    auto ticket = m_admission.admit(*source);
    if (!ticket) {
        refuse(std::move(socket), ticket.error());
        return false;
    }
    try {
        // The thread owns the socket and the slot; both go when it ends, the socket first.
        std::thread([this, accepted, socket = std::move(socket),
                     ticket = std::move(*ticket)]() mutable {
            if (auto what = escaped_exception([&] { serve(std::move(socket), accepted); })) {
                log::warn("http: a connection failed: {}", *what);
            }
        }).detach();
    } catch (const std::system_error& e) {
        log::warn("http: cannot start a thread for a connection: {}", e.what());
        return false;
    }
    return true;
}

void HttpListener::serve(Fd socket, Clock::time_point accepted)
{
    DeadlineStream stream(
        socket.get(), m_stop.fd(),
        {accepted + m_limits.read, accepted + m_limits.write, m_limits.header_bytes});
    try {
        bool closed = false;
        // One request per connection: with keep-alive an idle client would keep its slot.
        // The callback runs once the headers are in; only then may a body come.
        process_request(stream, /*close_connection=*/true, closed,
                        [&](httplib::Request&) { stream.allow(m_limits.body_bytes); });
    } catch (const std::exception& e) {
        log::warn("http: a request failed: {}", e.what());
        return;
    }
    if (stream.cut_off()) {
        log::debug("http: cut off a connection at its deadline or size limit");
        return; // no courtesy for a client that would not keep to the limits
    }
    stream.linger(Clock::now() + m_limits.linger);
}

void HttpListener::refuse(Fd socket, const Error& why)
{
    // Best effort and never blocking: a scraper behind the same address learns why.
    [[maybe_unused]] auto sent =
        ::send(socket.get(), kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    const auto now = Clock::now();
    if (now - m_refusal_logged < kRefusalLogInterval) {
        ++m_refusals_unlogged;
        return;
    }
    const auto more = m_refusals_unlogged == 0
                          ? std::string()
                          : fmt::format(" ({} more since the last such line)", m_refusals_unlogged);
    log::warn("http: refused a connection: {}{}", why.message, more);
    m_refusal_logged = now;
    m_refusals_unlogged = 0;
}

void HttpListener::end_connections()
{
    m_stop.signal();
    m_admission.wait_until_idle();
}

} // namespace gitopper
