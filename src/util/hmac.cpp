#include "util/hmac.hpp"

#include <openssl/evp.h>

#include <array>

#include <fmt/format.h>

namespace gitopper {

std::string hmac_sha256_hex(std::string_view secret, std::string_view body)
{
    std::array<unsigned char, 32> mac{};
    std::size_t length = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                  reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac.data(),
                  mac.size(), &length) == nullptr) {
        return {};
    }
    std::string hex;
    for (std::size_t i = 0; i < length; ++i) {
        hex += fmt::format("{:02x}", mac[i]);
    }
    return hex;
}

} // namespace gitopper
