#include "service/layout.hpp"
#include "util/strings.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/safe_path.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

constexpr auto kBase = ".gitopper";

} // namespace

Layout::Layout(std::string mount, std::string service)
    : m_mount(std::move(mount)), m_service(std::move(service))
{
}

std::string Layout::stores() const
{
    return fmt::format("{}/{}/stores", m_mount, kBase);
}

std::string Layout::trees() const
{
    return fmt::format("{}/{}/trees/{}", m_mount, kBase, m_service);
}

std::string Layout::tree(int n) const
{
    return fmt::format("{}/{}", trees(), n);
}

std::string Layout::link() const
{
    return m_mount + "/" + m_service;
}

std::string Layout::migrated() const
{
    return fmt::format("{}/{}/migrated-{}", m_mount, kBase, m_service);
}

std::string Layout::target(int n) const
{
    return fmt::format("{}/trees/{}/{}", kBase, m_service, n);
}

Layout::Found Layout::inspect(int mount_fd) const
{
    struct stat st {};
    if (::fstatat(mount_fd, m_service.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            return {Found::Kind::nothing};
        }
        return {Found::Kind::other, -1, fmt::format("{}: {}", link(), errno_message(errno))};
    }
    if (S_ISDIR(st.st_mode)) {
        return {Found::Kind::checkout, -1, "", st.st_uid};
    }
    if (!S_ISLNK(st.st_mode)) {
        return {Found::Kind::other, -1, "not a directory", st.st_uid};
    }
    std::array<char, 4096> text{};
    const auto n = ::readlinkat(mount_fd, m_service.c_str(), text.data(), text.size() - 1);
    const std::string_view read(text.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    for (int tree = 0; tree < 2; ++tree) {
        if (st.st_uid == ::geteuid() && read == target(tree)) {
            return {Found::Kind::live, tree, "", st.st_uid};
        }
    }
    return {Found::Kind::other, -1, "a symlink gitopper did not make", st.st_uid, true};
}

Result<> Layout::publish(int mount_fd, int n) const
{
    const auto temporary = m_service + ".gitopper-link";
    ::unlinkat(mount_fd, temporary.c_str(), 0); // left by a kill -9: only ever our symlink
    if (::symlinkat(target(n).c_str(), mount_fd, temporary.c_str()) != 0) {
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
    auto all = open_root_dir(base->get(), "trees", fmt::format("{}/{}/trees", m_mount, kBase));
    if (!all) {
        return std::unexpected(all.error());
    }
    return open_root_dir(all->get(), m_service, trees());
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
