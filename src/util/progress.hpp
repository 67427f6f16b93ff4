#pragma once
// Whether a thread that works in bounded steps is still getting somewhere, for the watchdog
// (SPEC §10): each step renews a deadline, a child process pushes it past its own timeout, and
// waiting for work owes nothing. A thread that misses its deadline is stuck, because nothing it
// does may take longer: every child it runs is killed at its timeout.
//
// The subprocess helper reports to the Progress bound to the calling thread (ProgressScope), so
// code between a poll thread and the helper needs no parameter for it.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gitopper {

class Progress {
public:
    using Clock = std::chrono::steady_clock;

    // `slack`: the longest a step may take without a child, from one report to the next.
    explicit Progress(std::chrono::milliseconds slack) : m_slack(slack) {}

    void step();                                        // owes the next report within the slack
    void bounded_wait(std::chrono::milliseconds bound); // a child, a sleep: owes its end + slack
    void idle();                                        // waiting for work: owes nothing
    // How long past its deadline it is at `now`; zero when on time or idle.
    std::chrono::milliseconds late(Clock::time_point now = Clock::now()) const;

private:
    // Deadlines only move later while working (helper threads of one step report to the same
    // Progress, and one's short step must not cut another's long child short); idle() clears.
    void owe_by(Clock::time_point deadline);

    std::chrono::milliseconds m_slack;
    std::atomic<std::int64_t> m_deadline{0}; // steady clock ns; 0 when idle
};

// Binds a Progress to the calling thread for the scope's life (nullptr: none).
class ProgressScope {
public:
    explicit ProgressScope(Progress* progress);
    ~ProgressScope();
    ProgressScope(const ProgressScope&) = delete;
    ProgressScope& operator=(const ProgressScope&) = delete;

private:
    Progress* m_previous;
};

// The calling thread's Progress, or nullptr.
Progress* thread_progress();

} // namespace gitopper
