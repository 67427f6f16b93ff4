#include "ctl/target.hpp"

#include <algorithm>
#include <charconv>

#include "util/strings.hpp"

namespace gitopper::ctl {
namespace {

[[nodiscard]] Result<int> parse_port(std::string_view text)
{
    int port = 0;
    const auto* end = text.data() + text.size();
    const auto [at, error] = std::from_chars(text.data(), end, port);
    if (text.empty() || error != std::errc{} || at != end || port < 1 || port > 65535) {
        return fail("invalid port {}", quote(text));
    }
    return port;
}

// "[::1]:2222" or "[::1]": brackets are the only way to give a port with an IPv6 address.
[[nodiscard]] Result<Target> parse_bracketed(std::string_view text, int default_port)
{
    const auto close = text.find(']');
    if (close == std::string_view::npos || close == 1) {
        return fail("invalid host {}", quote(text));
    }
    Target target{std::string(text), std::string(text.substr(1, close - 1)), default_port};
    const auto rest = text.substr(close + 1);
    if (rest.empty()) {
        return target;
    }
    if (rest[0] != ':') {
        return fail("invalid host {}", quote(text));
    }
    auto port = parse_port(rest.substr(1));
    if (!port) {
        return std::unexpected(port.error());
    }
    target.port = *port;
    return target;
}

[[nodiscard]] Result<Target> parse_one(std::string_view text, int default_port)
{
    if (text.empty()) {
        return fail("empty host name");
    }
    if (text.front() == '[') {
        return parse_bracketed(text, default_port);
    }
    const auto colon = text.find(':');
    // More than one colon is a bare IPv6 address, which cannot carry a port.
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
        return Target{std::string(text), std::string(text), default_port};
    }
    if (colon == 0) {
        return fail("empty host name in {}", quote(text));
    }
    auto port = parse_port(text.substr(colon + 1));
    if (!port) {
        return std::unexpected(port.error());
    }
    return Target{std::string(text), std::string(text.substr(0, colon)), *port};
}

} // namespace

[[nodiscard]] Result<std::vector<Target>> parse_targets(std::string_view word, int default_port)
{
    if (word.empty() || word.front() != '@') {
        return fail("expected @HOST, got {}", quote(word));
    }
    std::vector<Target> targets;
    for (const auto& part : split(word.substr(1), ',')) {
        std::string_view host = part;
        if (host.starts_with('@')) {
            host.remove_prefix(1); // "@web1,@web2" is a natural slip; accept it
        }
        auto target = parse_one(host, default_port);
        if (!target) {
            return std::unexpected(target.error());
        }
        targets.push_back(std::move(*target));
    }
    return targets;
}

[[nodiscard]] Result<Positionals> split_positionals(const std::vector<std::string>& words,
                                                    int default_port)
{
    Positionals out;
    auto word = words.begin();
    for (; word != words.end() && word->starts_with('@'); ++word) {
        auto targets = parse_targets(*word, default_port);
        if (!targets) {
            return std::unexpected(targets.error());
        }
        for (auto& target : *targets) {
            const auto same = [&](const Target& t) {
                return t.host == target.host && t.port == target.port;
            };
            if (std::none_of(out.targets.begin(), out.targets.end(), same)) {
                out.targets.push_back(std::move(target));
            }
        }
    }
    if (out.targets.empty()) {
        if (word == words.end()) {
            return fail("missing @HOST");
        }
        return fail("expected @HOST before {}", quote(*word));
    }
    for (; word != words.end(); ++word) {
        if (word->starts_with('@')) {
            return fail("@HOST must come before the other arguments, got {}", quote(*word));
        }
        out.args.push_back(*word);
    }
    return out;
}

} // namespace gitopper::ctl
