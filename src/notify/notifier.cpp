#include "notify/notifier.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "notify/deliver.hpp"
#include "util/atomic_file.hpp"
#include "util/duration.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

constexpr int kPendingVersion = 1;
constexpr std::chrono::minutes kMaxRetryAfter{15};

// Drops come in floods when a receiver is down for long: the first of a run is logged, then
// every hundredth.
bool worth_logging(std::uint64_t dropped)
{
    return dropped % 100 == 1;
}

} // namespace

struct Notifier::Channel {
    NotifyTarget target;
    std::optional<StatusTarget> status; // the commit-status channel: `target` is unused
    std::string key;    // names its events in the pending file (a hash: the URL may be secret)
    std::string label;  // unique among the channels
    std::string secret; // or the status API's token

    Tried deliver(const Notice& notice) const
    {
        return status ? deliver_status(*status, secret, notice)
                      : gitopper::deliver(target, secret, notice);
    }

    mutable std::mutex mutex; // guards the members below
    std::condition_variable wake;
    std::condition_variable done; // `finished` became true
    std::deque<Notice> queue;
    bool stopping = false;
    bool in_flight = false; // the front event is being tried: a full queue drops the next one
    bool finished = false;  // its thread has returned
    std::uint64_t sent = 0;
    std::uint64_t failed_tries = 0;
    std::uint64_t dropped = 0;

    std::thread thread;
};

Notifier::Notifier(NotifierOptions options) : m_options(std::move(options)) {}

Notifier::~Notifier()
{
    stop();
}

Result<std::unique_ptr<Notifier>> Notifier::make(const std::vector<Service>& services,
                                                 const std::optional<StatusTarget>& status,
                                                 NotifierOptions options)
{
    std::unique_ptr<Notifier> notifier(new Notifier(std::move(options)));
    if (status) {
        auto token = read_trusted_file(status->token_file, Trust::secret);
        if (!token) {
            return fail("status: {}", token.error().message);
        }
        auto channel = std::make_unique<Channel>();
        channel->status = status;
        channel->key =
            fmt::format("{:016x}", fnv1a("status\n" + status->forge + "\n" + status->api));
        channel->label = status->forge;
        channel->secret = std::string(trim(*token));
        notifier->m_channels.push_back(std::move(channel));
    }
    std::map<std::string, std::size_t> labels;
    for (const auto& service : services) {
        for (const auto& target : service.notify) {
            const auto identity = target.identity();
            const auto known = std::any_of(
                notifier->m_channels.begin(), notifier->m_channels.end(),
                [&](const auto& c) { return !c->status && c->target.identity() == identity; });
            if (known) {
                continue;
            }
            auto channel = std::make_unique<Channel>();
            channel->target = target;
            channel->key = fmt::format("{:016x}", fnv1a(identity));
            const auto n = ++labels[target.label()];
            channel->label = n == 1 ? target.label() : fmt::format("{}#{}", target.label(), n);
            if (!target.secret_file.empty()) {
                auto secret = read_trusted_file(target.secret_file, Trust::secret);
                if (!secret) {
                    return fail("notify {}: {}", channel->label, secret.error().message);
                }
                channel->secret = std::string(trim(*secret));
            }
            notifier->m_channels.push_back(std::move(channel));
        }
    }
    return notifier;
}

void Notifier::start()
{
    if (m_started || m_channels.empty()) {
        return;
    }
    m_started = true;
    load_pending();
    for (auto& channel : m_channels) {
        channel->thread = std::thread([c = channel.get(), first = m_options.first_backoff,
                                       most = m_options.max_backoff] { run(*c, first, most); });
    }
}

