#include "fleet/rollout.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

namespace gitopper {
namespace {

// A member that answers what a real etcd would not: numbers where etcd sends strings, no
// watch at all. The daemon must neither throw nor hammer it.
class OddEtcd : public ::testing::Test {
protected:
    void SetUp() override
    {
        server.Post("/v3/lease/grant", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"ID":"7","TTL":"3"})", "application/json");
        });
        server.Post("/v3/lease/keepalive", [this](const httplib::Request&, httplib::Response& res) {
            ++keepalives;
            res.set_content(R"({"result":{"ID":7,"TTL":3}})", "application/json");
        });
        server.Post("/v3/kv/txn", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"succeeded":"yes","responses":{"response_range":7}})",
                            "application/json");
        });
        server.Post("/v3/watch", [this](const httplib::Request&, httplib::Response& res) {
            {
                std::lock_guard lock(mutex);
                watched_at.push_back(std::chrono::steady_clock::now());
            }
            ++watches;
            res.status = 404;
            res.set_content("404 page not found\n", "text/plain");
        });
        port = server.bind_to_any_port("127.0.0.1");
        serving = std::thread([this] { server.listen_after_bind(); });
        config.etcd = {fmt::format("http://127.0.0.1:{}", port)};
        config.lease_ttl = std::chrono::seconds(2);
        config.timeout = std::chrono::seconds(1);
    }
    void TearDown() override
    {
        server.stop();
        serving.join();
    }
    // Until `count` reaches `least`, for at most 10 s.
    static bool reaches(const std::atomic<int>& count, int least)
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (count < least && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return count >= least;
    }

    httplib::Server server;
    std::thread serving;
    int port = 0;
    RolloutConfig config;
    std::atomic<int> keepalives{0};
    std::atomic<int> watches{0};
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> watched_at;
};

TEST_F(OddEtcd, AnswersOfTheWrongShapeAreNoTurnAndNoCrash)
{
    Rollout rollout(config, "web1", "");
    rollout.start([](const std::string&) {});
    auto turn = rollout.take("nginx", std::string(40, 'a'), 1);
    ASSERT_TRUE(turn); // what etcd said is no slot of ours
    EXPECT_EQ(turn->kind, Turn::Kind::wait);
    ASSERT_TRUE(reaches(keepalives, 1)); // a TTL that is a number: the lease is taken as gone
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (rollout.counts().lease && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(rollout.counts().lease);
    rollout.stop();
}

TEST_F(OddEtcd, AWatchThatIsRefusedIsTriedAgainWithBackOff)
{
    Rollout rollout(config, "web1", "");
    std::atomic<int> changed{0};
    rollout.start([&](const std::string&) { ++changed; });
    ASSERT_TRUE(reaches(watches, 3));
    {
        std::lock_guard lock(mutex);
        EXPECT_GE(watched_at[1] - watched_at[0], std::chrono::milliseconds(900));  // 1 s
        EXPECT_GE(watched_at[2] - watched_at[1], std::chrono::milliseconds(1900)); // then 2 s
    }
    EXPECT_EQ(changed, 0); // never set up: nobody is told to look again
    rollout.stop();
}

} // namespace
} // namespace gitopper
