#pragma once
// The /metrics page: every metric of SPEC §7, computed at scrape time from the services'
// published status, so a series that no longer applies (an old hash or state) is simply gone.

#include <cstdint>
#include <map>
#include <string>

#include "api/router.hpp"
#include "fleet/rollout.hpp"
#include "notify/notifier.hpp"

namespace gitopper {

// `notify`: the notify targets' counts (Notifier::counts); `rollout`: the fleet rollout's
// (nullptr without one: no gitopper_rollout_* series).
std::string render_metrics(const Control& control, const Router& router,
                           const std::map<std::string, std::uint64_t>& webhook_results,
                           const std::vector<TargetCounts>& notify = {},
                           const RolloutCounts* rollout = nullptr);

} // namespace gitopper
