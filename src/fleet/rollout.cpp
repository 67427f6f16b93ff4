#include "fleet/rollout.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "util/base64.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using json = nlohmann::json;

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

struct Entry {
    std::string key;
    std::string value;
};

// The keys (and values) of a range answer, decoded; `count`: how many matched, beyond a limit.
std::vector<Entry> entries(const json& range, std::int64_t* count = nullptr)
{
    std::vector<Entry> out;
    if (range.contains("kvs") && range["kvs"].is_array()) {
        for (const auto& kv : range["kvs"]) {
            out.push_back({base64_decode(kv.value("key", "")).value_or(""),
                           base64_decode(kv.value("value", "")).value_or("")});
        }
    }
    if (count != nullptr) {
        const auto text = range.value("count", "0");
        std::from_chars(text.data(), text.data() + text.size(), *count);
    }
    return out;
}

// The range answer at `index` of a txn's answer.
json range_answer(const json& answer, std::size_t index)
{
    const auto& responses = answer.contains("responses") ? answer["responses"] : json::array();
    if (index >= responses.size() || !responses[index].contains("response_range")) {
        return json::object();
    }
    return responses[index]["response_range"];
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
    m_keeper = std::thread([this] { keep_alive(); });
    m_watcher = std::thread([this] { watch(); });
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
    if (!answer->contains("ID") || !(*answer)["ID"].is_string()) {
        return fail("etcd: no lease granted: {}", answer->value("error", "no ID in the answer"));
    }
    std::lock_guard lock(m_mutex);
    m_lease = (*answer)["ID"].get<std::string>();
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
    auto id = lease();
    if (!id) {
        return std::unexpected(id.error());
    }
    const auto line = queue_prefix(service, commit);
    const auto key = line + m_host + "-" + lease_hex(*id);
    const auto bad = bad_key(service, commit);
    std::string older;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service); it != m_queued.end() && it->second != key) {
            older = it->second;
        }
    }
    if (!older.empty()) { // a newer commit came: the older one's line is no longer ours
        if (auto r = txn({{"success", json::array({erase(older)})}}); !r) {
            return std::unexpected(r.error());
        }
        std::lock_guard lock(m_mutex);
        m_queued.erase(service);
    }
    // In line once (a put on our key again would wake every waiting host), unless it is bad.
    const json body{{"compare", json::array({absent(bad), absent(key)})},
                    {"success", json::array({put(key, m_host, *id), oldest(line, slots)})},
                    {"failure", json::array({get(bad), oldest(line, slots)})}};
    auto answer = txn(body);
    if (!answer) {
        return std::unexpected(answer.error());
    }
    const auto marks = entries(range_answer(*answer, 0));
    if (!answer->value("succeeded", false) && !marks.empty()) {
        const auto mark = json::parse(marks.front().value, nullptr, false);
        Turn held{.kind = Turn::Kind::held};
        held.held_by = mark.is_object() ? mark.value("host", "?") : "?";
        held.held_why = mark.is_object() ? mark.value("why", "") : "";
        bool queued = false;
        {
            std::lock_guard lock(m_mutex);
            queued = m_queued.erase(service) != 0;
        }
        if (queued) {
            leave(service, commit); // marked while we waited
        }
        return held;
    }
    {
        std::lock_guard lock(m_mutex);
        m_queued[service] = key;
    }
    std::int64_t in_line = 0;
    const auto holders = entries(range_answer(*answer, 1), &in_line);
    const bool ours = std::any_of(holders.begin(), holders.end(),
                                  [&](const Entry& entry) { return entry.key == key; });
    return ours ? Turn{.kind = Turn::Kind::go, .in_line = in_line}
                : Turn{.kind = Turn::Kind::wait, .in_line = in_line};
}

void Rollout::leave(const std::string& service, const std::string& commit)
{
    std::string key;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_queued.find(service);
            it != m_queued.end() && it->second.starts_with(queue_prefix(service, commit))) {
            key = it->second;
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
            marking.push_back(erase(it->second));
            leaving.push_back(erase(it->second));
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
        const auto commit = entry.key.substr(marks.size());
        if (commit.starts_with(prefix)) {
            matching.push_back(commit);
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

void Rollout::pay_owed()
{
    for (;;) {
        Owed next;
        {
            std::lock_guard lock(m_mutex);
            if (m_owed.empty()) {
                return;
            }
            next = m_owed.front();
        }
        if (auto r = txn(next.txn); !r) {
            log::warn("rollout: {}: {}; retried", next.what, r.error().message);
            return;
        }
        std::lock_guard lock(m_mutex);
        if (!m_owed.empty()) {
            m_owed.pop_front();
        }
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
    const auto& result = answer->contains("result") ? (*answer)["result"] : *answer;
    if (result.value("TTL", "0") != "0") {
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        if (m_lease != lease) {
            return;
        }
        m_lease.clear();
        m_queued.clear(); // its keys went with it
    }
    log::warn("rollout: lease {} expired (etcd unreachable for longer than {}): this host left "
              "every line it stood in",
              lease_hex(lease), format_duration(m_config.lease_ttl));
    if (m_changed) {
        m_changed("");
    }
}

// One watch of every key under the prefix at a time; after each (re)start anything may have
// changed, so every service that waits looks again.
void Rollout::watch()
{
    const auto keys = m_config.prefix + "/";
    auto pause = std::chrono::milliseconds(1000);
    bool failing = false;
    while (wait_for(std::chrono::milliseconds(0))) {
        if (m_changed) {
            m_changed("");
        }
        auto watched = m_etcd.watch(keys, range_end(keys), std::chrono::seconds(10),
                                    [this](const json& events) { this->watched(events); });
        if (watched) {
            if (failing) {
                log::info("rollout: watching etcd again");
            }
            failing = false;
            pause = std::chrono::milliseconds(1000);
            continue;
        }
        if (!failing) {
            log::warn("rollout: {}; retried", watched.error().message);
        }
        failing = true;
        if (!wait_for(pause)) {
            return;
        }
        pause = std::min(pause * 2, std::chrono::milliseconds(30000));
    }
}

// A line's key deleted (a slot freed: left, or its lease gone) or a mark set or removed:
// the services of that name look again. A new key in a line frees nothing.
void Rollout::watched(const json& events)
{
    if (!events.is_array() || !m_changed) {
        return;
    }
    const auto keys = m_config.prefix + "/";
    for (const auto& event : events) {
        const auto kv = event.value("kv", json::object());
        const auto key = base64_decode(kv.value("key", "")).value_or("");
        if (!key.starts_with(keys)) {
            continue;
        }
        const auto rest = key.substr(keys.size());
        const auto service = rest.substr(0, rest.find('/'));
        const bool deleted = event.value("type", "PUT") == "DELETE";
        const bool mark = rest.find("/bad/") != std::string::npos;
        if (deleted || mark) {
            m_changed(service);
        }
    }
}

} // namespace gitopper
