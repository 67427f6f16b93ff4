#include "util/duration.hpp"

#include <gtest/gtest.h>

using namespace gitopper;
using namespace std::chrono_literals;

TEST(Duration, ParsesGoForms)
{
    EXPECT_EQ(parse_duration("90s"), Duration(90s));
    EXPECT_EQ(parse_duration("5m"), Duration(5min));
    EXPECT_EQ(parse_duration("1h30m"), Duration(90min));
    EXPECT_EQ(parse_duration("1.5h"), Duration(90min));
    EXPECT_EQ(parse_duration("250ms"), Duration(250ms));
    EXPECT_EQ(parse_duration("2h45m30.5s"), Duration(2h + 45min + 30500ms));
    EXPECT_EQ(parse_duration("10us"), Duration(10us));
    EXPECT_EQ(parse_duration("0"), Duration(0));
    EXPECT_EQ(parse_duration(".5s"), Duration(500ms));
}

TEST(Duration, RejectsBadInputWithTheValue)
{
    for (const auto* bad : {"", "5", "5x", "m", "-5m", "1h 30m", "1..5s", "9999999999999h"}) {
        const auto parsed = parse_duration(bad);
        ASSERT_FALSE(parsed) << bad;
        EXPECT_NE(parsed.error().message.find("invalid duration"), std::string::npos);
        EXPECT_NE(parsed.error().message.find(std::string("\"") + bad + "\""), std::string::npos)
            << parsed.error().message;
    }
}

TEST(Duration, FormatsShortest)
{
    EXPECT_EQ(format_duration(5min), "5m");
    EXPECT_EQ(format_duration(90s), "1m30s");
    EXPECT_EQ(format_duration(90min), "1h30m");
    EXPECT_EQ(format_duration(1h + 1s), "1h1s");
    EXPECT_EQ(format_duration(250ms), "250ms");
    EXPECT_EQ(format_duration(1500ms), "1.500s");
    EXPECT_EQ(format_duration(Duration(0)), "0s");
}

TEST(Duration, RoundTrips)
{
    for (const auto* text : {"5m", "1h30m", "1m30s", "250ms", "2h"}) {
        const auto parsed = parse_duration(text);
        ASSERT_TRUE(parsed) << text;
        EXPECT_EQ(format_duration(*parsed), text);
    }
}
