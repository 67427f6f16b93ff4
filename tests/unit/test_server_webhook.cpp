#include "server/webhook.hpp"
#include "util/strings.hpp"

#include <gtest/gtest.h>

#include "git/git.hpp"

using namespace gitopper;

TEST(Webhook, HmacMatchesRfc4231)
{
    // RFC 4231 test case 2.
    EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Webhook, VerifiesEachProvider)
{
    const std::string body = R"({"ref":"refs/heads/main"})";
    const auto mac = hmac_sha256_hex("s3cret", body);
    EXPECT_TRUE(verify_webhook("s3cret", body, {"sha256=" + mac, "", ""}));
    EXPECT_TRUE(verify_webhook("s3cret", body, {"sha256=" + std::string(mac), "", ""}));
    EXPECT_FALSE(verify_webhook("s3cret", body, {mac, "", ""}))
        << "GitHub needs the sha256= prefix";
    EXPECT_FALSE(verify_webhook("other", body, {"sha256=" + mac, "", ""}));
    EXPECT_FALSE(verify_webhook("s3cret", body + " ", {"sha256=" + mac, "", ""}));
    EXPECT_TRUE(verify_webhook("s3cret", body, {"", mac, ""}));
    EXPECT_FALSE(verify_webhook("s3cret", body, {"", mac.substr(0, 63), ""}));
    EXPECT_TRUE(verify_webhook("s3cret", body, {"", "", "s3cret"}));
    EXPECT_FALSE(verify_webhook("s3cret", body, {"", "", "s3cre"}));
    EXPECT_FALSE(verify_webhook("s3cret", body, {"", "", ""}));
    EXPECT_FALSE(verify_webhook("", body, {"", "", ""})) << "no secret, no webhooks";
}

TEST(Webhook, ParsesGithubAndGitlabPushes)
{
    auto github = parse_push(R"({"ref":"refs/heads/canary","repository":{
        "clone_url":"https://github.com/Ops/Config.git","ssh_url":"git@github.com:Ops/Config.git"}})");
    ASSERT_TRUE(github) << github.error().message;
    EXPECT_EQ(github->branch, "canary");
    EXPECT_EQ(github->repositories,
              (std::vector<std::string>{"github.com/Ops/Config", "github.com/Ops/Config"}));
    auto gitlab = parse_push(R"({"ref":"refs/heads/main","project":{
        "git_http_url":"https://gitlab.example.org/a/b.git","git_ssh_url":"ssh://git@gitlab.example.org:2222/a/b.git"}})");
    ASSERT_TRUE(gitlab);
    EXPECT_EQ(gitlab->repositories[1], "gitlab.example.org/a/b");
    EXPECT_FALSE(parse_push(R"({"ref":"refs/tags/v1","repository":{"clone_url":"x"}})"));
    EXPECT_FALSE(parse_push(R"({"ref":"refs/heads/main"})"));
    EXPECT_FALSE(parse_push("not json"));
    EXPECT_FALSE(parse_push("[1,2]"));
}

// Found by fuzz/fuzz_webhook: URLs that normalise to nothing were kept as "".
TEST(Webhook, UrlsThatNormaliseToNothingAreSkipped)
{
    auto push = parse_push(R"({"ref":"refs/heads/main","repository":{
        "clone_url":"https://github.com/ops/config.git","ssh_url":"git@","url":" / "}})");
    ASSERT_TRUE(push) << push.error().message;
    EXPECT_EQ(push->repositories, (std::vector<std::string>{"github.com/ops/config"}));
    EXPECT_FALSE(parse_push(R"({"ref":"refs/heads/main","repository":{"ssh_url":"git@"}})"));
}

// Found by fuzz/fuzz_webhook: a "ref" that is not a string threw json::type_error.
TEST(Webhook, RefOfTheWrongTypeIsRefused)
{
    for (const auto* body :
         {R"({"ref":{"o":"x"},"repository":{"clone_url":"https://a/b"}})",
          R"({"ref":7,"repository":{"clone_url":"https://a/b"}})", R"({"ref":null})"}) {
        const auto push = parse_push(body);
        ASSERT_FALSE(push) << body;
        EXPECT_EQ(push.error().message, "not a branch push (ref missing)");
    }
}

TEST(Webhook, NormalisesRepositoryUrls)
{
    for (const auto* url :
         {"https://Example.org/ops/config.git", "https://example.org/ops/config/",
          "ssh://git@example.org:22/ops/config.git", "git@example.org:ops/config",
          "git://example.org/ops/config", "https://user:pw@example.org/ops/config"}) {
        EXPECT_EQ(normalize_repository_url(url), "example.org/ops/config") << url;
    }
    EXPECT_EQ(normalize_repository_url("file:///srv/git/config"), "/srv/git/config");
    EXPECT_NE(normalize_repository_url("https://example.org/ops/config2"),
              normalize_repository_url("https://example.org/ops/config"));
}
