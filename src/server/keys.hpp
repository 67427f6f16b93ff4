#pragma once
// The public keys allowed on the control API, read from the config's `keys` files in
// authorized_keys format: one key per line, `[options] type base64 [comment]`.
// Every option is either honoured or refused when the file is loaded (the daemon does not
// start): none is ever skipped. See the option table in keys.cpp and README "Control API keys".

#include <libssh/libssh.h>

#include <array>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "util/error.hpp"

namespace gitopper {

// A from="pattern-list" restriction, with OpenSSH's semantics for address patterns: patterns
// are comma-separated; `*` and `?` are wildcards over the address text; an address or a CIDR
// block (10.0.0.0/8, fe80::/10) matches numerically; `!` negates, and a negated match refuses
// the address whatever else matches. Host names are refused at parse time: matching them
// would need DNS lookups, which gitopper does not do.
class SourcePatterns {
public:
    [[nodiscard]] static Result<SourcePatterns> parse(std::string_view list);

    // `address` is the client's numeric address; an IPv4-mapped IPv6 address counts as IPv4.
    bool allows(std::string_view address) const;
    const std::string& text() const { return m_text; }

    struct Network {
        int family = 0; // AF_INET or AF_INET6
        std::array<unsigned char, 16> bytes{};
        int prefix = 0; // bits
    };
    struct Pattern {
        bool negated = false;
        std::string wildcard;           // set for `*`/`?` patterns, lowercase
        std::optional<Network> network; // set for addresses and CIDR blocks
    };

private:
    std::vector<Pattern> m_patterns;
    std::string m_text;
};

// What a key's options ask of gitopper beyond authenticating it.
struct KeyOptions {
    std::optional<std::string> command; // command="…": replaces the client's request
    std::optional<SourcePatterns> from; // from="…": the addresses it may come from
    std::optional<std::time_t> expires; // expiry-time="…": refused from this time on
};

// Parses the options field of a line (`no-pty,from="10.0.0.0/8"`). Unsupported options are
// errors saying why: `option "cert-authority" is not supported by gitopper: …`.
[[nodiscard]] Result<KeyOptions> parse_key_options(std::string_view field);

struct AuthorizedLine {
    std::shared_ptr<ssh_key_struct> key; // null for blank and comment lines
    KeyOptions options;
    std::string comment; // what follows the key data ("alice@laptop"), control bytes escaped
};

// Parses one authorized_keys line.
[[nodiscard]] Result<AuthorizedLine> parse_authorized_key(std::string_view line);

struct AuthorizedKey {
    std::shared_ptr<ssh_key_struct> key;
    bool read_only = false;
    std::string path; // the file it came from, for logs
    long line = 0;
    KeyOptions options;
    std::string comment;

    std::string where() const; // "path:line"
    // Who uses it, for the records of what it did (a freeze): the comment, else the key's
    // SHA256 fingerprint as ssh-keygen -l shows it.
    std::string who() const;
};

// Why `key` may not be used by a client at `address` at time `now`; nothing when it may.
std::optional<std::string> refusal(const AuthorizedKey& key, std::string_view address,
                                   std::time_t now);

// Relative paths are relative to the config file's directory. A missing or unreadable file,
// or a line that is not a key or holds an option gitopper cannot honour, is an error naming
// file and line.
[[nodiscard]] Result<std::vector<AuthorizedKey>> load_authorized_keys(const Config& config);

} // namespace gitopper
