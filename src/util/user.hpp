#pragma once
// Looking up local users (getpwnam_r, getgrouplist) for dropping privileges and chown.

#include <optional>
#include <string>

#include "util/error.hpp"
#include "util/process.hpp"

namespace gitopper {

// The user's uid, primary gid, supplementary groups and home; an error names the user
// when it does not exist.
[[nodiscard]] Result<Credentials> lookup_user(const std::string& name);

// The credentials of the current process.
Credentials current_credentials();

// While it lives, the calling thread touches files as `user` (file-system uid and gid and the
// supplementary groups, all of which Linux keeps per thread; leaving uid 0 also drops the
// thread's file capabilities, CAP_DAC_OVERRIDE among them). For the few small files root
// writes into a tree of the user's without starting a process: the kernel checks them as it
// would for the user. Ends with the thread's own identity restored.
class FileIdentity {
public:
    explicit FileIdentity(const std::optional<Credentials>& user);
    ~FileIdentity();
    FileIdentity(const FileIdentity&) = delete;
    FileIdentity& operator=(const FileIdentity&) = delete;
    // Whether the switch took (or was not needed): act only when it did.
    bool ok() const { return m_ok; }

private:
    bool m_switched = false;
    bool m_ok = true;
    std::vector<gid_t> m_groups;
};

} // namespace gitopper
