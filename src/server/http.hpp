#pragma once
// The HTTP endpoint on -m (cpp-httplib): GET /metrics, GET /healthz and the read-only API
// routes GET /list/machine, GET /list/service[/SERVICE] with the SSH API's JSON.
// httplib runs its listener on our thread and requests on a pool of kWorkers threads.

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
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace gitopper {

class HttpServer {
public:
    static constexpr std::size_t kWorkers = 2;

    static constexpr std::size_t kMaxBody = 1 << 20; // larger webhook payloads get 413

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

    Result<> start(const std::string& address);
    void stop();
    int port() const { return m_port; }
    // Webhook requests by result (ok, unauthorized, bad_request, too_large), for the metrics.
    std::map<std::string, std::uint64_t> webhook_results() const;

private:
    void routes();
    void webhook(const httplib::Request& request, httplib::Response& response);
    void count(const std::string& result);

    const Router& m_router;
    std::function<std::string()> m_metrics;
    Webhooks m_webhooks;
    mutable std::mutex m_mutex; // guards m_webhook_results
    std::map<std::string, std::uint64_t> m_webhook_results;
    std::unique_ptr<httplib::Server> m_server;
    std::thread m_thread;
    int m_port = 0;
};

} // namespace gitopper
