#pragma once
// The HTTP endpoint on -m (cpp-httplib): GET /metrics, GET /healthz and the read-only API
// routes GET /list/machine, GET /list/service[/SERVICE] with the SSH API's JSON.
// httplib runs its listener on our thread and requests on a pool of kWorkers threads.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "api/router.hpp"
#include "util/error.hpp"

namespace httplib {
class Server;
}

namespace gitopper {

class HttpServer {
public:
    static constexpr std::size_t kWorkers = 2;

    HttpServer(const Router& router, std::function<std::string()> metrics);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    Result<> start(const std::string& address);
    void stop();
    int port() const { return m_port; }

private:
    void routes();

    const Router& m_router;
    std::function<std::string()> m_metrics;
    std::unique_ptr<httplib::Server> m_server;
    std::thread m_thread;
    int m_port = 0;
};

} // namespace gitopper
