#include "notify/deliver.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "util/command_line.hpp"
#include "util/endpoint.hpp"
#include "util/hmac.hpp"
#include "util/http_error.hpp"
#include "util/process.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

constexpr std::chrono::seconds kStatusTimeout{10};

Tried judge(const httplib::Response& answer)
{
    return judge_answer(answer.status, answer.get_header_value("Retry-After"),
                        answer.get_header_value("X-RateLimit-Remaining"));
}

struct Post {
    const HttpUrl& url;
    std::string path; // the request target
    httplib::Headers headers;
    std::string body;
    std::chrono::milliseconds timeout;
    std::string ca_file;
};

// One POST of a JSON body, no redirects, no keep-alive, each step bounded by the timeout.
Tried send(Post post)
{
    httplib::Client client(post.url.origin());
    const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(post.timeout);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    client.set_follow_location(false);
    client.set_keep_alive(false);
    if (post.url.tls) {
        client.enable_server_certificate_verification(true);
        if (!post.ca_file.empty()) {
            client.set_ca_cert_path(post.ca_file);
        }
    }
    post.headers.emplace("User-Agent", "gitopper/" GITOPPER_VERSION);
    post.headers.emplace("Content-Type", "application/json");
    httplib::Request request;
    request.method = "POST";
    request.path = std::move(post.path);
    request.headers = std::move(post.headers);
    request.body = std::move(post.body);
    // The answer's body says nothing we use: read and forgotten as it comes, never held.
    request.content_receiver = [](const char*, std::size_t, std::uint64_t, std::uint64_t) {
        return true;
    };
    const auto answer = client.send(request);
    if (!answer) {
        return {Tried::Kind::retry, http_failure_text(answer.error())};
    }
    return judge(*answer);
}

Tried post_notice(const NotifyTarget& target, const std::string& secret, const Notice& notice)
{
    auto url = parse_http_url(target.url);
    if (!url) {
        return {Tried::Kind::rejected, "url " + url.error().message};
    }
    auto body = target.format == "slack" ? slack_json(notice) : notice_json(notice);
    httplib::Headers headers{{"X-Gitopper-Event", notice.event}};
    if (!secret.empty()) {
        headers.emplace("X-Gitopper-Signature-256", "sha256=" + hmac_sha256_hex(secret, body));
    }
    return send({.url = *url,
                 .path = url->target,
                 .headers = std::move(headers),
                 .body = std::move(body),
                 .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(target.timeout),
                 .ca_file = target.ca_file});
}

// The JSON event on the command's stdin, from a sealed memory file (nothing on disk).
Tried run_exec(const NotifyTarget& target, const Notice& notice)
{
    auto input = sealed_copy("gitopper-notice", notice_json(notice) + "\n", 0, 0);
    if (!input || ::lseek(input->get(), 0, SEEK_SET) != 0) {
        return {Tried::Kind::retry, input ? "lseek failed" : input.error().message};
    }
    const std::array<std::pair<std::string_view, std::string>, 3> values{
        {{"dir", ""}, {"commit", notice.to}, {"service", notice.service}}};
    auto output = run(Command{
        .argv = fill_placeholders(target.exec, values),
        .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(target.timeout),
        .env = environment_with(notice_environment(notice)),
        .cwd = "/",
        .stdin_fd = input->get(),
    });
    if (!output) {
        return {Tried::Kind::retry, output.error().message};
    }
    return output->ok() ? Tried{Tried::Kind::delivered, "exit 0"}
                        : Tried{Tried::Kind::retry, output->describe()};
}

// At most `limit` bytes, never half a UTF-8 character.
std::string cut(std::string text, std::size_t limit)
{
    if (text.size() <= limit) {
        return text;
    }
    auto end = limit;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) {
        --end;
    }
    text.resize(end);
    return text;
}

// "owner/name" as the path of a URL: GitLab takes a project's full path escaped as one
// segment; the others take it as it is.
std::string escape_path(std::string_view path)
{
    std::string out;
    for (const char c : path) {
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        out += plain ? std::string(1, c) : fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
    return out;
}

} // namespace

