#pragma once
// Where one service's files are, under its mount base M (SPEC §2.2; ARCHITECTURE.md):
//
//   M/.gitopper/stores/<store>/           the object store of its (upstream, user): the user's
//   M/.gitopper/trees/<service>/0 and 1   its two work trees, used in turn: the user's
//   M/<service> -> .gitopper/trees/<service>/N   root's symlink to the live one
//
// The directories between M and the user's are root's, 0711: the user passes through them to
// its own, nobody lists them. The symlink is where operators look (`cd M/<service>`); gitopper
// itself never follows it: it reads it (readlinkat) and opens the tree by its own path.

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/process.hpp"

namespace gitopper {

class Layout {
public:
    Layout(std::string mount, std::string service);

    const std::string& mount() const { return m_mount; }
    std::string stores() const; // M/.gitopper/stores
    std::string trees() const;  // M/.gitopper/trees/<service>
    std::string tree(int n) const;
    std::string link() const;     // M/<service>
    std::string migrated() const; // an old checkout of M/<service> until its mounts moved off it

    // What M/<service> is now.
    struct Found {
        enum class Kind {
            nothing,  // not there: a fresh service
            live,     // our symlink to tree `live`
            checkout, // a directory: a clone of the layout before object stores (or the Go tool's)
            other,    // anything else (a foreign symlink, a file): `why`
        } kind;
        int live = -1;
        std::string why;
        uid_t owner = 0; // of what is there
        bool symlink = false;
    };
    Found inspect(int mount_fd) const;

    // M/<service> points to tree `n`, switched at once: a new symlink renamed over the old.
    [[nodiscard]] Result<> publish(int mount_fd, int n) const;

    // Root's directories on the way to the trees and stores, made when missing (0711) and
    // refused when someone else could change them. Returns M/.gitopper/trees/<service>.
    [[nodiscard]] Result<Fd> open_trees(int mount_fd) const;
    [[nodiscard]] Result<Fd> open_stores(int mount_fd) const;

private:
    std::string target(int n) const; // the symlink's text for tree n

    std::string m_mount;
    std::string m_service;
};

// A root-owned directory `name` beneath `dir`, made 0711 when missing; an error when it is
// not root's, or others may write to it, or it is a symlink.
[[nodiscard]] Result<Fd> open_root_dir(int dir, const std::string& name, const std::string& shown);

// An empty directory `name` beneath `dir` for a work tree or store of `owner`: made by root,
// 0750 with the owner's group (a tree is no world-readable copy of the repository).
[[nodiscard]] Result<> make_owned_dir(int dir, const std::string& name,
                                      const std::optional<Credentials>& owner,
                                      const std::string& shown);

// Removes a tree of the user's as that user: root never walks a tree that someone else can
// change under it. Only the emptied top, in root's own directory, is root's to remove.
[[nodiscard]] Result<> remove_tree(int dir, const std::string& dir_path, const std::string& name,
                                   const std::optional<Credentials>& user);

} // namespace gitopper
