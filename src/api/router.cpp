#include "api/router.hpp"

#include <algorithm>
#include <array>
#include <exception>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/duration.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// Objects keep their keys in the order written: the Go daemon's order, which its users see.
using json = nlohmann::ordered_json;

constexpr std::size_t kMaxRequest = 1024;
constexpr std::size_t kGoHashLength = 8; // `hash` as the Go daemon sends it
constexpr std::size_t kMaxReason = 256;  // bytes of a freeze's reason
constexpr std::size_t kMaxReasonWords = 64;

struct Route {
    std::string_view path;
    std::size_t min_args;
    std::size_t max_args;
    bool changes_state; // /do/ routes: read-write keys only
    Reply (Router::*handler)(const Router::Call&) const;
};

Reply ok()
{
    return {0, "OK"};
}
Reply error(int status, std::string text)
{
    return {status, std::move(text)};
}

// What the engine publishes comes from git's output, which need not be UTF-8; JSON must be, so
// bad bytes become U+FFFD instead of an exception that would end the connection's thread.
std::string dump(const json& value)
{
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool has_control_characters(std::string_view text)
{
    return std::any_of(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
    });
}

} // namespace

std::string rfc1123(std::chrono::system_clock::time_point time)
{
    return fmt::format("{:%a, %d %b %Y %H:%M:%S} UTC",
                       fmt::gmtime(std::chrono::system_clock::to_time_t(time)));
}

Router::Router(Control& control, std::vector<std::string> machines, std::string actual)
    : m_control(control), m_machines(std::move(machines)), m_actual(std::move(actual))
{
}

Reply Router::handle(std::string_view request, Role role, std::string_view who) const
{
    std::string route = "unknown";
    Reply reply;
    try {
        reply = dispatch(request, role, who, route);
    } catch (const std::exception& e) {
        // A bug in one request must not end the daemon (SSH sessions have no other catch).
        log::error("api: {} failed: {}", quote(request), e.what());
        reply = {500, "internal error"};
    }
    // Whatever an answer quotes (state info, history, git's messages), no URL password leaves.
    reply.body = redact_credentials(reply.body);
    std::lock_guard lock(m_mutex);
    ++m_requests[{route, reply.status}];
    return reply;
}

std::map<std::pair<std::string, int>, std::uint64_t> Router::requests() const
{
    std::lock_guard lock(m_mutex);
    return m_requests;
}

Reply Router::dispatch(std::string_view request, Role role, std::string_view who,
                       std::string& route_name) const
{
    static constexpr std::array kRoutes{
        Route{"/list/machine", 0, 0, false, &Router::list_machines},
        Route{"/list/service", 0, 1, false, &Router::list_services},
        Route{"/list/history", 1, 1, false, &Router::list_history},
        Route{"/list/diff", 1, 1, false, &Router::list_diff},
        Route{"/do/freeze", 1, kMaxReasonWords + 2, true, &Router::freeze},
        Route{"/do/unfreeze", 1, 1, true, &Router::unfreeze},
        Route{"/do/pull", 1, 1, true, &Router::pull},
        Route{"/do/rollback", 2, 3, true, &Router::rollback},
        Route{"/do/release", 2, 2, true, &Router::release},
    };
    if (request.size() > kMaxRequest || has_control_characters(request)) {
        return error(400, "bad request");
    }
    const auto args = split_blanks(request);
    if (args.empty()) {
        return error(400, "empty request; try /list/service");
    }
    const auto route = std::find_if(kRoutes.begin(), kRoutes.end(),
                                    [&](const Route& r) { return r.path == args[0]; });
    if (route == kRoutes.end()) {
        return error(404, fmt::format("unknown request {}", quote(args[0])));
    }
    route_name = route->path;
    if (route->changes_state && role != Role::read_write) {
        return error(401, fmt::format("{} needs a read-write key", route->path));
    }
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (rest.size() < route->min_args || rest.size() > route->max_args) {
        return error(400,
                     fmt::format("{} takes {} argument{}", route->path,
                                 route->min_args == route->max_args
                                     ? std::to_string(route->min_args)
                                     : fmt::format("{} to {}", route->min_args, route->max_args),
                                 route->max_args == 1 ? "" : "s"));
    }
    return (this->*route->handler)(Call{rest, who});
}

bool Router::exists(const std::string& service) const
{
    const auto all = m_control.statuses();
    return std::any_of(all.begin(), all.end(),
                       [&](const Status& s) { return s.service == service; });
}

Reply Router::list_machines(const Call&) const
{
    json machines = json::array();
    for (const auto& machine : m_machines) {
        machines.push_back({{"machine", machine}, {"actual", m_actual}});
    }
    return {0, dump(json{{"machines", machines}})};
}

