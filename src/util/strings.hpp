#pragma once
// Small string helpers that know nothing about gitopper.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gitopper {

std::vector<std::string> split(std::string_view text, char separator);
// The words of `text` between runs of blanks (spaces and tabs); none for a blank text.
std::vector<std::string_view> split_blanks(std::string_view text);
std::string join(std::span<const std::string> parts, std::string_view separator);
std::string_view trim(std::string_view text);

// What an errno value means ("No such file or directory"); safe on any thread, unlike
// std::strerror, whose buffer for unknown values is shared.
std::string errno_message(int error);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// ASCII case, whatever the locale: for host names, option names and hex digits.
std::string to_lower(std::string_view text);
bool equal_nocase(std::string_view a, std::string_view b);

bool is_commit_hash(std::string_view text); // 4..40 lowercase or uppercase hex digits
// A commit's first 8 hex digits, as logs and answers show it.
std::string short_hash(const std::string& hash);

// The same repository however it is spelled: "https://Host/a/b.git", "ssh://git@host:22/a/b",
// "git@host:a/b" and "host/a/b/" all become "host/a/b". Used to match webhooks to upstreams.
std::string normalize_repository_url(std::string_view url);
// The repository's path at its host, "a/b" of the above; "" when the URL has none.
std::string repository_path(std::string_view url);

// The 64-bit FNV-1a hash: a short stable name for a text, not a secret.
std::uint64_t fnv1a(std::string_view text);

// The candidate closest to `word`, if it is a plausible typo of it.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

// Quotes a value for messages: "value" with backslash escapes for quotes and controls.
std::string quote(std::string_view text);

// Control characters escaped as quote() does, without the quotes: keeps a message on one line.
std::string escape_controls(std::string_view text);

// "100MiB", "512K", "1G", "2000000": a size in bytes (K/M/G and KiB/MiB/GiB are binary,
// KB/MB/GB decimal); nullopt when it is not one.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Every URL password in `text` replaced: "https://user:token@host/x" -> "https://user:***@host/x";
// a user name alone is taken for a token too ("https://***@host/x"), except for ssh:// logins.
// For anything that may quote a URL: log lines, state info, API answers, git's messages.
std::string redact_credentials(std::string_view text);

} // namespace gitopper
