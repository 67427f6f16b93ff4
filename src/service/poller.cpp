#include "service/poller.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <system_error>
#include <thread>

#include "util/last_resort.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

using namespace std::chrono_literals;

// Edits come in bursts (an editor writes, renames, chmods): look once they settle.
constexpr auto kDriftSettle = 200ms;
constexpr auto kFirstRetry = 5s;
// How often a checkout without inotify (over its watch budget), or with edits whose patch
// could not be saved yet, is looked at with git (a throw-away index reset to its commit, then
// `ls-files`); as often as upstream when polls
// are more frequent. A local edit there lives at most this long, and a big tree costs one
// status walk per period.
constexpr auto kMaxScanInterval = 30s;
constexpr std::size_t kStartWorkers = 4;

// One service's step, with the thread's last resort: what escapes it as an exception is that
// service's failure (BROKEN, logged, retried like any other), never the end of the daemon.
void guarded(ManagedService& service, std::string_view step, const std::function<void()>& run)
{
    if (auto what = escaped_exception(run)) {
        service.fail_unexpectedly(step, *what);
    }
}

} // namespace

Histogram& sync_durations()
{
    static Histogram histogram({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
    return histogram;
}

PollGroup::PollGroup(Store& store, std::vector<ManagedService*> services, Duration interval,
                     std::chrono::milliseconds slack)
    : m_store(store), m_services(std::move(services)), m_interval(interval),
      m_scan_interval(std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(interval), kMaxScanInterval)),
      m_progress(slack)
{
    std::set<std::string> branches;
    for (const auto* service : m_services) {
        branches.insert(service->config().branch);
    }
    m_branches.assign(branches.begin(), branches.end());
    m_due.assign(m_services.size(), Clock::now());
    m_window_woken.assign(m_services.size(), false);
}

PollGroup::~PollGroup()
{
    stop();
}

void PollGroup::start()
{
    m_thread = std::thread([this] { run(); });
}

void PollGroup::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_wake.signal();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void PollGroup::request(Request request)
{
    {
        std::lock_guard lock(m_mutex);
        m_requests.push_back(std::move(request));
    }
    m_wake.signal();
}

bool PollGroup::stopping()
{
    std::lock_guard lock(m_mutex);
    return m_stop;
}

// The loop of the group's thread: start the services, then poll, reconcile, revert drift and
// serve requests until stopped.
void PollGroup::run()
{
    const ProgressScope reporting(&m_progress);
    m_progress.step();
    if (auto what = escaped_exception([this] { start_services(); })) {
        log::error("poll thread of {}: start-up ended early: {}; polling on",
                   public_url(m_store.upstream()), *what);
    }
    auto next_poll = Clock::now();
    while (!stopping()) {
        m_progress.idle();
        wait(std::min({next_poll, m_drift_due, m_scan_due, next_timed()}));
        m_progress.step();
        if (stopping()) {
            break;
        }
        if (auto what = escaped_exception([&] { cycle(next_poll); })) {
            // Not any one service's step (those are guarded): the cycle is retried later.
            log::error("poll thread of {}: a cycle ended early: {}", public_url(m_store.upstream()),
                       *what);
            next_poll = next_poll_after(true);
        }
    }
}

// One wake of the thread: requests, drift, and the poll when it is due.
void PollGroup::cycle(Clock::time_point& next_poll)
{
    std::deque<Request> requests;
    {
        std::lock_guard lock(m_mutex);
        requests.swap(m_requests);
    }
    bool poll_now = false;
    auto trigger = Trigger::poll;
    handle_all(requests, poll_now, trigger);
    timed_wakes(poll_now);
    if (Clock::now() >= m_scan_due) {
        scan_unwatched();
    }
    if (Clock::now() >= m_drift_due) {
        fix_drift();
    }
    if (poll_now || Clock::now() >= next_poll) {
        poll_upstream(trigger);
        next_poll = next_poll_after(m_failures > 0);
    }
}

// The first moment, on the thread's clock, when a freeze ends or a window opens for a
// commit that waits for one.
PollGroup::Clock::time_point PollGroup::next_timed() const
{
    auto first = Clock::time_point::max();
    const auto now = std::chrono::system_clock::now();
    const auto on_our_clock = [&](std::chrono::system_clock::time_point when) {
        const auto left = when - now;
        return Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::max(left, left.zero()));
    };
    for (std::size_t id = 0; id < m_services.size(); ++id) {
        if (const auto expiry = m_services[id]->freeze_expiry()) {
            first = std::min(first, on_our_clock(*expiry));
        }
        // Once woken for an open window, the ordinary polls reconcile it.
        const auto opens = m_services[id]->window_opens(now);
        if (opens && !(m_window_woken[id] && *opens <= now)) {
            first = std::min(first, on_our_clock(*opens));
        }
    }
    return first;
}

