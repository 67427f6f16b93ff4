#pragma once
// Push webhooks (SPEC §6): GitHub (X-Hub-Signature-256, HMAC-SHA256 of the body), Gitea and
// Forgejo (X-Gitea-Signature, the same HMAC in bare hex) and GitLab (X-Gitlab-Token, the
// secret itself). Signatures are compared in constant time. Pure functions; the HTTP server
// calls them.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"
#include "util/hmac.hpp"

namespace gitopper {

struct WebhookHeaders {
    std::string github; // X-Hub-Signature-256: "sha256=<hex>"
    std::string gitea;  // X-Gitea-Signature: "<hex>"
    std::string gitlab; // X-Gitlab-Token: the secret
};

// True when one of the headers proves the sender knows `secret`.
bool verify_webhook(std::string_view secret, std::string_view body, const WebhookHeaders& headers);

struct Push {
    std::string branch;                    // from "ref": "refs/heads/<branch>"
    std::vector<std::string> repositories; // every URL of the repository, normalised
};

// Reads the pushed branch and the repository's URLs from a GitHub, Gitea or GitLab payload.
[[nodiscard]] Result<Push> parse_push(std::string_view body);

} // namespace gitopper
