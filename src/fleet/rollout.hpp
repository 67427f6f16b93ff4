#pragma once
// Fleet rollouts (SPEC §6): in etcd, a semaphore per service and commit, so that at most
// `slots` hosts apply a new commit at once, and a mark on a commit whose health check failed
// on some host, so that no other host applies it. Keys, under the config's prefix P:
//
//   P/<service>/<commit>/queue/<host>-<lease>   one per host that wants the commit, on its
//                                               lease: the first `slots` by creation hold
//                                               the slots, the others wait in that order
//   P/<service>/bad/<commit>                    {"host", "why", "time"}: held everywhere
//
// A daemon's keys share one lease, kept alive by this class's thread: a host that dies, or
// loses etcd for longer than lease_ttl, leaves every line it stood in, and its slots are free.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "fleet/etcd.hpp"
#include "util/error.hpp"

namespace gitopper {

// Where this host stands for a service's new commit.
struct Turn {
    enum class Kind { go, wait, held } kind = Kind::wait;
    std::int64_t in_line = 0; // wait: the hosts that want the commit, this one among them
    std::string held_by;      // held: the host whose health check failed
    std::string held_why;     // and what it said
};

struct RolloutCounts {
    std::uint64_t requests = 0; // to etcd
    std::uint64_t failures = 0; // calls no member answered
    bool lease = false;         // a lease is held now
};

class Rollout {
public:
    // `host`: this host's name in the keys (-h); `password` read from password_file.
    Rollout(const RolloutConfig& config, std::string host, std::string password);
    ~Rollout();
    Rollout(const Rollout&) = delete;
    Rollout& operator=(const Rollout&) = delete;

    // The lease's keep-alive and the watch. `changed(service)`: a slot of that service was
    // freed or its marks changed; "" when anything may have (the watch was down, the lease
    // lost). Called on the watch's thread.
    void start(std::function<void(const std::string& service)> changed);
    // What is owed to etcd tried once more, then the lease revoked: this host's slots free.
    void stop();

    // Stands in line for one of `slots` slots for `commit` (once; later calls look where it
    // stands), unless the commit is marked bad. Any line of an older commit of the service is
    // left first.
    [[nodiscard]] Result<Turn> take(const std::string& service, const std::string& commit,
                                    std::int64_t slots);
    // Out of the line and its slot (the health check passed, or the deploy ended here
    // without one). Kept and retried in the background while etcd cannot be reached.
    void leave(const std::string& service, const std::string& commit);
    // `commit`'s health failed here: marked bad for every host (the first mark stays), and
    // this host's slot left; retried like leave().
    void mark_bad(const std::string& service, const std::string& commit, const std::string& why);
    // An operator's word: the mark on the commit of `service` whose hash starts with
    // `prefix` is removed when it is the only one. The marked commits that start so (none,
    // one: removed, several: none removed), or why etcd could not be asked.
    [[nodiscard]] Result<std::vector<std::string>> release(const std::string& service,
                                                           const std::string& prefix);

    RolloutCounts counts() const;
    // How many hosts may apply a new commit of `service` at once.
    std::int64_t slots(const Service& service) const { return m_config.slots(service); }

    // The keys, for tests and the docs.
    std::string queue_prefix(const std::string& service, const std::string& commit) const;
    std::string bad_key(const std::string& service, const std::string& commit) const;

private:
    [[nodiscard]] Result<Turn> take_once(const std::string& service, const std::string& commit,
                                         std::int64_t slots);
    [[nodiscard]] Result<> leave_older(const std::string& service, const std::string& key);
    [[nodiscard]] Result<std::string> lease();
    bool forget_lease(const std::string& lease = "");
    void guarded(std::string_view what, const std::function<void()>& loop);
    [[nodiscard]] Result<nlohmann::json> txn(const nlohmann::json& body);
    void owe(nlohmann::json body, std::string what);
    void pay_owed();
    void keep_alive();
    void keep_alive_once();
    void watch();
    void watched(const nlohmann::json& events);
    bool freed_for_us(const std::string& service, const std::string& key);
    bool wait_for(std::chrono::milliseconds pause); // false once stopping

    RolloutConfig m_config;
    std::string m_host;
    Etcd m_etcd;
    std::function<void(const std::string&)> m_changed;

    std::mutex m_lease_mutex;   // held while a lease is granted
    std::mutex m_pay_mutex;     // held by the one thread paying what is owed
    mutable std::mutex m_mutex; // guards the members below
    std::condition_variable m_wake;
    bool m_stop = false;
    std::string m_lease; // etcd's lease ID (decimal); "" for none
    // Where this host stands in a service's line: its key, and how many keys stood before it
    // at the last look, less the deletions in that line seen since (never more than the
    // truth: a deletion behind it counts too), so that only a host that may now hold a slot
    // is woken, not every host in line.
    struct Place {
        std::string key;
        std::int64_t revision = 0; // the key's create_revision; 0: not known
        std::int64_t ahead = 0;
        std::int64_t slots = 1;
    };
    std::map<std::string, Place> m_queued; // service -> its place
    struct Owed {
        nlohmann::json txn;
        std::string what; // for the log
    };
    std::deque<Owed> m_owed;
    std::thread m_keeper;
    std::thread m_watcher;
};

} // namespace gitopper
