#include "util/command_line.hpp"

#include <array>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

using Words = std::vector<std::string>;

Words words(std::string_view text)
{
    auto split = split_command(text);
    EXPECT_TRUE(split) << text << ": " << split.error().message;
    return split.value_or(Words{});
}

std::string refusal(std::string_view text)
{
    auto split = split_command(text);
    EXPECT_FALSE(split) << text << " split into " << split->size() << " words";
    return split ? "" : split.error().message;
}

constexpr std::array<std::string_view, 3> kKnown{"dir", "commit", "service"};

} // namespace

TEST(CommandLine, BlanksSeparateWords)
{
    EXPECT_EQ(words("nginx -t -c {dir}/nginx.conf"),
              (Words{"nginx", "-t", "-c", "{dir}/nginx.conf"}));
    EXPECT_EQ(words("  a\t b   c  "), (Words{"a", "b", "c"}));
    EXPECT_EQ(words("a 'b\nc'"), (Words{"a", "b\nc"})); // a quoted newline is text
}

TEST(CommandLine, QuotesAndBackslashesAsAShellTakesThem)
{
    EXPECT_EQ(words("echo 'a  b' \"c  d\" e\\ f"), (Words{"echo", "a  b", "c  d", "e f"}));
    EXPECT_EQ(words("x'y'\"z\"w"), (Words{"xyzw"}));            // one word
    EXPECT_EQ(words("a '' \"\" b"), (Words{"a", "", "", "b"})); // empty words kept
    EXPECT_EQ(words(R"(say "a \"quoted\" \\ \x")"), (Words{"say", R"(a "quoted" \ \x)"}));
    EXPECT_EQ(words("'it'\\''s' \\$HOME '$HOME|*'"), (Words{"it's", "$HOME", "$HOME|*"}));
    EXPECT_EQ(words("a \\\n b"), (Words{"a", "b"}));              // backslash-newline joins
    EXPECT_EQ(words("mid#hash a~b"), (Words{"mid#hash", "a~b"})); // only at a word's start
}

TEST(CommandLine, WhatAShellWouldExpandIsRefusedWhereItStands)
{
    EXPECT_NE(refusal("nginx -t && echo ok").find("column 10: \"&\" would be a command list"),
              std::string::npos);
    EXPECT_NE(refusal("cat a | grep b").find("a pipe"), std::string::npos);
    EXPECT_NE(refusal("cmd > out").find("a redirection"), std::string::npos);
    EXPECT_NE(refusal("cmd; rm x").find("a command list"), std::string::npos);
    EXPECT_NE(refusal("echo $HOME").find("an expansion"), std::string::npos);
    EXPECT_NE(refusal("echo \"$HOME\"").find("even in double quotes"), std::string::npos);
    EXPECT_NE(refusal("echo `id`").find("a subshell"), std::string::npos);
    EXPECT_NE(refusal("ls *.conf").find("a glob"), std::string::npos);
    EXPECT_NE(refusal("ls ~/x").find("a home directory"), std::string::npos);
    EXPECT_NE(refusal("run # note").find("a comment"), std::string::npos);
    // Two lines are two commands to a shell.
    EXPECT_NE(refusal("nginx -t\n/usr/sbin/nginx -s reload")
                  .find("column 9: \"\\n\" would be a command list"),
              std::string::npos);
    EXPECT_NE(refusal("LANG=C nginx -t").find("\"LANG=C\" would set a variable in a shell"),
              std::string::npos);
    EXPECT_EQ(words("nginx -g daemon=off"), (Words{"nginx", "-g", "daemon=off"}));
}

TEST(CommandLine, BrokenQuotingAndEmptyCommandsAreErrors)
{
    EXPECT_NE(refusal("echo 'open").find("column 6: unterminated single quote"), std::string::npos);
    EXPECT_NE(refusal("echo \"open").find("unterminated double quote"), std::string::npos);
    EXPECT_NE(refusal("echo \\").find("escapes nothing"), std::string::npos);
    EXPECT_NE(refusal("").find("empty"), std::string::npos);
    EXPECT_NE(refusal("   ").find("empty"), std::string::npos);
}

TEST(CommandLine, PlaceholdersAreCheckedByName)
{
    EXPECT_TRUE(
        check_placeholders(Words{"{dir}/a", "{commit}{service}", "{}", "a{b", "{X}"}, kKnown));
    const auto unknown = check_placeholders(Words{"--rev={comit}"}, kKnown);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().message, "unknown placeholder {comit} (did you mean {commit}?)");
}

TEST(CommandLine, PlaceholdersAreFilledInsideWordsInOnePass)
{
    const std::array<std::pair<std::string_view, std::string>, 3> values{
        {{"dir", "/srv/{commit}"}, {"commit", "abc123"}, {"service", "nginx"}}};
    EXPECT_EQ(
        fill_placeholders(Words{"-c", "{dir}/x", "{service}@{commit}", "{dir", "{other}"}, values),
        (Words{"-c", "/srv/{commit}/x", "nginx@abc123", "{dir", "{other}"}));
}
