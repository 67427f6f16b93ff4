#include "api/router.hpp"

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

// Records what the routes asked for.
class FakeControl final : public Control {
public:
    std::vector<std::string> calls;
    std::string info = "ROLLBACK: 606eb576"; // what git said, as the engine publishes it
    std::string result = "ok";
    bool throws = false; // a bug somewhere below the router
    bool refuse_rollback = false;

    Result<> freeze(const std::string& s, const FreezeOrder& order) override
    {
        last_freeze = order;
        return note("freeze " + s);
    }
    FreezeOrder last_freeze;
    Completion diff(const std::string& s) override
    {
        calls.push_back("diff " + s);
        return {0, R"({"service":")" + s + R"("})"};
    }
    Result<> unfreeze(const std::string& s) override { return note("unfreeze " + s); }
    Result<> pull(const std::string& s) override
    {
        if (throws) {
            throw std::runtime_error("bug");
        }
        return note("pull " + s);
    }
    Completion rollback(const std::string& s, const std::string& h, bool force) override
    {
        (void)note("rollback " + s + " " + h + (force ? " force" : ""));
        return refuse_rollback ? Completion{404, "commit " + h + " is not in the history"}
                               : Completion{};
    }
    Completion release(const std::string& s, const std::string& c) override
    {
        (void)note("release " + s + " " + c);
        return {};
    }
    std::vector<Status> statuses() const override
    {
        Status status;
        status.service = "grafana-server";
        status.branch = "main";
        status.hash = "606eb576c1b91248e4c1c4cd0d720f27ac0deb70";
        status.upstream = "7a1e1b2c3d4e5f60718293a4b5c6d7e8f9012345";
        status.state = State::freeze;
        status.info = info;
        status.change = std::chrono::system_clock::from_time_t(1668762892);
        return {status};
    }
    Result<std::deque<HistoryEntry>> history(const std::string& s) const override
    {
        if (s != "grafana-server") {
            return fail("service \"{}\" not found", s);
        }
        return std::deque<HistoryEntry>{{1668762892, "aaaa", "bbbb", "poll", result}};
    }

private:
    Result<> note(std::string call)
    {
        calls.push_back(std::move(call));
        return {};
    }
};

struct RouterTest : testing::Test {
    FakeControl control;
    Router router{control, {"grafana.example.org", "web1"}, "thishost"};
};

} // namespace

TEST_F(RouterTest, ListServiceUsesTheGoFieldNames)
{
    const auto reply = router.handle("/list/service", Role::read_only);
    EXPECT_EQ(reply.status, 0);
    // The Go daemon's keys in its order, `hash` as 8 hex digits as it sends it; then ours.
    EXPECT_EQ(reply.body, R"({"services":[{"service":"grafana-server","hash":"606eb576",)"
                          R"("state":"FREEZE","stateinfo":"ROLLBACK: 606eb576",)"
                          R"("change":"Fri, 18 Nov 2022 09:14:52 UTC",)"
                          R"("commit":"606eb576c1b91248e4c1c4cd0d720f27ac0deb70",)"
                          R"("upstream_commit":"7a1e1b2c3d4e5f60718293a4b5c6d7e8f9012345",)"
                          R"("branch":"main"}]})");
    EXPECT_EQ(router.handle("/list/service nope", Role::read_only).status, 404);
    EXPECT_EQ(router.handle("/list/service grafana-server", Role::read_only).status, 0);
}

TEST_F(RouterTest, ListMachineAndHistory)
{
    const auto machines = router.handle("/list/machine", Role::read_only);
    EXPECT_EQ(machines.body,
              R"({"machines":[{"machine":"grafana.example.org","actual":"thishost"},)"
              R"({"machine":"web1","actual":"thishost"}]})");
    const auto history = router.handle("/list/history grafana-server", Role::read_only);
    EXPECT_EQ(history.status, 0);
    EXPECT_NE(history.body.find(R"("trigger":"poll")"), std::string::npos);
    EXPECT_EQ(router.handle("/list/history other", Role::read_only).status, 404);
}

TEST_F(RouterTest, ReadOnlyKeysCannotChangeAnything)
{
    for (const auto* request :
         {"/do/freeze grafana-server", "/do/unfreeze grafana-server", "/do/pull grafana-server",
          "/do/rollback grafana-server abcd", "/do/release grafana-server abcd"}) {
        EXPECT_EQ(router.handle(request, Role::read_only).status, 401) << request;
    }
    EXPECT_TRUE(control.calls.empty());
}

TEST_F(RouterTest, ReleaseTakesTheHashInLowerCase)
{
    EXPECT_EQ(router.handle("/do/release grafana-server ABCD1234", Role::read_write).status, 0);
    EXPECT_EQ(control.calls, (std::vector<std::string>{"release grafana-server abcd1234"}));
}

