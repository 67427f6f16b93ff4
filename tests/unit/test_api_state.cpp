#include "api/state.hpp"

#include <array>
#include <set>
#include <string>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

constexpr std::array kAllStates{State::ok, State::freeze, State::rollback, State::broken,
                                State::diff};

// Names for failure messages, independent of the table under test.
std::string label(State state)
{
    switch (state) {
    case State::ok:
        return "ok";
    case State::freeze:
        return "freeze";
    case State::rollback:
        return "rollback";
    case State::broken:
        return "broken";
    case State::diff:
        return "diff";
    }
    return "?";
}

} // namespace

TEST(ServiceStateTest, NamesOfEveryState)
{
    EXPECT_EQ(state_name(State::ok), "OK");
    EXPECT_EQ(state_name(State::freeze), "FREEZE");
    EXPECT_EQ(state_name(State::rollback), "ROLLBACK");
    EXPECT_EQ(state_name(State::broken), "BROKEN");
    EXPECT_EQ(state_name(State::diff), "DIFF");
}

TEST(ServiceStateTest, EveryStateHasItsOwnName)
{
    std::set<std::string_view> names;
    for (const auto state : kAllStates) {
        EXPECT_NE(state_name(state), "UNKNOWN") << label(state);
        names.insert(state_name(state));
    }
    EXPECT_EQ(names.size(), kAllStates.size());
}

TEST(ServiceStateTest, MetricNumbers)
{
    EXPECT_EQ(state_number(State::ok), 0);
    EXPECT_EQ(state_number(State::freeze), 1);
    EXPECT_EQ(state_number(State::rollback), 2);
    EXPECT_EQ(state_number(State::broken), 3);
    EXPECT_EQ(state_number(State::diff), 4);
}

TEST(ServiceStateTest, FreezeFromAnyStateFreezes)
{
    for (const auto from : kAllStates) {
        EXPECT_EQ(transition(from, Event::freeze), State::freeze) << label(from);
    }
}

TEST(ServiceStateTest, UnfreezeOnlyLeavesFreeze)
{
    EXPECT_EQ(transition(State::freeze, Event::unfreeze), State::ok);
    EXPECT_EQ(transition(State::ok, Event::unfreeze), State::ok);
    EXPECT_EQ(transition(State::rollback, Event::unfreeze), State::rollback);
    EXPECT_EQ(transition(State::broken, Event::unfreeze), State::broken);
    EXPECT_EQ(transition(State::diff, Event::unfreeze), State::diff);
}

TEST(ServiceStateTest, RollbackFromAnyStateRollsBack)
{
    for (const auto from : kAllStates) {
        EXPECT_EQ(transition(from, Event::rollback), State::rollback) << label(from);
    }
}

TEST(ServiceStateTest, RollbackOutcomes)
{
    EXPECT_EQ(transition(State::rollback, Event::succeeded), State::freeze);
    EXPECT_EQ(transition(State::rollback, Event::git_failed), State::diff);
    EXPECT_EQ(transition(State::rollback, Event::host_failed), State::broken);
}

TEST(ServiceStateTest, FreezeKeepsItsPinWhateverHappens)
{
    EXPECT_EQ(transition(State::freeze, Event::succeeded), State::freeze);
    EXPECT_EQ(transition(State::freeze, Event::git_failed), State::freeze);
    EXPECT_EQ(transition(State::freeze, Event::host_failed), State::freeze);
}

TEST(ServiceStateTest, TrackingStatesFollowTheReconcileOutcome)
{
    for (const auto from : {State::ok, State::broken, State::diff}) {
        EXPECT_EQ(transition(from, Event::succeeded), State::ok) << label(from);
        EXPECT_EQ(transition(from, Event::git_failed), State::diff) << label(from);
        EXPECT_EQ(transition(from, Event::host_failed), State::broken) << label(from);
    }
}

TEST(ServiceStateTest, OnlyFreezeAndRollbackStopTracking)
{
    EXPECT_TRUE(tracks_upstream(State::ok));
    EXPECT_TRUE(tracks_upstream(State::broken));
    EXPECT_TRUE(tracks_upstream(State::diff));
    EXPECT_FALSE(tracks_upstream(State::freeze));
    EXPECT_FALSE(tracks_upstream(State::rollback));
}