// A freeze whose time is up ends as an unfreeze does: OK and a pull at once (SPEC §3). A
// window that has opened for a waiting commit brings its reconcile now, not at the next poll.
void PollGroup::timed_wakes(bool& poll_now)
{
    const auto now = std::chrono::system_clock::now();
    for (std::size_t id = 0; id < m_services.size(); ++id) {
        auto* service = m_services[id];
        bool expired = false;
        guarded(*service, "ending its freeze", [&] { expired = service->expire_freeze(); });
        const auto opens = service->window_opens(now);
        const bool opened = opens && *opens <= now && !m_window_woken[id];
        m_window_woken[id] = opens && *opens <= now;
        if (expired || opened) {
            m_due[id] = Clock::now();
            poll_now = true;
        }
    }
}

// Services own separate work trees, so a few start side by side: start-up is mostly waiting
// for git. In between the two halves, the store is asked once what the fresh services' trees
// will hold. Watching for drift stays on this thread.
void PollGroup::start_services()
{
    for_each_service("opening", [](ManagedService& service) { service.open(); });
    prepare_fresh();
    for_each_service("starting", [](ManagedService& service) { service.start(); });
    // The watches first, then one look: an edit made while we were not running, or since a
    // tree was mounted, is found by the look or reported by the watches, never neither.
    std::vector<std::uint64_t> generations;
    for (std::size_t id = 0; id < m_services.size(); ++id) {
        rewatch(id);
        generations.push_back(m_services[id]->generation());
    }
    for_each_service("looking for edits made before the watches",
                     [](ManagedService& service) { service.check_drift_at_start(); });
    for (std::size_t id = 0; id < m_services.size(); ++id) {
        if (m_services[id]->generation() != generations[id]) {
            rewatch(id); // the revert's own events; and one more look, as after any revert
            look_again(id);
        }
    }
}

void PollGroup::for_each_service(std::string_view what,
                                 const std::function<void(ManagedService&)>& step)
{
    std::atomic<std::size_t> next{0};
    const auto worker = [&] {
        const ProgressScope reporting(&m_progress);
        for (auto id = next++; id < m_services.size() && !stopping(); id = next++) {
            auto& service = *m_services[id];
            guarded(service, what, [&] { step(service); });
            m_progress.step();
        }
    };
    // jthreads: should starting one fail, those already running are joined, not terminated.
    std::vector<std::jthread> helpers;
    try {
        for (std::size_t i = 1; i < std::min(kStartWorkers, m_services.size()); ++i) {
            helpers.emplace_back(worker);
        }
    } catch (const std::system_error& e) {
        log::warn("cannot start a helper thread ({}); going on with {}", e.what(),
                  helpers.size() + 1);
    }
    worker();
}

// One survey per branch for all the services without a tree: one diff that fetches their
// blobs in one batch and one ls-tree, instead of two processes each.
void PollGroup::prepare_fresh()
{
    if (!m_store.is_open()) {
        return;
    }
    std::map<std::string, std::vector<Link>> links; // branch -> links of its fresh services
    for (const auto* service : m_services) {
        if (service->fresh()) {
            const auto& config = service->config();
            auto& all = links[config.branch];
            all.insert(all.end(), config.dirs.begin(), config.dirs.end());
        }
    }
    for (const auto& [branch, all] : links) {
        auto head = m_store.tracking_head(branch);
        if (head) {
            (void)m_store.prepare("", *head, all);
        }
    }
}

