#include "service/layout.hpp"
#include "util/strings.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "config/config.hpp"
#include "util/safe_path.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

constexpr auto kBase = ".gitopper";
// Of a tree's commit in its name: enough to tell commits apart (git's own abbreviation in big
// repositories), few enough that M/<service>'s target fits in an inode (under 60 bytes, an
// ext4 fast symlink: no block of its own) for service names up to 21 characters.
constexpr std::size_t kCommitDigits = 12;

} // namespace

Layout::Layout(std::string mount, std::string service, std::string links)
    : m_mount(std::move(mount)), m_service(std::move(service)), m_links(std::move(links))
{
}

std::string links_id(std::span<const Link> links)
{
    // Sorted, each with its kind and an end: the same set whatever the order, and no two sets
    // alike ("a/b" + "c" is not "a/bc").
    std::vector<std::string> entries;
    for (const auto& link : links) {
        entries.push_back(link.path + (link.file ? '\1' : '\2') + '\0');
    }
    std::sort(entries.begin(), entries.end());
    std::string text;
    for (const auto& entry : entries) {
        text += entry;
    }
    return fmt::format("{:08x}", fnv1a(text) & 0xffffffff);
}

std::string Layout::stores() const
{
    return fmt::format("{}/{}/stores", m_mount, kBase);
}

std::string Layout::trees() const
{
    return fmt::format("{}/{}/trees", m_mount, kBase);
}

std::string Layout::tree_name(const std::string& commit) const
{
    return fmt::format("{}.{}.{}", m_service, m_links, commit.substr(0, kCommitDigits));
}

std::string Layout::tree(const std::string& commit) const
{
    return trees() + "/" + tree_name(commit);
}

