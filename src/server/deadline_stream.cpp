#include "server/deadline_stream.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace gitopper {
namespace {

using Getname = int (*)(int, sockaddr*, socklen_t*);

void ip_and_port(Getname getname, int socket, std::string& ip, int& port)
{
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    std::array<char, NI_MAXHOST> host{};
    std::array<char, NI_MAXSERV> service{};
    if (getname(socket, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
        ::getnameinfo(reinterpret_cast<sockaddr*>(&address), length, host.data(), host.size(),
                      service.data(), service.size(), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        ip = host.data();
        port = std::atoi(service.data());
    }
}

bool again(ssize_t n)
{
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

} // namespace

DeadlineStream::DeadlineStream(int socket, int stop, Limits limits)
    : m_socket(socket), m_stop(stop), m_limits(limits), m_budget(limits.budget)
{
}

// Waits until the socket is ready for `events` (or has failed: the next call reports it).
DeadlineStream::Wait DeadlineStream::wait(short events, Clock::time_point until) const
{
    for (;;) {
        const auto now = Clock::now();
        if (now >= until) {
            return Wait::timeout;
        }
        // Rounded up, so that a wait never ends a little before the deadline and spins.
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now);
        std::array<pollfd, 2> fds{{{m_socket, events, 0}, {m_stop, POLLIN, 0}}};
        const int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
        if (n < 0 && errno != EINTR) {
            return Wait::stopped; // poll itself failed: give up rather than spin
        }
        if (fds[1].revents != 0) {
            return Wait::stopped;
        }
        if (fds[0].revents != 0) {
            return Wait::ready;
        }
    }
}

bool DeadlineStream::is_readable() const
{
    return m_begin < m_end || wait(POLLIN, m_limits.read_by) == Wait::ready;
}

bool DeadlineStream::is_writable() const
{
    return wait(POLLOUT, m_limits.write_by) == Wait::ready;
}

// Refills the buffer with what the socket has, once it has something, within the budget.
// Returns what recv does: bytes, 0 when the client has closed, -1 on failure or a cut off.
ssize_t DeadlineStream::fill()
{
    if (m_budget == 0) {
        m_cut_off = true;
        return -1;
    }
    for (;;) {
        if (wait(POLLIN, m_limits.read_by) != Wait::ready) {
            m_cut_off = true;
            return -1;
        }
        // Non-blocking: poll said "readable", but only a recv that cannot block keeps the
        // deadline exact.
        const auto n =
            ::recv(m_socket, m_buffer.data(), std::min(m_buffer.size(), m_budget), MSG_DONTWAIT);
        if (n > 0) {
            m_begin = 0;
            m_end = static_cast<std::size_t>(n);
            m_budget -= m_end;
        }
        if (!again(n)) {
            return n;
        }
    }
}

ssize_t DeadlineStream::read(char* ptr, size_t size)
{
    if (m_begin == m_end) {
        if (const auto n = fill(); n <= 0) {
            return n; // httplib reads a body without a length until this 0
        }
    }
    const auto n = std::min(size, m_end - m_begin);
    std::memcpy(ptr, m_buffer.data() + m_begin, n);
    m_begin += n;
    return static_cast<ssize_t>(n);
}

ssize_t DeadlineStream::write(const char* ptr, size_t size)
{
    for (;;) {
        if (wait(POLLOUT, m_limits.write_by) != Wait::ready) {
            m_cut_off = true;
            return -1;
        }
        // MSG_NOSIGNAL: a client that went away is an error here, not a SIGPIPE.
        const auto n = ::send(m_socket, ptr, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (!again(n)) {
            return n; // httplib writes the rest of a partial send itself
        }
    }
}

void DeadlineStream::get_remote_ip_and_port(std::string& ip, int& port) const
{
    ip_and_port(::getpeername, m_socket, ip, port);
}

void DeadlineStream::get_local_ip_and_port(std::string& ip, int& port) const
{
    ip_and_port(::getsockname, m_socket, ip, port);
}

void DeadlineStream::linger(Clock::time_point until)
{
    ::shutdown(m_socket, SHUT_WR);
    while (wait(POLLIN, until) == Wait::ready) {
        const auto n = ::recv(m_socket, m_buffer.data(), m_buffer.size(), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && !again(n))) {
            return;
        }
    }
}

} // namespace gitopper
