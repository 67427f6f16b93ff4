#include "notify/notice.hpp"

#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace gitopper {
namespace {

std::string rfc3339(std::int64_t time)
{
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(time)));
}

std::string short_of(const std::string& commit)
{
    return commit.empty() ? std::string("nothing") : commit.substr(0, 8);
}

nlohmann::json as_json(const Notice& n)
{
    return {{"host", n.host}, {"service", n.service}, {"event", n.event},
            {"from", n.from}, {"to", n.to},           {"state", n.state},
            {"info", n.info}, {"trigger", n.trigger}, {"time", rfc3339(n.time)}};
}

} // namespace

std::string notice_json(const Notice& notice)
{
    // Invalid UTF-8 (a file name in git's output) is replaced, never a reason not to send.
    return as_json(notice).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string notice_text(const Notice& n)
{
    const auto why = n.info.empty() ? std::string() : ": " + n.info;
    const auto by = n.trigger.empty() ? std::string() : " (" + n.trigger + ")";
    const auto subject = fmt::format("{}: {}", n.host, n.service);
    if (n.event == kEventDeploy) {
        return fmt::format("{} deployed {} → {}{}", subject, short_of(n.from), short_of(n.to), by);
    }
    if (n.event == kEventCheckFailed) {
        return fmt::format("{}: check refused {}, still on {}{}", subject, short_of(n.to),
                           short_of(n.from), why);
    }
    if (n.event == kEventHealthFailed) {
        return fmt::format("{}: health check failed after {}{}", subject, short_of(n.to), why);
    }
    if (n.event == kEventRollback) {
        return fmt::format("{} rolled back {} → {} after its failed health check", subject,
                           short_of(n.from), short_of(n.to));
    }
    if (n.event == kEventDeployFailed) {
        return fmt::format("{}: deploy of {} failed{}", subject, short_of(n.to), why);
    }
    if (n.event == kEventDriftReverted) {
        return fmt::format("{}: local edits reverted at {}{}", subject, short_of(n.to), why);
    }
    return fmt::format("{} is {}{}", subject, n.state, why);
}

std::string slack_json(const Notice& notice)
{
    return nlohmann::json{{"text", notice_text(notice)}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> notice_environment(const Notice& n)
{
    return {"GITOPPER_EVENT=" + n.event,       "GITOPPER_SERVICE=" + n.service,
            "GITOPPER_FROM=" + n.from,         "GITOPPER_TO=" + n.to,
            "GITOPPER_STATE=" + n.state,       "GITOPPER_INFO=" + escape_controls(n.info),
            "GITOPPER_HOST=" + n.host,         "GITOPPER_TRIGGER=" + n.trigger,
            "GITOPPER_TIME=" + rfc3339(n.time)};
}

bool notice_from_json(const std::string& text, Notice& notice)
{
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object()) {
        return false;
    }
    const auto field = [&](const char* key) {
        const auto found = json.find(key);
        return found != json.end() && found->is_string() ? found->get<std::string>()
                                                         : std::string();
    };
    notice = Notice{.host = field("host"),
                    .service = field("service"),
                    .event = field("event"),
                    .from = field("from"),
                    .to = field("to"),
                    .state = field("state"),
                    .info = field("info"),
                    .trigger = field("trigger")};
    std::tm tm{};
    const auto time = field("time");
    if (::strptime(time.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) {
        return false;
    }
    notice.time = ::timegm(&tm);
    return !notice.service.empty() && !notice.event.empty();
}

} // namespace gitopper
