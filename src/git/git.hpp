#pragma once
// The git CLI, for one checkout and one user. Every call runs `git` through util/process with
// the host's git config neutralised, the user dropped to, a timeout, and `--end-of-options`
// before anything that came from the config, so no value can become an option.
// A Git object is used by one thread at a time (the poll thread that owns the checkout).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "git/transport.hpp"
#include "util/error.hpp"
#include "util/link.hpp"
#include "util/process.hpp"

namespace gitopper {

// Counted for the metrics gitopper_machine_git_ops_total and _errors_total.
struct GitCounters {
    std::atomic<std::uint64_t> ops{0};
    std::atomic<std::uint64_t> errors{0};
};
GitCounters& git_counters();

// The URL without its password, as git keeps it in .git/config and shows it in argv:
// "https://user:token@host/x" -> "https://user@host/x". The password reaches git only through
// the environment of its own process (see git_environment), never a file or a command line.
std::string public_url(std::string_view url);

// One entry of `git ls-tree -l`: mode, type (blob, tree, commit) and, for a blob, its size.
struct TreeEntry {
    std::string mode;
    std::string type;
    std::uint64_t size = 0;
};
using TreeListing = std::map<std::string, TreeEntry>; // by path

class Git {
public:
    // `dir` is the work tree; `user` is who git runs as (nullopt: ourselves); `upstream` the
    // URL "origin" stands for, with its credentials if any.
    // `store`: for a work tree of an object store, that store's directory; its .git file must
    // then name the store's directory for it, nothing else.
    Git(std::string dir, std::optional<Credentials> user,
        std::chrono::milliseconds timeout = std::chrono::minutes(2), std::string upstream = "",
        std::string store = "");

    // A plain tree: a directory holding only a service's files at `commit`, with no git
    // metadata in it or for it, so that it costs no more disk than its files (ARCHITECTURE.md).
    // Git works on it through the store's repository and an index that each step makes for
    // itself in the store's .git (named `index`, unique to the tree) and removes again.
    struct Plain {
        std::string git_dir; // the store's .git
        std::string index;   // a file name in git_dir
        std::string commit;
        std::vector<Link> links;
        mutable bool index_written = false; // write_plain(true) left its index
    };
    static Git plain_tree(std::string dir, std::optional<Credentials> user,
                          std::chrono::milliseconds timeout, std::string upstream, Plain plain);
    // How git reaches a private upstream (git/transport.hpp): a deploy key, a token, pinned
    // host keys. Every git process gets it, since any of them may fetch (a blob on demand).
    void set_access(std::shared_ptr<const Access> access) { m_access = std::move(access); }
    // Writes the files of the plain tree's commit under its links into its (empty) directory,
    // in one process whatever the size of the repository; with `keep_index`, also the index of
    // what it wrote, for written_changes().
    [[nodiscard]] Result<> write_plain(bool keep_index = false) const;
    // Moves the plain tree's files to `to` in place (for kernels that cannot switch mounts
    // atomically): changed files rewritten, files `to` no longer has removed.
    [[nodiscard]] Result<> move_plain(const std::string& to);

    // The commits these branches point to upstream, in one ls-remote; a branch that does not
    // exist there is missing from the answer.
    [[nodiscard]] Result<std::map<std::string, std::string>>
    remote_heads(const std::string& url, const std::vector<std::string>& branches) const;

    // An object store: a partial clone (blobs on demand, full history) of `branch` into the
    // (empty) directory, with no work tree of its own: its services' trees are plain trees.
    [[nodiscard]] Result<> clone_store(const std::string& url, const std::string& branch) const;
    // `git worktree prune`: forgets worktrees whose directories are gone.
    [[nodiscard]] Result<> prune_worktrees() const;
    // `git worktree repair` in this (moved) worktree: the store's record names it again.
    [[nodiscard]] Result<> repair_worktree() const;
    // The remote-tracking heads the store has ("main" -> hash), read in one process.
    [[nodiscard]] Result<std::map<std::string, std::string>> tracking_heads() const;
    // A work tree's own directory in the object store: what its .git file names, read without
    // a process. An error when `.git` is not such a file (a clone of its own, or nothing).
    [[nodiscard]] Result<std::string> worktree_git_dir() const;

