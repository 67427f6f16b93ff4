#include "daemon/watchdog.hpp"

#include <systemd/sd-daemon.h>

#include <array>
#include <map>

#include <fmt/format.h>

#include "api/state.hpp"
#include "util/log.hpp"

namespace gitopper {

std::string status_line(const std::vector<Status>& statuses)
{
    std::map<State, std::size_t> count;
    for (const auto& status : statuses) {
        ++count[status.state];
    }
    std::string line =
        fmt::format("{} service{}", statuses.size(), statuses.size() == 1 ? "" : "s");
    const char* separator = ": ";
    for (const auto& [state, n] : count) {
        line += fmt::format("{}{} {}", separator, n, state_name(state));
        separator = ", ";
    }
    return line;
}

Watchdog::Watchdog(const Engine& engine) : m_engine(engine)
{
    // Not unset: a restarted gitopper (systemd's Restart=) reads it again.
    if (sd_watchdog_enabled(0, &m_watchdog_usec) <= 0) {
        m_watchdog_usec = 0;
    }
}

std::chrono::milliseconds Watchdog::period() const
{
    const auto second = std::chrono::milliseconds(1000);
    if (m_watchdog_usec == 0) {
        return second;
    }
    return std::min(second, std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::microseconds(m_watchdog_usec / 2)));
}

void Watchdog::tick()
{
    auto status = status_line(m_engine.statuses());
    if (status != m_status) {
        m_status = std::move(status);
        sd_notifyf(0, "STATUS=%s", m_status.c_str());
    }
    if (m_watchdog_usec != 0) {
        ping();
    }
}

void Watchdog::ping()
{
    const auto stuck = m_engine.stuck();
    if (stuck.empty()) {
        if (m_stuck) {
            log::info("every poll thread gets somewhere again; watchdog pings resumed");
            m_stuck = false;
        }
        sd_notify(0, "WATCHDOG=1");
        return;
    }
    if (!m_stuck) {
        for (const auto& thread : stuck) {
            log::error("the poll thread of {} is stuck ({} s past its deadline): no more "
                       "watchdog pings, so that systemd restarts gitopper",
                       thread.upstream,
                       std::chrono::duration_cast<std::chrono::seconds>(thread.late).count());
        }
        m_stuck = true;
    }
}

} // namespace gitopper
