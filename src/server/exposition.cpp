#include "server/exposition.hpp"

#include "git/git.hpp"
#include "service/poller.hpp"
#include "util/prometheus.hpp"

namespace gitopper {
namespace {

double seconds(std::chrono::system_clock::time_point time)
{
    return time.time_since_epoch().count() == 0
               ? 0
               : std::chrono::duration<double>(time.time_since_epoch()).count();
}

// One family whose samples come one per service.
template <typename Value>
void per_service(MetricsText& out, const std::vector<Status>& statuses, std::string_view name,
                 std::string_view type, std::string_view help, Value value)
{
    out.family(name, type, help);
    for (const auto& status : statuses) {
        value(status);
    }
}

} // namespace

std::string render_metrics(const Control& control, const Router& router,
                           const std::map<std::string, std::uint64_t>& webhook_results)
{
    const auto statuses = control.statuses();
    MetricsText out;
    per_service(out, statuses, "gitopper_service_info", "gauge",
                "The deployed commit and state of a service (always 1).", [&](const Status& s) {
                    out.sample("gitopper_service_info",
                               {{"service", s.service},
                                {"hash", s.hash},
                                {"state", std::string(state_name(s.state))}},
                               1);
                });
    per_service(
        out, statuses, "gitopper_service_state", "gauge",
        "State of a service: 0 OK, 1 FREEZE, 2 ROLLBACK, 3 BROKEN, 4 DIFF.", [&](const Status& s) {
            out.sample("gitopper_service_state", {{"service", s.service}}, state_number(s.state));
        });
    per_service(out, statuses, "gitopper_service_change_time_seconds", "gauge",
                "When the state or deployed commit of a service last changed (Unix time).",
                [&](const Status& s) {
                    out.sample("gitopper_service_change_time_seconds", {{"service", s.service}},
                               seconds(s.change));
                });
    per_service(out, statuses, "gitopper_service_upstream_info", "gauge",
                "The commit last seen upstream for a service's branch (always 1).",
                [&](const Status& s) {
                    out.sample("gitopper_service_upstream_info",
                               {{"service", s.service}, {"hash", s.upstream}}, 1);
                });
    per_service(out, statuses, "gitopper_service_last_sync_timestamp_seconds", "gauge",
                "When a reconcile of the service last ended well (Unix time).",
                [&](const Status& s) {
                    out.sample("gitopper_service_last_sync_timestamp_seconds",
                               {{"service", s.service}}, seconds(s.synced));
                });
    per_service(out, statuses, "gitopper_service_drift_events_total", "counter",
                "Local edits found in the checkout and reverted.", [&](const Status& s) {
                    out.sample("gitopper_service_drift_events_total", {{"service", s.service}},
                               static_cast<double>(s.drift_events));
                });
    per_service(out, statuses, "gitopper_service_actions_total", "counter",
                "systemctl runs after a change, by result.", [&](const Status& s) {
                    out.sample("gitopper_service_actions_total",
                               {{"service", s.service}, {"result", "ok"}},
                               static_cast<double>(s.actions_ok));
                    out.sample("gitopper_service_actions_total",
                               {{"service", s.service}, {"result", "error"}},
                               static_cast<double>(s.actions_failed));
                });
    per_service(
        out, statuses, "gitopper_service_check_total", "counter",
        "`check` runs on a staged commit before it went live, by result.", [&](const Status& s) {
            out.sample("gitopper_service_check_total", {{"service", s.service}, {"result", "ok"}},
                       static_cast<double>(s.checks_passed));
            out.sample("gitopper_service_check_total",
                       {{"service", s.service}, {"result", "failed"}},
                       static_cast<double>(s.checks_failed));
        });
    per_service(out, statuses, "gitopper_service_health_total", "counter",
                "`health` after an action, by its outcome over all tries.", [&](const Status& s) {
                    out.sample("gitopper_service_health_total",
                               {{"service", s.service}, {"result", "ok"}},
                               static_cast<double>(s.health_passed));
                    out.sample("gitopper_service_health_total",
                               {{"service", s.service}, {"result", "failed"}},
                               static_cast<double>(s.health_failed));
                });
    per_service(out, statuses, "gitopper_service_rollbacks_total", "counter",
                "Automatic rollbacks, by reason.", [&](const Status& s) {
                    out.sample("gitopper_service_rollbacks_total",
                               {{"service", s.service}, {"reason", "health"}},
                               static_cast<double>(s.rollbacks));
                });
    out.family("gitopper_service_sync_duration_seconds", "histogram",
               "Duration of a poll cycle: ls-remote and the reconciles it caused.");
    sync_durations().write(out, "gitopper_service_sync_duration_seconds");

    const auto& git = git_counters();
    out.family("gitopper_machine_git_ops_total", "counter", "git processes run.");
    out.sample("gitopper_machine_git_ops_total", {}, static_cast<double>(git.ops.load()));
    out.family("gitopper_machine_git_errors_total", "counter", "git processes that failed.");
    out.sample("gitopper_machine_git_errors_total", {}, static_cast<double>(git.errors.load()));

    out.family("gitopper_api_requests_total", "counter",
               "Control API requests by route and status (0 is success).");
    for (const auto& [key, count] : router.requests()) {
        out.sample("gitopper_api_requests_total",
                   {{"route", key.first}, {"code", std::to_string(key.second)}},
                   static_cast<double>(count));
    }
    out.family("gitopper_webhook_requests_total", "counter", "Webhook requests by result.");
    for (const auto& result : {"ok", "unauthorized", "bad_request", "too_large"}) {
        const auto found = webhook_results.find(result);
        out.sample("gitopper_webhook_requests_total", {{"result", result}},
                   found == webhook_results.end() ? 0 : static_cast<double>(found->second));
    }
    out.family("gitopper_build_info", "gauge", "The running gitopper's version (always 1).");
    out.sample("gitopper_build_info", {{"version", GITOPPER_VERSION}}, 1);
    return out.text();
}

} // namespace gitopper
