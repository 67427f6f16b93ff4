#include "ctl/target.hpp"

#include <gtest/gtest.h>

using namespace gitopper;
using namespace gitopper::ctl;

TEST(CtlTarget, HostTakesTheDefaultPort)
{
    const auto targets = parse_targets("@web1", 2222);
    ASSERT_TRUE(targets);
    EXPECT_EQ(*targets, (std::vector<Target>{{"web1", "web1", 2222}}));
}

TEST(CtlTarget, PortAfterColon)
{
    const auto targets = parse_targets("@web1:2223", 2222);
    ASSERT_TRUE(targets);
    EXPECT_EQ(*targets, (std::vector<Target>{{"web1:2223", "web1", 2223}}));
}

TEST(CtlTarget, CommaListEachWithItsOwnPort)
{
    const auto targets = parse_targets("@127.0.0.1:2300,localhost,@web3:22", 2222);
    ASSERT_TRUE(targets);
    EXPECT_EQ(*targets, (std::vector<Target>{{"127.0.0.1:2300", "127.0.0.1", 2300},
                                             {"localhost", "localhost", 2222},
                                             {"web3:22", "web3", 22}}));
}

TEST(CtlTarget, Ipv6)
{
    auto targets = parse_targets("@[::1]:2300,[fe80::1],::1", 2222);
    ASSERT_TRUE(targets);
    EXPECT_EQ(*targets, (std::vector<Target>{{"[::1]:2300", "::1", 2300},
                                             {"[fe80::1]", "fe80::1", 2222},
                                             {"::1", "::1", 2222}}));
}

TEST(CtlTarget, BadWords)
{
    EXPECT_EQ(parse_targets("web1", 2222).error().message, "expected @HOST, got \"web1\"");
    EXPECT_EQ(parse_targets("@web1:0", 2222).error().message, "invalid port \"0\"");
    EXPECT_EQ(parse_targets("@web1:65536", 2222).error().message, "invalid port \"65536\"");
    EXPECT_EQ(parse_targets("@web1:22x", 2222).error().message, "invalid port \"22x\"");
    EXPECT_EQ(parse_targets("@web1:", 2222).error().message, "invalid port \"\"");
    EXPECT_EQ(parse_targets("@", 2222).error().message, "empty host name");
    EXPECT_EQ(parse_targets("@web1,,web2", 2222).error().message, "empty host name");
    EXPECT_EQ(parse_targets("@:2222", 2222).error().message, "empty host name in \":2222\"");
    EXPECT_FALSE(parse_targets("@[::1", 2222));
    EXPECT_FALSE(parse_targets("@[::1]x", 2222));
}

TEST(CtlTarget, PositionalsSplitHostsFromArguments)
{
    const auto split = split_positionals({"@web1", "@web2,web3:2300", "app", "abc123"}, 2222);
    ASSERT_TRUE(split);
    ASSERT_EQ(split->targets.size(), 3u);
    EXPECT_EQ(split->targets[2], (Target{"web3:2300", "web3", 2300}));
    EXPECT_EQ(split->args, (std::vector<std::string>{"app", "abc123"}));
}

TEST(CtlTarget, PositionalsDropDuplicateHosts)
{
    const auto split = split_positionals({"@web1", "@web1:2222,web2", "@web2:2300"}, 2222);
    ASSERT_TRUE(split);
    ASSERT_EQ(split->targets.size(), 3u);
    EXPECT_EQ(split->targets[0].label, "web1");
    EXPECT_EQ(split->targets[1].label, "web2");
    EXPECT_EQ(split->targets[2].label, "web2:2300");
}

TEST(CtlTarget, PositionalsNeedAHostFirst)
{
    EXPECT_EQ(split_positionals({}, 2222).error().message, "missing @HOST");
    EXPECT_EQ(split_positionals({"app", "@web1"}, 2222).error().message,
              "expected @HOST before \"app\"");
    EXPECT_EQ(split_positionals({"@web1", "app", "@web2"}, 2222).error().message,
              "@HOST must come before the other arguments, got \"@web2\"");
}
