// Push webhooks on arbitrary bodies: parse_push either names a branch and at least one
// repository (none of them empty, since an empty URL would match nothing or anything) or
// says why not; the signature check accepts the right MAC in each provider's header and
// refuses a wrong one or a missing secret.

#include <string>

#include "check.hpp"
#include "server/webhook.hpp"

using namespace gitopper;
using fuzz::check;

namespace {

constexpr std::string_view kSecret = "s3cret";

void check_push(std::string_view body)
{
    const auto push = parse_push(body);
    if (!push) {
        check(!push.error().message.empty(), "a refused payload says why");
        return;
    }
    check(!push->repositories.empty(), "a push names a repository");
    for (const auto& repository : push->repositories) {
        check(!repository.empty(), "no repository URL is empty");
    }
}

void check_signatures(std::string_view body)
{
    const auto mac = hmac_sha256_hex(kSecret, body);
    check(mac.size() == 64 && mac.find_first_not_of("0123456789abcdef") == std::string::npos,
          "the MAC is 64 lowercase hex digits");
    std::string upper = mac;
    for (auto& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    check(verify_webhook(kSecret, body, {"sha256=" + mac, "", ""}), "GitHub's header verifies");
    check(verify_webhook(kSecret, body, {"sha256=" + upper, "", ""}), "hex case is ignored");
    check(verify_webhook(kSecret, body, {"", mac, ""}), "Gitea's header verifies");
    check(verify_webhook(kSecret, body, {"", "", std::string(kSecret)}), "GitLab's verifies");
    check(!verify_webhook(kSecret, body, {mac, "", ""}), "GitHub's needs sha256=");
    check(!verify_webhook("", body, {"", "", ""}), "no secret, no webhook");
    const auto other = hmac_sha256_hex("other", body);
    check(!verify_webhook(kSecret, body, {"sha256=" + other, "", ""}) &&
              !verify_webhook(kSecret, body, {"", other, ""}),
          "another secret's MAC does not verify");
    check(verify_webhook(kSecret, body, {"", "", std::string(body)}) == (body == kSecret),
          "only the secret itself is a GitLab token");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const auto body = fuzz::text_of(data, size);
    check_push(body);
    check_signatures(body);
    return 0;
}
