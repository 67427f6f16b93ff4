// The queues and threads of notify/notifier with exec targets (an HTTP receiver is the e2e
// test's): order, back-off, the bounded queue, and what a clean stop keeps.

#include "notify/notifier.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

class NotifierTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "notifier.XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::vector<Service> services(Argv exec) const
    {
        Service service;
        service.name = "nginx";
        service.notify.push_back(NotifyTarget{.exec = std::move(exec), .name = "test"});
        return {service};
    }
    std::unique_ptr<Notifier> make(const std::vector<Service>& with, std::size_t limit = 1000)
    {
        auto notifier =
            Notifier::make(with, std::nullopt,
                           NotifierOptions{.host = "web1",
                                           .state_dir = m_dir,
                                           .queue_limit = limit,
                                           .first_backoff = std::chrono::milliseconds(20),
                                           .max_backoff = std::chrono::milliseconds(50)});
        EXPECT_TRUE(notifier) << notifier.error().message;
        return notifier ? std::move(*notifier) : nullptr;
    }
    static Notice notice(const std::string& event)
    {
        return Notice{.service = "nginx", .event = event, .state = "OK", .time = 1};
    }
    // Waits (at most 20 s) until `done` says so.
    template <typename F> static bool eventually(F done)
    {
        for (int i = 0; i < 2000 && !done(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return done();
    }

    std::string m_dir;
};

} // namespace

TEST_F(NotifierTest, DeliversEveryEventInOrderWithItsJsonOnStdin)
{
    const auto log = m_dir + "/received";
    const auto with = services({"/bin/sh", "-c", "cat >> " + log});
    auto notifier = make(with);
    notifier->start();
    for (const auto* event : {"deploy", "broken", "diff"}) {
        notifier->post(notice(event), with[0].notify);
    }
    ASSERT_TRUE(eventually([&] { return notifier->counts().at(0).sent == 3; }));
    notifier->stop();
    std::ifstream in(log);
    std::string line;
    std::vector<std::string> events;
    while (std::getline(in, line)) {
        Notice got;
        ASSERT_TRUE(notice_from_json(line, got)) << line;
        EXPECT_EQ(got.host, "web1");
        events.push_back(got.event);
    }
    EXPECT_EQ(events, (std::vector<std::string>{"deploy", "broken", "diff"}));
    EXPECT_FALSE(std::filesystem::exists(m_dir + "/gitopper-notify.json"));
}

TEST_F(NotifierTest, RetriesAFailingTargetUntilItTakesTheEvent)
{
    const auto flag = m_dir + "/up";
    const auto with = services({"/bin/test", "-e", flag});
    auto notifier = make(with);
    notifier->start();
    notifier->post(notice("deploy"), with[0].notify);
    ASSERT_TRUE(eventually([&] { return notifier->counts().at(0).failed_tries >= 2; }));
    EXPECT_EQ(notifier->counts().at(0).sent, 0u);
    std::ofstream(flag).put('x');
    ASSERT_TRUE(eventually([&] { return notifier->counts().at(0).sent == 1; }));
    EXPECT_EQ(notifier->counts().at(0).pending, 0u);
}

TEST_F(NotifierTest, AFullQueueDropsTheOldestAndAStopKeepsTheRest)
{
    const auto with = services({"/bin/false"});
    auto notifier = make(with, 3);
    notifier->start();
    for (const auto* event : {"e1", "e2", "e3", "e4", "e5"}) {
        notifier->post(notice(event), with[0].notify);
    }
    auto counts = notifier->counts().at(0);
    EXPECT_EQ(counts.dropped, 2u);
    EXPECT_EQ(counts.pending, 3u);
    notifier->stop();
    ASSERT_TRUE(std::filesystem::exists(m_dir + "/gitopper-notify.json"));
    EXPECT_EQ(std::filesystem::status(m_dir + "/gitopper-notify.json").permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

    // The next start sends them first, and the file goes (a crash must not send them twice).
    std::filesystem::copy_file(m_dir + "/gitopper-notify.json", m_dir + "/kept");
    auto same = make(with);
    same->start();
    EXPECT_FALSE(std::filesystem::exists(m_dir + "/gitopper-notify.json"));
    EXPECT_EQ(same->counts().at(0).pending, 3u);
    same->stop();
    // Another target's identity differs: the kept events are not its.
    std::filesystem::rename(m_dir + "/kept", m_dir + "/gitopper-notify.json");
    auto other = make(services({"/bin/true", "other"}));
    other->start();
    EXPECT_EQ(other->counts().at(0).pending, 0u);
}

TEST_F(NotifierTest, TargetsNobodyNamedAreIgnored)
{
    auto notifier = make(services({"/bin/true"}));
    notifier->start();
    const NotifyTarget stranger{.exec = {"/bin/echo"}};
    notifier->post(notice("deploy"), std::span(&stranger, 1));
    EXPECT_EQ(notifier->counts().at(0).pending, 0u);
    EXPECT_EQ(notifier->counts().at(0).sent, 0u);
}

TEST_F(NotifierTest, ASecretFileMustBeRootsAlone)
{
    const auto secret = m_dir + "/secret";
    std::ofstream(secret) << "s3cret\n";
    std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                             std::filesystem::perms::others_read);
    Service service;
    service.notify.push_back(NotifyTarget{.url = "http://127.0.0.1:1/", .secret_file = secret});
    auto notifier = Notifier::make({service}, std::nullopt, NotifierOptions{.state_dir = m_dir});
    ASSERT_FALSE(notifier);
    EXPECT_NE(notifier.error().message.find(secret), std::string::npos) << notifier.error().message;
    EXPECT_EQ(notifier.error().message.find("s3cret\n"), std::string::npos);
}
