#include "util/wake.hpp"

#include <sys/eventfd.h>

#include <cstdint>

namespace gitopper {

Wake::Wake() : m_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

// Neither call can fail in a way worth reporting: the counter cannot overflow from our few
// signals, and a drain of a counter already drained finds nothing (EAGAIN).
void Wake::signal() const
{
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(m_fd.get(), &one, sizeof one);
}

void Wake::drain() const
{
    std::uint64_t count = 0;
    [[maybe_unused]] const auto n = ::read(m_fd.get(), &count, sizeof count);
}

} // namespace gitopper
