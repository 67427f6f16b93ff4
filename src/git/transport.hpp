#pragma once
// How git reaches a private upstream (SPEC §1: ssh_key, known_hosts, token_file, ca_file).
//
// git runs as the service's user, who may not read root's deploy key, token or pinned host
// keys. Root reads each file (util/trusted_file), puts its content in a sealed memory file
// only that user may read, and passes the descriptor to that one git process; nothing is on
// disk for the user, and it is gone when the run ends. git reaches the descriptors through
// gitopper itself, run as git's GIT_SSH or GIT_ASKPASS (run_transport_helper): for ssh it
// stays the parent of ssh, which opens /proc/<helper>/fd/N as its identity and known_hosts
// file (ssh closes every descriptor it inherits, so it cannot be given them directly), with
// `-F /dev/null` (no ssh_config of root's or the user's), BatchMode, no agent, IdentitiesOnly
// and StrictHostKeyChecking=yes; for https it answers git's prompts (user, then the token).
//
// Without `known_hosts`, host keys are trusted on first use: root learns them with
// ssh-keyscan into <state>/known_hosts before the first connection; a key that changes later
// is refused, and the message says which fingerprint was expected, which one came, and which
// file to edit.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/endpoint.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/process.hpp"

namespace gitopper {

struct Access {
    std::string ssh_key;     // deploy key for ssh upstreams
    std::string known_hosts; // pinned host keys; empty: trust on first use, in tofu_file
    std::string tofu_file;   // <state>/known_hosts: the keys learnt on first use
    std::string token_file;  // password or token for https upstreams
    std::string ca_file;     // CA bundle for https upstreams
};

// The variables and descriptors one git process needs for `url`, held open until it ends.
struct Transport {
    std::vector<std::string> env; // "KEY=VALUE", added to git's environment
    std::vector<Fd> fds;          // what env names by number
    std::vector<int> numbers() const;
};
[[nodiscard]] Result<Transport> transport_for(std::string_view url, const Access& access,
                                              const std::optional<Credentials>& user);

// Before git connects to an ssh upstream without pinned keys: the host's keys, learnt with
// ssh-keyscan (as root, which reads nothing of the repository) when the state has none yet.
[[nodiscard]] Result<> learn_host_key(std::string_view url, const Access& access,
                                      std::chrono::milliseconds timeout);

// After git over ssh failed with `stderr`: when the host key is the reason, why in words
// ("host key for H changed; expected SHA256:…, got SHA256:…; if the new key is right, edit
// FILE"); nullopt otherwise.
std::optional<std::string> host_key_problem(std::string_view url, const Access& access,
                                            std::string_view stderr_text,
                                            std::chrono::milliseconds timeout);

// The SHA256 fingerprint of a public key in base64 ("AAAAC3Nz…"), as ssh-keygen -l shows it.
std::string key_fingerprint(std::string_view base64_blob);

// gitopper started by git as GIT_SSH or GIT_ASKPASS (the variable GITOPPER_HELPER says which):
// the exit status. nullopt when it was not started as one.
std::optional<int> run_transport_helper(int argc, char** argv);

} // namespace gitopper
