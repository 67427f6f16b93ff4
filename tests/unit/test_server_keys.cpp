#include "server/keys.hpp"

#include <gtest/gtest.h>

using namespace gitopper;

namespace {
const std::string kKey =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDui/CZxstre25f94bIT/SERZfMJaGWC0ahHXrxGWNF9";
}

TEST(AuthorizedKeys, PlainLineWithComment)
{
    auto key = parse_authorized_key(kKey + " alice@example.org");
    ASSERT_TRUE(key) << key.error().message;
    ASSERT_TRUE(*key);
}

TEST(AuthorizedKeys, OptionsBeforeTheTypeAreTolerated)
{
    auto key = parse_authorized_key("from=\"10.0.0.1\",command=\"echo a b\",no-pty " + kKey + " c");
    ASSERT_TRUE(key) << key.error().message;
    auto plain = parse_authorized_key(kKey);
    ASSERT_TRUE(plain && *plain);
    EXPECT_EQ(ssh_key_cmp(key->get(), plain->get(), SSH_KEY_CMP_PUBLIC), 0);
}

TEST(AuthorizedKeys, BlankAndCommentLinesHoldNoKey)
{
    for (const auto* line : {"", "   ", "# a comment"}) {
        auto key = parse_authorized_key(line);
        ASSERT_TRUE(key);
        EXPECT_FALSE(*key) << line;
    }
}

TEST(AuthorizedKeys, BadLinesAreClearErrors)
{
    auto bad = parse_authorized_key("ssh-ed25519 not-base64!!");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("ssh-ed25519"), std::string::npos);
    auto none = parse_authorized_key("just some words");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("no key type"), std::string::npos);
}
