#include "ctl/known_hosts.hpp"

#include <gtest/gtest.h>

using namespace gitopper::ctl;

TEST(CtlKnownHosts, NameCarriesThePortUnless22)
{
    EXPECT_EQ(known_hosts_name("web1", 22), "web1");
    EXPECT_EQ(known_hosts_name("web1", 2222), "[web1]:2222");
    EXPECT_EQ(known_hosts_name("::1", 2222), "[::1]:2222");
}

TEST(CtlKnownHosts, FindsTheLinesOfAHost)
{
    const std::string text = "# a comment naming [web1]:2222 ssh-ed25519\n"
                             "[web2]:2222 ssh-ed25519 AAAA1\n"
                             "\n"
                             "[web1]:2222 ssh-rsa AAAA2\n"
                             "other,[web1]:2222 ssh-ed25519 AAAA3 comment\n"
                             "@revoked [web1]:2222 ssh-ed25519 AAAA4\n"
                             "|1|salt|hash ssh-ed25519 AAAA5\n"
                             "[web1]:22222 ssh-ed25519 AAAA6\n"
                             "[web1]:2222\tssh-ed25519\tAAAA7";
    EXPECT_EQ(known_hosts_lines(text, "[web1]:2222", "ssh-ed25519"),
              (std::vector<std::size_t>{5, 9}));
    EXPECT_EQ(known_hosts_lines(text, "[web1]:2222", ""), (std::vector<std::size_t>{4, 5, 9}));
    EXPECT_TRUE(known_hosts_lines(text, "web3", "").empty());
    EXPECT_TRUE(known_hosts_lines("", "web3", "").empty());
}