// One ls-remote answers for every service of the group; one fetch brings what moved. A
// service whose deployed commit equals its branch head costs nothing more.
void PollGroup::poll_upstream(Trigger trigger)
{
    const auto started = Clock::now();
    const auto heads = fetch_heads(trigger);
    for (const auto id : m_drift.drain()) {
        m_dirty.insert(id); // edits not yet looked at: a deploy saves them first
        m_drift_due = std::min(m_drift_due, Clock::now() + kDriftSettle);
    }
    bool failed = false;
    thread_local std::mt19937_64 random{std::random_device{}()};
    const double spread = std::uniform_real_distribution<double>(0.0, 0.5)(random);
    std::vector<std::size_t> reconciled;
    for (std::size_t id = 0; id < m_services.size() && !stopping(); ++id) {
        auto* service = m_services[id];
        if (!due(id, trigger, started)) {
            continue; // its own interval is longer: the answer serves the others
        }
        reconciled.push_back(id);
        const auto generation = service->generation();
        service->set_watched_clean(!m_drift.scanned(id) && !m_dirty.contains(id) &&
                                   !service->drift_kept() && service->ready());
        const auto own =
            trigger == Trigger::pull && !m_pulled.contains(id) ? Trigger::poll : trigger;
        stall_if_asked(*service);
        guarded(*service, "reconciling",
                [&] { service->reconcile(heads.at(service->config().branch), own); });
        m_progress.step();
        service->set_watched_clean(false); // true only as of this cycle's drain
        if (service->generation() != generation) {
            rewatch(id);
            look_again(id); // the user owns the new tree: what it wrote before the watches
        } else {
            plan_scan(id); // a deploy refused over unsaved edits
        }
        const auto state = service->status().state;
        failed = failed || state == State::diff || !heads.at(service->config().branch);
    }
    // The interval counts from the cycle's end, as -t always did, and from one time for all,
    // so services of one interval stay in step.
    const auto finished = Clock::now();
    for (const auto id : reconciled) {
        m_due[id] = due_after(id, spread, finished);
    }
    m_pulled.clear();
    m_failures = failed ? m_failures + 1 : 0;
    sync_durations().observe(std::chrono::duration<double>(Clock::now() - started).count());
}

// Each branch's head upstream, fetched into the store when a service wants it; or why not.
// Services that moved from the same commit are surveyed together (one diff, one ls-tree).
std::map<std::string, Result<std::string>> PollGroup::fetch_heads(Trigger trigger)
{
    m_store.new_cycle();
    // A store that could not be opened at start (upstream down) is opened by the first
    // service that gets that far now, before anyone asks it anything.
    for (auto* service : m_services) {
        if (m_store.is_open() || stopping()) {
            break;
        }
        service->open();
    }
    std::map<std::string, Result<std::string>> heads;
    // A pull or webhook says upstream moved: fetch at once and take the heads the fetch
    // brought, rather than ask first (one process less before the deploy).
    bool manual = trigger == Trigger::pull || trigger == Trigger::webhook;
    auto remote =
        !m_store.is_open()
            ? Result<std::map<std::string, std::string>>(fail("the object store is not open yet"))
        : manual ? m_store.fetch_heads(m_branches)
                 : m_store.remote_heads(m_branches);
    if (manual && !remote && m_store.is_open()) {
        // One branch gone upstream fails the whole fetch: ask branch by branch instead.
        manual = false;
        remote = m_store.remote_heads(m_branches);
    }
    std::vector<std::string> moved;
    for (const auto& branch : m_branches) {
        if (!remote) {
            heads.emplace(branch, std::unexpected(remote.error()));
            continue;
        }
        auto it = remote->find(branch);
        if (it == remote->end()) {
            heads.emplace(branch, fail("branch {} not found in {}", quote(branch),
                                       public_url(m_store.upstream())));
            continue;
        }
        heads.emplace(branch, it->second);
        const bool wanted = std::any_of(m_services.begin(), m_services.end(), [&](auto* s) {
            return s->config().branch == branch && s->ready() && s->wants(it->second, trigger);
        });
        if (wanted) {
            moved.push_back(branch);
        }
    }
    if (moved.empty()) {
        return heads;
    }
    if (auto fetched = manual ? Result<>{} : m_store.fetch(moved); !fetched) {
        // A lock a killed git left would fail every fetch after it: the next one is free.
        m_store.git().remove_leftovers(m_services.front()->config().name);
        for (const auto& branch : moved) {
            heads.insert_or_assign(branch, std::unexpected(fetched.error()));
        }
        return heads;
    }
    std::map<std::pair<std::string, std::string>, std::vector<Link>> surveys;
    for (const auto* service : m_services) {
        const auto& config = service->config();
        const auto& head = heads.at(config.branch);
        if (head && service->ready() && service->wants(*head, trigger)) {
            auto& links = surveys[{service->status().hash, *head}];
            links.insert(links.end(), config.dirs.begin(), config.dirs.end());
        }
    }
    for (const auto& [commits, links] : surveys) {
        if (auto r = m_store.prepare(commits.first, commits.second, links); !r) {
            // Each service asks again for its own links; what the failed fetch of blobs left
            // (a half-written pack on a full disk) must not be in their way.
            m_store.git().remove_leftovers(m_services.front()->config().name);
        }
    }
    return heads;
}

