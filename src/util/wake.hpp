#pragma once
// Wakes a thread that sleeps in poll(): an eventfd that any thread may signal. A signal stays
// until drained, so one sent before the sleeper reaches poll() is not lost.

#include "util/fd.hpp"

namespace gitopper {

class Wake {
public:
    Wake();

    int fd() const { return m_fd.get(); } // POLLIN while signalled
    void signal() const;
    void drain() const; // in the woken thread, before it looks at what changed

private:
    Fd m_fd;
};

} // namespace gitopper
