#include "notify/notice.hpp"

#include "notify/deliver.hpp"

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace gitopper;

namespace {

Notice deploy()
{
    return Notice{.host = "web1",
                  .service = "nginx",
                  .event = kEventDeploy,
                  .from = "1a2b3c4d5e6f70000000000000000000000000aa",
                  .to = "5e6f7a8b9c0d10000000000000000000000000bb",
                  .state = "OK",
                  .info = "",
                  .trigger = "webhook",
                  .time = 1764806400}; // 2025-12-04T00:00:00Z
}

} // namespace

TEST(Notice, JsonHasTheSpecsFields)
{
    const auto json = nlohmann::json::parse(notice_json(deploy()));
    EXPECT_EQ(json["host"], "web1");
    EXPECT_EQ(json["service"], "nginx");
    EXPECT_EQ(json["event"], "deploy");
    EXPECT_EQ(json["from"], deploy().from);
    EXPECT_EQ(json["to"], deploy().to);
    EXPECT_EQ(json["state"], "OK");
    EXPECT_EQ(json["trigger"], "webhook");
    EXPECT_EQ(json["time"], "2025-12-04T00:00:00Z");
    EXPECT_EQ(json.size(), 9u);
}

TEST(Notice, ReadsBackFromItsJson)
{
    Notice back;
    ASSERT_TRUE(notice_from_json(notice_json(deploy()), back));
    EXPECT_EQ(back, deploy());
    EXPECT_FALSE(notice_from_json("{}", back));
    EXPECT_FALSE(notice_from_json("not json", back));
}

TEST(Notice, SlackTextIsOneReadableLine)
{
    const auto json = nlohmann::json::parse(slack_json(deploy()));
    EXPECT_EQ(json["text"], "web1: nginx deployed 1a2b3c4d → 5e6f7a8b (webhook)");
    auto broken = deploy();
    broken.event = kEventCheckFailed;
    broken.state = "BROKEN";
    broken.info = "nginx: [emerg] unexpected \"}\"";
    EXPECT_EQ(notice_text(broken),
              "web1: nginx: check refused 5e6f7a8b, still on 1a2b3c4d: nginx: [emerg] unexpected "
              "\"}\"");
    broken.event = kEventDiff;
    broken.state = "DIFF";
    broken.info = "ls-remote failed";
    EXPECT_EQ(notice_text(broken), "web1: nginx is DIFF: ls-remote failed");
}

TEST(Notice, InvalidUtf8IsReplacedNotThrown)
{
    auto odd = deploy();
    odd.info = "drift in caf\xe9.conf";
    EXPECT_TRUE(nlohmann::json::parse(notice_json(odd), nullptr, false).is_object());
    EXPECT_TRUE(nlohmann::json::parse(slack_json(odd), nullptr, false).is_object());
}

TEST(Notice, EnvironmentForExec)
{
    auto notice = deploy();
    notice.info = "two\nlines";
    const auto env = notice_environment(notice);
    const auto has = [&](const std::string& entry) {
        return std::find(env.begin(), env.end(), entry) != env.end();
    };
    EXPECT_TRUE(has("GITOPPER_EVENT=deploy"));
    EXPECT_TRUE(has("GITOPPER_SERVICE=nginx"));
    EXPECT_TRUE(has("GITOPPER_FROM=" + notice.from));
    EXPECT_TRUE(has("GITOPPER_TO=" + notice.to));
    EXPECT_TRUE(has("GITOPPER_STATE=OK"));
    EXPECT_TRUE(has("GITOPPER_HOST=web1"));
    EXPECT_TRUE(has("GITOPPER_TRIGGER=webhook"));
    EXPECT_TRUE(has("GITOPPER_INFO=two\\nlines"));
}

TEST(StatusCall, EachEventItsState)
{
    auto n = deploy();
    n.event = kEventDeploying;
    EXPECT_EQ(status_call(n)->state, "pending");
    EXPECT_EQ(status_call(n)->description, "deploying on web1");
    n.event = kEventDeploy;
    EXPECT_EQ(status_call(n)->state, "success");
    n.event = kEventCheckFailed;
    n.info = "nginx: [emerg] " + std::string(200, 'x');
    EXPECT_EQ(status_call(n)->state, "failure");
    EXPECT_EQ(status_call(n)->description.size(), 140u);
    n.event = kEventHealthFailed;
    EXPECT_EQ(status_call(n)->state, "failure");
    n.event = kEventDeployFailed;
    EXPECT_EQ(status_call(n)->state, "failure");
    // A service turning BROKEN or DIFF otherwise (a failed drift action) says nothing of a
    // commit.
    for (const auto* other : {kEventRollback, kEventDriftReverted, kEventDiff, kEventBroken}) {
        n.event = other;
        EXPECT_FALSE(status_call(n)) << other;
    }
}

TEST(StatusCall, DescriptionIsNeverCutInsideACharacter)
{
    auto n = deploy();
    n.event = kEventCheckFailed;
    n.info = std::string(100, 'x') + "éééééééééééééééééééééééé"; // two bytes each
    const auto text = status_call(n)->description;
    EXPECT_LE(text.size(), 140u);
    EXPECT_NE(static_cast<unsigned char>(text.back()) & 0xc0, 0xc0) << "ends in a lead byte";
    EXPECT_TRUE(nlohmann::json::parse(nlohmann::json(text).dump(), nullptr, false).is_string());
}

TEST(JudgeAnswer, WhatIsRetriedAndWhatIsNot)
{
    using Kind = Tried::Kind;
    EXPECT_EQ(judge_answer(200, "", "").kind, Kind::delivered);
    EXPECT_EQ(judge_answer(201, "", "").kind, Kind::delivered);
    EXPECT_EQ(judge_answer(503, "", "").kind, Kind::retry);
    EXPECT_EQ(judge_answer(408, "", "").kind, Kind::retry);
    EXPECT_EQ(judge_answer(400, "", "").kind, Kind::rejected);
    EXPECT_EQ(judge_answer(404, "", "").kind, Kind::rejected);
    EXPECT_EQ(judge_answer(403, "", "").kind, Kind::rejected); // a token without the right
    EXPECT_EQ(judge_answer(403, "", "0").kind, Kind::retry);   // GitHub's rate limit
    const auto later = judge_answer(429, "120", "");
    EXPECT_EQ(later.kind, Kind::retry);
    EXPECT_EQ(later.retry_after, std::chrono::seconds(120));
    EXPECT_EQ(judge_answer(403, "60", "").retry_after, std::chrono::seconds(60));
    EXPECT_EQ(judge_answer(503, "Wed, 21 Oct 2026 07:28:00 GMT", "").retry_after,
              std::chrono::seconds(0));
}
