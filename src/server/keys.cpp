#include "server/keys.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

using Network = SourcePatterns::Network;
using Pattern = SourcePatterns::Pattern;
constexpr auto npos = std::string_view::npos;

bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

std::string_view first_word(std::string_view text)
{
    return text.substr(0, std::min(text.find_first_of(" \t"), text.size()));
}

std::string_view after_first_word(std::string_view text)
{
    const auto blank = text.find_first_of(" \t");
    return blank == npos ? std::string_view{} : trim(text.substr(blank));
}

bool is_key_type(std::string_view word)
{
    return ssh_key_type_from_name(std::string(word).c_str()) != SSH_KEYTYPE_UNKNOWN;
}

std::string format_utc(std::time_t time)
{
    std::tm tm{};
    gmtime_r(&time, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return text;
}

// ---- addresses and patterns (from=) ------------------------------------------------------

// A plain numeric address, as a /32 or /128.
std::optional<Network> parse_ip(std::string_view text)
{
    const std::string s(text);
    Network n;
    if (::inet_pton(AF_INET, s.c_str(), n.bytes.data()) == 1) {
        n.family = AF_INET;
        n.prefix = 32;
        return n;
    }
    if (::inet_pton(AF_INET6, s.c_str(), n.bytes.data()) == 1) {
        n.family = AF_INET6;
        n.prefix = 128;
        return n;
    }
    return std::nullopt;
}

// A client on a dual-stack socket shows up as ::ffff:a.b.c.d; sshd matches it as IPv4.
void normalise_mapped(Network& n)
{
    constexpr std::array<unsigned char, 12> prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (n.family == AF_INET6 && std::equal(prefix.begin(), prefix.end(), n.bytes.begin())) {
        std::memmove(n.bytes.data(), n.bytes.data() + 12, 4);
        std::fill(n.bytes.begin() + 4, n.bytes.end(), 0);
        n.family = AF_INET;
        n.prefix = 32;
    }
}

std::string address_text(const Network& n)
{
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(n.family, n.bytes.data(), text, sizeof text);
    return text;
}

// The first `bits` bits of `n` kept, the others cleared.
Network masked(Network n, int bits)
{
    for (std::size_t i = 0; i < n.bytes.size(); ++i) {
        const int keep = std::clamp(bits - 8 * static_cast<int>(i), 0, 8);
        n.bytes[i] &= static_cast<unsigned char>(0xff00 >> keep);
    }
    return n;
}

bool contains(const Network& block, const Network& address)
{
    return block.family == address.family &&
           masked(address, block.prefix).bytes == masked(block, block.prefix).bytes;
}

// `*` is any run of characters, `?` any one: OpenSSH's match_pattern().
bool wildcard_match(std::string_view pattern, std::string_view text)
{
    std::size_t p = 0;
    std::size_t t = 0;
    std::size_t star = npos;
    std::size_t resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (star != npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        ++p;
    }
    return p == pattern.size();
}

bool only(std::string_view text, std::string_view allowed)
{
    return text.find_first_not_of(allowed) == npos;
}

// Wildcards over an address's text: IPv4-like (10.0.*) or IPv6-like (fe80::*), never names.
bool is_address_wildcard(std::string_view pattern)
{
    return only(pattern, "0123456789.*?") ||
           (pattern.find(':') != npos && only(pattern, "0123456789abcdefABCDEF:.*?"));
}

std::unexpected<Error> host_name_refused(std::string_view pattern)
{
    return fail("from= pattern {} is a host name: gitopper matches client addresses only and "
                "looks no names up (use addresses, CIDR blocks or address wildcards)",
                quote(pattern));
}

// An address or CIDR block; nothing when `pattern` is no address at all.
[[nodiscard]] Result<std::optional<Network>> parse_network(std::string_view pattern)
{
    const auto slash = pattern.find('/');
    auto network = parse_ip(pattern.substr(0, slash));
    if (!network || slash == npos) {
        return network;
    }
    const int width = network->prefix;
    const auto digits = pattern.substr(slash + 1);
    int bits = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || bits < 0 ||
        bits > width) {
        return fail("from= pattern {}: the prefix length must be 0 to {}", quote(pattern), width);
    }
    network->prefix = bits;
    if (masked(*network, bits).bytes != network->bytes) {
        return fail("from= pattern {} has bits set beyond its /{} prefix (did you mean \"{}/{}\"?)",
                    quote(pattern), bits, address_text(masked(*network, bits)), bits);
    }
    return network;
}

