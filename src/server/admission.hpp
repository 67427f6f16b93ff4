#pragma once
// Connection slots for a server that gives each connection a thread: at most `total` open at
// once and at most `per_source` from one source, so that one host's idle or slow connections
// cannot take the slots every other client needs. A slot is a Ticket, released when the
// ticket goes. Thread-safe; the tickets may end on any thread.

#include <sys/socket.h>

#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "server/address.hpp"
#include "util/error.hpp"

namespace gitopper {

class Admission {
public:
    class Ticket {
    public:
        Ticket(Ticket&& other) noexcept;
        Ticket& operator=(Ticket&& other) noexcept;
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        ~Ticket();

    private:
        friend class Admission;
        Ticket(Admission& admission, std::string source);

        Admission* m_admission = nullptr;
        std::string m_source;
    };

    Admission(std::size_t per_source, std::size_t total);
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;

    // A slot for a connection from `source` (see source_of), or why there is none.
    [[nodiscard]] Result<Ticket> admit(const std::string& source);
    // How many are open, in all and from `source`: for tests.
    std::size_t open() const;
    std::size_t open_from(const std::string& source) const;
    // Blocks until every ticket is gone.
    void wait_until_idle();

private:
    void release(const std::string& source);

    const std::size_t m_per_source;
    const std::size_t m_total;
    mutable std::mutex m_mutex; // guards m_open and m_count
    std::condition_variable m_idle;
    std::map<std::string, std::size_t> m_open; // sources with at least one ticket
    std::size_t m_count = 0;
};

} // namespace gitopper
