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

TEST(HttpUrl, SchemeHostPortAndTarget)
{
    auto url = gitopper::parse_http_url("HTTPS://Hooks.Example.org/services/T0/B0?x=1");
    ASSERT_TRUE(url) << url.error().message;
    EXPECT_TRUE(url->tls);
    EXPECT_EQ(url->host, "hooks.example.org");
    EXPECT_EQ(url->port, 443);
    EXPECT_EQ(url->target, "/services/T0/B0?x=1");
    EXPECT_EQ(url->origin(), "https://hooks.example.org");

    url = gitopper::parse_http_url("http://127.0.0.1:8080");
    ASSERT_TRUE(url) << url.error().message;
    EXPECT_FALSE(url->tls);
    EXPECT_EQ(url->port, 8080);
    EXPECT_EQ(url->target, "/");
    EXPECT_EQ(url->origin(), "http://127.0.0.1:8080");

    url = gitopper::parse_http_url("http://[::1]:9000?q");
    ASSERT_TRUE(url) << url.error().message;
    EXPECT_EQ(url->host, "::1");
    EXPECT_EQ(url->target, "/?q");
    EXPECT_EQ(url->origin(), "http://[::1]:9000");
}

TEST(HttpUrl, RefusedWithoutQuotingTheUrl)
{
    for (const auto* bad :
         {"ftp://example.org/x", "https://user:s3cret@example.org/x", "https://example.org/a b",
          "https://example.org/x#s3cret", "https://:443/s3cret", "http://example.org:0/s3cret",
          "http://example.org:99999/s3cret", "example.org/s3cret"}) {
        auto url = gitopper::parse_http_url(bad);
        ASSERT_FALSE(url) << bad;
        EXPECT_EQ(url.error().message.find("s3cret"), std::string::npos) << url.error().message;
    }
}
