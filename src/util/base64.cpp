#include "util/base64.hpp"

#include <algorithm>

#include <openssl/evp.h>

namespace gitopper {

std::string base64_encode(std::string_view bytes)
{
    std::string text(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                                        reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()));
    text.resize(static_cast<std::size_t>(std::max(written, 0)));
    return text;
}

std::optional<std::string> base64_decode(std::string_view text)
{
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::string bytes(text.size(), '\0');
    const int decoded = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                                        reinterpret_cast<const unsigned char*>(text.data()),
                                        static_cast<int>(text.size()));
    if (decoded < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the padding's zero bytes too.
    const auto padding = text.size() - std::min(text.size(), text.find_last_not_of('=') + 1);
    const auto length = static_cast<std::size_t>(decoded);
    bytes.resize(length - std::min(padding, length));
    return bytes;
}

} // namespace gitopper
