#pragma once
// etcd's v3 API through its JSON gateway (POST /v3/... on a member's client URL): the calls a
// rollout makes, each sent to one member after another until one answers. Keys and values
// travel base64-encoded, 64-bit numbers as strings; this class leaves the bodies to its caller.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/error.hpp"

namespace httplib {
class Client;
}

namespace gitopper {

struct EtcdOptions {
    std::vector<std::string> members; // client URLs
    std::chrono::milliseconds timeout{5000};
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string user;
    std::string password; // the secret itself, never logged
};

// Safe reads of an answer, whatever a member sent: "" / an empty object or array when the
// field is missing or of another type (nlohmann's value() would throw).
std::string text_at(const nlohmann::json& object, std::string_view key);
bool flag_at(const nlohmann::json& object, std::string_view key); // true only when it is true
const nlohmann::json& object_at(const nlohmann::json& object, std::string_view key);
const nlohmann::json& array_at(const nlohmann::json& object, std::string_view key);

class Etcd {
public:
    explicit Etcd(EtcdOptions options);
    ~Etcd();
    Etcd(const Etcd&) = delete;
    Etcd& operator=(const Etcd&) = delete;

    // `path` ("/v3/kv/txn") with `body`, at the member that answered last, else the others in
    // turn while they do not answer (or answer 5xx): the answer, or why there is none.
    // `refused`, when given, is set when a member answered with a refusal (4xx: no other
    // member would say otherwise, and trying again will not help). Thread-safe.
    [[nodiscard]] Result<nlohmann::json> call(std::string_view path, const nlohmann::json& body,
                                              bool* refused = nullptr);

    // Watches the keys from `key` to `range_end` (plain, not base64): `on_created` once etcd
    // has set the watch up, then each answer's `events` go to `on_events`, until the member
    // is silent for `silence`, ends the stream or cancels the watch, or interrupt(). Ok when
    // it ended so after being set up; the error when no member set it up.
    [[nodiscard]] Result<> watch(const std::string& key, const std::string& range_end,
                                 std::chrono::milliseconds silence,
                                 const std::function<void()>& on_created,
                                 const std::function<void(const nlohmann::json&)>& on_events);
    // Ends a watch() under way, and every later one. Thread-safe.
    void interrupt();

    std::uint64_t requests() const { return m_requests; }
    std::uint64_t failures() const { return m_failures; }

private:
    struct Answer; // one member's
    struct Watched;
    Answer post(std::size_t member, std::string_view path, const std::string& body,
                const std::string& token);
    [[nodiscard]] Result<std::string> token(std::size_t member, bool renew);
    std::unique_ptr<httplib::Client> client(std::size_t member,
                                            std::chrono::milliseconds read_timeout) const;
    Watched watch_at(std::size_t member, const std::string& body, std::chrono::milliseconds silence,
                     const std::function<void()>& on_created,
                     const std::function<void(const nlohmann::json&)>& on_events);
    std::string where(std::size_t member) const;

    EtcdOptions m_options;
    std::atomic<std::size_t> m_current{0}; // the member that answered last
    std::atomic<std::uint64_t> m_requests{0};
    std::atomic<std::uint64_t> m_failures{0};
    std::mutex m_mutex;                    // guards the members below
    std::string m_token;                   // etcd's auth token, when `user` is set
    httplib::Client* m_watching = nullptr; // the watch under way
    bool m_interrupted = false;
};

} // namespace gitopper
