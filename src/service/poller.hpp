#pragma once
// A poll group: the services that share one object store (mount base, upstream, user), on
// any branches. Its thread owns the store and their work trees: it starts them, asks upstream
// once per cycle with one `git ls-remote` for all their branches, fetches once when a head
// moved, reconciles the services whose deployed commit differs, reverts local drift, and
// carries out operator
// requests. Between cycles it sleeps in poll() on an eventfd (requests, shutdown) and the
// inotify fd of its DriftWatcher. Checkouts that inotify does not watch (over their watch
// budget) and services with local edits not yet saved are looked at with `git status` every
// scan interval instead.

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "git/store.hpp"
#include "service/drift.hpp"
#include "service/managed.hpp"
#include "util/duration.hpp"
#include "util/progress.hpp"
#include "util/prometheus.hpp"
#include "util/wake.hpp"

namespace gitopper {

// Durations of poll cycles (ls-remote plus the reconciles it caused), for the metrics.
Histogram& sync_durations();

struct Request {
    enum class Kind { pull, webhook, freeze, unfreeze, rollback, diff, rollout };
    Kind kind;
    std::size_t service; // index in the group
    std::string hash;    // for rollback
    bool force = false;  // for rollback: any fetched commit, not only the branch's history
    // Set when the request has been carried out (rollback, diff: the caller waits for it).
    std::shared_ptr<std::promise<Completion>> done;
    FreezeOrder freeze; // for freeze
};

class PollGroup {
public:
    // `slack`: the longest one step of the thread may take beyond the children it waits for
    // (see Progress); longer, and it is reported stuck.
    PollGroup(Store& store, std::vector<ManagedService*> services, Duration interval,
              std::chrono::milliseconds slack);
    ~PollGroup();
    PollGroup(const PollGroup&) = delete;
    PollGroup& operator=(const PollGroup&) = delete;

    void start();
    void stop(); // wakes the thread and joins it

    // Thread-safe: queues the request and wakes the thread.
    void request(Request request);

    const std::vector<ManagedService*>& services() const { return m_services; }
    const std::string& upstream() const { return m_store.upstream(); }
    // Thread-safe: how long the thread is past its deadline (zero while it gets somewhere).
    std::chrono::milliseconds late() const { return m_progress.late(); }

private:
    using Clock = std::chrono::steady_clock;
    Clock::time_point next_timed() const;
    void timed_wakes(bool& poll_now);

    void run();
    void start_services();
    void cycle(Clock::time_point& next_poll);
    void for_each_service(std::string_view what, const std::function<void(ManagedService&)>& step);
    void prepare_fresh();
    void poll_upstream(Trigger trigger);
    std::map<std::string, Result<std::string>> fetch_heads(Trigger trigger);
    void handle(const Request& request, bool& poll_now, Trigger& trigger);
    void handle_all(std::deque<Request>& requests, bool& poll_now, Trigger& trigger);
    void fix_drift();
    void scan_unwatched();
    void rewatch(std::size_t id);
    void plan_scan(std::size_t id);
    void look_again(std::size_t id);
    void wait(Clock::time_point until);
    void stall_if_asked(const ManagedService& service);
    bool stopping();
    Clock::time_point next_poll_after(bool failed);
    // Its interval from now, plus `spread` (0 to 0.5) of it: one draw per cycle, so services of
    // one interval stay in step and share each fetch.
    Clock::time_point due_after(std::size_t id, double spread, Clock::time_point from) const;
    bool due(std::size_t id, Trigger trigger, Clock::time_point now) const;

    Store& m_store;
    std::vector<ManagedService*> m_services;
    std::vector<std::string> m_branches;
    Duration m_interval;
    DriftWatcher m_drift;
    // Services an operator pulled since the last poll: the pull is theirs alone (it retries
    // what failed or was quarantined for them, not for the others of the group).
    std::set<std::size_t> m_pulled;
    std::set<std::size_t> m_dirty; // services with unexamined inotify events
    Clock::time_point m_drift_due = Clock::time_point::max();
    std::chrono::milliseconds m_scan_interval;
    std::set<std::size_t> m_unwatched; // for the scan: not watched, or edits not yet saved
    Clock::time_point m_scan_due = Clock::time_point::max();
    int m_failures = 0;
    std::vector<Clock::time_point> m_due; // per service: when its next poll is due
    std::vector<bool> m_window_woken;     // per service: polled for the window open now

    Progress m_progress;
    Wake m_wake;
    std::mutex m_mutex; // guards m_requests and m_stop
    std::deque<Request> m_requests;
    bool m_stop = false;
    std::thread m_thread;
};

} // namespace gitopper
