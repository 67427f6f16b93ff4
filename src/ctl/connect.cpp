#include "ctl/connect.hpp"
#include "util/strings.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "ctl/messages.hpp"

namespace gitopper::ctl {
namespace {

using Clock = std::chrono::steady_clock;

struct AddrinfoFree {
    void operator()(addrinfo* list) const { freeaddrinfo(list); }
};
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoFree>;

[[nodiscard]] Result<AddrinfoPtr> resolve(const std::string& host, int port)
{
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const auto service = std::to_string(port);
    const int error = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    if (error == EAI_NONAME || error == EAI_NODATA) {
        return fail("unknown host name");
    }
    if (error != 0) {
        return fail("cannot resolve the host name: {}", lowercase_first(gai_strerror(error)));
    }
    return AddrinfoPtr(list);
}

// Waits for a non-blocking connect() to finish; returns 0 or the errno it ended with.
int finish_connect(int fd, Clock::time_point deadline)
{
    pollfd p{fd, POLLOUT, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int ready = 0;
    do {
        ready = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    } while (ready < 0 && errno == EINTR);
    if (ready <= 0) {
        return ready == 0 ? ETIMEDOUT : errno;
    }
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    return error;
}

// One address: a connected blocking socket, or the errno of the failure.
std::expected<Fd, int> connect_one(const addrinfo& address, Clock::time_point deadline)
{
    Fd fd(::socket(address.ai_family, address.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                   address.ai_protocol));
    if (!fd) {
        return std::unexpected(errno);
    }
    if (::connect(fd.get(), address.ai_addr, address.ai_addrlen) != 0) {
        const int error = errno == EINPROGRESS ? finish_connect(fd.get(), deadline) : errno;
        if (error != 0) {
            return std::unexpected(error);
        }
    }
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK); // libssh expects blocking
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

} // namespace

[[nodiscard]] Result<Fd> connect_tcp(const std::string& host, int port,
                                     std::chrono::milliseconds timeout)
{
    auto addresses = resolve(host, port);
    if (!addresses) {
        return std::unexpected(addresses.error());
    }
    const auto deadline = Clock::now() + timeout;
    std::optional<int> first_error;
    for (const addrinfo* a = addresses->get(); a != nullptr; a = a->ai_next) {
        auto fd = connect_one(*a, deadline);
        if (fd) {
            return std::move(*fd);
        }
        first_error = first_error.value_or(fd.error());
        if (Clock::now() >= deadline) {
            break;
        }
    }
    if (first_error == ETIMEDOUT) {
        return fail("no answer within {} s",
                    std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
    }
    return fail("{}", lowercase_first(errno_message(first_error.value_or(EHOSTUNREACH))));
}

} // namespace gitopper::ctl
