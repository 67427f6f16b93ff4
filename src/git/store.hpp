#pragma once
// One object store: a partial clone (blobs on demand, full history, no files of its own) of
// one upstream for one user, shared by the trees of every service that uses it. A service's
// tree is a plain directory of exactly the files of its links at one commit (Git::Plain), so
// one fetch serves all of them and a service's deploy touches only its own tree. See
// ARCHITECTURE.md for the layout on disk.
//
// What changed between two commits, and whether a commit may be checked out, is asked once
// per pair of commits for the links of every service that asks (a "survey"), and kept until
// the next poll cycle: fifty services moving from one commit to the next cost one diff and
// one ls-tree, not fifty of each. Used by its poll group's thread and, at start-up, by the
// helper threads it lends services to: the surveys are shared under a mutex.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "git/git.hpp"
#include "util/error.hpp"
#include "util/link.hpp"

namespace gitopper {

// What a deploy of `to` means for one service coming from `from`.
struct Survey {
    std::vector<std::string> changed;   // its paths that differ (all of them when `from` is "")
    std::optional<std::string> refusal; // why `to` must not be checked out for it (SPEC §11)
};

class Store {
public:
    Store(std::string dir, std::string upstream, std::chrono::milliseconds timeout,
          std::shared_ptr<const Access> access = nullptr);

    const std::string& dir() const { return m_dir; }
    const std::string& upstream() const { return m_upstream; }
    // Runs `open` (which makes the store usable: cloned, or found whole) once for all the
    // services that share the store, as `user`; a failure is retried by the next caller.
    [[nodiscard]] Result<> open(const std::optional<Credentials>& user,
                                const std::function<Result<>()>& open);
    bool is_open() const;
    // git in the store (fetch, resolve, ancestry).
    const Git& git() const { return m_git; }
    // Forgets the git worktrees whose directories are gone (after a migration).
    void prune_worktrees() const;
    // A plain tree at `dir` holding `commit`'s files under `links`; `index` names the file in
    // the store's .git that its steps use and remove again (one per service).
    Git plain_tree(const std::string& dir, const std::string& index, const std::string& commit,
                   std::span<const Link> links) const;

    // The directory's name for (upstream, user): readable, and different for different
    // credentials of the same URL without showing them: the distinguishing part is an
    // HMAC-SHA256 under `key` (root's secret, see Engine), so the name, which every local user
    // can see in process lists, gives nothing to guess a password against.
    static std::string name_for(const std::string& upstream, const std::string& user,
                                std::string_view key);

    // Clones into `dir` (empty, the user's), renamed to dir() by the caller once whole.
    [[nodiscard]] Result<> clone_into(const std::string& dir, const std::string& branch) const;

    // One `ls-remote` for all the branches.
    [[nodiscard]] Result<std::map<std::string, std::string>>
    remote_heads(const std::vector<std::string>& branches) const;
    // One fetch for all the branches; the surveys are forgotten.
    [[nodiscard]] Result<> fetch(const std::vector<std::string>& branches);
    // One fetch for all the branches, then the heads it brought (read from the refs git
    // wrote, without a process when it wrote them loose).
    [[nodiscard]] Result<std::map<std::string, std::string>>
    fetch_heads(const std::vector<std::string>& branches);
    // The branch heads the store has, as of its last fetch (one process, then remembered).
    [[nodiscard]] Result<std::string> tracking_head(const std::string& branch);

    // Warms the survey of from -> to for these links (the union of several services').
    [[nodiscard]] Result<> prepare(const std::string& from, const std::string& to,
                                   std::span<const Link> links);
    [[nodiscard]] Result<Survey> survey(const std::string& from, const std::string& to,
                                        std::span<const Link> links, std::uint64_t max_file_size);
    // A new poll cycle: what was surveyed may be asked again with new answers.
    void new_cycle();

private:
    struct Surveyed {
        std::set<std::string> links;         // the link paths surveyed so far
        std::set<std::string> changed;       // their changed paths
        std::map<std::string, TreeEntry> at; // listing of `to` under them
    };
    [[nodiscard]] Result<> survey_locked(Surveyed& surveyed, const std::string& from,
                                         const std::string& to, std::span<const Link> links);

    std::string m_dir;
    std::optional<Credentials> m_user;
    std::string m_upstream;
    std::chrono::milliseconds m_timeout;
    std::shared_ptr<const Access> m_access;
    Git m_git;
    mutable std::mutex m_open_mutex; // held while opening; guards m_open and the two above
    bool m_open = false;

    std::mutex m_mutex; // guards the members below
    std::map<std::pair<std::string, std::string>, Surveyed> m_surveys;
    std::optional<std::map<std::string, std::string>> m_heads;
};

} // namespace gitopper
