#pragma once
// What gitopper tells systemd while it runs (SPEC §10): STATUS= with how many services are in
// each state, and, when the unit sets WatchdogSec=, WATCHDOG=1 only while every poll thread
// gets somewhere (Engine::stuck): one that is stuck stops the pings, and systemd restarts us.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "api/control.hpp"
#include "service/engine.hpp"

namespace gitopper {

// "3 services: 2 OK, 1 BROKEN", states in SPEC §3's order, those with none left out.
std::string status_line(const std::vector<Status>& statuses);

class Watchdog {
public:
    explicit Watchdog(const Engine& engine);

    // How often tick() must run: half systemd's watchdog interval, at most a second.
    std::chrono::milliseconds period() const;
    void tick(); // STATUS= when it changed; WATCHDOG=1 unless a poll thread is stuck

private:
    void ping();

    const Engine& m_engine;
    std::uint64_t m_watchdog_usec = 0; // 0: systemd watches nothing
    std::string m_status;
    bool m_stuck = false; // told, until every thread gets somewhere again
};

} // namespace gitopper