// Exactly "<service>.<8 hex digits>.<12 hex digits>": "a.b.<links>.<commit>" is service
// a.b's, never a's.
std::optional<std::string> Layout::commit_of(std::string_view name) const
{
    const auto hex = [](std::string_view text) {
        return std::all_of(text.begin(), text.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    };
    const auto n = m_service.size();
    if (name.size() != n + 10 + kCommitDigits || !name.starts_with(m_service) || name[n] != '.' ||
        name[n + 9] != '.' || !hex(name.substr(n + 1, 8)) || !hex(name.substr(n + 10))) {
        return std::nullopt;
    }
    return std::string(name.substr(n + 10));
}

std::string Layout::old_trees() const
{
    return fmt::format("{}/{}/trees/{}", m_mount, kBase, m_service);
}

std::string Layout::link() const
{
    return m_mount + "/" + m_service;
}

std::string Layout::signers() const
{
    return fmt::format("{}/{}/signers-{}", m_mount, kBase, m_service);
}

std::string Layout::migrated() const
{
    return fmt::format("{}/{}/migrated-{}", m_mount, kBase, m_service);
}

Layout::Found Layout::inspect(int mount_fd) const
{
    struct stat st {};
    if (::fstatat(mount_fd, m_service.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            return {Found::Kind::nothing};
        }
        return {Found::Kind::other, "", fmt::format("{}: {}", link(), errno_message(errno))};
    }
    if (S_ISDIR(st.st_mode)) {
        return {Found::Kind::checkout, "", "", link(), st.st_uid};
    }
    if (!S_ISLNK(st.st_mode)) {
        return {Found::Kind::other, "", "not a directory", "", st.st_uid};
    }
    std::array<char, 4096> text{};
    const auto n = ::readlinkat(mount_fd, m_service.c_str(), text.data(), text.size() - 1);
    const std::string_view read(text.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    const auto prefix = fmt::format("{}/trees/", kBase);
    if (st.st_uid == ::geteuid() && read.starts_with(prefix)) {
        const auto name = read.substr(prefix.size());
        if (auto commit = commit_of(name)) {
            return {Found::Kind::live, *commit, "", std::string(name), st.st_uid};
        }
        for (const auto* old : {"/0", "/1"}) {
            if (name == m_service + old) {
                return {Found::Kind::checkout, "", "", old_trees() + old, st.st_uid};
            }
        }
    }
    return {Found::Kind::other, "", "a symlink gitopper did not make", "", st.st_uid, true};
}

Result<> Layout::publish(int mount_fd, const std::string& commit) const
{
    return publish_tree(mount_fd, tree_name(commit));
}

Result<> Layout::publish_tree(int mount_fd, const std::string& name) const
{
    const auto temporary = m_service + ".gitopper-link";
    ::unlinkat(mount_fd, temporary.c_str(), 0); // left by a kill -9: only ever our symlink
    if (::symlinkat(fmt::format("{}/trees/{}", kBase, name).c_str(), mount_fd, temporary.c_str()) !=
        0) {
        return fail("symlink {}/{}: {}", m_mount, temporary, errno_message(errno));
    }
    if (::renameat(mount_fd, temporary.c_str(), mount_fd, m_service.c_str()) != 0) {
        const int error = errno;
        ::unlinkat(mount_fd, temporary.c_str(), 0);
        return fail("rename {}/{} to {}: {}", m_mount, temporary, link(), errno_message(error));
    }
    return {};
}

Result<Fd> Layout::open_stores(int mount_fd) const
{
    auto base = open_root_dir(mount_fd, kBase, m_mount + "/" + kBase);
    if (!base) {
        return std::unexpected(base.error());
    }
    return open_root_dir(base->get(), "stores", stores());
}

Result<Fd> Layout::open_trees(int mount_fd) const
{
    auto base = open_root_dir(mount_fd, kBase, m_mount + "/" + kBase);
    if (!base) {
        return std::unexpected(base.error());
    }
    return open_root_dir(base->get(), "trees", trees());
}

[[nodiscard]] Result<Fd> open_root_dir(int dir, const std::string& name, const std::string& shown)
{
    if (::mkdirat(dir, name.c_str(), 0711) != 0 && errno != EEXIST) {
        return fail("create {}: {}", shown, errno_message(errno));
    }
    auto fd = open_beneath(dir, name, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        return fail("{}: {}", shown, fd.error().message);
    }
    auto info = file_info(fd->get());
    if (!info) {
        return fail("{}: {}", shown, info.error().message);
    }
    if (info->uid != ::geteuid() || (info->mode & 022) != 0) {
        return fail("{} belongs to uid {} with mode {}: only root may change it", shown, info->uid,
                    mode_text(info->mode));
    }
    return fd;
}

[[nodiscard]] Result<> make_owned_dir(int dir, const std::string& name,
                                      const std::optional<Credentials>& owner,
                                      const std::string& shown)
{
    if (::mkdirat(dir, name.c_str(), 0700) != 0) {
        return fail("create {}: {}", shown, errno_message(errno));
    }
    auto fd = open_beneath(dir, name, O_RDONLY | O_DIRECTORY);
    const auto who = owner ? *owner : current_credentials();
    if (!fd || ::fchown(fd->get(), who.uid, who.gid) != 0 || ::fchmod(fd->get(), 0750) != 0) {
        return fail("create {}: {}", shown, fd ? errno_message(errno) : fd.error().message);
    }
    return {};
}

[[nodiscard]] Result<> remove_tree(int dir, const std::string& dir_path, const std::string& name,
                                   const std::optional<Credentials>& user)
{
    auto removed =
        run(Command{.argv = {"rm", "-rf", "--one-file-system", "--", dir_path + "/" + name},
                    .timeout = std::chrono::minutes(5),
                    .as_user = user,
                    .cwd = "/"});
    if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return fail("remove {}/{}: {}{}", dir_path, name, errno_message(errno),
                    removed && !removed->ok() ? " (" + removed->describe() + ")" : "");
    }
    return {};
}

} // namespace gitopper