TEST_F(RouterTest, ArgumentsAreCheckedBeforeAnythingRuns)
{
    EXPECT_EQ(router.handle("/do/rollback grafana-server xyz1", Role::read_write).status, 406);
    EXPECT_EQ(router.handle("/do/rollback grafana-server --force", Role::read_write).status, 406);
    EXPECT_EQ(router.handle("/do/rollback nope abcd", Role::read_write).status, 404);
    EXPECT_EQ(router.handle("/do/rollback grafana-server abcd forced", Role::read_write).status,
              400);
    EXPECT_EQ(router.handle("/do/rollback grafana-server abcd force x", Role::read_write).status,
              400);
    EXPECT_EQ(router.handle("/do/release grafana-server", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/release grafana-server xyz1", Role::read_write).status, 406);
    EXPECT_EQ(router.handle("/do/release nope abcd", Role::read_write).status, 404);
    EXPECT_EQ(router.handle("/do/release grafana-server abcd x", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze a b", Role::read_write).status, 404); // b: the reason
    EXPECT_EQ(router.handle("/do/freeze nope", Role::read_write).status, 404);
    EXPECT_EQ(router.handle("/do/freeze grafana-server for=soon", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze grafana-server for=0s", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze grafana-server for=400d", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze grafana-server " + std::string(300, 'x'), Role::read_write)
                  .status,
              400);
    EXPECT_EQ(router.handle("/do/explode x", Role::read_write).status, 404);
    EXPECT_EQ(router.handle("", Role::read_write).status, 400);
    EXPECT_EQ(router.handle("/do/freeze grafana-server\n/do/pull x", Role::read_write).status, 400);
    EXPECT_TRUE(control.calls.empty());
}

TEST_F(RouterTest, DiffIsReadOnlyAndAsksTheControl)
{
    const auto reply = router.handle("/list/diff grafana-server", Role::read_only);
    EXPECT_EQ(reply.status, 0);
    EXPECT_EQ(reply.body, R"({"service":"grafana-server"})");
    EXPECT_EQ(router.handle("/list/diff nope", Role::read_only).status, 404);
    EXPECT_EQ(router.handle("/list/diff", Role::read_only).status, 400);
    EXPECT_EQ(control.calls, (std::vector<std::string>{"diff grafana-server"}));
}

TEST_F(RouterTest, AFreezeCarriesWhoWhyAndHowLong)
{
    EXPECT_EQ(router
                  .handle("/do/freeze grafana-server for=2h release  of 4.2", Role::read_write,
                          "alice@laptop")
                  .body,
              "OK");
    EXPECT_EQ(control.last_freeze.by, "alice@laptop");
    EXPECT_EQ(control.last_freeze.reason, "release of 4.2");
    EXPECT_EQ(control.last_freeze.duration, std::chrono::hours(2));
    // The Go client's plain form: no reason, no end.
    EXPECT_EQ(router.handle("/do/freeze grafana-server", Role::read_write, "bob").body, "OK");
    EXPECT_EQ(control.last_freeze.by, "bob");
    EXPECT_EQ(control.last_freeze.reason, "");
    EXPECT_EQ(control.last_freeze.duration, std::chrono::seconds(0));
    // for= only as the first word after the service; later it is part of the reason.
    EXPECT_EQ(router.handle("/do/freeze grafana-server wait for=1h", Role::read_write).body, "OK");
    EXPECT_EQ(control.last_freeze.reason, "wait for=1h");
    EXPECT_EQ(control.last_freeze.duration, std::chrono::seconds(0));
}

TEST_F(RouterTest, DoRoutesReachTheControl)
{
    EXPECT_EQ(router.handle("/do/freeze grafana-server", Role::read_write).body, "OK");
    EXPECT_EQ(router.handle("/do/rollback  grafana-server\tABCD1234", Role::read_write).status, 0);
    EXPECT_EQ(control.calls, (std::vector<std::string>{"freeze grafana-server",
                                                       "rollback grafana-server ABCD1234"}));
    const auto counted = router.requests();
    EXPECT_EQ(counted.at({"/do/freeze", 0}), 1u);
}

TEST_F(RouterTest, RollbackPassesForceAndTheRefusal)
{
    EXPECT_EQ(router.handle("/do/rollback grafana-server abcd force", Role::read_write).status, 0);
    control.refuse_rollback = true;
    const auto refused = router.handle("/do/rollback grafana-server abcd", Role::read_write);
    EXPECT_EQ(refused.status, 404);
    EXPECT_NE(refused.body.find("not in the history"), std::string::npos) << refused.body;
    EXPECT_EQ(control.calls, (std::vector<std::string>{"rollback grafana-server abcd force",
                                                       "rollback grafana-server abcd"}));
}

// Found by fuzz/fuzz_router: git's messages need not be UTF-8 and json::dump() threw on them,
// which ended the daemon from the SSH connection's thread.
TEST_F(RouterTest, TextThatIsNotUtf8StillGivesJson)
{
    control.info = "BROKEN: git fetch: exited 128: fatal: caf\xe9";
    control.result = "checkout failed: \xff\xfe";
    const auto services = router.handle("/list/service", Role::read_only);
    EXPECT_EQ(services.status, 0);
    EXPECT_NE(services.body.find("fatal: caf\xef\xbf\xbd"), std::string::npos) << services.body;
    const auto history = router.handle("/list/history grafana-server", Role::read_only);
    EXPECT_EQ(history.status, 0);
    EXPECT_NE(history.body.find("failed: \xef\xbf\xbd\xef\xbf\xbd"), std::string::npos)
        << history.body;
}

TEST_F(RouterTest, AThrowingHandlerIsA500NotACrash)
{
    control.throws = true;
    const auto reply = router.handle("/do/pull grafana-server", Role::read_write);
    EXPECT_EQ(reply.status, 500);
    EXPECT_EQ(reply.body, "internal error");
    EXPECT_EQ(router.requests().at({"/do/pull", 500}), 1u);
}
