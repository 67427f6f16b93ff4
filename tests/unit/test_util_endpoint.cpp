#include "util/endpoint.hpp"

#include <gtest/gtest.h>

namespace gitopper {
namespace {

TEST(Endpoint, SshUrlsWithUserHostAndPort)
{
    const auto e = endpoint_of("ssh://git@Git.Example.org:2222/ops/config.git");
    EXPECT_EQ(e.kind, Endpoint::Kind::ssh);
    EXPECT_EQ(e.user, "git");
    EXPECT_EQ(e.host, "git.example.org"); // as ssh-keyscan writes it in known_hosts
    EXPECT_EQ(e.port, 2222);
    EXPECT_EQ(e.known_hosts_name(), "[git.example.org]:2222");
    EXPECT_EQ(e.shown(), "git.example.org:2222");
}

TEST(Endpoint, ScpLikeUrlsAreSshOnPort22)
{
    const auto e = endpoint_of("git@GitHub.com:org/repo");
    EXPECT_EQ(e.kind, Endpoint::Kind::ssh);
    EXPECT_EQ(e.user, "git");
    EXPECT_EQ(e.host, "github.com");
    EXPECT_EQ(e.known_hosts_name(), "github.com");
    EXPECT_EQ(endpoint_of("git+ssh://h/x").kind, Endpoint::Kind::ssh);
}

TEST(Endpoint, HttpsNeverKeepsThePassword)
{
    const auto e = endpoint_of("https://deploy:s3cret@host.example:8443/x");
    EXPECT_EQ(e.kind, Endpoint::Kind::https);
    EXPECT_EQ(e.user, "deploy");
    EXPECT_EQ(e.shown(), "host.example:8443");
}

TEST(Endpoint, Ipv6HostsKeepTheirBracketsWhereAPortFollows)
{
    const auto e = endpoint_of("https://[::1]:8443/x");
    EXPECT_EQ(e.host, "::1");
    EXPECT_EQ(e.port, 8443);
    EXPECT_EQ(e.shown(), "[::1]:8443");
    EXPECT_EQ(endpoint_of("ssh://[::1]:2222/x").known_hosts_name(), "[::1]:2222");
}

TEST(Endpoint, LocalPathsAndOtherSchemesAreOther)
{
    for (const auto* url : {"file:///srv/git/x", "/srv/git/x", "./x:y", "http://h/x", "git://h/x",
                            "dir/with:colon"}) {
        EXPECT_EQ(endpoint_of(url).kind, Endpoint::Kind::other) << url;
    }
}

} // namespace
} // namespace gitopper
