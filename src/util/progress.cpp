#include "util/progress.hpp"

#include <algorithm>

namespace gitopper {

namespace {

thread_local Progress* bound = nullptr;

std::int64_t ticks(Progress::Clock::time_point t)
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

} // namespace

void Progress::owe_by(Clock::time_point deadline)
{
    const auto wanted = ticks(deadline);
    auto current = m_deadline.load();
    while (current < wanted && !m_deadline.compare_exchange_weak(current, wanted)) {
    }
}

void Progress::step()
{
    owe_by(Clock::now() + m_slack);
}

void Progress::bounded_wait(std::chrono::milliseconds bound)
{
    // Bounded so that the sum cannot overflow: a wait of over a day is not watched closer.
    owe_by(Clock::now() + std::min<std::chrono::milliseconds>(bound, std::chrono::hours(24)) +
           m_slack);
}

void Progress::idle()
{
    m_deadline = 0;
}

std::chrono::milliseconds Progress::late(Clock::time_point now) const
{
    const auto deadline = m_deadline.load();
    if (deadline == 0 || ticks(now) <= deadline) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::nanoseconds(ticks(now) - deadline));
}

ProgressScope::ProgressScope(Progress* progress) : m_previous(bound)
{
    bound = progress;
}

ProgressScope::~ProgressScope()
{
    bound = m_previous;
}

Progress* thread_progress()
{
    return bound;
}

} // namespace gitopper