// A try in flight may outlast the stop: a receiver that trickles its answer keeps httplib's
// per-read timeouts happy. The stop waits for each thread a bounded time; one still trying
// then is left to the process's exit (its channel with it: never freed under it), and its
// event, still at the front of the queue, is kept like the others.
void Notifier::stop()
{
    if (!m_started) {
        return;
    }
    m_started = false;
    auto longest = std::chrono::milliseconds(0);
    for (auto& channel : m_channels) {
        std::lock_guard lock(channel->mutex);
        channel->stopping = true;
        channel->wake.notify_all();
        longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        channel->target.timeout));
    }
    const auto deadline = std::chrono::steady_clock::now() + longest + std::chrono::seconds(2);
    for (auto& channel : m_channels) {
        std::unique_lock lock(channel->mutex);
        if (!channel->done.wait_until(lock, deadline, [&] { return channel->finished; })) {
            log::warn("notify {}: a try is still under way at the stop; its event is kept",
                      channel->label);
            channel->thread.detach();
            continue;
        }
        lock.unlock();
        channel->thread.join();
    }
    save_pending();
    // Channels whose thread still runs stay allocated until the process ends.
    for (auto& channel : m_channels) {
        if (!channel->thread.joinable() && !channel->finished) {
            (void)channel.release();
        }
    }
    std::erase(m_channels, nullptr);
}

void Notifier::post(Notice notice, std::span<const NotifyTarget> targets)
{
    notice.host = m_options.host;
    for (auto& channel : m_channels) {
        if (channel->status) {
            const auto repository = channel->status->repository.empty()
                                        ? notice.repository
                                        : channel->status->repository;
            if (status_call(notice) && forge_repository(repository) && !notice.to.empty()) {
                enqueue(*channel, notice);
            }
            continue;
        }
        if (notice.event == kEventDeploying) {
            continue; // for commit statuses only
        }
        const auto identity = channel->target.identity();
        if (std::any_of(targets.begin(), targets.end(),
                        [&](const NotifyTarget& t) { return t.identity() == identity; })) {
            enqueue(*channel, notice);
        }
    }
}

bool Notifier::reports_status() const
{
    return std::any_of(m_channels.begin(), m_channels.end(),
                       [](const auto& channel) { return channel->status.has_value(); });
}

void Notifier::enqueue(Channel& channel, const Notice& notice)
{
    std::lock_guard lock(channel.mutex);
    if (channel.queue.size() >= m_options.queue_limit) {
        // The oldest that is not being tried: one in flight is sent or kept, never both.
        const auto victim = channel.queue.begin() + (channel.in_flight ? 1 : 0);
        if (victim != channel.queue.end()) {
            if (worth_logging(++channel.dropped)) {
                log::warn("notify {}: queue full ({} events): dropped the oldest, {} of {} ({} "
                          "dropped so far)",
                          channel.label, m_options.queue_limit, victim->event, victim->service,
                          channel.dropped);
            }
            channel.queue.erase(victim);
        }
    }
    channel.queue.push_back(notice);
    channel.wake.notify_all();
}

// One target's thread: the oldest event first, tried until it is taken or refused for good.
// What a try throws (a failed allocation, a process that cannot be made) counts as a failed
// try: the thread and the daemon go on.
void Notifier::run(Channel& channel, std::chrono::milliseconds first_backoff,
                   std::chrono::milliseconds max_backoff)
{
    auto backoff = first_backoff;
    std::uint64_t tries = 0;
    std::unique_lock lock(channel.mutex);
    while (true) {
        channel.wake.wait(lock, [&] { return channel.stopping || !channel.queue.empty(); });
        if (channel.stopping) {
            break;
        }
        const auto notice = channel.queue.front();
        channel.in_flight = true;
        lock.unlock();
        Tried tried;
        try {
            tried = channel.deliver(notice);
        } catch (const std::exception& e) {
            tried = {Tried::Kind::retry, std::string("internal error: ") + e.what()};
        }
        lock.lock();
        channel.in_flight = false;
        const auto take = [&] {
            channel.queue.pop_front(); // the front stayed: nothing drops an event in flight
            tries = 0;
            backoff = first_backoff;
        };
        switch (tried.kind) {
        case Tried::Kind::delivered:
            ++channel.sent;
            log::debug("notify {}: {} of {} delivered", channel.label, notice.event,
                       notice.service);
            take();
            break;
        case Tried::Kind::rejected:
            ++channel.dropped;
            log::warn("notify {}: {} of {} refused ({}): dropped", channel.label, notice.event,
                      notice.service, tried.why);
            take();
            break;
        case Tried::Kind::retry:
            ++channel.failed_tries;
            ++tries;
            // A receiver that says when to come back is believed, up to a quarter hour.
            const auto pause = std::max<std::chrono::milliseconds>(
                backoff, std::min<std::chrono::milliseconds>(tried.retry_after, kMaxRetryAfter));
            log::warn("notify {}: {} of {} not delivered (try {}): {}; next try in {}",
                      channel.label, notice.event, notice.service, tries, tried.why,
                      format_duration(pause));
            channel.wake.wait_for(lock, pause, [&] { return channel.stopping; });
            backoff = std::min(backoff * 2, max_backoff);
            break;
        }
    }
    channel.finished = true;
    channel.done.notify_all();
}