Reply Router::list_services(const Call& call) const
{
    const auto& args = call.args;
    // As the Go daemon writes it: its keys in its order, `hash` cut to 8 hex digits; then ours.
    json services = json::array();
    for (const auto& status : m_control.statuses()) {
        if (!args.empty() && status.service != args[0]) {
            continue;
        }
        services.push_back({{"service", status.service},
                            {"hash", status.hash.substr(0, kGoHashLength)},
                            {"state", state_name(status.state)},
                            {"stateinfo", status.info},
                            {"change", rfc1123(status.change)},
                            {"commit", status.hash},
                            {"upstream_commit", status.upstream},
                            {"branch", status.branch}});
        if (status.state == State::freeze && status.freeze.at != 0) {
            const auto& freeze = status.freeze;
            auto& entry = services.back();
            entry["frozen_by"] = freeze.by;
            entry["frozen_at"] = rfc1123(std::chrono::system_clock::from_time_t(freeze.at));
            entry["frozen_reason"] = freeze.reason;
            entry["frozen_until"] =
                freeze.until == 0 ? std::string()
                                  : rfc1123(std::chrono::system_clock::from_time_t(freeze.until));
        }
    }
    if (!args.empty() && services.empty()) {
        return error(404, fmt::format("service {} not found", quote(args[0])));
    }
    return {0, dump(json{{"services", services}})};
}

Reply Router::list_history(const Call& call) const
{
    const auto& args = call.args;
    auto history = m_control.history(args[0]);
    if (!history) {
        return error(404, history.error().message);
    }
    json entries = json::array();
    for (const auto& entry : *history) {
        entries.push_back({{"time", rfc1123(std::chrono::system_clock::from_time_t(entry.time))},
                           {"from", entry.from},
                           {"to", entry.to},
                           {"trigger", entry.trigger},
                           {"result", entry.result}});
    }
    return {0, dump(json{{"service", args[0]}, {"history", entries}})};
}

Reply Router::list_diff(const Call& call) const
{
    if (!exists(call.args[0])) {
        return error(404, fmt::format("service {} not found", quote(call.args[0])));
    }
    auto done = m_control.diff(call.args[0]);
    return done.status == 0 ? Reply{0, done.message} : error(done.status, done.message);
}

Reply Router::on_service(const std::string& service,
                         Result<> (Control::*operation)(const std::string&)) const
{
    if (!exists(service)) {
        return error(404, fmt::format("service {} not found", quote(service)));
    }
    auto done = (m_control.*operation)(service);
    return done ? ok() : error(500, done.error().message);
}

// "/do/freeze SERVICE [for=DURATION] [REASON...]": the Go client's plain form, or with an
// expiry and a reason, which the freeze keeps with who asked and when.
Reply Router::freeze(const Call& call) const
{
    const auto& args = call.args;
    FreezeOrder order{.by = std::string(call.who)};
    auto words = args.begin() + 1;
    if (words != args.end() && words->starts_with("for=")) {
        const auto text = words->substr(4);
        auto duration = parse_duration(text);
        if (!duration) {
            return error(400, fmt::format("for={}: {}", text, duration.error().message));
        }
        if (*duration < std::chrono::seconds(1) || *duration > std::chrono::days(366)) {
            return error(400, fmt::format("for={} is out of range (1s to 366 days)", text));
        }
        order.duration = std::chrono::duration_cast<std::chrono::seconds>(*duration);
        ++words;
    }
    order.reason = join(std::vector<std::string>(words, args.end()), " ");
    if (order.reason.size() > kMaxReason) {
        return error(400, fmt::format("the reason is longer than {} bytes", kMaxReason));
    }
    if (!exists(args[0])) {
        return error(404, fmt::format("service {} not found", quote(args[0])));
    }
    auto done = m_control.freeze(args[0], order);
    return done ? ok() : error(500, done.error().message);
}

Reply Router::unfreeze(const Call& call) const
{
    return on_service(call.args[0], &Control::unfreeze);
}

Reply Router::pull(const Call& call) const
{
    return on_service(call.args[0], &Control::pull);
}

Reply Router::rollback(const Call& call) const
{
    const auto& args = call.args;
    if (args.size() == 3 && args[2] != "force") {
        return error(400, fmt::format("the third argument of /do/rollback can only be \"force\", "
                                      "not {}",
                                      quote(args[2])));
    }
    if (!is_commit_hash(args[1])) {
        return error(406, fmt::format("not a valid git hash: {}", quote(args[1])));
    }
    if (!exists(args[0])) {
        return error(404, fmt::format("service {} not found", quote(args[0])));
    }
    auto done = m_control.rollback(args[0], args[1], args.size() == 3);
    return done.status == 0 ? ok() : error(done.status, done.message);
}

// "/do/release SERVICE COMMIT": the fleet rollout's mark on a commit that failed its health
// check somewhere is removed, and every host may apply it again.
Reply Router::release(const Call& call) const
{
    const auto& args = call.args;
    if (!is_commit_hash(args[1])) {
        return error(406, fmt::format("not a valid git hash: {}", quote(args[1])));
    }
    if (!exists(args[0])) {
        return error(404, fmt::format("service {} not found", quote(args[0])));
    }
    auto done = m_control.release(args[0], to_lower(args[1]));
    return done.status == 0 ? ok() : error(done.status, done.message);
}

} // namespace gitopper