    // Paths under `links` that differ between the two commits, read with `--numstat`, which
    // makes a partial clone fetch the blobs it compares in one batch: afterwards the checkout
    // of `to` and the sizes in list_tree() need no fetch of their own. `from` empty: all.
    [[nodiscard]] Result<std::vector<std::string>>
    changed_fetching(const std::string& from, const std::string& to,
                     std::span<const Link> links) const;
    // The trees and files under `links` in `commit` (ls-tree -r -t -l).
    [[nodiscard]] Result<TreeListing> list_tree(const std::string& commit,
                                                std::span<const Link> links) const;
    // Why `commit` must not be checked out for `links` (SPEC §11), judged from its listing, or
    // nullopt: a link, or a directory on its way, that is a symlink in git; a link that is
    // missing or a file where a directory is wanted (or the reverse); a submodule; a file under
    // the links over `max_file_size` bytes.
    [[nodiscard]] Result<std::optional<std::string>> judge_tree(const TreeListing& listing,
                                                                const std::string& commit,
                                                                std::span<const Link> links,
                                                                std::uint64_t max_file_size) const;

    // Removes what a killed git leaves in .git (lock files, half-written packs), running as
    // the user: root never walks a tree the user can change. Logged per file.
    void remove_leftovers(const std::string& service) const;
    // .git/config 0600: the checkout's repository settings are nobody else's business.
    [[nodiscard]] Result<> protect_config() const;

    [[nodiscard]] Result<bool> is_repository() const;

    // Brings `branch` from upstream, also after a force-push.
    [[nodiscard]] Result<> fetch(const std::string& branch) const;
    // The same for several branches, in one fetch, with the new commits' blobs under 1 MiB.
    [[nodiscard]] Result<> fetch(const std::vector<std::string>& branches) const;
    // git's verdict on the SSH signature of `commit` (%G?): 'G' good and by a key of
    // `allowed_signers`, 'U' good by another key, 'N' none, 'B' bad, ...
    [[nodiscard]] Result<char> signature_status(const std::string& commit,
                                                const std::string& allowed_signers) const;
    // `commit` is `of` or one of its ancestors.
    [[nodiscard]] Result<bool> is_ancestor(const std::string& commit, const std::string& of) const;
    // The full hash of a commit given by a (possibly abbreviated) hash or ref; nullopt when
    // there is none such, an error when git could not tell (a timeout, a broken store).
    [[nodiscard]] Result<std::optional<std::string>> find_commit(const std::string& commit) const;
    // After our own detached checkout .git/HEAD holds the commit: read without a process.
    // nullopt when no commit is checked out (not a work tree of ours); an error when git
    // could not tell, which is no reason to give up on the tree.
    [[nodiscard]] Result<std::optional<std::string>> checked_out() const;
    [[nodiscard]] Result<std::string> detached_head() const; // the same, "none" as an error

