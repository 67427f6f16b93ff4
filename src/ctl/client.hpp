#pragma once
// One request to one daemon over SSH (libssh): connect, check the host key against the
// known-hosts file (trust on first use, refuse on change), authenticate with a key, run the
// request as an exec command, and collect stdout and the exit status (SPEC §4).
//
// Each call owns its session from start to end, so calls for different hosts can run on
// different threads at once.

#include <string>
#include <vector>

#include "ctl/identity.hpp"
#include "ctl/target.hpp"
#include "util/error.hpp"

namespace gitopper::ctl {

struct ClientOptions {
    std::string known_hosts; // file: checked, and appended to for hosts seen the first time
    std::string user;        // the daemon ignores it; sent because SSH needs one
    Identity* identity = nullptr;
    bool insecure_host_key = false; // take any host key, check and store none
};

struct Reply {
    int status = 0;   // 0 or the daemon's HTTP-like code (400, 401, 404, 406, 500)
    std::string body; // its stdout: JSON, "OK" or an error message
};

struct Exchange {
    Result<Reply> reply;
    std::vector<std::string> notices; // for stderr, such as a newly stored host key
};

Exchange query(const Target& target, const std::string& request, const ClientOptions& options);

} // namespace gitopper::ctl
