#include "util/endpoint.hpp"

#include <charconv>

#include <fmt/format.h>

#include "util/strings.hpp"

namespace gitopper {
namespace {

// "host" and "port" from an authority "host", "host:port", "[v6]" or "[v6]:port".
void split_host_port(std::string_view authority, Endpoint& endpoint)
{
    std::string_view port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        endpoint.host = std::string(authority.substr(1, close - 1));
        if (close != std::string_view::npos && authority.substr(close + 1).starts_with(':')) {
            port = authority.substr(close + 2);
        }
    } else {
        const auto colon = authority.find(':');
        endpoint.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
        }
    }
    int number = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (!port.empty() && error == std::errc() && end == port.data() + port.size()) {
        endpoint.port = number;
    }
}

} // namespace

std::string Endpoint::known_hosts_name() const
{
    return port == 0 || port == 22 ? host : fmt::format("[{}]:{}", host, port);
}

std::string Endpoint::shown() const
{
    const auto name = host.find(':') == std::string::npos ? host : "[" + host + "]"; // IPv6
    return port == 0 ? name : fmt::format("{}:{}", name, port);
}

Endpoint endpoint_of(std::string_view url)
{
    Endpoint endpoint;
    const auto scheme_end = url.find("://");
    std::string_view authority;
    if (scheme_end != std::string_view::npos) {
        const auto scheme = to_lower(url.substr(0, scheme_end));
        if (scheme == "ssh" || scheme == "git+ssh" || scheme == "ssh+git") {
            endpoint.kind = Endpoint::Kind::ssh;
        } else if (scheme == "https") {
            endpoint.kind = Endpoint::Kind::https;
        } else {
            return endpoint;
        }
        const auto rest = url.substr(scheme_end + 3);
        authority = rest.substr(0, rest.find('/'));
    } else {
        // scp-like [user@]host:path; a colon after a slash is a local path's.
        const auto colon = url.find(':');
        if (colon == std::string_view::npos || colon > url.find('/') || url.starts_with('/')) {
            return endpoint;
        }
        endpoint.kind = Endpoint::Kind::ssh;
        authority = url.substr(0, colon);
        if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
            endpoint.user = std::string(authority.substr(0, at));
        }
        endpoint.host = to_lower(authority.substr(authority.rfind('@') + 1));
        return endpoint;
    }
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        const auto user = authority.substr(0, at);
        endpoint.user = std::string(user.substr(0, user.find(':'))); // never the password
        authority.remove_prefix(at + 1);
    }
    split_host_port(authority, endpoint);
    // As ssh and ssh-keyscan write it in known_hosts: a host name is not case-sensitive.
    endpoint.host = to_lower(endpoint.host);
    return endpoint;
}

std::string HttpUrl::origin() const
{
    const auto name = host.find(':') == std::string::npos ? host : "[" + host + "]";
    const bool usual = port == (tls ? 443 : 80);
    return fmt::format("{}://{}{}", tls ? "https" : "http", name,
                       usual ? std::string() : fmt::format(":{}", port));
}

bool HttpUrl::loopback() const
{
    return host == "localhost" || host == "::1" || host.starts_with("127.");
}

Result<HttpUrl> parse_http_url(std::string_view url)
{
    HttpUrl parsed;
    const auto scheme_end = url.find("://");
    const auto scheme = to_lower(url.substr(0, scheme_end));
    if (scheme_end == std::string_view::npos || (scheme != "http" && scheme != "https")) {
        return fail("is not an http:// or https:// URL");
    }
    for (const char c : url) {
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
            return fail("must not contain spaces or control characters");
        }
    }
    if (url.find('#') != std::string_view::npos) {
        return fail("must not have a fragment (#…)");
    }
    parsed.tls = scheme == "https";
    const auto rest = url.substr(scheme_end + 3);
    const auto path_at = rest.find_first_of("/?");
    const auto authority = rest.substr(0, path_at);
    if (authority.find('@') != std::string_view::npos) {
        return fail("must not hold a user or password (a secret belongs in a file)");
    }
    Endpoint endpoint;
    split_host_port(authority, endpoint);
    const auto port_text =
        authority.substr(authority.rfind(']') == std::string_view::npos ? 0 : authority.rfind(']'));
    const bool has_port = port_text.find(':') != std::string_view::npos;
    if (endpoint.host.empty() || (has_port && (endpoint.port < 1 || endpoint.port > 65535))) {
        return fail("has no valid host and port");
    }
    parsed.host = to_lower(endpoint.host);
    parsed.port = has_port ? endpoint.port : (parsed.tls ? 443 : 80);
    const auto target =
        path_at == std::string_view::npos ? std::string_view() : rest.substr(path_at);
    parsed.target = target.starts_with('/') ? std::string(target) : "/" + std::string(target);
    return parsed;
}

} // namespace gitopper
