#include "daemon/watchdog.hpp"

#include <gtest/gtest.h>

namespace gitopper {
namespace {

std::vector<Status> with_states(std::initializer_list<State> states)
{
    std::vector<Status> all;
    for (const auto state : states) {
        all.push_back(Status{.state = state});
    }
    return all;
}

TEST(StatusLine, CountsEachStateInTheSpecsOrder)
{
    EXPECT_EQ(status_line(with_states({State::diff, State::ok, State::broken, State::ok})),
              "4 services: 2 OK, 1 BROKEN, 1 DIFF");
}

TEST(StatusLine, OneServiceAndNone)
{
    EXPECT_EQ(status_line(with_states({State::freeze})), "1 service: 1 FREEZE");
    EXPECT_EQ(status_line({}), "0 services");
}

} // namespace
} // namespace gitopper
