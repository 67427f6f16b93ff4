#pragma once
// Looking up local users (getpwnam_r, getgrouplist) for dropping privileges and chown.

#include <optional>
#include <string>

#include "util/error.hpp"
#include "util/process.hpp"

namespace gitopper {

// The user's uid, primary gid, supplementary groups and home; an error names the user
// when it does not exist.
Result<Credentials> lookup_user(const std::string& name);

// The credentials of the current process.
Credentials current_credentials();

} // namespace gitopper
