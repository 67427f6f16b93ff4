#include "fleet/rollout.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "util/base64.hpp"
#include "util/last_resort.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using json = nlohmann::json;

// How far back in a line a host's place is counted exactly; one further back looks again
// after this many deletions ahead of it, and counts again.
constexpr std::int64_t kCountedAhead = 100;

// A watch that heard nothing this long is set up again (and everything waiting looks again).
constexpr std::chrono::milliseconds kWatchSilence{10000};

// The end of the range of keys starting with `prefix`, as etcd wants it.
std::string range_end(std::string prefix)
{
    ++prefix.back();
    return prefix;
}

json absent(const std::string& key)
{
    return {{"key", base64_encode(key)}, {"target", "CREATE"}, {"create_revision", "0"}};
}

json put(const std::string& key, const std::string& value, const std::string& lease = "")
{
    json request{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (!lease.empty()) {
        request["lease"] = lease;
    }
    return {{"request_put", std::move(request)}};
}

json erase(const std::string& key)
{
    return {{"request_delete_range", {{"key", base64_encode(key)}}}};
}

json get(const std::string& key)
{
    return {{"request_range", {{"key", base64_encode(key)}}}};
}

// The first `limit` keys starting with `prefix`, oldest first (and how many there are).
json oldest(const std::string& prefix, std::int64_t limit)
{
    return {{"request_range",
             {{"key", base64_encode(prefix)},
              {"range_end", base64_encode(range_end(prefix))},
              {"sort_order", "ASCEND"},
              {"sort_target", "CREATE"},
              {"limit", std::to_string(limit)},
              {"keys_only", true}}}};
}

// The keys of the line starting with `prefix` created before `revision`, oldest first, at
// most `limit`. (etcd filters by revision after its limit, and its count ignores the filter:
// the keys are counted, and the count is exact up to `limit`, never above the truth.)
json created_before(const std::string& prefix, std::int64_t revision, std::int64_t limit)
{
    auto request = oldest(prefix, limit);
    request["request_range"]["max_create_revision"] = std::to_string(revision - 1);
    return request;
}

struct Entry {
    std::string key;
    std::string value;
};

// The keys (and values) of a range answer, decoded; `count`: how many matched, beyond a limit.
std::vector<Entry> entries(const json& range, std::int64_t* count = nullptr)
{
    std::vector<Entry> out;
    for (const auto& kv : array_at(range, "kvs")) {
        out.push_back({base64_decode(text_at(kv, "key")).value_or(""),
                       base64_decode(text_at(kv, "value")).value_or("")});
    }
    if (count != nullptr) {
        const auto text = text_at(range, "count");
        std::from_chars(text.data(), text.data() + text.size(), *count);
    }
    return out;
}

// The range answer at `index` of a txn's answer.
const json& range_answer(const json& answer, std::size_t index)
{
    const auto& responses = array_at(answer, "responses");
    static const json none = json::object();
    return index < responses.size() ? object_at(responses[index], "response_range") : none;
}

std::string now_text()
{
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr)));
}

std::string lease_hex(const std::string& lease)
{
    std::int64_t id = 0;
    std::from_chars(lease.data(), lease.data() + lease.size(), id);
    return fmt::format("{:x}", id);
}

} // namespace

Rollout::Rollout(const RolloutConfig& config, std::string host, std::string password)
    : m_config(config), m_host(std::move(host)),
      m_etcd(EtcdOptions{
          .members = std::vector<std::string>(config.etcd.begin(), config.etcd.end()),
          .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout),
          .ca_file = config.ca_file,
          .cert_file = config.cert_file,
          .key_file = config.key_file,
          .user = config.user,
          .password = std::move(password)})
{
}

Rollout::~Rollout()
{
    stop();
}

std::string Rollout::queue_prefix(const std::string& service, const std::string& commit) const
{
    return fmt::format("{}/{}/{}/queue/", m_config.prefix, service, commit);
}

std::string Rollout::bad_key(const std::string& service, const std::string& commit) const
{
    return fmt::format("{}/{}/bad/{}", m_config.prefix, service, commit);
}

void Rollout::start(std::function<void(const std::string&)> changed)
{
    m_changed = std::move(changed);
    m_keeper = std::thread([this] { guarded("keep-alive", [this] { keep_alive(); }); });
    m_watcher = std::thread([this] { guarded("watch", [this] { watch(); }); });
}