[[nodiscard]] Result<Pattern> parse_pattern(std::string_view entry)
{
    Pattern p;
    if (entry.starts_with('!')) {
        p.negated = true;
        entry.remove_prefix(1);
    }
    if (entry.empty()) {
        return fail("from= holds an empty pattern");
    }
    if (entry.find_first_of("*?") != npos) {
        if (entry.find('/') != npos) {
            return fail("from= pattern {}: a CIDR block cannot hold wildcards", quote(entry));
        }
        if (!is_address_wildcard(entry)) {
            return host_name_refused(entry);
        }
        p.wildcard = to_lower(entry);
        return p;
    }
    auto network = parse_network(entry);
    if (!network) {
        return std::unexpected(network.error());
    }
    if (!*network) {
        return host_name_refused(entry);
    }
    p.network = **network;
    return p;
}

// ---- expiry-time= ------------------------------------------------------------------------

// YYYYMMDD[HHMM[SS]] in the host's time zone, or UTC with a trailing Z, as in sshd.
[[nodiscard]] Result<std::time_t> parse_expiry(std::string_view text)
{
    const bool utc = text.ends_with('Z') || text.ends_with('z');
    const auto digits = utc ? text.substr(0, text.size() - 1) : text;
    if ((digits.size() != 8 && digits.size() != 12 && digits.size() != 14) ||
        !only(digits, "0123456789")) {
        return fail("expiry-time {}: expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS "
                    "(local time; a trailing Z for UTC)",
                    quote(text));
    }
    const auto number = [&](std::size_t at, std::size_t length) {
        return at + length <= digits.size() ? std::stoi(std::string(digits.substr(at, length))) : 0;
    };
    std::tm tm{};
    tm.tm_year = number(0, 4) - 1900;
    tm.tm_mon = number(4, 2) - 1;
    tm.tm_mday = number(6, 2);
    tm.tm_hour = number(8, 2);
    tm.tm_min = number(10, 2);
    tm.tm_sec = number(12, 2);
    tm.tm_isdst = -1;
    const std::tm wanted = tm;
    const std::time_t time = utc ? ::timegm(&tm) : std::mktime(&tm);
    // mktime() normalises 31 February to 3 March; a changed field means no such time.
    if (time == -1 || tm.tm_mday != wanted.tm_mday || tm.tm_mon != wanted.tm_mon ||
        tm.tm_hour != wanted.tm_hour || tm.tm_min != wanted.tm_min || tm.tm_sec != wanted.tm_sec) {
        return fail("expiry-time {} is not a valid time", quote(text));
    }
    return time;
}

// ---- the options field -------------------------------------------------------------------

struct RawOption {
    std::string name;
    std::optional<std::string> value;
};

// Where the options field ends: at the first blank outside double quotes (`\"` inside
// quotes is an escaped quote, as in OpenSSH).
[[nodiscard]] Result<std::size_t> end_of_options(std::string_view text)
{
    bool quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (quoted && text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '"') {
            ++i;
        } else if (text[i] == '"') {
            quoted = !quoted;
        } else if (is_blank(text[i]) && !quoted) {
            return i;
        }
    }
    if (quoted) {
        return fail("unterminated quote in the options");
    }
    return text.size();
}