// Requests that piled up since the last wake. Like pulls, rollbacks of one service are
// coalesced: only the last is carried out; one before it that asked for the same gets its
// answer, one that asked for another commit is told it was superseded (409).
void PollGroup::handle_all(std::deque<Request>& requests, bool& poll_now, Trigger& trigger)
{
    std::map<std::size_t, std::size_t> last_rollback; // service -> index in `requests`
    for (std::size_t i = 0; i < requests.size(); ++i) {
        if (requests[i].kind == Request::Kind::rollback) {
            last_rollback[requests[i].service] = i;
        }
    }
    std::vector<Request*> superseded;
    std::set<std::size_t> resumed; // one look per service at the rollout, however many words
    for (std::size_t i = 0; i < requests.size(); ++i) {
        auto& request = requests[i];
        if (request.kind == Request::Kind::rollback && last_rollback[request.service] != i) {
            superseded.push_back(&request);
            continue;
        }
        if (request.kind == Request::Kind::rollout && !resumed.insert(request.service).second) {
            continue;
        }
        handle(request, poll_now, trigger);
    }
    for (auto* request : superseded) {
        const auto& last = requests[last_rollback[request->service]];
        auto answer = request->hash == last.hash && request->force == last.force
                          ? Completion{0, ""}
                          : Completion{409, fmt::format("superseded by a later rollback to {}",
                                                        quote(last.hash))};
        if (request->done) {
            request->done->set_value(std::move(answer));
        }
    }
}

void PollGroup::handle(const Request& request, bool& poll_now, Trigger& trigger)
{
    if (request.service >= m_services.size()) {
        return;
    }
    auto* service = m_services[request.service];
    switch (request.kind) {
    case Request::Kind::freeze:
        guarded(*service, "freezing", [&] { service->freeze(request.freeze); });
        break;
    case Request::Kind::unfreeze:
        guarded(*service, "unfreezing", [&] { service->unfreeze(); });
        m_due[request.service] = Clock::now(); // SPEC §3: unfreeze pulls at once
        poll_now = true;
        break;
    case Request::Kind::rollback: {
        const auto generation = service->generation();
        Completion done{500, "internal error: see the daemon's log"};
        guarded(*service, "rolling back",
                [&] { done = service->rollback(request.hash, request.force); });
        rewatch(request.service);
        if (service->generation() != generation) {
            look_again(request.service);
        }
        if (request.done) {
            request.done->set_value(std::move(done));
        }
        break;
    }
    case Request::Kind::diff: {
        Completion done{500, "internal error: see the daemon's log"};
        guarded(*service, "previewing", [&] { done = service->preview(); });
        if (request.done) {
            request.done->set_value(std::move(done));
        }
        break;
    }
    case Request::Kind::rollout: {
        // A slot freed or a mark changed: what waits for it is looked at again, at once and
        // without asking upstream (the commit it waits for is in the store).
        const auto generation = service->generation();
        guarded(*service, "taking its turn", [&] { service->resume_rollout(); });
        if (service->generation() != generation) {
            rewatch(request.service);
            look_again(request.service);
        }
        break;
    }
    case Request::Kind::pull:
        poll_now = true;
        trigger = Trigger::pull;
        m_pulled.insert(request.service);
        break;
    case Request::Kind::webhook:
        poll_now = true;
        trigger = trigger == Trigger::pull ? trigger : Trigger::webhook;
        break;
    }
}

void PollGroup::fix_drift()
{
    m_drift_due = Clock::time_point::max();
    auto dirty = std::exchange(m_dirty, {});
    for (const auto id : dirty) {
        const auto reverted = m_services[id]->status().drift_events;
        const auto generation = m_services[id]->generation();
        guarded(*m_services[id], "looking for drift", [&] { m_services[id]->check_drift(); });
        if (m_services[id]->generation() == generation) {
            plan_scan(id); // nothing written: the watches stand, what they saw since is news
            continue;
        }
        rewatch(id);
        if (m_services[id]->status().drift_events != reverted) {
            // rewatch() took every event since the revert for our own, and the service's
            // action ran in between: an edit made then would wait for the next one. One more
            // look, which costs a git status and finds nothing unless there is something.
            m_dirty.insert(id);
            m_drift_due = std::min(m_drift_due, Clock::now() + kDriftSettle);
        }
    }
}