// A thread's loop, begun again (after a pause) should anything escape it: a bug, or an answer
// no check foresaw, must not end the daemon.
void Rollout::guarded(std::string_view what, const std::function<void()>& loop)
{
    while (auto escaped = escaped_exception(loop)) {
        log::error("rollout: the {} thread: {}; going on", what, *escaped);
        if (!wait_for(std::chrono::milliseconds(1000))) {
            return;
        }
    }
}

void Rollout::stop()
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stop) {
            return;
        }
        m_stop = true;
    }
    m_wake.notify_all();
    m_etcd.interrupt();
    if (m_keeper.joinable()) {
        m_keeper.join();
    }
    if (m_watcher.joinable()) {
        m_watcher.join();
    }
    pay_owed();
    std::string lease;
    {
        std::lock_guard lock(m_mutex);
        lease = std::exchange(m_lease, "");
        if (!m_owed.empty()) {
            log::warn("rollout: {} left undone in etcd at stop: {}", m_owed.size(),
                      m_owed.front().what);
        }
    }
    if (!lease.empty()) {
        if (auto r = m_etcd.call("/v3/lease/revoke", {{"ID", lease}}); !r) {
            log::warn("rollout: cannot revoke lease {} ({}): this host's slots are free once "
                      "it expires",
                      lease_hex(lease), r.error().message);
        }
    }
}

RolloutCounts Rollout::counts() const
{
    std::lock_guard lock(m_mutex);
    return {m_etcd.requests(), m_etcd.failures(), !m_lease.empty()};
}

// This daemon's lease, granted when there is none (at first use, or after it was lost).
Result<std::string> Rollout::lease()
{
    std::lock_guard granting(m_lease_mutex);
    {
        std::lock_guard lock(m_mutex);
        if (!m_lease.empty()) {
            return m_lease;
        }
    }
    const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(m_config.lease_ttl).count();
    auto answer = m_etcd.call("/v3/lease/grant", {{"TTL", std::to_string(ttl)}});
    if (!answer) {
        return std::unexpected(answer.error());
    }
    const auto id = text_at(*answer, "ID");
    if (id.empty()) {
        return fail("etcd: no lease granted: {}", text_at(*answer, "error"));
    }
    std::lock_guard lock(m_mutex);
    m_lease = id;
    log::info("rollout: lease {} granted by etcd ({}s)", lease_hex(m_lease), ttl);
    return m_lease;
}

Result<json> Rollout::txn(const json& body)
{
    return m_etcd.call("/v3/kv/txn", body);
}

Result<Turn> Rollout::take(const std::string& service, const std::string& commit,
                           std::int64_t slots)
{
    auto turn = take_once(service, commit, slots);
    if (!turn && turn.error().message.find("lease not found") != std::string::npos) {
        forget_lease(); // it expired while etcd was away: a new one, a new place in line
        turn = take_once(service, commit, slots);
    }
    return turn;
}

Result<Turn> Rollout::take_once(const std::string& service, const std::string& commit,
                                std::int64_t slots)
{
    auto id = lease();
    if (!id) {
        return std::unexpected(id.error());
    }
    const auto line = queue_prefix(service, commit);
    const auto key = line + m_host + "-" + lease_hex(*id);
    if (auto left = leave_older(service, key); !left) {
        return std::unexpected(left.error());
    }
    // In line once (a put on our key again would wake every waiting host), unless it is bad;
    // and how many stand before us.
    const auto bad = bad_key(service, commit);
    std::int64_t revision = 0;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service); it != m_queued.end() && it->second.key == key) {
            revision = it->second.revision;
        }
    }
    auto failure = json::array({get(bad), oldest(line, slots)});
    if (revision > 0) {
        failure.push_back(created_before(line, revision, slots + kCountedAhead));
    }
    const json body{{"compare", json::array({absent(bad), absent(key)})},
                    {"success", json::array({put(key, m_host, *id), oldest(line, slots)})},
                    {"failure", failure}};
    auto answer = txn(body);
    if (!answer) {
        return std::unexpected(answer.error());
    }
    const auto marks = entries(range_answer(*answer, 0));
    if (!flag_at(*answer, "succeeded") && !marks.empty()) {
        leave(service, commit); // marked while we waited: out of its line
        const auto mark = json::parse(marks.front().value, nullptr, false);
        const auto by = text_at(mark, "host");
        return Turn{.kind = Turn::Kind::held,
                    .held_by = by.empty() ? "?" : by,
                    .held_why = text_at(mark, "why")};
    }
    std::int64_t in_line = 0;
    const auto holders = entries(range_answer(*answer, 1), &in_line);
    Place place{.key = key, .revision = revision, .ahead = 0, .slots = slots};
    if (flag_at(*answer, "succeeded")) { // just put: every other key came before ours
        const auto at = text_at(object_at(*answer, "header"), "revision");
        std::from_chars(at.data(), at.data() + at.size(), place.revision);
        place.ahead = in_line - 1;
    } else if (revision > 0) {
        place.ahead = static_cast<std::int64_t>(entries(range_answer(*answer, 2)).size());
    }
    {
        std::lock_guard lock(m_mutex);
        m_queued[service] = place;
    }
    const bool ours = std::any_of(holders.begin(), holders.end(),
                                  [&](const Entry& entry) { return entry.key == key; });
    return Turn{.kind = ours ? Turn::Kind::go : Turn::Kind::wait, .in_line = in_line};
}

