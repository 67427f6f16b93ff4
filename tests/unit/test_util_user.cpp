#include "util/user.hpp"

#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

using namespace gitopper;

TEST(User, LooksUpRoot)
{
    const auto root = lookup_user("root");
    ASSERT_TRUE(root) << root.error().message;
    EXPECT_EQ(root->uid, 0u);
    EXPECT_EQ(root->gid, 0u);
    EXPECT_EQ(root->name, "root");
    EXPECT_FALSE(root->home.empty());
    // The primary group is among the groups, as login(1) would set them.
    EXPECT_NE(std::ranges::find(root->groups, gid_t{0}), root->groups.end());
}

TEST(User, LooksUpNobody)
{
    const auto nobody = lookup_user("nobody");
    if (!nobody) {
        GTEST_SKIP() << "no user nobody here";
    }
    EXPECT_EQ(nobody->name, "nobody");
    EXPECT_NE(nobody->uid, 0u);
    EXPECT_NE(std::ranges::find(nobody->groups, nobody->gid), nobody->groups.end());
    EXPECT_EQ(std::ranges::find(nobody->groups, gid_t{0}), nobody->groups.end());
}

TEST(User, MissingUserIsAnErrorNamingIt)
{
    const auto user = lookup_user("no-such-user-xyz");
    ASSERT_FALSE(user);
    EXPECT_EQ(user.error().message, "no such user \"no-such-user-xyz\"");
}

TEST(User, CurrentCredentials)
{
    const auto credentials = current_credentials();
    EXPECT_EQ(credentials.uid, ::geteuid());
    EXPECT_EQ(credentials.gid, ::getegid());
    const int count = ::getgroups(0, nullptr);
    EXPECT_EQ(credentials.groups.size(), static_cast<std::size_t>(count));
    if (::geteuid() == 0) {
        EXPECT_EQ(credentials.name, "root");
        EXPECT_FALSE(credentials.home.empty());
    }
}
