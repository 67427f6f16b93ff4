#pragma once
// Base64 (RFC 4648, with padding), through OpenSSL: SSH key blobs and fingerprints, and etcd's
// JSON gateway, which carries every key and value in it.

#include <optional>
#include <string>
#include <string_view>

namespace gitopper {

std::string base64_encode(std::string_view bytes);
// nullopt for text that is not base64.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace gitopper
