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

constexpr std::size_t kMaxAnswer = 4 << 20;      // a range is limited; this is far beyond any
constexpr std::size_t kMaxMessageLine = 1 << 20; // one watch message
constexpr int kUnauthenticated = 16;             // gRPC's code for an expired or unknown token
constexpr std::size_t kMaxMessage = 300;         // of an answer's text, in a log line

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
    if (const auto message = text_at(json, "message"); !message.empty()) {
        return printable_text(message);
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

std::string text_at(const nlohmann::json& object, std::string_view key)
{
    if (!object.is_object()) {
        return "";
    }
    const auto found = object.find(key);
    return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

bool flag_at(const nlohmann::json& object, std::string_view key)
{
    if (!object.is_object()) {
        return false;
    }
    const auto found = object.find(key);
    return found != object.end() && found->is_boolean() && found->get<bool>();
}

namespace {

// `key` of `object` when it is of the kind `is` asks for, else `empty`.
const nlohmann::json& typed_at(const nlohmann::json& object, std::string_view key,
                               bool (nlohmann::json::*is)() const noexcept,
                               const nlohmann::json& empty)
{
    if (!object.is_object()) {
        return empty;
    }
    const auto found = object.find(key);
    return found != object.end() && ((*found).*is)() ? *found : empty;
}

} // namespace

const nlohmann::json& object_at(const nlohmann::json& object, std::string_view key)
{
    static const nlohmann::json empty = nlohmann::json::object();
    return typed_at(object, key, &nlohmann::json::is_object, empty);
}

const nlohmann::json& array_at(const nlohmann::json& object, std::string_view key)
{
    static const nlohmann::json empty = nlohmann::json::array();
    return typed_at(object, key, &nlohmann::json::is_array, empty);
}

std::string Etcd::where(std::size_t member) const
{
    return origin_of(m_options.members[member]);
}

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
        const auto& code = json["code"];
        const bool unauthenticated = code.is_number_integer() && code == kUnauthenticated;
        const int status = unauthenticated ? 401 : answer ? answer->status : 500;
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
    const auto token = text_at(nlohmann::json::parse(answer.body, nullptr, false), "token");
    if (token.empty()) {
        return fail("authenticating as {}: no token in the answer", quote(m_options.user));
    }
    std::lock_guard lock(m_mutex);
    m_token = token;
    return m_token;
}

Result<nlohmann::json> Etcd::call(std::string_view path, const nlohmann::json& body, bool* refused)
{
    const auto text = body.dump();
    const auto count = m_options.members.size();
    std::vector<std::string> reasons;
    for (std::size_t tried = 0; tried < count; ++tried) {
        const auto member = (m_current + tried) % count;
        auto token = this->token(member, false);
        auto answer =
            token ? post(member, path, text, *token) : Answer{0, "", token.error().message};
        if (answer.status == 401 && !m_options.user.empty()) {
            token = this->token(member, true);
            answer =
                token ? post(member, path, text, *token) : Answer{0, "", token.error().message};
        }
        if (answer.status == 200) {
            auto json = nlohmann::json::parse(answer.body, nullptr, false);
            if (json.is_object()) {
                m_current = member;
                return json;
            }
            answer.why = "the answer is no JSON object";
        }
        // A refusal is etcd's word on the request; another member would say the same.
        if (answer.status >= 400 && answer.status < 500) {
            m_current = member;
            if (refused != nullptr) {
                *refused = true;
            }
            return fail("etcd: {}: {}", where(member), answer.why);
        }
        reasons.push_back(fmt::format("{}: {}", where(member), answer.why));
    }
    ++m_failures;
    return fail("etcd: {}", join(reasons, "; "));
}

// How one member took a watch.
struct Etcd::Watched {
    bool created = false; // etcd set it up (and did not cancel it at once)
    std::string why;      // it did not, or cancelled it
};

Etcd::Watched Etcd::watch_at(std::size_t member, const std::string& body,
                             std::chrono::milliseconds silence,
                             const std::function<void()>& on_created,
                             const std::function<void(const nlohmann::json&)>& on_events)
{
    auto token = this->token(member, false);
    if (!token) {
        return {false, token.error().message};
    }
    auto client = this->client(member, silence);
    {
        std::lock_guard lock(m_mutex);
        if (m_interrupted) {
            return {true, ""};
        }
        m_watching = client.get();
    }
    Watched watched;
    std::string pending;
    // The gateway streams one JSON object per line: "created" (or "canceled"), then events.
    const auto line_of = [&](const std::string& line) {
        const auto json = nlohmann::json::parse(line, nullptr, false);
        const auto& result = object_at(json, "result");
        if (json.is_object() && json.contains("error")) {
            watched.why = error_of(0, line);
            return false;
        }
        if (flag_at(result, "canceled")) {
            watched.why = "watch cancelled: " + printable_text(text_at(result, "cancel_reason"));
            if (watched.why.find("nauthenticated") != std::string::npos ||
                watched.why.find("auth") != std::string::npos) {
                std::lock_guard lock(m_mutex);
                m_token.clear(); // asked for again at the next watch
            }
            return false;
        }
        if (flag_at(result, "created") && !watched.created) {
            watched.created = true;
            on_created();
        }
        if (const auto& events = array_at(result, "events"); !events.empty()) {
            on_events(events);
        }
        return true;
    };
    httplib::Request request;
    request.method = "POST";
    request.path = "/v3/watch";
    request.headers = {{"User-Agent", "gitopper/" GITOPPER_VERSION},
                       {"Content-Type", "application/json"}};
    if (!token->empty()) {
        request.headers.emplace("Authorization", *token);
    }
    request.body = body;
    request.content_receiver = [&](const char* data, std::size_t size, std::uint64_t,
                                   std::uint64_t) {
        pending.append(data, size);
        for (auto end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
            const auto line = pending.substr(0, end);
            pending.erase(0, end + 1);
            if (!line_of(line)) {
                return false;
            }
        }
        return pending.size() <= kMaxMessageLine;
    };
    ++m_requests;
    const auto answer = client->send(request);
    {
        std::lock_guard lock(m_mutex);
        m_watching = nullptr;
    }
    if (!watched.created && watched.why.empty()) {
        watched.why =
            answer ? fmt::format("HTTP {}", answer->status) : http_failure_text(answer.error());
    }
    return watched;
}

Result<> Etcd::watch(const std::string& key, const std::string& range_end,
                     std::chrono::milliseconds silence, const std::function<void()>& on_created,
                     const std::function<void(const nlohmann::json&)>& on_events)
{
    const nlohmann::json create{
        {"create_request", {{"key", base64_encode(key)}, {"range_end", base64_encode(range_end)}}}};
    const auto body = create.dump();
    const auto count = m_options.members.size();
    std::vector<std::string> reasons;
    for (std::size_t tried = 0; tried < count; ++tried) {
        const auto member = (m_current + tried) % count;
        const auto watched = watch_at(member, body, silence, on_created, on_events);
        if (watched.created && watched.why.empty()) {
            m_current = member;
            return {};
        }
        reasons.push_back(fmt::format("{}: {}", where(member), watched.why));
        if (watched.created) {
            break; // set up, then cancelled: the next watch starts over
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
