#include "server/http.hpp"

#include <sys/socket.h>

#include <httplib.h>

#include "server/address.hpp"
#include "server/webhook.hpp"
#include "util/log.hpp"

namespace gitopper {
namespace {

constexpr auto kJson = "application/json";
constexpr auto kText = "text/plain; charset=utf-8";
constexpr auto kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

// The API's status 0 is HTTP's 200; its other codes are HTTP codes already.
void answer(httplib::Response& response, const Reply& reply)
{
    response.status = reply.status == 0 ? 200 : reply.status;
    response.set_content(reply.status == 0 ? reply.body : reply.body + "\n",
                         reply.status == 0 ? kJson : kText);
}

} // namespace

HttpServer::HttpServer(const Router& router, std::function<std::string()> metrics,
                       Webhooks webhooks)
    : m_router(router), m_metrics(std::move(metrics)), m_webhooks(std::move(webhooks)),
      m_server(std::make_unique<httplib::Server>())
{
    m_server->new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
    m_server->set_payload_max_length(kMaxBody);
    // httplib's default adds SO_REUSEPORT, which lets a second daemon share our port without
    // an error; an administrator wants "address in use" instead.
    m_server->set_socket_options([](int socket) {
        const int yes = 1;
        ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    m_server->set_read_timeout(5, 0);
    m_server->set_write_timeout(5, 0);
    routes();
}

HttpServer::~HttpServer()
{
    stop();
}

void HttpServer::routes()
{
    m_server->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
        response.set_content(m_metrics(), kMetricsType);
    });
    m_server->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
        response.set_content("ok\n", kText);
    });
    m_server->Get("/list/machine", [this](const httplib::Request&, httplib::Response& response) {
        answer(response, m_router.handle("/list/machine", Role::read_only));
    });
    m_server->Get("/list/service", [this](const httplib::Request&, httplib::Response& response) {
        answer(response, m_router.handle("/list/service", Role::read_only));
    });
    m_server->Post("/webhook", [this](const httplib::Request& request,
                                      httplib::Response& response) { webhook(request, response); });
    // httplib answers 413 itself for bodies over kMaxBody; count those too.
    m_server->set_error_handler(
        [this](const httplib::Request& request, httplib::Response& response) {
            if (request.path == "/webhook" && response.status == 413) {
                count("too_large");
            }
        });
    m_server->Get(R"(/list/service/([^/]+))",
                  [this](const httplib::Request& request, httplib::Response& response) {
                      answer(response, m_router.handle("/list/service " + request.matches[1].str(),
                                                       Role::read_only));
                  });
}

void HttpServer::count(const std::string& result)
{
    std::lock_guard lock(m_mutex);
    ++m_webhook_results[result];
}

std::map<std::string, std::uint64_t> HttpServer::webhook_results() const
{
    std::lock_guard lock(m_mutex);
    return m_webhook_results;
}

void HttpServer::webhook(const httplib::Request& request, httplib::Response& response)
{
    if (m_webhooks.secret.empty()) {
        response.status = 404; // webhooks are off without a secret
        response.set_content("webhooks are not configured (webhook_secret_file)\n", kText);
        return;
    }
    const WebhookHeaders headers{request.get_header_value("X-Hub-Signature-256"),
                                 request.get_header_value("X-Gitea-Signature"),
                                 request.get_header_value("X-Gitlab-Token")};
    if (!verify_webhook(m_webhooks.secret, request.body, headers)) {
        log::warn("webhook: refused a request from {} with a missing or bad signature",
                  request.remote_addr);
        count("unauthorized");
        response.status = 401;
        response.set_content("bad or missing signature\n", kText);
        return;
    }
    auto push = parse_push(request.body);
    if (!push) {
        count("bad_request");
        response.status = 400;
        response.set_content(push.error().message + "\n", kText);
        return;
    }
    const auto woken = m_webhooks.wake(push->repositories, push->branch);
    log::info("webhook: push to {} of {}: woke {} service{}", push->branch,
              push->repositories.front(), woken, woken == 1 ? "" : "s");
    count("ok");
    response.set_content(fmt::format("woke {} service{}\n", woken, woken == 1 ? "" : "s"), kText);
}

Result<> HttpServer::start(const std::string& address)
{
    auto where = parse_listen_address(address);
    if (!where) {
        return std::unexpected(where.error());
    }
    if (where->port == 0) {
        m_port = m_server->bind_to_any_port(where->host);
    } else if (m_server->bind_to_port(where->host, where->port)) {
        m_port = where->port;
    } else {
        m_port = -1;
    }
    if (m_port <= 0) {
        return fail("http: cannot listen on {}", address);
    }
    log::info("http: metrics and read-only API listening on {}:{}", where->host, m_port);
    m_thread = std::thread([this] { m_server->listen_after_bind(); });
    return {};
}

void HttpServer::stop()
{
    if (m_thread.joinable()) {
        // stop() only takes once the listener runs; it may not have started yet.
        for (int i = 0; i < 200 && !m_server->is_running(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        m_server->stop();
        m_thread.join();
    }
}

} // namespace gitopper