// A newer commit came: the line of the older one is no longer ours.
Result<> Rollout::leave_older(const std::string& service, const std::string& key)
{
    std::string older;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service); it != m_queued.end() && it->second.key != key) {
            older = it->second.key;
        }
    }
    if (older.empty()) {
        return {};
    }
    if (auto r = txn({{"success", json::array({erase(older)})}}); !r) {
        return std::unexpected(r.error());
    }
    std::lock_guard lock(m_mutex);
    m_queued.erase(service);
    return {};
}

void Rollout::leave(const std::string& service, const std::string& commit)
{
    std::string key;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service);
            it != m_queued.end() && it->second.key.starts_with(queue_prefix(service, commit))) {
            key = it->second.key;
            m_queued.erase(it);
        }
    }
    if (key.empty()) {
        return;
    }
    owe({{"success", json::array({erase(key)})}},
        fmt::format("leaving the slot of {} {}", service, short_hash(commit)));
}

void Rollout::mark_bad(const std::string& service, const std::string& commit,
                       const std::string& why)
{
    const auto bad = bad_key(service, commit);
    const json mark{{"host", m_host}, {"why", why}, {"time", now_text()}};
    auto marking = json::array({put(bad, mark.dump())});
    auto leaving = json::array();
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service); it != m_queued.end()) {
            marking.push_back(erase(it->second.key));
            leaving.push_back(erase(it->second.key));
            m_queued.erase(it);
        }
    }
    // The first host's mark stays: it says where the commit failed first.
    owe({{"compare", json::array({absent(bad)})}, {"success", marking}, {"failure", leaving}},
        fmt::format("marking {} {} bad", service, short_hash(commit)));
}

Result<std::vector<std::string>> Rollout::release(const std::string& service,
                                                  const std::string& prefix)
{
    const auto marks = fmt::format("{}/{}/bad/", m_config.prefix, service);
    auto answer = m_etcd.call("/v3/kv/range", {{"key", base64_encode(marks)},
                                               {"range_end", base64_encode(range_end(marks))},
                                               {"keys_only", true}});
    if (!answer) {
        return std::unexpected(answer.error());
    }
    std::vector<std::string> matching;
    for (const auto& entry : entries(*answer)) {
        if (entry.key.starts_with(marks) && entry.key.substr(marks.size()).starts_with(prefix)) {
            matching.push_back(entry.key.substr(marks.size()));
        }
    }
    if (matching.size() != 1) {
        return matching;
    }
    if (auto r = txn({{"success", json::array({erase(marks + matching.front())})}}); !r) {
        return std::unexpected(r.error());
    }
    log::info("rollout: the mark on {} {} removed", service, short_hash(matching.front()));
    return matching;
}

// Tried now; kept for the keep-alive's thread while etcd cannot be reached.
void Rollout::owe(json body, std::string what)
{
    {
        std::lock_guard lock(m_mutex);
        m_owed.push_back({std::move(body), std::move(what)});
    }
    pay_owed();
}

// One payer at a time, oldest first. What etcd refuses (a permission, say) would be refused
// again: dropped, logged. While no member answers, the rest waits for the next try.
void Rollout::pay_owed()
{
    std::lock_guard paying(m_pay_mutex);
    for (;;) {
        Owed next;
        {
            std::lock_guard lock(m_mutex);
            if (m_owed.empty()) {
                return;
            }
            next = m_owed.front();
        }
        bool refused = false;
        auto paid = m_etcd.call("/v3/kv/txn", next.txn, &refused);
        if (!paid && !refused) {
            log::warn("rollout: {}: {}; retried", next.what, paid.error().message);
            return;
        }
        if (!paid) {
            log::error("rollout: {}: {}; given up", next.what, paid.error().message);
        }
        std::lock_guard lock(m_mutex);
        m_owed.pop_front();
    }
}

