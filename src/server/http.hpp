#pragma once
// The HTTP endpoint on -m (cpp-httplib): GET /metrics, GET /healthz, the read-only API
// routes GET /list/machine, GET /list/service[/SERVICE] with the SSH API's JSON, and
// POST /webhook.
// Threads: httplib's listener runs on m_thread and only accepts and admits; each admitted
// connection gets a thread of its own, made at accept and gone at close (HttpListener),
// which serves one request (no keep-alive). So the handlers run on up to kMaxConnections
// threads at once. Limits, so that no client can starve a scraper (SPEC §11):
// - kReadDeadline: request line, headers and body must all be in 5 s after accept however
//   they trickle (a scrape or a webhook takes milliseconds); kWriteDeadline: the answer out
//   10 s after accept. A client past a deadline is cut off.
// - kMaxConnections: 64 open at once, and kMaxPerSource: 8 of them from one address (an
//   IPv6 /64), so slow or idle clients from one host cannot take the other hosts' slots,
//   and from the scraper's own host still leave it room. Over a cap: 503, closed at once.
// - kMaxBody: 1 MiB of webhook payload (a push is a few KiB), counted as it is read,
//   whether sent with Content-Length, chunked or compressed; a declared length over it is
//   refused before the body is read. 413 either way. Headers may take 64 KiB.
// Worst case: 64 threads, each holding its headers and at most 1 MiB, for at most 10 s.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/router.hpp"
#include "util/error.hpp"

namespace httplib {
class ContentReader;
struct Request;
struct Response;
} // namespace httplib

namespace gitopper {

class HttpListener;

class HttpServer {
public:
    static constexpr std::size_t kMaxConnections = 64;
    static constexpr std::size_t kMaxPerSource = 8;
    static constexpr std::chrono::seconds kReadDeadline{5};
    static constexpr std::chrono::seconds kWriteDeadline{10}; // the answer, also from accept
    // Larger webhook payloads get 413.
    static constexpr std::size_t kMaxBody = 1 << 20;

    // Webhooks are served when `secret` is not empty; `wake` gets the pushed branch and the
    // repository's URLs and returns how many services it woke.
    struct Webhooks {
        std::string secret;
        std::function<std::size_t(const std::vector<std::string>&, const std::string&)> wake;
    };

    HttpServer(const Router& router, std::function<std::string()> metrics, Webhooks webhooks);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    [[nodiscard]] Result<> start(const std::string& address);
    void stop();
    // Webhook requests by result (ok, unauthorized, bad_request, too_large), for the metrics.
    std::map<std::string, std::uint64_t> webhook_results() const;

private:
    void routes();
    void guards();
    void receive_webhook(const httplib::Request& request, httplib::Response& response,
                         const httplib::ContentReader& content);
    void webhook(const httplib::Request& request, const std::string& body,
                 httplib::Response& response);
    void count(const std::string& result);

    const Router& m_router;
    std::function<std::string()> m_metrics;
    Webhooks m_webhooks;
    mutable std::mutex m_mutex; // guards m_webhook_results
    std::map<std::string, std::uint64_t> m_webhook_results;
    std::unique_ptr<HttpListener> m_server;
    std::thread m_thread;
    int m_port = 0;
};

} // namespace gitopper
