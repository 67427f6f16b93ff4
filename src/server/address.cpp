#include "server/address.hpp"

#include <charconv>

#include "util/strings.hpp"

namespace gitopper {

Result<ListenAddress> parse_listen_address(const std::string& address)
{
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        return fail("listen address {} has no port (e.g. :2222 or 127.0.0.1:2222)", quote(address));
    }
    ListenAddress out;
    out.host = address.substr(0, colon);
    if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
        out.host = out.host.substr(1, out.host.size() - 2);
    }
    if (out.host.empty()) {
        out.host = "0.0.0.0";
    }
    const auto port = std::string_view(address).substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || out.port < 0 ||
        out.port > 65535) {
        return fail("listen address {}: bad port", quote(address));
    }
    return out;
}

} // namespace gitopper