// Reads `"…"` at the start of `text`; returns the unescaped value and what follows it.
[[nodiscard]] Result<std::pair<std::string, std::string_view>> quoted_value(std::string_view text)
{
    if (!text.starts_with('"')) {
        return fail("its value must be in double quotes");
    }
    std::string value;
    for (std::size_t i = 1; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '"') {
            value += '"';
            ++i;
        } else if (text[i] == '"') {
            return std::pair{std::move(value), text.substr(i + 1)};
        } else {
            value += text[i];
        }
    }
    return fail("unterminated quote");
}

// `name`, `name="value"`, … separated by commas; commas inside quotes belong to the value.
[[nodiscard]] Result<std::vector<RawOption>> split_options(std::string_view field)
{
    std::vector<RawOption> out;
    while (true) {
        const auto stop = std::min(field.find_first_of("=,"), field.size());
        RawOption option{std::string(field.substr(0, stop)), std::nullopt};
        if (option.name.empty()) {
            return fail("empty option in {}", quote(field));
        }
        field.remove_prefix(stop);
        if (field.starts_with('=')) {
            auto value = quoted_value(field.substr(1));
            if (!value) {
                return fail("option {}: {}", quote(option.name), value.error().message);
            }
            option.value = std::move(value->first);
            field = value->second;
        }
        out.push_back(std::move(option));
        if (field.empty()) {
            return out;
        }
        if (!field.starts_with(',')) {
            return fail("option {}: expected a comma after its value", quote(out.back().name));
        }
        field.remove_prefix(1);
    }
}

// ---- what each option does ---------------------------------------------------------------

[[nodiscard]] Result<> nothing_to_do(KeyOptions&, const std::string&)
{
    return {};
}

[[nodiscard]] Result<> set_command(KeyOptions& options, const std::string& value)
{
    if (options.command) {
        return fail("option \"command\" is given twice");
    }
    if (trim(value).empty()) {
        return fail("option \"command\" is empty");
    }
    options.command = value;
    return {};
}

[[nodiscard]] Result<> set_from(KeyOptions& options, const std::string& value)
{
    if (options.from) {
        return fail("option \"from\" is given twice");
    }
    auto patterns = SourcePatterns::parse(value);
    if (!patterns) {
        return std::unexpected(patterns.error());
    }
    options.from = std::move(*patterns);
    return {};
}

// Several expiry times: the earliest counts, as in sshd.
[[nodiscard]] Result<> set_expiry(KeyOptions& options, const std::string& value)
{
    auto time = parse_expiry(value);
    if (!time) {
        return std::unexpected(time.error());
    }
    options.expires = std::min(*time, options.expires.value_or(*time));
    return {};
}

enum class Takes { nothing, value };
using Apply = Result<> (*)(KeyOptions&, const std::string&);

struct OptionRule {
    std::string_view name; // matched without regard to case, as sshd does
    Takes takes;
    Apply apply;          // nullptr: refused, for the reason in `why`
    std::string_view why; // honoured: why nothing more is needed; refused: why not
};

// Every option sshd knows (OpenSSH 9), and what gitopper does with it.
constexpr OptionRule kOptions[] = {
    {"restrict", Takes::nothing, nothing_to_do,
     "gitopper never offers a terminal, forwarding, an agent, X11 or ~/.ssh/rc"},
    {"no-pty", Takes::nothing, nothing_to_do, "no terminal is ever allocated"},
    {"no-port-forwarding", Takes::nothing, nothing_to_do, "no forwarding is ever offered"},
    {"no-agent-forwarding", Takes::nothing, nothing_to_do, "no agent forwarding is ever offered"},
    {"no-X11-forwarding", Takes::nothing, nothing_to_do, "no X11 forwarding is ever offered"},
    {"no-user-rc", Takes::nothing, nothing_to_do, "no ~/.ssh/rc is ever run"},
    {"command", Takes::value, set_command, ""},
    {"from", Takes::value, set_from, ""},
    {"expiry-time", Takes::value, set_expiry, ""},
    {"cert-authority", Takes::nothing, nullptr,
     "gitopper accepts plain public keys only, no certificates"},
    {"principals", Takes::value, nullptr,
     "it names certificate principals, and gitopper accepts no certificates"},
    {"environment", Takes::value, nullptr,
     "requests are answered inside gitopper; no program runs with an environment to set"},
    {"tunnel", Takes::value, nullptr, "gitopper offers no tun device forwarding"},
    {"permitopen", Takes::value, nullptr, "gitopper offers no port forwarding to restrict"},
    {"permitlisten", Takes::value, nullptr, "gitopper offers no remote forwarding to restrict"},
    {"pty", Takes::nothing, nullptr, "gitopper never allocates a terminal"},
    {"port-forwarding", Takes::nothing, nullptr, "gitopper never offers port forwarding"},
    {"agent-forwarding", Takes::nothing, nullptr, "gitopper never offers agent forwarding"},
    {"X11-forwarding", Takes::nothing, nullptr, "gitopper never offers X11 forwarding"},
    {"user-rc", Takes::nothing, nullptr, "gitopper never runs ~/.ssh/rc"},
    {"no-touch-required", Takes::nothing, nullptr,
     "gitopper does not check a security key's touch flag, so it cannot waive it either"},
    {"verify-required", Takes::nothing, nullptr,
     "gitopper does not check a security key's user verification (PIN) flag"},
};

