#include "util/strings.hpp"

#include <array>

#include <gtest/gtest.h>

using namespace gitopper;

TEST(Strings, SplitKeepsEmptyParts)
{
    EXPECT_EQ(split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
    EXPECT_EQ(split("", ','), (std::vector<std::string>{""}));
}

TEST(Strings, JoinAndTrim)
{
    const std::vector<std::string> parts{"a", "b", "c"};
    EXPECT_EQ(join(parts, ", "), "a, b, c");
    EXPECT_EQ(trim("  x y \n"), "x y");
    EXPECT_EQ(trim("   "), "");
}

TEST(Strings, EditDistance)
{
    EXPECT_EQ(edit_distance("branch", "branch"), 0u);
    EXPECT_EQ(edit_distance("brnch", "branch"), 1u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
}

TEST(Strings, ClosestMatchSuggestsTyposOnly)
{
    constexpr std::array<std::string_view, 3> keys{"branch", "machine", "upstream"};
    EXPECT_EQ(closest_match("brnch", keys), "branch");
    EXPECT_EQ(closest_match("brokenbranch", keys), "branch");
    EXPECT_EQ(closest_match("upstram", keys), "upstream");
    EXPECT_EQ(closest_match("zzz", keys), std::nullopt);
}

TEST(Strings, QuotedEscapes)
{
    EXPECT_EQ(quote("a\"b"), "\"a\\\"b\"");
    EXPECT_EQ(quote("x\ny"), "\"x\\ny\"");
    EXPECT_EQ(quote(std::string_view("\x01", 1)), "\"\\x01\"");
}

TEST(Strings, EscapeControlsKeepsOneLine)
{
    EXPECT_EQ(escape_controls("saw 't\n' \"q\" \\"), "saw 't\\n' \"q\" \\");
    EXPECT_EQ(escape_controls(std::string_view("a\tb\x7f\x01", 5)), "a\\tb\\x7f\\x01");
}