Tried judge_answer(int status, std::string_view retry_after, std::string_view rate_remaining)
{
    const auto why = fmt::format("HTTP {}", status);
    if (status >= 200 && status < 300) {
        return {Tried::Kind::delivered, why};
    }
    const bool rate_limited = status == 403 && (!retry_after.empty() || rate_remaining == "0");
    if (status != 408 && status != 429 && status < 500 && !rate_limited) {
        return {Tried::Kind::rejected, why};
    }
    Tried tried{Tried::Kind::retry, rate_limited ? why + " (rate limited)" : why};
    long seconds = 0;
    const auto [end, error] =
        std::from_chars(retry_after.data(), retry_after.data() + retry_after.size(), seconds);
    if (error == std::errc() && end == retry_after.data() + retry_after.size() && seconds > 0) {
        tried.retry_after = std::chrono::seconds(seconds); // an HTTP date is not followed
    }
    return tried;
}

Tried deliver(const NotifyTarget& target, const std::string& secret, const Notice& notice)
{
    return target.exec.empty() ? post_notice(target, secret, notice) : run_exec(target, notice);
}

std::optional<StatusCall> status_call(const Notice& n)
{
    const auto why = n.info.empty() ? std::string() : ": " + n.info;
    std::optional<StatusCall> call;
    if (n.event == kEventDeploying) {
        call = StatusCall{"pending", fmt::format("deploying on {}", n.host)};
    } else if (n.event == kEventDeploy) {
        call = StatusCall{"success", fmt::format("deployed on {}", n.host)};
    } else if (n.event == kEventCheckFailed) {
        call = StatusCall{"failure", fmt::format("check failed on {}{}", n.host, why)};
    } else if (n.event == kEventHealthFailed) {
        call = StatusCall{"failure", fmt::format("health check failed on {}{}", n.host, why)};
    } else if (n.event == kEventDeployFailed) {
        call = StatusCall{"failure", fmt::format("deploy failed on {}{}", n.host, why)};
    }
    if (call) {
        call->description = cut(std::move(call->description), 140);
    }
    return call;
}

bool forge_repository(std::string_view path)
{
    const bool plain = std::all_of(path.begin(), path.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '/' || c == '-' || c == '_' || c == '.';
    });
    return plain && path.find('/') != std::string_view::npos && !path.starts_with('/') &&
           !path.ends_with('/') && path.find("..") == std::string_view::npos &&
           path.find("//") == std::string_view::npos;
}

Tried deliver_status(const StatusTarget& target, const std::string& token, const Notice& notice)
{
    const auto call = status_call(notice);
    auto url = parse_http_url(target.api);
    if (!call || !url) {
        return {Tried::Kind::rejected, url ? "no status for this event" : url.error().message};
    }
    const auto repository = target.repository.empty() ? notice.repository : target.repository;
    auto base = url->target;
    while (base.ends_with('/')) {
        base.pop_back();
    }
    const auto context = fmt::format("gitopper/{}/{}", notice.host, notice.service);
    if (!forge_repository(repository)) {
        return {Tried::Kind::rejected, "no repository path the forge would take"};
    }
    Post post{.url = *url, .timeout = kStatusTimeout, .ca_file = target.ca_file};
    if (target.forge == "gitlab") {
        post.path =
            fmt::format("{}/projects/{}/statuses/{}", base, escape_path(repository), notice.to);
        post.headers = {{"PRIVATE-TOKEN", token}};
        post.body = nlohmann::json{{"state", call->state == "failure" ? "failed" : call->state},
                                   {"name", context},
                                   {"description", call->description}}
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        post.path = fmt::format("{}/repos/{}/statuses/{}", base, repository, notice.to);
        post.headers = target.forge == "github"
                           ? httplib::Headers{{"Authorization", "Bearer " + token},
                                              {"Accept", "application/vnd.github+json"},
                                              {"X-GitHub-Api-Version", "2022-11-28"}}
                           : httplib::Headers{{"Authorization", "token " + token}};
        post.body = nlohmann::json{{"state", call->state},
                                   {"context", context},
                                   {"description", call->description}}
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return send(std::move(post));
}

} // namespace gitopper
