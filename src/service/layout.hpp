#pragma once
// Where one service's files are, under its mount base M (SPEC §2.2; ARCHITECTURE.md):
//
//   M/.gitopper/stores/<store>/               the object store of its (upstream, user): the user's
//   M/.gitopper/trees/<service>.<links>.<commit>   its live tree, and a new one while a deploy
//                                        stages it: the user's, nothing but the files of its links
//   M/<service> -> .gitopper/trees/<service>.<links>.<commit>   root's symlink to the live one
//
// A tree's name says what it holds: the commit (its first 12 hex digits), and which links (8
// hex digits of a hash of them), so the symlink's rename switches the files and the record of what
// they are together. The directories between M and the user's are root's, 0711: the user passes
// through them to its own, nobody lists them. The symlink is where operators look (`cd
// M/<service>`); gitopper itself never follows it: it reads it (readlinkat) and opens the tree by
// its own path.

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/process.hpp"

namespace gitopper {

struct Link;

class Layout {
public:
    // `links`: the id of the service's links in its trees' names (links_id()).
    Layout(std::string mount, std::string service, std::string links = "00000000");

    std::string stores() const;                             // M/.gitopper/stores
    std::string trees() const;                              // M/.gitopper/trees
    std::string tree_name(const std::string& commit) const; // <service>.<links>.<commit>
    std::string tree(const std::string& commit) const;      // trees()/tree_name(commit)
    // The commit of a tree of this service named `name` in trees() (its first 12 hex digits),
    // whatever its links, or nullopt.
    std::optional<std::string> commit_of(std::string_view name) const;
    std::string link() const;     // M/<service>
    std::string signers() const;  // M/.gitopper/signers-<service>: root's copy the user reads
    std::string migrated() const; // an old checkout of M/<service> until its mounts moved off it

    // What M/<service> is now.
    struct Found {
        enum class Kind {
            nothing,  // not there: a fresh service
            live,     // our symlink to the tree named `path` in trees(), of commit `live`
                      // (its first digits, as commit_of() reads them from the name)
            checkout, // a checkout of an earlier layout, at `path`: a clone of its own at
                      // M/<service> (before object stores, or the Go tool's), or our symlink to
                      // a git worktree M/.gitopper/trees/<service>/<0|1> (before plain trees)
            other,    // anything else (a foreign symlink, a file): `why`
        } kind;
        std::string live;
        std::string why;
        std::string path;
        uid_t owner = 0; // of what is there
        bool symlink = false;
    };
    Found inspect(int mount_fd) const;

    // M/<service> points to the tree of `commit`, switched at once: a new symlink renamed over
    // the old.
    [[nodiscard]] Result<> publish(int mount_fd, const std::string& commit) const;
    // The same for the tree named `name` in trees(), whatever its links.
    [[nodiscard]] Result<> publish_tree(int mount_fd, const std::string& name) const;

    // Root's directories on the way to the trees and stores, made when missing (0711) and
    // refused when someone else could change them. Returns M/.gitopper/trees.
    [[nodiscard]] Result<Fd> open_trees(int mount_fd) const;
    // M/.gitopper/trees/<service> of the worktree layout, and its trees 0 and 1 in it.
    std::string old_trees() const;
    [[nodiscard]] Result<Fd> open_stores(int mount_fd) const;

private:
    std::string m_mount;
    std::string m_service;
    std::string m_links;
};

// The id of a set of links in tree names: 8 hex digits of a hash of their paths and kinds.
std::string links_id(std::span<const Link> links);

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