std::string Notifier::pending_path() const
{
    return m_options.state_dir + "/gitopper-notify.json";
}

// What the last clean stop left is sent first; the file goes once read, so that a crash later
// does not send it twice.
void Notifier::load_pending()
{
    auto text = read_file(pending_path());
    if (!text) {
        return;
    }
    std::size_t loaded = 0;
    try {
        loaded = take_pending(nlohmann::json::parse(*text));
    } catch (const nlohmann::json::exception& e) {
        log::warn("{}: not a pending-events file of this version ({}): ignored", pending_path(),
                  e.what());
    }
    log::info("notify: {} event{} pending from the last run", loaded, loaded == 1 ? "" : "s");
    if (::unlink(pending_path().c_str()) != 0) {
        log::warn("{}: cannot remove it: {}", pending_path(), errno_message(errno));
    }
}

// Throws json::exception on a wrong shape.
std::size_t Notifier::take_pending(const nlohmann::json& file)
{
    if (file.at("version").get<int>() != kPendingVersion) {
        throw nlohmann::json::other_error::create(501, "another version", &file);
    }
    std::size_t loaded = 0;
    for (const auto& entry : file.at("pending")) {
        Notice notice;
        if (!notice_from_json(entry.at("event").dump(), notice)) {
            continue;
        }
        notice.repository = entry.value("repository", std::string());
        const auto key = entry.at("target").get<std::string>();
        for (auto& channel : m_channels) {
            if (channel->key == key && channel->queue.size() < m_options.queue_limit) {
                channel->queue.push_back(notice);
                ++loaded;
            }
        }
    }
    return loaded;
}

void Notifier::save_pending()
{
    auto pending = nlohmann::json::array();
    for (const auto& channel : m_channels) {
        std::lock_guard lock(channel->mutex);
        for (const auto& notice : channel->queue) {
            pending.push_back({{"target", channel->key},
                               {"event", nlohmann::json::parse(notice_json(notice))},
                               {"repository", notice.repository}});
        }
    }
    if (pending.empty()) {
        return;
    }
    const nlohmann::json file{{"version", kPendingVersion}, {"pending", pending}};
    if (auto r = write_file_atomic(pending_path(), file.dump(1) + "\n", 0600); !r) {
        log::error("notify: {} pending events lost: {}", pending.size(), r.error().message);
        return;
    }
    log::info("notify: {} event{} pending, kept in {} for the next start", pending.size(),
              pending.size() == 1 ? "" : "s", pending_path());
}

std::vector<TargetCounts> Notifier::counts() const
{
    std::vector<TargetCounts> out;
    for (const auto& channel : m_channels) {
        std::lock_guard lock(channel->mutex);
        out.push_back({channel->status.has_value(), channel->label, channel->sent,
                       channel->failed_tries, channel->dropped, channel->queue.size()});
    }
    return out;
}

} // namespace gitopper
