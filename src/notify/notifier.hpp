#pragma once
// Where services' events go (SPEC §6): one queue and one thread per distinct target, so a slow
// or dead receiver holds up nothing but its own events. post() never blocks on delivery: a
// poll thread hands an event over and goes on. A failed try is retried with back-off (1 s
// doubling to 30 s) as long as the daemon runs; the queue keeps at most `queue_limit` events,
// and beyond that the oldest is dropped (logged, counted). A clean stop saves what is still
// pending in the state dir; the next start sends it first.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"
#include "notify/notice.hpp"
#include "util/error.hpp"

namespace gitopper {

struct NotifierOptions {
    std::string host;      // this host's name, in every event
    std::string state_dir; // where pending events wait across a restart
    std::size_t queue_limit = 1000;
    std::chrono::milliseconds first_backoff{1000};
    std::chrono::milliseconds max_backoff{30000};
};

// What the metrics show of one target.
struct TargetCounts {
    bool status = false; // the commit-status channel (`target` is then the forge)
    std::string target;  // its label
    std::uint64_t sent = 0;
    std::uint64_t failed_tries = 0;
    std::uint64_t dropped = 0;
    std::size_t pending = 0;
};

class Notifier {
public:
    // One queue per distinct target of `services`, and one for `status` (commit statuses of
    // every service); their secrets are read now (an error names the file). No thread runs
    // before start().
    [[nodiscard]] static Result<std::unique_ptr<Notifier>>
    make(const std::vector<Service>& services, const std::optional<StatusTarget>& status,
         NotifierOptions options);
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // The events a clean stop left, then one thread per target.
    void start();
    // Ends the threads (waiting at most the longest timeout and 2 s for a try in flight) and
    // saves what is pending, the events in flight included.
    void stop();
    // `notice` (its host filled in here) to each of `targets`, and as a commit status when it
    // sets one; thread-safe, never blocks on delivery. Targets not known at make() are ignored.
    void post(Notice notice, std::span<const NotifyTarget> targets);
    // Whether there is anywhere for a service's events to go at all.
    bool reports_status() const;

    std::vector<TargetCounts> counts() const;

private:
    struct Channel;
    explicit Notifier(NotifierOptions options);
    // Touches nothing of the Notifier's: a thread the stop gave up on may outlive it.
    static void run(Channel& channel, std::chrono::milliseconds first_backoff,
                    std::chrono::milliseconds max_backoff);
    void enqueue(Channel& channel, const Notice& notice);
    void load_pending();
    std::size_t take_pending(const nlohmann::json& file);
    void save_pending();
    std::string pending_path() const;

    NotifierOptions m_options;
    std::vector<std::unique_ptr<Channel>> m_channels;
    bool m_started = false;
};

} // namespace gitopper
