#include "util/user.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/strings.hpp"

namespace gitopper {

namespace {

// Entries larger than this are a broken NSS source, not a reason to keep allocating.
constexpr std::size_t max_buffer = 1 << 20;

// getpwnam_r or getpwuid_r with a buffer that grows until the entry fits. Returns 0 with
// `found` set, 0 with `found` null when there is no such user, or an errno value.
template <typename Lookup>
int lookup_passwd(Lookup lookup, passwd& entry, std::vector<char>& buffer, passwd*& found)
{
    buffer.resize(1024);
    while (true) {
        const int error = lookup(&entry, buffer.data(), buffer.size(), &found);
        if (error != ERANGE || buffer.size() >= max_buffer) {
            // Some NSS modules say "not found" with an error instead of a null result.
            return error == ENOENT || error == ESRCH ? 0 : error;
        }
        buffer.resize(buffer.size() * 2);
    }
}

// All groups of the user, the primary one included, as login(1) would set them.
std::vector<gid_t> group_list(const char* name, gid_t primary)
{
    std::vector<gid_t> groups(16);
    while (true) {
        int count = static_cast<int>(groups.size());
        if (::getgrouplist(name, primary, groups.data(), &count) >= 0) {
            groups.resize(static_cast<std::size_t>(count));
            return groups;
        }
        // glibc sets count to the number needed; grow at least twofold in case it does not.
        groups.resize(std::max(static_cast<std::size_t>(count), groups.size() * 2));
    }
}

// Supplementary groups of this process.
std::vector<gid_t> current_groups()
{
    while (true) {
        const int count = ::getgroups(0, nullptr);
        std::vector<gid_t> groups(static_cast<std::size_t>(std::max(count, 0)));
        const int got = ::getgroups(count, groups.data());
        if (got >= 0) {
            groups.resize(static_cast<std::size_t>(got));
            return groups;
        }
        // EINVAL: the groups changed between the two calls, so ask again.
    }
}

} // namespace

[[nodiscard]] Result<Credentials> lookup_user(const std::string& name)
{
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer;
    const auto by_name = [&](passwd* result, char* data, std::size_t size, passwd** out) {
        return ::getpwnam_r(name.c_str(), result, data, size, out);
    };
    if (const int error = lookup_passwd(by_name, entry, buffer, found); error != 0) {
        return fail("looking up user {}: {}", quote(name), errno_message(error));
    }
    if (found == nullptr) {
        return fail("no such user {}", quote(name));
    }
    return Credentials{entry.pw_uid, entry.pw_gid, group_list(entry.pw_name, entry.pw_gid),
                       entry.pw_name, entry.pw_dir};
}

Credentials current_credentials()
{
    Credentials credentials{::geteuid(), ::getegid(), current_groups(), {}, {}};
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer;
    const auto by_uid = [&](passwd* result, char* data, std::size_t size, passwd** out) {
        return ::getpwuid_r(credentials.uid, result, data, size, out);
    };
    if (lookup_passwd(by_uid, entry, buffer, found) == 0 && found != nullptr) {
        credentials.name = entry.pw_name;
        credentials.home = entry.pw_dir;
    }
    return credentials;
}

// glibc's setgroups() changes every thread (and setfsuid() only the caller): the raw
// system calls below change the calling thread alone. On 32-bit systems the plain call takes
// 16-bit group ids.
#ifdef SYS_setgroups32
constexpr long kSetgroups = SYS_setgroups32;
#else
constexpr long kSetgroups = SYS_setgroups;
#endif
FileIdentity::FileIdentity(const std::optional<Credentials>& user)
{
    if (!user || (user->uid == ::geteuid() && user->gid == ::getegid())) {
        return;
    }
    const int count = ::getgroups(0, nullptr);
    m_groups.resize(count > 0 ? static_cast<std::size_t>(count) : 0);
    if (count > 0 && ::getgroups(count, m_groups.data()) < 0) {
        m_groups.clear();
    }
    m_switched = true;
    m_ok = ::syscall(kSetgroups, user->groups.size(), user->groups.data()) == 0;
    ::setfsgid(user->gid);
    ::setfsuid(user->uid);
    // setfs*id() report the previous id whatever happened: ask again to know.
    m_ok = m_ok && static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) == user->uid &&
           static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))) == user->gid;
}

FileIdentity::~FileIdentity()
{
    if (!m_switched) {
        return;
    }
    const bool groups = ::syscall(kSetgroups, m_groups.size(), m_groups.data()) == 0;
    ::setfsgid(::getegid());
    ::setfsuid(::geteuid());
    // A thread left with the user's identity would go on working (and starting children) as
    // root with the user's file access or groups: better not to go on at all.
    if (!groups || static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) != ::geteuid() ||
        static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))) != ::getegid()) {
        static constexpr char kMessage[] = "gitopper: cannot restore a thread's identity\n";
        [[maybe_unused]] auto n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
        std::abort();
    }
}

} // namespace gitopper
