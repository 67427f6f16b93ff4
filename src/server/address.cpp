#include "server/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <cstring>

#include "util/strings.hpp"

namespace gitopper {

[[nodiscard]] Result<ListenAddress> parse_listen_address(const std::string& address)
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

namespace {

std::string ipv4_text(const in_addr& address)
{
    std::array<char, INET_ADDRSTRLEN> text{};
    return ::inet_ntop(AF_INET, &address, text.data(), text.size()) ? text.data() : "";
}

std::string ipv6_prefix_text(in6_addr address)
{
    std::memset(address.s6_addr + 8, 0, 8); // the interface half varies within one host
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (!::inet_ntop(AF_INET6, &address, text.data(), text.size())) {
        return "";
    }
    return std::string(text.data()) + "/64";
}

// An IPv4 peer (plain or v4-mapped) as its dotted address; an IPv6 one as `ipv6` has it.
std::string address_text(const sockaddr_storage& peer, std::string (*ipv6)(in6_addr address))
{
    if (peer.ss_family == AF_INET) {
        return ipv4_text(reinterpret_cast<const sockaddr_in&>(peer).sin_addr);
    }
    if (peer.ss_family != AF_INET6) {
        return "";
    }
    const auto& address = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&address)) {
        in_addr v4{};
        std::memcpy(&v4, address.s6_addr + 12, sizeof v4);
        return ipv4_text(v4);
    }
    return ipv6(address);
}

std::string ipv6_text(in6_addr address)
{
    std::array<char, INET6_ADDRSTRLEN> text{};
    return ::inet_ntop(AF_INET6, &address, text.data(), text.size()) ? text.data() : "";
}

} // namespace

std::string peer_address(const sockaddr_storage& peer)
{
    return address_text(peer, ipv6_text);
}

std::string source_of(const sockaddr_storage& peer)
{
    return address_text(peer, ipv6_prefix_text);
}

} // namespace gitopper
