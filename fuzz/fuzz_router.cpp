// The control API's route table on arbitrary requests. Input: a request line, then after the
// first newline the text the engine publishes for a service (its state info and a history
// result), which comes from git's output and so is not ours to trust either.
// Both roles are tried: a read-only key never changes anything, every reply has a known
// status, errors are one non-empty line and successes are "OK" or a JSON object.

#include <algorithm>
#include <array>
#include <string>

#include <nlohmann/json.hpp>

#include "api/router.hpp"
#include "check.hpp"

using namespace gitopper;
using fuzz::check;

namespace {

// Two services whose published text is the fuzzer's; records the calls that change things.
class FakeControl final : public Control {
public:
    explicit FakeControl(std::string text) : m_text(std::move(text)) {}

    int changes = 0;

    Result<> freeze(const std::string&, const FreezeOrder&) override { return change(); }
    Completion diff(const std::string&) override { return {}; }
    Completion release(const std::string&, const std::string&) override { return {}; }
    Result<> unfreeze(const std::string&) override { return change(); }
    Result<> pull(const std::string&) override { return change(); }
    Completion rollback(const std::string&, const std::string&, bool) override
    {
        (void)change();
        return {};
    }
    std::vector<Status> statuses() const override
    {
        std::vector<Status> all(2);
        all[0].service = "grafana-server";
        all[0].state = State::broken;
        all[0].info = m_text;
        all[0].hash = "606eb576c1b91248e4c1c4cd0d720f27ac0deb70";
        all[1].service = "web";
        return all;
    }
    Result<std::deque<HistoryEntry>> history(const std::string& service) const override
    {
        if (service != "grafana-server" && service != "web") {
            return fail("service \"{}\" not found", service);
        }
        return std::deque<HistoryEntry>{{1668762892, "aaaa", "bbbb", "poll", m_text}};
    }

private:
    Result<> change()
    {
        ++changes;
        return {};
    }

    std::string m_text;
};

void check_reply(const Reply& reply)
{
    constexpr std::array kStatuses{0, 400, 401, 404, 406, 500};
    check(std::find(kStatuses.begin(), kStatuses.end(), reply.status) != kStatuses.end(),
          "the status is one the API documents");
    if (reply.status != 0) {
        check(!reply.body.empty() && reply.body.find('\n') == std::string::npos,
              "an error is one non-empty line");
        return;
    }
    if (reply.body != "OK") {
        const auto json = nlohmann::json::parse(reply.body, nullptr, false);
        check(!json.is_discarded() && json.is_object(), "a success is OK or a JSON object");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const auto input = fuzz::text_of(data, size);
    const auto newline = input.find('\n');
    const auto request = input.substr(0, newline);
    const auto text =
        newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
    FakeControl control{std::string(text)};
    const Router router(control, {"grafana.example.org", "web1"}, "thishost");

    const auto read_only = router.handle(request, Role::read_only);
    check_reply(read_only);
    check(control.changes == 0, "a read-only key changes nothing");
    const auto read_write = router.handle(request, Role::read_write);
    check_reply(read_write);
    if (read_only.status == 0) {
        check(read_write.status == 0 && read_write.body == read_only.body,
              "a read-write key can do what a read-only key can");
    }

    std::uint64_t counted = 0;
    for (const auto& [key, count] : router.requests()) {
        counted += count;
    }
    check(counted == 2, "every request is counted once");
    return 0;
}
