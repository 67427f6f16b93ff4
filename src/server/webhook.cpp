#include "server/webhook.hpp"

#include <openssl/crypto.h>

#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace gitopper {
namespace {

// Lengths first: CRYPTO_memcmp compares a fixed number of bytes.
bool same(std::string_view a, std::string_view b)
{
    return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace

bool verify_webhook(std::string_view secret, std::string_view body, const WebhookHeaders& headers)
{
    if (secret.empty()) {
        return false;
    }
    if (!headers.github.empty()) {
        return headers.github.starts_with("sha256=") &&
               same(to_lower(headers.github.substr(7)), hmac_sha256_hex(secret, body));
    }
    if (!headers.gitea.empty()) {
        return same(to_lower(headers.gitea), hmac_sha256_hex(secret, body));
    }
    return same(headers.gitlab, secret);
}

[[nodiscard]] Result<Push> parse_push(std::string_view body)
{
    const auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
        return fail("the payload is not a JSON object");
    }
    // Not json.value("ref", ""): that throws when "ref" is there but is not a string.
    const auto found_ref = json.find("ref");
    const auto ref = found_ref != json.end() && found_ref->is_string()
                         ? found_ref->get<std::string>()
                         : std::string();
    if (!ref.starts_with("refs/heads/")) {
        return fail("not a branch push (ref {})", ref.empty() ? "missing" : ref);
    }
    Push push;
    push.branch = ref.substr(11);
    // GitHub and Gitea: repository.{clone_url,ssh_url,html_url,git_url};
    // GitLab: project.{git_http_url,git_ssh_url,web_url} and repository.{url,homepage}.
    constexpr std::array kFields{"clone_url", "ssh_url",      "html_url",    "git_url", "url",
                                 "homepage",  "git_http_url", "git_ssh_url", "web_url"};
    for (const auto* object : {"repository", "project"}) {
        const auto found = json.find(object);
        if (found == json.end() || !found->is_object()) {
            continue;
        }
        for (const auto* field : kFields) {
            const auto url = found->find(field);
            if (url == found->end() || !url->is_string()) {
                continue;
            }
            // Checked after normalising: "git@" or "/" name no repository, and an empty one
            // would match any upstream that normalises to nothing.
            auto normal = normalize_repository_url(url->get<std::string>());
            if (!normal.empty()) {
                push.repositories.push_back(std::move(normal));
            }
        }
    }
    if (push.repositories.empty()) {
        return fail("the payload names no repository URL");
    }
    return push;
}

} // namespace gitopper
