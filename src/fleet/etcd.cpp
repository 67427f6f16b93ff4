#include "fleet/etcd.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "util/base64.hpp"
#include "util/endpoint.hpp"
#include "util/http_error.hpp"
#include "util/strings.hpp"

namespace gitopper {

struct Etcd::Answer {
    int status = 0; // 0: no answer
    std::string body;
    std::string why; // without an answer, or an error answer's message
};

namespace {

constexpr std::size_t kMaxAnswer = 64 << 20; // a range is limited; this is far beyond any
constexpr int kUnauthenticated = 16;         // gRPC's code for an expired or unknown token
constexpr std::size_t kMaxMessage = 300;     // of an answer's text, in a log line

// What a member said, without control characters, for a log line.
std::string printable_text(std::string text)
{
    if (text.size() > kMaxMessage) {
        text.resize(kMaxMessage);
    }
    std::replace_if(
        text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < ' '; }, ' ');
    return text;
}

// The message of an error answer ({"error": …, "code": …, "message": …}), else its first
// line of plain text (etcd's gateway answers some refusals so), else its status.
std::string error_of(int status, const std::string& body)
{
    const auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_object() && json.contains("message") && json["message"].is_string()) {
        return printable_text(json["message"].get<std::string>());
    }
    const auto line = printable_text(body.substr(0, std::min(body.find('\n'), kMaxMessage)));
    return line.empty() ? fmt::format("HTTP {}", status) : fmt::format("HTTP {}: {}", status, line);
}

std::string origin_of(const std::string& member)
{
    auto url = parse_http_url(member);
    return url ? url->origin() : std::string("an etcd member");
}

} // namespace

Etcd::Etcd(EtcdOptions options) : m_options(std::move(options)) {}

Etcd::~Etcd() = default;

std::unique_ptr<httplib::Client> Etcd::client(std::size_t member,
                                              std::chrono::milliseconds read_timeout) const
{
    const auto url = parse_http_url(m_options.members[member]);
    const auto origin = url ? url->origin() : std::string();
    auto client =
        m_options.cert_file.empty()
            ? std::make_unique<httplib::Client>(origin)
            : std::make_unique<httplib::Client>(origin, m_options.cert_file, m_options.key_file);
    const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(m_options.timeout);
    client->set_connection_timeout(timeout);
    client->set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(read_timeout));
    client->set_write_timeout(timeout);
    client->set_follow_location(false);
    client->set_keep_alive(false);
    if (url && url->tls) {
        client->enable_server_certificate_verification(true);
        if (!m_options.ca_file.empty()) {
            client->set_ca_cert_path(m_options.ca_file);
        }
    }
    return client;
}

// etcd's gateway sends an error answer chunked, with a trailer after the last chunk, which
// httplib takes for a broken answer: the body is gathered as it comes, and an error answer
// is read off it ({"error", "code", "message"}, code 16 being gRPC's "unauthenticated").
Etcd::Answer Etcd::post(std::size_t member, std::string_view path, const std::string& body,
                        const std::string& token)
{
    ++m_requests;
    httplib::Request request;
    request.method = "POST";
    request.path = std::string(path);
    request.headers = {{"User-Agent", "gitopper/" GITOPPER_VERSION},
                       {"Content-Type", "application/json"}};
    if (!token.empty()) {
        request.headers.emplace("Authorization", token);
    }
    request.body = body;
    std::string got;
    request.content_receiver = [&](const char* data, std::size_t size, std::uint64_t,
                                   std::uint64_t) {
        got.append(data, size);
        return got.size() <= kMaxAnswer;
    };
    const auto answer = client(member, m_options.timeout)->send(request);
    if (answer && answer->status == 200) {
        return {200, std::move(got), ""};
    }
    const auto json = nlohmann::json::parse(got, nullptr, false);
    if (json.is_object() && json.contains("code")) {
        const int status = json.value("code", 0) == kUnauthenticated ? 401
                           : answer                                  ? answer->status
                                                                     : 500;
        return {status, "", error_of(status, got)};
    }
    if (!answer) {
        return {0, "", http_failure_text(answer.error())};
    }
    return {answer->status, "", error_of(answer->status, got)};
}