// What inotify does not watch is looked at as if it had reported something, every interval.
void PollGroup::scan_unwatched()
{
    m_scan_due = Clock::time_point::max();
    m_dirty.insert(m_unwatched.begin(), m_unwatched.end());
    m_drift_due = std::min(m_drift_due, Clock::now());
}

// After our own git run in a checkout: watch its (possibly new) directories and forget the
// events we caused, keeping other services' events. A checkout removed while we worked in
// it (an `rm -rf` still running) took its watches along: look again once it settles.
void PollGroup::rewatch(std::size_t id)
{
    const auto& config = m_services[id]->config();
    m_drift.watch(id, config, m_services[id]->live_dir());
    plan_scan(id);
    for (const auto other : m_drift.drain(id)) {
        m_dirty.insert(other);
    }
    m_dirty.erase(id);
    // Gone, or not to be looked at: check_drift() tells which.
    if (m_services[id]->ready() &&
        !exists_no_symlinks(m_services[id]->live_dir()).value_or(false)) {
        m_dirty.insert(id);
        m_drift_due = std::min(m_drift_due, Clock::now() + kDriftSettle);
    }
}

// One `git status` soon, inotify or not.
void PollGroup::look_again(std::size_t id)
{
    m_dirty.insert(id);
    m_drift_due = std::min(m_drift_due, Clock::now() + kDriftSettle);
}

void PollGroup::plan_scan(std::size_t id)
{
    if (!m_drift.scanned(id) && !m_services[id]->drift_kept()) {
        m_unwatched.erase(id);
        return;
    }
    m_unwatched.insert(id);
    m_scan_due = std::min(m_scan_due, Clock::now() + m_scan_interval);
}

// The watchdog's test (GITOPPER_TEST_STALL_POLL=SERVICE): before reconciling SERVICE the thread
// stops getting anywhere, as a deadlocked one would, until shutdown.
void PollGroup::stall_if_asked(const ManagedService& service)
{
    const char* stalled = std::getenv("GITOPPER_TEST_STALL_POLL");
    if (stalled == nullptr || service.config().name != stalled) {
        return;
    }
    log::warn("[{}] GITOPPER_TEST_STALL_POLL: this poll thread stalls until shutdown", stalled);
    while (!stopping()) {
        pollfd fd{m_wake.fd(), POLLIN, 0};
        (void)::poll(&fd, 1, -1);
        m_wake.drain();
    }
}

void PollGroup::wait(Clock::time_point until)
{
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    const int timeout = until == Clock::time_point::max()
                            ? -1
                            : static_cast<int>(std::clamp<long>(left.count(), 0, 3'600'000));
    std::array<pollfd, 2> fds{{{m_wake.fd(), POLLIN, 0}, {m_drift.fd(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), timeout) <= 0) {
        return;
    }
    if (fds[0].revents != 0) {
        m_wake.drain();
    }
    if (fds[1].revents != 0) {
        const auto touched = m_drift.drain();
        if (!touched.empty()) {
            m_dirty.insert(touched.begin(), touched.end());
            m_drift_due = Clock::now() + kDriftSettle;
        }
    }
}

// The next poll: when the first service is due; after a failure, sooner: 5s, 10s, 20s, … up
// to the interval.
PollGroup::Clock::time_point PollGroup::next_poll_after(bool failed)
{
    const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(m_interval);
    if (failed) {
        const auto backoff = kFirstRetry * (1 << std::min(m_failures - 1, 10));
        return Clock::now() + std::min<std::chrono::milliseconds>(backoff, interval);
    }
    return m_due.empty() ? Clock::now() + interval : *std::min_element(m_due.begin(), m_due.end());
}

// A service's interval (its own, else -t) plus a random part of up to half of it, so a fleet
// does not poll in step.
PollGroup::Clock::time_point PollGroup::due_after(std::size_t id, double spread,
                                                  Clock::time_point from) const
{
    const auto own = m_services[id]->config().interval;
    const auto interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(own.count() > 0 ? own : m_interval);
    const auto part = static_cast<double>(interval.count()) * spread;
    return from + interval + std::chrono::milliseconds(static_cast<long>(part));
}

// A poll reconciles the services whose time has come; an operator's pull or a webhook, all.
// `now`: the cycle's start, so every service due by then is reconciled in it.
bool PollGroup::due(std::size_t id, Trigger trigger, Clock::time_point now) const
{
    return trigger != Trigger::poll || m_failures > 0 || now >= m_due[id];
}

} // namespace gitopper
