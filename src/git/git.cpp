#include "git/git.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// Sparse-checkout patterns (non-cone mode, gitignore syntax): "/dir/" for a directory,
// "/file" for a file, with pattern characters escaped so a path means only itself.
std::string sparse_pattern(const Link& link)
{
    std::string pattern = "/";
    for (const char c : link.link) {
        if (std::string_view("*?[]\\!# ").find(c) != std::string_view::npos) {
            pattern += '\\';
        }
        pattern += c;
    }
    while (pattern.size() > 1 && pattern.back() == '/') {
        pattern.pop_back();
    }
    return link.file ? pattern : pattern + "/";
}

// Pathspecs that match exactly these paths and everything below them, never as globs.
std::vector<std::string> pathspecs(std::span<const Link> links)
{
    std::vector<std::string> specs;
    for (const auto& link : links) {
        specs.push_back(":(literal)" + link.link);
    }
    return specs;
}

std::vector<std::string> split_nul(const std::string& text)
{
    std::vector<std::string> parts;
    for (auto& part : split(text, '\0')) {
        if (!part.empty()) {
            parts.push_back(std::move(part));
        }
    }
    return parts;
}

std::vector<std::string> git_environment(const std::optional<Credentials>& user)
{
    std::vector<std::string> overrides{"GIT_CONFIG_GLOBAL=/dev/null",
                                       "GIT_CONFIG_SYSTEM=/dev/null",
                                       "GIT_CONFIG_NOSYSTEM=1",
                                       "GIT_TERMINAL_PROMPT=0",
                                       "GIT_ASKPASS=/bin/false",
                                       "SSH_ASKPASS=/bin/false",
                                       "LC_ALL=C",
                                       "GIT_DIR",
                                       "GIT_WORK_TREE",
                                       "GIT_INDEX_FILE",
                                       "GIT_OBJECT_DIRECTORY",
                                       "GIT_CONFIG_PARAMETERS",
                                       "GIT_CONFIG_COUNT",
                                       "GIT_NAMESPACE",
                                       "GIT_CEILING_DIRECTORIES"};
    if (user && !user->home.empty()) {
        overrides.push_back("HOME=" + user->home);
    }
    return environment_with(overrides);
}

} // namespace

GitCounters& git_counters()
{
    static GitCounters counters;
    return counters;
}

bool is_commit_hash(std::string_view text)
{
    return text.size() >= 4 && text.size() <= 40 &&
           std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
}

Git::Git(std::string dir, std::optional<Credentials> user, std::chrono::milliseconds timeout)
    : m_dir(std::move(dir)), m_user(std::move(user)), m_timeout(timeout)
{
}

Result<Output> Git::run_git(std::vector<std::string> args, bool in_tree) const
{
    const std::string subcommand = args.front();
    std::vector<std::string> argv{"git",
                                  "-c",
                                  "safe.directory=" + m_dir,
                                  "-c",
                                  "advice.detachedHead=false",
                                  "-c",
                                  "core.quotePath=false"};
    if (in_tree) {
        argv.insert(argv.end(), {"-C", m_dir});
    }
    argv.insert(argv.end(), std::make_move_iterator(args.begin()),
                std::make_move_iterator(args.end()));
    Command command{.argv = std::move(argv),
                    .timeout = m_timeout,
                    .as_user = m_user,
                    .env = git_environment(m_user),
                    .cwd = in_tree ? std::nullopt : std::optional<std::string>("/")};
    log::debug("running {}", printable(command.argv));
    auto& counters = git_counters();
    ++counters.ops;
    auto output = run(command);
    if (!output) {
        ++counters.errors;
        return std::unexpected(output.error());
    }
    if (!output->ok()) {
        ++counters.errors;
        // A slow but working upstream needs a longer timeout, not a repair: say where it is.
        return fail("git {}: {}{}", subcommand, output->describe(),
                    output->timed_out ? " (see git_timeout in [global])" : "");
    }
    return output;
}

Result<std::string> Git::remote_head(const std::string& url, const std::string& branch) const
{
    auto output = run_git({"ls-remote", "--end-of-options", url, "refs/heads/" + branch}, false);
    if (!output) {
        return std::unexpected(output.error());
    }
    // ls-remote matches patterns against the tail of each ref ("x/refs/heads/main" too).
    const auto ref = "\trefs/heads/" + branch;
    for (const auto& line : split(output->out, '\n')) {
        auto hash = line.substr(0, 40);
        if (line.size() == 40 + ref.size() && line.ends_with(ref) && is_commit_hash(hash)) {
            return hash;
        }
    }
    return fail("branch {} not found in {}", quote(branch), url);
}

Result<> Git::clone(const std::string& url, const std::string& branch,
                    std::span<const Link> links) const
{
    // Clone into the existing (empty) directory: it already has the right owner and mode.
    if (auto r = run_git({"clone", "--quiet", "--filter=blob:none", "--no-checkout", "--branch",
                          branch, "--end-of-options", url, m_dir},
                         false);
        !r) {
        return std::unexpected(r.error());
    }
    if (auto r = set_sparse(links); !r) {
        return r;
    }
    return checkout("origin/" + branch);
}

Result<bool> Git::is_repository() const
{
    auto output = run_git({"rev-parse", "--is-inside-work-tree"});
    return output.has_value() && trim(output->out) == "true";
}

Result<std::string> Git::remote_url() const
{
    auto output = run_git({"config", "--get", "remote.origin.url"});
    if (!output) {
        return std::unexpected(output.error());
    }
    return std::string(trim(output->out));
}

