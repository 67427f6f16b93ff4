#pragma once
// The one MAC gitopper computes: webhooks it checks and notifications it signs.

#include <string>
#include <string_view>

namespace gitopper {

// Lowercase hex of HMAC-SHA256(secret, body).
std::string hmac_sha256_hex(std::string_view secret, std::string_view body);

} // namespace gitopper