bool Rollout::wait_for(std::chrono::milliseconds pause)
{
    std::unique_lock lock(m_mutex);
    return !m_wake.wait_for(lock, pause, [this] { return m_stop; });
}

// A third of the TTL apart, so that two lost keep-alives in a row still leave it alive.
void Rollout::keep_alive()
{
    const auto pause = std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(m_config.lease_ttl) / 3,
        std::chrono::milliseconds(500));
    while (wait_for(pause)) {
        keep_alive_once();
        pay_owed();
    }
}

void Rollout::keep_alive_once()
{
    std::string lease;
    {
        std::lock_guard lock(m_mutex);
        lease = m_lease;
    }
    if (lease.empty()) {
        return;
    }
    auto answer = m_etcd.call("/v3/lease/keepalive", {{"ID", lease}});
    if (!answer) {
        return; // etcd unreachable: the lease lives on until its TTL, and we ask again
    }
    const auto ttl = text_at(object_at(*answer, "result"), "TTL");
    if (!ttl.empty() && ttl != "0") {
        return;
    }
    if (!forget_lease(lease)) {
        return;
    }
    log::warn("rollout: etcd no longer knows lease {} (it expired, after etcd could not be "
              "reached for {}, or etcd lost it): this host left every line it stood in",
              lease_hex(lease), format_duration(m_config.lease_ttl));
    if (m_changed) {
        m_changed("");
    }
}

// Without a lease of ours in etcd, our keys are gone: a new lease at the next take().
// `lease` given: only if it is still that one. Whether one was forgotten.
bool Rollout::forget_lease(const std::string& lease)
{
    std::lock_guard lock(m_mutex);
    if (m_lease.empty() || (!lease.empty() && m_lease != lease)) {
        return false;
    }
    m_lease.clear();
    m_queued.clear();
    return true;
}

// One watch of every key under the prefix at a time. Once etcd has set one up, every
// service that waits looks again: whatever happened before it was set up is seen so.
void Rollout::watch()
{
    const auto keys = m_config.prefix + "/";
    auto pause = std::chrono::milliseconds(1000);
    bool failing = false;
    while (wait_for(std::chrono::milliseconds(0))) {
        const auto started = std::chrono::steady_clock::now();
        const auto created = [&] {
            if (m_changed) {
                m_changed("");
            }
        };
        auto watched = m_etcd.watch(keys, range_end(keys), kWatchSilence, created,
                                    [this](const json& events) { this->watched(events); });
        const bool lasted = std::chrono::steady_clock::now() - started >= kWatchSilence / 2;
        if (watched && lasted) {
            if (failing) {
                log::info("rollout: watching etcd again");
            }
            failing = false;
            pause = std::chrono::milliseconds(1000);
            continue;
        }
        if (!watched && !failing) {
            log::warn("rollout: {}; retried", watched.error().message);
        }
        failing = failing || !watched;
        // A watch that fails, or ends soon after it began, is tried again after a pause.
        if (!wait_for(pause)) {
            return;
        }
        pause = std::min(pause * 2, std::chrono::milliseconds(30000));
    }
}

// A mark set or removed: the services of that name look again. A key of a line deleted (left,
// or its lease gone): the service that stands in that line looks again if it may now hold a
// slot. A new key in a line frees nothing.
void Rollout::watched(const json& events)
{
    if (!m_changed) {
        return;
    }
    const auto keys = m_config.prefix + "/";
    for (const auto& event : events) {
        const auto key = base64_decode(text_at(object_at(event, "kv"), "key")).value_or("");
        if (!key.starts_with(keys)) {
            continue;
        }
        const auto rest = key.substr(keys.size());
        const auto service = rest.substr(0, rest.find('/'));
        if (rest.find("/bad/") != std::string::npos) {
            m_changed(service);
        } else if (text_at(event, "type") == "DELETE" && freed_for_us(service, key)) {
            m_changed(service);
        }
    }
}

bool Rollout::freed_for_us(const std::string& service, const std::string& key)
{
    std::lock_guard lock(m_mutex);
    const auto it = m_queued.find(service);
    if (it == m_queued.end()) {
        return false; // in no line of that service
    }
    auto& place = it->second;
    if (key == place.key) {
        return true; // ours: gone with the lease, or left; we look where we stand
    }
    if (!key.starts_with(place.key.substr(0, place.key.rfind('/') + 1))) {
        return false; // another commit's line
    }
    --place.ahead;
    return place.ahead < place.slots;
}

} // namespace gitopper
