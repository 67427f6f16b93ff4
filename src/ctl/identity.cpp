#include "ctl/identity.hpp"
#include "util/strings.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "ctl/messages.hpp"

namespace gitopper::ctl {
namespace {

struct Prompt {
    std::string text;
    bool asked = false;
    std::string entered; // kept for the other hosts' sessions
};

// libssh asks this for an encrypted key's passphrase. Without a terminal there is nobody to
// ask; the caller then suggests the agent.
int ask_passphrase(const char*, char* buffer, std::size_t length, int echo, int verify,
                   void* userdata)
{
    auto& prompt = *static_cast<Prompt*>(userdata);
    prompt.asked = true;
    if (isatty(STDIN_FILENO) == 0 ||
        ssh_getpass(prompt.text.c_str(), buffer, length, echo, verify) != 0) {
        return -1;
    }
    prompt.entered = buffer;
    return 0;
}

// Reads the key, asking for its passphrase unless `passphrase` already holds it.
[[nodiscard]] Result<KeyPtr> read_private_key(const std::string& path,
                                              std::optional<std::string>& passphrase)
{
    if (::access(path.c_str(), R_OK) != 0) {
        return fail("cannot read identity {}: {}", path, lowercase_first(errno_message(errno)));
    }
    Prompt prompt{"Enter passphrase for " + path + ": "};
    ssh_key raw = nullptr;
    const char* known = passphrase ? passphrase->c_str() : nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), known, ask_passphrase, &prompt, &raw) != SSH_OK) {
        if (prompt.asked && isatty(STDIN_FILENO) == 0) {
            return fail("identity {} needs a passphrase and there is no terminal to ask; "
                        "add it to ssh-agent",
                        path);
        }
        return fail("cannot load identity {}: not a private key or wrong passphrase", path);
    }
    if (prompt.asked) {
        passphrase = std::move(prompt.entered);
    }
    return KeyPtr(raw);
}

} // namespace

Identity::Identity(std::optional<std::string> file, const std::string& home)
{
    if (file) {
        m_file = std::move(file);
        m_explicit = true;
        return;
    }
    // A stale SSH_AUTH_SOCK (the agent has gone) would end in a misleading "permission denied".
    const char* agent = std::getenv("SSH_AUTH_SOCK");
    std::error_code ignored;
    m_agent = agent != nullptr && std::filesystem::is_socket(agent, ignored);
    auto fallback = home + "/.ssh/id_ed25519";
    if (std::filesystem::exists(fallback, ignored)) {
        m_file = std::move(fallback);
    }
}

Result<> Identity::check()
{
    if (!m_explicit) {
        return {};
    }
    auto key = this->key();
    return key ? Result<>() : std::unexpected(key.error());
}

Result<KeyPtr> Identity::key()
{
    const std::lock_guard lock(m_mutex); // one passphrase prompt, not one per host
    if (!m_file) {
        return fail("no identity file");
    }
    if (m_error) {
        return std::unexpected(*m_error);
    }
    auto key = read_private_key(*m_file, m_passphrase);
    if (!key) {
        m_error = key.error();
    }
    return key;
}

std::string Identity::describe() const
{
    if (m_agent && m_file) {
        return "the ssh-agent's keys or " + *m_file;
    }
    return m_agent ? "the ssh-agent's keys" : *m_file;
}

} // namespace gitopper::ctl
