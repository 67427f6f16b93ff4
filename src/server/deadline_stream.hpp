#pragma once
// One accepted HTTP connection as cpp-httplib reads and writes it, with limits httplib's own
// socket stream lacks: the whole request must arrive by one deadline and the answer leave by
// another (httplib only times out each recv, so a client sending a byte a second holds a
// thread for ever), at most a budget of bytes is read (httplib grows a header line without
// bound), and a stop eventfd ends every wait at once. Used by one thread; does not own the
// socket or the eventfd.

#include <array>
#include <chrono>
#include <cstddef>
#include <string>

#include <httplib.h>

namespace gitopper {

class DeadlineStream final : public httplib::Stream {
public:
    using Clock = std::chrono::steady_clock;

    struct Limits {
        Clock::time_point read_by;  // request line, headers and body
        Clock::time_point write_by; // the answer
        std::size_t budget = 0;     // bytes that may be read; more with allow()
    };

    DeadlineStream(int socket, int stop, Limits limits);

    bool is_readable() const override;
    bool is_writable() const override;
    ssize_t read(char* ptr, size_t size) override;
    ssize_t write(const char* ptr, size_t size) override;
    void get_remote_ip_and_port(std::string& ip, int& port) const override;
    void get_local_ip_and_port(std::string& ip, int& port) const override;
    socket_t socket() const override { return m_socket; }

    // Lets `bytes` more be read (the body, once the headers are in).
    void allow(std::size_t bytes) { m_budget += bytes; }
    // True when a deadline, the budget or the stop ended a read or write, not the client.
    bool cut_off() const { return m_cut_off; }
    // After the answer: ends our side, then drops what the client still sends until it
    // closes or `until`, so that closing with unread bytes does not reset the connection
    // before the client has read the answer (it may still be sending a body we refused).
    void linger(Clock::time_point until);

private:
    enum class Wait { ready, timeout, stopped };
    Wait wait(short events, Clock::time_point until) const;
    ssize_t fill();

    int m_socket;
    int m_stop;
    Limits m_limits;
    std::size_t m_budget;
    bool m_cut_off = false;
    std::array<char, 4096> m_buffer{}; // httplib reads lines a byte at a time
    std::size_t m_begin = 0;
    std::size_t m_end = 0;
};

} // namespace gitopper
