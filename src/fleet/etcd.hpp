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

class Etcd {
public:
    explicit Etcd(EtcdOptions options);
    ~Etcd();
    Etcd(const Etcd&) = delete;
    Etcd& operator=(const Etcd&) = delete;

    // `path` ("/v3/kv/txn") with `body`, at the member that answered last, else the others in
    // turn: the answer, or why no member gave one. Thread-safe.
    [[nodiscard]] Result<nlohmann::json> call(std::string_view path, const nlohmann::json& body);

    // Watches the keys from `key` to `range_end` (plain, not base64): each answer's `events` go to
    // `on_events`, until the member is silent for the timeout given, the connection ends, or
    // interrupt(). Ok when it ended quietly; the error when no member took the watch.
    [[nodiscard]] Result<> watch(const std::string& key, const std::string& range_end,
                                 std::chrono::milliseconds silence,
                                 const std::function<void(const nlohmann::json&)>& on_events);
    // Ends a watch() under way, and every later one. Thread-safe.
    void interrupt();

    std::uint64_t requests() const { return m_requests; }
    std::uint64_t failures() const { return m_failures; }

private:
    struct Answer; // one member's
    Answer post(std::size_t member, std::string_view path, const std::string& body,
                const std::string& token);
    [[nodiscard]] Result<std::string> token(std::size_t member, bool renew);
    std::unique_ptr<httplib::Client> client(std::size_t member,
                                            std::chrono::milliseconds read_timeout) const;

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