const OptionRule* find_rule(std::string_view name)
{
    const auto* rule =
        std::find_if(std::begin(kOptions), std::end(kOptions),
                     [&](const OptionRule& r) { return equal_nocase(r.name, name); });
    return rule == std::end(kOptions) ? nullptr : rule;
}

std::unexpected<Error> unknown_option(std::string_view name)
{
    std::vector<std::string_view> names;
    for (const auto& rule : kOptions) {
        names.push_back(rule.name);
    }
    const auto suggestion = closest_match(name, names);
    return fail("option {} is not supported by gitopper: unknown option{}", quote(name),
                suggestion ? fmt::format(" (did you mean {}?)", quote(*suggestion)) : "");
}

[[nodiscard]] Result<> apply_option(KeyOptions& options, const RawOption& option)
{
    const auto* rule = find_rule(option.name);
    if (rule == nullptr) {
        return unknown_option(option.name);
    }
    if (rule->apply == nullptr) {
        return fail("option {} is not supported by gitopper: {}", quote(option.name), rule->why);
    }
    if (rule->takes == Takes::value && !option.value) {
        return fail("option {} needs a value: {}=\"…\"", quote(option.name), rule->name);
    }
    if (rule->takes == Takes::nothing && option.value) {
        return fail("option {} takes no value", quote(option.name));
    }
    return rule->apply(options, option.value.value_or(""));
}

} // namespace

Result<SourcePatterns> SourcePatterns::parse(std::string_view list)
{
    SourcePatterns out;
    out.m_text = std::string(list);
    if (trim(list).empty()) {
        return fail("from= is empty");
    }
    for (const auto& entry : split(list, ',')) {
        auto pattern = parse_pattern(trim(entry));
        if (!pattern) {
            return std::unexpected(pattern.error());
        }
        out.m_patterns.push_back(std::move(*pattern));
    }
    return out;
}

bool SourcePatterns::allows(std::string_view address) const
{
    auto ip = parse_ip(address);
    if (!ip) {
        return false;
    }
    normalise_mapped(*ip);
    const auto text = address_text(*ip);
    bool matched = false;
    for (const auto& p : m_patterns) {
        const bool hit = p.network ? contains(*p.network, *ip) : wildcard_match(p.wildcard, text);
        if (hit && p.negated) {
            return false; // a negated match refuses, whatever else matches
        }
        matched = matched || hit;
    }
    return matched;
}

[[nodiscard]] Result<KeyOptions> parse_key_options(std::string_view field)
{
    auto options = split_options(field);
    if (!options) {
        return std::unexpected(options.error());
    }
    KeyOptions out;
    for (const auto& option : *options) {
        if (auto r = apply_option(out, option); !r) {
            return std::unexpected(r.error());
        }
    }
    return out;
}