// etcd's auth token for `user`, asked for once and again when etcd says it expired.
Result<std::string> Etcd::token(std::size_t member, bool renew)
{
    if (m_options.user.empty()) {
        return std::string();
    }
    {
        std::lock_guard lock(m_mutex);
        if (!renew && !m_token.empty()) {
            return m_token;
        }
    }
    const nlohmann::json body{{"name", m_options.user}, {"password", m_options.password}};
    const auto answer = post(member, "/v3/auth/authenticate", body.dump(), "");
    if (answer.status != 200) {
        return fail("authenticating as {}: {}", quote(m_options.user), answer.why);
    }
    const auto json = nlohmann::json::parse(answer.body, nullptr, false);
    if (!json.is_object() || !json.contains("token") || !json["token"].is_string()) {
        return fail("authenticating as {}: no token in the answer", quote(m_options.user));
    }
    std::lock_guard lock(m_mutex);
    m_token = json["token"].get<std::string>();
    return m_token;
}

Result<nlohmann::json> Etcd::call(std::string_view path, const nlohmann::json& body)
{
    const auto text = body.dump();
    const auto count = m_options.members.size();
    std::vector<std::string> reasons;
    for (std::size_t tried = 0; tried < count; ++tried) {
        const auto member = (m_current + tried) % count;
        const auto where = origin_of(m_options.members[member]);
        auto token = this->token(member, false);
        if (!token) {
            reasons.push_back(fmt::format("{}: {}", where, token.error().message));
            continue;
        }
        auto answer = post(member, path, text, *token);
        if (answer.status == 401 && !m_options.user.empty()) {
            token = this->token(member, true);
            answer =
                token ? post(member, path, text, *token) : Answer{0, "", token.error().message};
        }
        if (answer.status == 200) {
            auto json = nlohmann::json::parse(answer.body, nullptr, false);
            if (!json.is_discarded()) {
                m_current = member;
                return json;
            }
            answer.why = "the answer is no JSON";
        }
        reasons.push_back(fmt::format("{}: {}", where, answer.why));
    }
    ++m_failures;
    return fail("etcd: {}", join(reasons, "; "));
}

Result<> Etcd::watch(const std::string& key, const std::string& range_end,
                     std::chrono::milliseconds silence,
                     const std::function<void(const nlohmann::json&)>& on_events)
{
    const nlohmann::json create{
        {"create_request", {{"key", base64_encode(key)}, {"range_end", base64_encode(range_end)}}}};
    const auto count = m_options.members.size();
    std::vector<std::string> reasons;
    for (std::size_t tried = 0; tried < count; ++tried) {
        const auto member = (m_current + tried) % count;
        auto token = this->token(member, false);
        if (!token) {
            reasons.push_back(token.error().message);
            continue;
        }
        auto client = this->client(member, silence);
        {
            std::lock_guard lock(m_mutex);
            if (m_interrupted) {
                return {};
            }
            m_watching = client.get();
        }
        // The gateway streams one JSON object per line: "created", then the events.
        bool answered = false;
        std::string pending;
        std::string refused;
        httplib::Request request;
        request.method = "POST";
        request.path = "/v3/watch";
        request.headers = {{"User-Agent", "gitopper/" GITOPPER_VERSION},
                           {"Content-Type", "application/json"}};
        if (!token->empty()) {
            request.headers.emplace("Authorization", *token);
        }
        request.body = create.dump();
        request.content_receiver = [&](const char* data, std::size_t size, std::uint64_t,
                                       std::uint64_t) {
            answered = true;
            pending.append(data, size);
            for (auto end = pending.find('\n'); end != std::string::npos;
                 end = pending.find('\n')) {
                const auto line = pending.substr(0, end);
                pending.erase(0, end + 1);
                const auto json = nlohmann::json::parse(line, nullptr, false);
                if (json.contains("error")) {
                    refused = error_of(0, line);
                    return false;
                }
                const auto* result = json.contains("result") ? &json["result"] : nullptr;
                if (result != nullptr && result->contains("events")) {
                    on_events((*result)["events"]);
                }
            }
            return pending.size() < (1U << 20); // one message is never this long
        };
        ++m_requests;
        const auto answer = client->send(request);
        {
            std::lock_guard lock(m_mutex);
            m_watching = nullptr;
        }
        if (!refused.empty()) {
            reasons.push_back(refused);
        } else if (answered) {
            m_current = member;
            return {};
        } else {
            reasons.push_back(fmt::format("{}: {}", origin_of(m_options.members[member]),
                                          answer ? error_of(answer->status, answer->body)
                                                 : http_failure_text(answer.error())));
        }
    }
    ++m_failures;
    return fail("etcd: watch: {}", join(reasons, "; "));
}

void Etcd::interrupt()
{
    std::lock_guard lock(m_mutex);
    m_interrupted = true;
    if (m_watching != nullptr) {
        m_watching->stop();
    }
}

} // namespace gitopper