Result<> Git::set_remote_url(const std::string& url) const
{
    auto output = run_git({"remote", "set-url", "--end-of-options", "origin", url});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<> Git::set_sparse(std::span<const Link> links) const
{
    std::vector<std::string> patterns;
    for (const auto& link : links) {
        patterns.push_back(sparse_pattern(link));
    }
    if (links.empty()) {
        patterns.push_back("!/*"); // nothing of the repository in the work tree
    }
    // Unchanged links (every restart): the file git wrote last time says so, no process needed.
    const auto current = read_file(m_dir + "/.git/info/sparse-checkout");
    if (current && *current == join(patterns, "\n") + "\n") {
        return {};
    }
    std::vector<std::string> args{"sparse-checkout", "set", "--no-cone", "--end-of-options"};
    args.insert(args.end(), patterns.begin(), patterns.end());
    auto output = run_git(std::move(args));
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<> Git::fetch(const std::string& branch) const
{
    // "+" accepts a rewritten history; the remote-tracking ref is ours alone.
    auto output =
        run_git({"fetch", "--quiet", "--no-tags", "--filter=blob:none", "--end-of-options",
                 "origin", fmt::format("+refs/heads/{0}:refs/remotes/origin/{0}", branch)});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<bool> Git::has_commit(const std::string& hash) const
{
    const auto output = run_git({"cat-file", "-e", "--end-of-options", hash + "^{commit}"});
    return output.has_value();
}

Result<std::string> Git::resolve(const std::string& commit) const
{
    auto output =
        run_git({"rev-parse", "--verify", "--quiet", "--end-of-options", commit + "^{commit}"});
    if (!output) {
        return fail("commit {} not found", quote(commit));
    }
    return std::string(trim(output->out));
}

Result<std::string> Git::head() const
{
    return resolve("HEAD");
}

Result<std::string> Git::detached_head() const
{
    if (auto text = read_file(m_dir + "/.git/HEAD")) {
        const auto hash = trim(*text);
        if (hash.size() == 40 && is_commit_hash(hash)) {
            return std::string(hash);
        }
    }
    return head();
}

Result<std::vector<std::string>> Git::changed_paths(const std::string& from, const std::string& to,
                                                    std::span<const Link> links) const
{
    if (links.empty()) {
        return std::vector<std::string>{};
    }
    // --no-renames: rename detection would fetch blobs in a partial clone.
    std::vector<std::string> args{
        "diff", "--name-only", "-z", "--no-renames", "--end-of-options", from, to, "--"};
    for (auto& spec : pathspecs(links)) {
        args.push_back(std::move(spec));
    }
    auto output = run_git(std::move(args));
    if (!output) {
        return std::unexpected(output.error());
    }
    return split_nul(output->out);
}

Result<> Git::checkout(const std::string& commit) const
{
    // No --end-of-options: checkout --detach rejects it. `commit` is a validated hash or
    // "origin/<validated branch>", never option-like.
    if (commit.starts_with('-')) {
        return fail("refusing to check out {}", quote(commit));
    }
    auto output = run_git({"checkout", "--quiet", "--force", "--detach", commit});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<std::vector<std::string>> Git::local_changes() const
{
    auto output = run_git({"status", "--porcelain=v1", "-z", "--untracked-files=all",
                           "--ignored=no", "--no-renames"});
    if (!output) {
        return std::unexpected(output.error());
    }
    std::vector<std::string> paths;
    for (const auto& entry : split_nul(output->out)) {
        if (entry.size() > 3) {
            paths.push_back(entry.substr(3)); // "XY path"
        }
    }
    return paths;
}

Result<std::string>
Git::take_local_changes(const std::function<Result<>(const std::string& patch)>& keep) const
{
    if (auto r = run_git({"add", "--all"}); !r) {
        return std::unexpected(r.error());
    }
    auto patch = run_git({"diff", "--cached", "--binary", "--no-renames", "HEAD"});
    if (!patch) {
        return std::unexpected(patch.error());
    }
    if (keep) {
        if (auto kept = keep(patch->out); !kept) {
            (void)run_git({"reset", "--quiet"}); // unstage; the files stay as they are
            return std::unexpected(kept.error());
        }
    }
    if (auto r = run_git({"reset", "--quiet", "--hard", "HEAD"}); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = run_git({"clean", "--quiet", "-d", "--force"}); !r) {
        return std::unexpected(r.error());
    }
    return std::move(patch->out);
}

} // namespace gitopper

namespace gitopper {

std::string normalize_repository_url(std::string_view url)
{
    std::string_view rest = trim(url);
    std::string_view authority;
    std::string_view path;
    const auto scheme = rest.find("://");
    const auto colon = rest.find(':');
    if (scheme != std::string_view::npos) {
        rest.remove_prefix(scheme + 3);
        const auto slash = rest.find('/');
        authority = rest.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
        if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
            authority.remove_prefix(at + 1); // nor are user and password
        }
        authority = authority.substr(0, authority.find(':')); // the port is not the repository
    } else if (colon != std::string_view::npos && colon < rest.find('/')) {
        authority = rest.substr(0, colon); // scp-like user@host:path
        path = rest.substr(colon + 1);
    } else {
        const auto slash = rest.find('/');
        authority = rest.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    }
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1); // the user is not the repository
    }
    std::string host(authority);
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string tail(path);
    while (!tail.empty() && tail.front() == '/') {
        tail.erase(0, 1);
    }
    while (!tail.empty() && tail.back() == '/') {
        tail.pop_back();
    }
    if (tail.ends_with(".git")) {
        tail.resize(tail.size() - 4);
    }
    return tail.empty() ? host : host + "/" + tail;
}

} // namespace gitopper
