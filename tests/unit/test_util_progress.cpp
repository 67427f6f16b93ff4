#include "util/progress.hpp"

#include <thread>

#include <gtest/gtest.h>

#include "util/process.hpp"

namespace gitopper {
namespace {

using namespace std::chrono_literals;
using Clock = Progress::Clock;

TEST(Progress, IdleOwesNothing)
{
    Progress progress(10ms);
    EXPECT_EQ(progress.late(Clock::now() + 24h), 0ms);
    progress.step();
    progress.idle();
    EXPECT_EQ(progress.late(Clock::now() + 24h), 0ms);
}

TEST(Progress, AStepOwesTheNextWithinTheSlack)
{
    Progress progress(10s);
    const auto start = Clock::now();
    progress.step();
    EXPECT_EQ(progress.late(start + 9s), 0ms);
    EXPECT_GE(progress.late(start + 11s), 900ms);
    EXPECT_LE(progress.late(start + 11s), 1100ms);
}

TEST(Progress, AWaitOwesItsBoundPlusTheSlack)
{
    Progress progress(10s);
    const auto start = Clock::now();
    progress.bounded_wait(60s);
    EXPECT_EQ(progress.late(start + 65s), 0ms);
    EXPECT_GT(progress.late(start + 71s), 0ms);
}

// Helper threads of one step report to one Progress: a short step of one must not cut short
// the long child another waits for.
TEST(Progress, DeadlinesOnlyMoveLaterWhileWorking)
{
    Progress progress(1s);
    const auto start = Clock::now();
    progress.bounded_wait(60s);
    progress.step();
    EXPECT_EQ(progress.late(start + 30s), 0ms);
}

TEST(Progress, TheSubprocessHelperReportsToTheThreadsProgress)
{
    Progress progress(1s);
    {
        const ProgressScope reporting(&progress);
        EXPECT_EQ(thread_progress(), &progress);
        ASSERT_TRUE(run(Command{.argv = {"true"}, .timeout = 3600s}));
    }
    EXPECT_EQ(thread_progress(), nullptr);
    // The child's start owed its timeout: an hour from now is still on time.
    EXPECT_EQ(progress.late(Clock::now() + 3000s), 0ms);
}

TEST(Progress, OtherThreadsDoNotReport)
{
    Progress progress(1s);
    const ProgressScope reporting(&progress);
    std::thread([] {
        EXPECT_EQ(thread_progress(), nullptr);
        ASSERT_TRUE(run(Command{.argv = {"true"}, .timeout = 3600s}));
    }).join();
    EXPECT_EQ(progress.late(Clock::now() + 2s), 0ms); // still idle: nothing reported
}

} // namespace
} // namespace gitopper