[[nodiscard]] Result<AuthorizedLine> parse_authorized_key(std::string_view line)
{
    auto text = trim(line);
    if (text.empty() || text.starts_with('#')) {
        return AuthorizedLine{};
    }
    KeyOptions options;
    if (!is_key_type(first_word(text))) {
        auto end = end_of_options(text);
        if (!end) {
            return std::unexpected(end.error());
        }
        if (!is_key_type(first_word(trim(text.substr(*end))))) {
            return fail("no key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-…) found");
        }
        auto parsed = parse_key_options(text.substr(0, *end));
        if (!parsed) {
            return std::unexpected(parsed.error());
        }
        options = std::move(*parsed);
        text = trim(text.substr(*end));
    }
    const std::string type(first_word(text));
    const std::string data(first_word(after_first_word(text)));
    ssh_key key = nullptr;
    if (data.empty() || ssh_pki_import_pubkey_base64(
                            data.c_str(), ssh_key_type_from_name(type.c_str()), &key) != SSH_OK) {
        return fail("the {} key is not valid base64 key data", type);
    }
    auto comment = escape_controls(trim(after_first_word(after_first_word(text))));
    return AuthorizedLine{std::shared_ptr<ssh_key_struct>(key, ssh_key_free), std::move(options),
                          comment.substr(0, 200)};
}

std::string AuthorizedKey::where() const
{
    return fmt::format("{}:{}", path, line);
}

std::string AuthorizedKey::who() const
{
    if (!comment.empty()) {
        return comment;
    }
    unsigned char* hash = nullptr;
    std::size_t length = 0;
    if (!key || ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &length) != 0) {
        return where();
    }
    char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length);
    ssh_clean_pubkey_hash(&hash);
    std::string fingerprint = text != nullptr ? text : where();
    ssh_string_free_char(text);
    return fingerprint;
}

std::optional<std::string> refusal(const AuthorizedKey& key, std::string_view address,
                                   std::time_t now)
{
    const auto& options = key.options;
    if (options.expires && now > *options.expires) {
        return fmt::format("the key expired at {}", format_utc(*options.expires));
    }
    if (options.from && !options.from->allows(address)) {
        return fmt::format("{} is not in from={}", address, quote(options.from->text()));
    }
    return std::nullopt;
}

namespace {

// An expired key stays listed (a request with it is refused and logged); say so at start.
void warn_if_expired(const AuthorizedKey& key)
{
    if (key.options.expires && std::time(nullptr) > *key.options.expires) {
        log::warn("{}: key expired at {}: it is refused", key.where(),
                  format_utc(*key.options.expires));
    }
}

// Appends the keys of one file's `text`; an error names the file and line.
[[nodiscard]] Result<> parse_key_file(const std::string& path, std::string_view text,
                                      bool read_only, std::vector<AuthorizedKey>& keys)
{
    long number = 0;
    for (const auto& line : split(text, '\n')) {
        ++number;
        auto parsed = parse_authorized_key(line);
        if (!parsed) {
            return fail("{}:{}: {}", path, number, parsed.error().message);
        }
        if (parsed->key) {
            keys.push_back({parsed->key, read_only, path, number, std::move(parsed->options),
                            std::move(parsed->comment)});
            warn_if_expired(keys.back());
        }
    }
    return {};
}

} // namespace

[[nodiscard]] Result<std::vector<AuthorizedKey>> load_authorized_keys(const Config& config)
{
    std::vector<AuthorizedKey> keys;
    for (const auto& entry : config.keys) {
        const auto path = config.resolve(entry.path);
        auto text = read_trusted_file(path, Trust::keys);
        if (!text) {
            return fail("{}: key file: {}", config.at(entry.position), text.error().message);
        }
        const auto before = keys.size();
        if (auto r = parse_key_file(path, *text, entry.ro, keys); !r) {
            return std::unexpected(r.error());
        }
        if (keys.size() == before) {
            return fail("{}: key file {} holds no key", config.at(entry.position), path);
        }
    }
    return keys;
}

} // namespace gitopper
