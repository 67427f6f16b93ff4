#include "server/keys.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// Splits on blanks outside double quotes (options like command="a b" hold spaces).
std::vector<std::string> fields(std::string_view line)
{
    std::vector<std::string> out;
    std::string current;
    bool quoted_part = false;
    for (const char c : line) {
        if (c == '"') {
            quoted_part = !quoted_part;
        }
        if ((c == ' ' || c == '\t') && !quoted_part) {
            if (!current.empty()) {
                out.push_back(std::move(current));
                current.clear();
            }
            continue;
        }
        current += c;
    }
    if (!current.empty()) {
        out.push_back(std::move(current));
    }
    return out;
}

} // namespace

Result<std::shared_ptr<ssh_key_struct>> parse_authorized_key(std::string_view line)
{
    const auto text = trim(line);
    if (text.empty() || text.starts_with('#')) {
        return std::shared_ptr<ssh_key_struct>{};
    }
    const auto parts = fields(text);
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        const auto type = ssh_key_type_from_name(parts[i].c_str());
        if (type == SSH_KEYTYPE_UNKNOWN) {
            continue; // options such as from="…" or no-pty come before the type
        }
        ssh_key key = nullptr;
        if (ssh_pki_import_pubkey_base64(parts[i + 1].c_str(), type, &key) != SSH_OK) {
            return fail("the {} key is not valid base64 key data", parts[i]);
        }
        return std::shared_ptr<ssh_key_struct>(key, ssh_key_free);
    }
    return fail("no key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-…) found");
}

Result<std::vector<AuthorizedKey>> load_authorized_keys(const Config& config)
{
    std::vector<AuthorizedKey> keys;
    for (const auto& entry : config.keys) {
        const std::filesystem::path path = config.resolve(entry.path);
        auto text = read_file(path.string());
        if (!text) {
            return fail("{}: key file: {}", config.at(entry.position), text.error().message);
        }
        long number = 0;
        const auto before = keys.size();
        for (const auto& line : split(*text, '\n')) {
            ++number;
            auto key = parse_authorized_key(line);
            if (!key) {
                return fail("{}:{}: {}", path.string(), number, key.error().message);
            }
            if (*key) {
                keys.push_back({*key, entry.ro, path.string()});
            }
        }
        if (keys.size() == before) {
            return fail("{}: key file {} holds no key", config.at(entry.position), path.string());
        }
    }
    return keys;
}

} // namespace gitopper
