#include "util/strings.hpp"

#include <array>
#include <cerrno>

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

TEST(Strings, RedactCredentialsHidesEveryPassword)
{
    EXPECT_EQ(redact_credentials("cloning https://deploy:tok3n@git.example.org/ops/c.git now"),
              "cloning https://deploy:***@git.example.org/ops/c.git now");
    EXPECT_EQ(redact_credentials("'https://a:b@h/x' and \"ssh://u:p@h:22/y\""),
              "'https://a:***@h/x' and \"ssh://u:***@h:22/y\"");
    EXPECT_EQ(redact_credentials("https://a:b:c@h"), "https://a:***@h");
    // No password: unchanged, the user name and the port stay.
    EXPECT_EQ(redact_credentials("ssh://git@h:22/x git@h:x https://h:443/x"),
              "ssh://git@h:22/x git@h:x https://h:443/x");
    EXPECT_EQ(redact_credentials("no url here: a:b@c"), "no url here: a:b@c");
    // Over http(s) a user name alone is a token (https://TOKEN@github.com/…).
    EXPECT_EQ(redact_credentials("https://ghp_abc@github.com/o/r"), "https://***@github.com/o/r");
}

TEST(Strings, ParseSize)
{
    EXPECT_EQ(parse_size("100MiB"), 100u << 20);
    EXPECT_EQ(parse_size("512K"), 512u << 10);
    EXPECT_EQ(parse_size("1G"), 1u << 30);
    EXPECT_EQ(parse_size("2MB"), 2000000u);
    EXPECT_EQ(parse_size("12345"), 12345u);
    EXPECT_FALSE(parse_size("MiB"));
    EXPECT_FALSE(parse_size("10 MiB"));
    EXPECT_FALSE(parse_size("-1"));
    EXPECT_FALSE(parse_size("1T"));
}

TEST(Strings, ErrnoMessageNamesKnownAndUnknownValues)
{
    EXPECT_EQ(errno_message(ENOENT), "No such file or directory");
    EXPECT_EQ(errno_message(99999), "Unknown error 99999");
}

TEST(Strings, CaseIsAsciiOnly)
{
    EXPECT_EQ(to_lower("Web1.Example.ORG"), "web1.example.org");
    EXPECT_EQ(to_lower("\xc3\x89t\xc3\xa9"), "\xc3\x89t\xc3\xa9"); // bytes above ASCII stay
    EXPECT_TRUE(equal_nocase("GRAFANA.atoom.net", "grafana.ATOOM.net"));
    EXPECT_FALSE(equal_nocase("grafana", "grafana1"));
    EXPECT_FALSE(equal_nocase("grafana1", "grafana"));
    EXPECT_TRUE(equal_nocase("", ""));
}

TEST(RepositoryPath, ThePathAtTheForge)
{
    EXPECT_EQ(repository_path("https://github.com/ops/config.git"), "ops/config");
    EXPECT_EQ(repository_path("git@gitlab.example.org:group/sub/config.git"), "group/sub/config");
    EXPECT_EQ(repository_path("ssh://git@git.example.org:2222/ops/config/"), "ops/config");
    EXPECT_EQ(repository_path("https://user:s3cret@git.example.org/ops/config"), "ops/config");
    EXPECT_EQ(repository_path("https://git.example.org"), "");
}