    // Files anywhere in the work tree that differ from HEAD (modified, added, deleted or
    // untracked, inside the sparse paths or not): how many, and the first `listed` of them.
    // For a plain tree: that differ from its commit under its links, or lie outside them.
    struct Changes {
        std::vector<std::string> listed;
        std::size_t count = 0;
    };
    [[nodiscard]] Result<Changes> local_changes(std::size_t listed = SIZE_MAX) const;
    // After write_plain(true): what differs from what git wrote (the user's writes since),
    // compared by stat data in one process; the index is removed. Once another step has
    // used the tree's index: local_changes().
    [[nodiscard]] Result<Changes> written_changes(std::size_t listed = 20) const;
    // Every local change (tracked and untracked, outside the sparse paths too) as one binary
    // patch that git writes itself into `patch_fd` (an empty file of the caller's, open for
    // reading and writing): never held in memory, never cut at an output limit. A patch over
    // `max_patch_bytes` is refused when git gets there, before the disk fills. Once git has
    // written it whole (exit 0) and it reads back as the reverse of what was staged, `keep`
    // makes it durable; only when that succeeds too is the work tree reset to HEAD and every
    // untracked file removed. On any failure before, nothing stays staged and every file is as
    // it was.
    [[nodiscard]] Result<>
    take_local_changes(int patch_fd, const std::function<Result<>()>& keep,
                       std::uint64_t max_patch_bytes = 0) const; // 0: no limit

    // What a deploy from `from` to `to` would bring (a preview; nothing is written): the
    // commits in between, newest first, at most `limit` (one more tells there are more); the
    // files under `links` that differ ("M\tpath"); the unified diff under them, cut at
    // `max_bytes`.
    struct LogEntry {
        std::string hash;
        std::string author;
        std::string subject;
    };
    [[nodiscard]] Result<std::vector<LogEntry>>
    commits_between(const std::string& from, const std::string& to, std::size_t limit) const;
    [[nodiscard]] Result<std::vector<std::string>> changed_files(const std::string& from,
                                                                 const std::string& to,
                                                                 std::span<const Link> links) const;
    struct Diff {
        std::string text;
        bool truncated = false;
    };
    [[nodiscard]] Result<Diff> diff_text(const std::string& from, const std::string& to,
                                         std::span<const Link> links, std::size_t max_bytes) const;

    const std::string& dir() const { return m_dir; }

private:
    struct RunOptions {
        bool in_tree = true;
        const std::string* url = nullptr; // the upstream whose credentials git needs
        std::size_t max_output = 1 << 20; // more is an error, never a silently short answer
        int stdin_fd = -1;                // see Command
        int stdout_fd = -1;
        std::uint64_t max_file_size = 0; // see Command
        int answer_exit = 0; // another exit status that is an answer ("no"), not a failure
        bool cut_ok = false; // output over max_output is kept cut (Output::truncated), no error
    };
    [[nodiscard]] Result<Output> run_git(std::vector<std::string> args, bool in_tree = true,
                                         const std::string* url = nullptr) const;
    [[nodiscard]] Result<Output> run_git(std::vector<std::string> args,
                                         const RunOptions& options) const;
    [[nodiscard]] Result<std::string> read_git_file(const std::string& name) const;
    [[nodiscard]] Result<> write_staged_patch(int patch_fd, std::uint64_t max_bytes,
                                              const std::string& base = "HEAD") const;
    [[nodiscard]] Result<Changes> plain_changes(std::size_t listed) const;
    [[nodiscard]] Result<Changes> list_changes(std::size_t listed) const;
    [[nodiscard]] Result<> take_plain_changes(int patch_fd, const std::function<Result<>()>& keep,
                                              std::uint64_t max_patch_bytes) const;
    // The plain tree's index: none (removed with what a killed git left of it); or the
    // entries of its commit under its links, with no stat data (git compares their content).
    [[nodiscard]] Result<> drop_index() const;
    [[nodiscard]] Result<Output> run_on_links(std::vector<std::string> args) const;
    [[nodiscard]] Result<Transport> prepare_transport(const std::string& subcommand,
                                                      const std::string& remote) const;
    [[nodiscard]] Result<> index_at(const std::string& commit) const;
    [[nodiscard]] Result<> check_patch(int patch_fd) const;

    std::string m_dir;
    std::optional<Credentials> m_user;
    std::chrono::milliseconds m_timeout;
    std::string m_upstream;
    std::string m_store;
    std::optional<Plain> m_plain;
    std::shared_ptr<const Access> m_access; // nullptr: a public upstream
};

} // namespace gitopper
