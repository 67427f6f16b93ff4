#pragma once
// Which private keys gitopperctl offers (SPEC §5): the -i file alone if given; otherwise the
// ssh-agent's keys, then ~/.ssh/id_ed25519.
//
// One Identity serves every host's thread. The passphrase of the key file is asked for at most
// once, and only when a host gets that far (the agent may make it unnecessary). Each session
// reads its own copy of the key, as libssh objects belong to one thread at a time.

#include <mutex>
#include <optional>
#include <string>

#include "ctl/libssh.hpp"
#include "util/error.hpp"

namespace gitopper::ctl {

class Identity {
public:
    // `file` is -i's value; `home` the user's home directory.
    Identity(std::optional<std::string> file, const std::string& home);

    bool use_agent() const { return m_agent; }
    bool has_file() const { return m_file.has_value(); }
    // Nothing at all to offer: neither -i, nor an agent, nor the default key.
    bool empty() const { return !m_agent && !m_file; }

    // With -i, reads the key once up front: a wrong path or passphrase is then one message,
    // not one per host.
    [[nodiscard]] Result<> check();

    // A fresh copy of the file's private key for one session.
    [[nodiscard]] Result<KeyPtr> key();

    // What was offered, for "permission denied" messages.
    std::string describe() const;

private:
    bool m_agent = false;
    bool m_explicit = false; // -i
    std::optional<std::string> m_file;
    std::mutex m_mutex;
    std::optional<std::string> m_passphrase; // once typed
    std::optional<Error> m_error;            // why the file cannot be used, once known
};

} // namespace gitopper::ctl
