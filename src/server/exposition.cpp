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

// The families of the notify targets, or of the commit-status channel (one per forge).
struct DeliveryFamilies {
    bool status;
    const char* label;
    const char* results; // counter, by result
    const char* results_help;
    const char* failed; // counter
    const char* failed_help;
    const char* pending; // gauge
    const char* pending_help;
};

constexpr DeliveryFamilies kNotifyFamilies{
    false,
    "target",
    "gitopper_notify_events_total",
    "Events for a notify target, by result: sent (taken by the receiver) or dropped (refused "
    "by it, or pushed out of a full queue).",
    "gitopper_notify_failed_tries_total",
    "Tries to deliver an event to a notify target that failed and are retried.",
    "gitopper_notify_pending_events",
    "Events waiting in a notify target's queue."};

constexpr DeliveryFamilies kStatusFamilies{
    true,
    "forge",
    "gitopper_status_requests_total",
    "Commit statuses for the forge, by result: sent (set at the forge) or dropped (refused by "
    "it, or pushed out of a full queue).",
    "gitopper_status_failed_tries_total",
    "Calls to the forge's API that failed and are retried.",
    "gitopper_status_pending_requests",
    "Commit statuses waiting to be sent."};

void delivery_families(MetricsText& out, const std::vector<TargetCounts>& counts,
                       const DeliveryFamilies& f)
{
    std::vector<const TargetCounts*> mine;
    for (const auto& target : counts) {
        if (target.status == f.status) {
            mine.push_back(&target);
        }
    }
    out.family(f.results, "counter", f.results_help);
    for (const auto* t : mine) {
        out.sample(f.results, {{f.label, t->target}, {"result", "sent"}},
                   static_cast<double>(t->sent));
        out.sample(f.results, {{f.label, t->target}, {"result", "dropped"}},
                   static_cast<double>(t->dropped));
    }
    out.family(f.failed, "counter", f.failed_help);
    for (const auto* t : mine) {
        out.sample(f.failed, {{f.label, t->target}}, static_cast<double>(t->failed_tries));
    }
    out.family(f.pending, "gauge", f.pending_help);
    for (const auto* t : mine) {
        out.sample(f.pending, {{f.label, t->target}}, static_cast<double>(t->pending));
    }
}

// The fleet rollout (fleet/): where each service stands, and how etcd answers.
void rollout_families(MetricsText& out, const std::vector<Status>& statuses,
                      const RolloutCounts& rollout)
{
    struct Family {
        const char* name;
        const char* type;
        const char* help;
        double (*value)(const Status&);
    };
    static constexpr std::array<Family, 6> kFamilies{{
        {"gitopper_rollout_waiting", "gauge",
         "1 while the service's new commit waits in line for a rollout slot.",
         [](const Status& s) { return s.waiting_for_slot ? 1.0 : 0.0; }},
        {"gitopper_rollout_holding", "gauge",
         "1 while this host deploys the service's new commit in a rollout slot.",
         [](const Status& s) { return s.holding_slot ? 1.0 : 0.0; }},
        {"gitopper_rollout_held", "gauge",
         "1 while the service's upstream commit is held: it failed its health check on a host.",
         [](const Status& s) { return s.held ? 1.0 : 0.0; }},
        {"gitopper_rollout_slots_taken_total", "counter", "Rollout slots this host took.",
         [](const Status& s) { return static_cast<double>(s.slots_taken); }},
        {"gitopper_rollout_wait_seconds_total", "counter",
         "Time new commits waited in line for a rollout slot.",
         [](const Status& s) { return s.slot_wait_seconds; }},
        {"gitopper_rollout_marked_bad_total", "counter",
         "Commits this host marked bad for the fleet (their health check failed here).",
         [](const Status& s) { return static_cast<double>(s.marked_bad); }},
    }};
    for (const auto& family : kFamilies) {
        per_service(out, statuses, family.name, family.type, family.help, [&](const Status& s) {
            out.sample(family.name, {{"service", s.service}}, family.value(s));
        });
    }
    out.family("gitopper_rollout_etcd_requests_total", "counter", "Requests sent to etcd.");
    out.sample("gitopper_rollout_etcd_requests_total", {}, static_cast<double>(rollout.requests));
    out.family("gitopper_rollout_etcd_failures_total", "counter",
               "Calls to etcd that no member answered.");
    out.sample("gitopper_rollout_etcd_failures_total", {}, static_cast<double>(rollout.failures));
    out.family("gitopper_rollout_lease", "gauge", "1 while this daemon holds an etcd lease.");
    out.sample("gitopper_rollout_lease", {}, rollout.lease ? 1 : 0);
}

} // namespace

std::string render_metrics(const Control& control, const Router& router,
                           const std::map<std::string, std::uint64_t>& webhook_results,
                           const std::vector<TargetCounts>& notify, const RolloutCounts* rollout)
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
    per_service(out, statuses, "gitopper_service_waiting_for_window", "gauge",
                "1 while a checked commit of the service waits for a maintenance window.",
                [&](const Status& s) {
                    out.sample("gitopper_service_waiting_for_window", {{"service", s.service}},
                               s.waiting_for_window ? 1 : 0);
                });
    per_service(out, statuses, "gitopper_service_freeze_expiry_timestamp_seconds", "gauge",
                "When a service's freeze ends by itself (Unix time); only for a freeze with an "
                "end.",
                [&](const Status& s) {
                    if (s.state == State::freeze && s.freeze.until != 0) {
                        out.sample("gitopper_service_freeze_expiry_timestamp_seconds",
                                   {{"service", s.service}}, static_cast<double>(s.freeze.until));
                    }
                });
    if (rollout != nullptr) {
        rollout_families(out, statuses, *rollout);
    }
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
    delivery_families(out, notify, kNotifyFamilies);
    delivery_families(out, notify, kStatusFamilies);
    out.family("gitopper_build_info", "gauge", "The running gitopper's version (always 1).");
    out.sample("gitopper_build_info", {{"version", GITOPPER_VERSION}}, 1);
    return out.text();
}

} // namespace gitopper
