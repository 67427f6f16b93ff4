#include "server/http.hpp"

#include <strings.h>
#include <sys/socket.h>

#include <expected>
#include <set>

#include <httplib.h>

#include "server/address.hpp"
#include "server/http_listener.hpp"
#include "server/webhook.hpp"
#include "util/last_resort.hpp"
#include "util/log.hpp"

namespace gitopper {
namespace {

using namespace std::chrono_literals;

constexpr ConnectionLimits kLimits{
    .connections = HttpServer::kMaxConnections,
    .per_source = HttpServer::kMaxPerSource,
    .read = HttpServer::kReadDeadline,
    .write = HttpServer::kWriteDeadline,
    .linger = 1s,
    // httplib allows 8 KiB for the request line and for each header line.
    .header_bytes = 64 << 10,
    // Room for chunk framing and a few headers' worth of trailers around kMaxBody; the
    // payload itself is counted in read_body.
    .body_bytes = 2 * HttpServer::kMaxBody,
};

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

bool is_chunked(const httplib::Request& request)
{
    return ::strcasecmp(request.get_header_value("Transfer-Encoding").c_str(), "chunked") == 0;
}

// httplib's own rule, kept: it parses a url-encoded body into parameters and refuses one
// over 8 KiB with 413.
std::size_t body_limit(const httplib::Request& request)
{
    return request.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")
               ? CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH
               : HttpServer::kMaxBody;
}

// The status that refuses a request's body before a byte of it is read, or 0. A declared
// length over the limit gets 413 (httplib would first read and drop it all), and a body for
// anything but POST /webhook 404, the answer it gets after httplib has read it, which it
// does without a limit when the body is chunked.
int refusal(const httplib::Request& request)
{
    // The methods whose body httplib reads (detail::expect_content).
    static const std::set<std::string> with_body{"POST", "PUT", "PATCH", "DELETE", "PRI"};
    if (!with_body.contains(request.method)) {
        return 0;
    }
    if (!is_chunked(request) &&
        request.get_header_value<std::uint64_t>("Content-Length") > body_limit(request)) {
        return 413;
    }
    return request.method == "POST" && request.path == "/webhook" ? 0 : 404;
}

// A webhook body as it is read, up to a limit.
struct BoundedBody {
    std::size_t limit;
    std::string text;
    std::size_t taken = 0;
    bool too_large = false;

    bool count(std::size_t length)
    {
        too_large = length > limit - taken;
        taken += too_large ? 0 : length;
        return !too_large;
    }
    bool keep(const char* data, std::size_t length)
    {
        if (count(length)) {
            text.append(data, length);
        }
        return !too_large;
    }
};

// Reads a webhook body however it is framed (Content-Length, chunked, compressed) but stops
// at the limit instead of buffering the rest. Fails with the HTTP status to answer.
std::expected<std::string, int> read_body(const httplib::Request& request,
                                          const httplib::ContentReader& content)
{
    BoundedBody body{.limit = body_limit(request)};
    // Once and lazily: pages are touched only as the body fills them, while growing by
    // doubling would briefly hold the old buffer and one twice its size.
    body.text.reserve(body.limit);
    const bool read =
        request.is_multipart_form_data()
            // Form parts were never the payload: httplib kept them apart, the body empty.
            ? content([](const httplib::MultipartFormData&) { return true; },
                      [&](const char*, std::size_t length) { return body.count(length); })
            : content(
                  [&](const char* data, std::size_t length) { return body.keep(data, length); });
    if (body.too_large) {
        return std::unexpected(413);
    }
    if (!read) {
        return std::unexpected(400); // what httplib answers for a body it cannot read
    }
    return std::move(body.text);
}

} // namespace

HttpServer::HttpServer(const Router& router, std::function<std::string()> metrics,
                       Webhooks webhooks)
    : m_router(router), m_metrics(std::move(metrics)), m_webhooks(std::move(webhooks)),
      m_server(std::make_unique<HttpListener>(kLimits))
{
    m_server->set_payload_max_length(kMaxBody); // behind refusal(), which answers first
    // httplib's default adds SO_REUSEPORT, which lets a second daemon share our port without
    // an error; an administrator wants "address in use" instead.
    m_server->set_socket_options([](int socket) {
        const int yes = 1;
        ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    routes();
    guards();
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
    m_server->Post("/webhook", [this](const httplib::Request& request, httplib::Response& response,
                                      const httplib::ContentReader& content) {
        receive_webhook(request, response, content);
    });
    m_server->Get(R"(/list/diff/([^/]+))",
                  [this](const httplib::Request& request, httplib::Response& response) {
                      answer(response, m_router.handle("/list/diff " + request.matches[1].str(),
                                                       Role::read_only));
                  });
    m_server->Get(R"(/list/service/([^/]+))",
                  [this](const httplib::Request& request, httplib::Response& response) {
                      answer(response, m_router.handle("/list/service " + request.matches[1].str(),
                                                       Role::read_only));
                  });
}

// Refused bodies are refused before they are read, whether or not the client waits for
// "100 Continue"; every 413 on /webhook, whichever check gave it, is counted once.
void HttpServer::guards()
{
    m_server->set_pre_routing_handler(
        [](const httplib::Request& request, httplib::Response& response) {
            if (const int status = refusal(request); status != 0) {
                response.status = status;
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
    m_server->set_expect_100_continue_handler(
        [](const httplib::Request& request, httplib::Response& response) {
            const int status = refusal(request);
            if (status == 0) {
                return 100;
            }
            response.status = status; // httplib answers with the response, not the code
            return status;
        });
    m_server->set_error_handler(
        [this](const httplib::Request& request, httplib::Response& response) {
            if (request.path == "/webhook" && response.status == 413) {
                count("too_large");
            }
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

void HttpServer::receive_webhook(const httplib::Request& request, httplib::Response& response,
                                 const httplib::ContentReader& content)
{
    if (m_webhooks.secret.empty()) {
        webhook(request, "", response); // 404, without reading the body
        return;
    }
    auto body = read_body(request, content);
    if (!body) {
        response.status = body.error();
        return;
    }
    webhook(request, *body, response);
}

void HttpServer::webhook(const httplib::Request& request, const std::string& body,
                         httplib::Response& response)
{
    if (m_webhooks.secret.empty()) {
        response.status = 404; // webhooks are off without a secret
        response.set_content("webhooks are not configured (webhook_secret_file)\n", kText);
        return;
    }
    const WebhookHeaders headers{request.get_header_value("X-Hub-Signature-256"),
                                 request.get_header_value("X-Gitea-Signature"),
                                 request.get_header_value("X-Gitlab-Token")};
    if (!verify_webhook(m_webhooks.secret, body, headers)) {
        log::warn("webhook: refused a request from {} with a missing or bad signature",
                  request.remote_addr);
        count("unauthorized");
        response.status = 401;
        response.set_content("bad or missing signature\n", kText);
        return;
    }
    auto push = parse_push(body);
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
    m_server->widen_backlog();
    log::info("http: metrics and read-only API listening on {}:{}", where->host, m_port);
    m_thread = std::thread([this] {
        if (auto what = escaped_exception([this] { m_server->listen_after_bind(); })) {
            log::error("http: the listener stopped: {}", *what);
        }
    });
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
