#include "git/git.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// Pathspecs that match exactly these paths and everything below them, never as globs.
std::vector<std::string> pathspecs(std::span<const Link> links)
{
    std::vector<std::string> specs;
    for (const auto& link : links) {
        specs.push_back(":(literal)" + link.path);
    }
    return specs;
}

// `git diff FROM TO -- LINKS` as a preview shows it: no colour, no external diff or textconv
// (programs the store's config, which is the user's, could name), no renames.
std::vector<std::string> preview_diff(const std::string& from, const std::string& to,
                                      std::span<const Link> links,
                                      std::initializer_list<const char*> extra)
{
    std::vector<std::string> args{"diff", "--no-color", "--no-ext-diff", "--no-textconv",
                                  "--no-renames"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--end-of-options", from, to, "--"});
    const auto specs = pathspecs(links);
    args.insert(args.end(), specs.begin(), specs.end());
    return args;
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

// The git environment: the host's git config neutralised, and, for a URL with a password,
// one config entry (url.<full>.insteadOf = <public>) that puts the password back for this
// process alone. The environment of a process is readable only by its user and root.
std::vector<std::string> git_environment(const std::optional<Credentials>& user,
                                         const std::string& url)
{
    std::vector<std::string> overrides{
        "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
        "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "LC_ALL=C",
        // refs/replace in the store (the user's) must not make
        // git show other objects than the commits name
        "GIT_NO_REPLACE_OBJECTS=1", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY", "GIT_CONFIG_PARAMETERS", "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES"};
    if (const auto shown = public_url(url); shown != url) {
        overrides.insert(overrides.end(),
                         {"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=url." + url + ".insteadOf",
                          "GIT_CONFIG_VALUE_0=" + shown});
    } else {
        overrides.emplace_back("GIT_CONFIG_COUNT");
    }
    if (user && !user->home.empty()) {
        overrides.push_back("HOME=" + user->home);
    }
    // What git may need of ours (the program path, proxies, CA bundles, the clock); nothing
    // else of root's environment reaches a git that runs as the service user.
    static constexpr std::array<std::string_view, 14> kKept{
        "PATH",          "HOME",        "TZ",       "TMPDIR",   "http_proxy", "https_proxy",
        "HTTP_PROXY",    "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy",  "ALL_PROXY",
        "SSL_CERT_FILE", "SSL_CERT_DIR"};
    return environment_of(kKept, overrides);
}

} // namespace

GitCounters& git_counters()
{
    static GitCounters counters;
    return counters;
}

std::string public_url(std::string_view url)
{
    const auto scheme = url.find("://");
    if (scheme == std::string_view::npos) {
        return std::string(url); // scp-like user@host:path holds no password
    }
    const auto start = scheme + 3;
    const auto authority = url.substr(start, url.find('/', start) - start);
    const auto at = authority.rfind('@');
    const auto colon = authority.find(':');
    if (at == std::string_view::npos) {
        return std::string(url);
    }
    if (colon == std::string_view::npos || colon > at) {
        // "https://TOKEN@github.com/…" is how forges hand out tokens: a user name alone is a
        // credential too, except over ssh, where it is the login.
        const auto name = url.substr(0, scheme);
        if (name == "ssh" || name == "git+ssh" || name == "ssh+git") {
            return std::string(url);
        }
        return fmt::format("{}{}", url.substr(0, start), url.substr(start + at + 1));
    }
    return fmt::format("{}{}{}", url.substr(0, start + colon), authority.substr(at),
                       url.substr(start + authority.size()));
}

Git::Git(std::string dir, std::optional<Credentials> user, std::chrono::milliseconds timeout,
         std::string upstream, std::string store)
    : m_dir(std::move(dir)), m_user(std::move(user)), m_timeout(timeout),
      m_upstream(std::move(upstream)), m_store(std::move(store))
{
}

// No safe.directory: git runs as the owner of the tree, and a tree owned by someone else is
// one gitopper does not use (it clones anew instead).
Result<Output> Git::run_git(std::vector<std::string> args, bool in_tree,
                            const std::string* url) const
{
    return run_git(std::move(args), RunOptions{.in_tree = in_tree, .url = url});
}

Result<Output> Git::run_git(std::vector<std::string> args, const RunOptions& options) const
{
    const bool in_tree = options.in_tree;
    const auto* url = options.url;
    const std::string subcommand = args.front();
    std::vector<std::string> argv{"git", "-c", "advice.detachedHead=false", "-c",
                                  "core.quotePath=false"};
    if (in_tree) {
        argv.insert(argv.end(), {"-C", m_dir});
    }
    if (in_tree && m_plain) {
        argv.insert(argv.end(), {"--git-dir=" + m_plain->git_dir, "--work-tree=" + m_dir});
    }
    argv.insert(argv.end(), std::make_move_iterator(args.begin()),
                std::make_move_iterator(args.end()));
    const auto& remote = url != nullptr ? *url : m_upstream;
    auto env = git_environment(m_user, remote);
    Transport transport;
    if (m_access) {
        auto prepared = prepare_transport(subcommand, remote);
        if (!prepared) {
            return fail("git {}: {}", subcommand, prepared.error().message);
        }
        transport = std::move(*prepared);
        for (const auto& entry : transport.env) {
            const auto name = entry.substr(0, entry.find('=') + 1);
            std::erase_if(env, [&](const std::string& e) { return e.starts_with(name); });
            env.push_back(entry);
        }
    }
    if (in_tree && m_plain) {
        std::erase_if(
            env, [](const std::string& entry) { return entry.starts_with("GIT_INDEX_FILE="); });
        env.push_back(fmt::format("GIT_INDEX_FILE={}/{}", m_plain->git_dir, m_plain->index));
    }
    Command command{.argv = std::move(argv),
                    .timeout = m_timeout,
                    .as_user = m_user,
                    .env = std::move(env),
                    .cwd = in_tree ? std::nullopt : std::optional<std::string>("/"),
                    .max_output = options.max_output,
                    .stdin_fd = options.stdin_fd,
                    .stdout_fd = options.stdout_fd,
                    .max_file_size = options.max_file_size,
                    .passed_fds = transport.numbers()};
    log::debug("running {}", printable(command.argv));
    auto& counters = git_counters();
    ++counters.ops;
    auto output = run(command);
    if (!output) {
        ++counters.errors;
        return std::unexpected(output.error());
    }
    const bool answered = output->exit_code == options.answer_exit && !output->timed_out &&
                          !output->cancelled && output->signal_number == 0;
    if (!output->ok() && !answered) {
        ++counters.errors;
        if (auto problem = m_access ? host_key_problem(remote, *m_access, output->err, m_timeout)
                                    : std::nullopt) {
            return fail("git {}: {}", subcommand, *problem);
        }
        // A slow but working upstream needs a longer timeout, not a repair: say where it is.
        return fail("git {}: {}{}", subcommand, output->describe(),
                    output->timed_out ? " (see git_timeout in [global])" : "");
    }
    if (output->truncated && !options.cut_ok) {
        ++counters.errors;
        return fail("git {}: more than {} bytes of output", subcommand, options.max_output);
    }
    return output;
}

Result<std::map<std::string, std::string>>
Git::remote_heads(const std::string& url, const std::vector<std::string>& branches) const
{
    std::vector<std::string> args{"ls-remote", "--end-of-options", public_url(url)};
    for (const auto& branch : branches) {
        args.push_back("refs/heads/" + branch);
    }
    auto output = run_git(std::move(args), false, &url);
    if (!output) {
        return std::unexpected(output.error());
    }
    // ls-remote matches patterns against the tail of each ref ("x/refs/heads/main" too).
    std::map<std::string, std::string> heads;
    for (const auto& line : split(output->out, '\n')) {
        const auto hash = line.substr(0, 40);
        for (const auto& branch : branches) {
            if (line.size() > 41 && line.substr(40) == "\trefs/heads/" + branch &&
                is_commit_hash(hash)) {
                heads[branch] = hash;
            }
        }
    }
    return heads;
}

Result<> Git::clone_store(const std::string& url, const std::string& branch) const
{
    // No template: no sample hooks (64 kB a store) and no info/exclude. Nothing reads reflogs.
    // Git's gc packs, but never prunes: a deployed commit that left the branch (a forced
    // rollback, a force push) is in no ref, and its tree's drift is judged against it; what
    // is unreachable goes into a cruft pack, not loose files that would set gc off again. It
    // runs in the fetch's own process, not one detached from it that no timeout could end.
    std::vector<std::string> args{"clone",
                                  "--quiet",
                                  "--template=",
                                  "--filter=blob:none",
                                  "--no-checkout",
                                  "--no-tags",
                                  "--single-branch",
                                  "--branch",
                                  branch,
                                  "--config",
                                  "core.logAllRefUpdates=false",
                                  "--config",
                                  "gc.pruneExpire=never",
                                  "--config",
                                  "gc.cruftPacks=true",
                                  "--config",
                                  "gc.autoDetach=false",
                                  "--end-of-options",
                                  public_url(url),
                                  m_dir};
    if (auto r = run_git(std::move(args), false, &url); !r) {
        return std::unexpected(r.error());
    }
    return protect_config();
}

Result<> Git::prune_worktrees() const
{
    auto output = run_git({"worktree", "prune"});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<> Git::repair_worktree() const
{
    auto output = run_git({"worktree", "repair"});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<std::map<std::string, std::string>> Git::tracking_heads() const
{
    auto output = run_git(
        {"for-each-ref", "--format=%(objectname) %(refname:lstrip=3)", "refs/remotes/origin/"});
    if (!output) {
        return std::unexpected(output.error());
    }
    std::map<std::string, std::string> heads;
    for (const auto& line : split(output->out, '\n')) {
        if (line.size() > 41 && is_commit_hash(line.substr(0, 40))) {
            heads[line.substr(41)] = line.substr(0, 40);
        }
    }
    return heads;
}

Result<std::string> Git::worktree_git_dir() const
{
    auto dir = open_no_symlinks(m_dir, O_PATH | O_DIRECTORY);
    if (!dir) {
        return std::unexpected(dir.error());
    }
    auto text = read_beneath(dir->get(), ".git", 4096);
    if (!text) {
        return std::unexpected(text.error());
    }
    const auto line = trim(*text);
    const auto named = line.substr(std::min<std::size_t>(line.size(), 8));
    const auto prefix = m_store + "/.git/worktrees/";
    const auto id = named.substr(std::min(named.size(), prefix.size()));
    // The file is the user's: root reads only what lies where the store keeps work trees.
    if (!line.starts_with("gitdir: ") || m_store.empty() || !named.starts_with(prefix) ||
        id.empty() || id.find_first_of("/\n") != std::string_view::npos || id == "." ||
        id == "..") {
        return fail("{}/.git does not name a work tree of {}", m_dir,
                    m_store.empty() ? "an object store" : m_store);
    }
    return std::string(named);
}

Result<> Git::protect_config() const
{
    auto dir = open_no_symlinks(m_dir, O_PATH | O_DIRECTORY);
    auto config = dir ? open_beneath(dir->get(), ".git/config", O_RDONLY | O_NONBLOCK)
                      : std::unexpected(dir.error());
    struct stat st {};
    if (!config || ::fstat(config->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail("{}/.git/config: {}", m_dir,
                    config ? "not a regular file" : config.error().message);
    }
    const uid_t owner = m_user ? m_user->uid : ::geteuid();
    if (st.st_uid != owner || st.st_nlink != 1) {
        // A hard link the user made to someone else's file: never chmod that one.
        return fail("{}/.git/config is not the checkout's own file (uid {}, {} links)", m_dir,
                    st.st_uid, st.st_nlink);
    }
    if ((st.st_mode & 077) != 0 && ::fchmod(config->get(), 0600) != 0) {
        return fail("chmod {}/.git/config: {}", m_dir, errno_message(errno));
    }
    return {};
}

// A file of the checkout's repository, read as root: opened without following symlinks and
// read with a bound, since the user can put anything there (a symlink, a FIFO, /dev/zero).
Result<std::string> Git::read_git_file(const std::string& name) const
{
    constexpr std::size_t kLimit = 1 << 20;
    auto dir = open_no_symlinks(m_dir, O_PATH | O_DIRECTORY);
    if (!dir) {
        return std::unexpected(dir.error());
    }
    if (auto own = read_beneath(dir->get(), ".git/" + name, kLimit)) {
        return own;
    }
    // A work tree of an object store: its files are in the store's directory for it.
    auto git_dir = worktree_git_dir();
    auto store = git_dir ? open_no_symlinks(*git_dir, O_PATH | O_DIRECTORY)
                         : std::unexpected(git_dir.error());
    if (!store) {
        return std::unexpected(store.error());
    }
    return read_beneath(store->get(), name, kLimit);
}

// "Not a repository" is an answer; a git that could not tell (a timeout, a broken .git, a
// directory it refuses to trust) is an error, which is no reason to move a checkout aside.
Result<bool> Git::is_repository() const
{
    auto output = run_git({"rev-parse", "--is-inside-work-tree"}, RunOptions{.answer_exit = 128});
    if (!output) {
        return std::unexpected(output.error());
    }
    if (output->exit_code == 128) {
        if (output->err.find("not a git repository") != std::string::npos) {
            return false;
        }
        return fail("git rev-parse: {}", output->describe());
    }
    return trim(output->out) == "true";
}

Result<> Git::fetch(const std::string& branch) const
{
    // "+" accepts a rewritten history; the remote-tracking ref is ours alone.
    auto output =
        run_git({"fetch", "--quiet", "--no-tags", "--filter=blob:none", "--end-of-options",
                 "origin", fmt::format("+refs/heads/{0}:refs/remotes/origin/{0}", branch)});
    return output ? Result<>{} : std::unexpected(output.error());
}

Result<> Git::fetch(const std::vector<std::string>& branches) const
{
    // The new commits' small blobs come along (configuration is small): the diff that follows
    // then needs no second round trip for them. Larger ones stay on demand.
    std::vector<std::string> args{
        "fetch", "--quiet", "--no-tags", "--filter=blob:limit=1m", "--end-of-options", "origin"};
    for (const auto& branch : branches) {
        args.push_back(fmt::format("+refs/heads/{0}:refs/remotes/origin/{0}", branch));
    }
    auto output = run_git(std::move(args));
    return output ? Result<>{} : std::unexpected(output.error());
}

// Every setting that decides the verdict is given here: the store's own config is the user's,
// who must not be able to name another program or file. Git picks the verifier by the kind
// of signature, so the OpenPGP and X.509 ones are made to fail: only SSH signatures count.
Result<char> Git::signature_status(const std::string& commit,
                                   const std::string& allowed_signers) const
{
    auto output = run_git({"-c", "gpg.format=ssh", "-c", "gpg.ssh.program=ssh-keygen", "-c",
                           "gpg.program=/bin/false", "-c", "gpg.openpgp.program=/bin/false", "-c",
                           "gpg.x509.program=/bin/false", "-c",
                           "gpg.ssh.allowedSignersFile=" + allowed_signers, "log", "-1",
                           "--format=%G?", "--end-of-options", commit, "--"});
    if (!output) {
        return std::unexpected(output.error());
    }
    const auto verdict = trim(output->out);
    return verdict.size() == 1 ? verdict[0] : 'E';
}

Result<bool> Git::is_ancestor(const std::string& commit, const std::string& of) const
{
    // Exit 0: an ancestor; 1: not one; anything else is an error.
    auto output = run_git({"merge-base", "--is-ancestor", "--end-of-options", commit, of},
                          RunOptions{.answer_exit = 1});
    return output ? Result<bool>(output->exit_code == 0) : std::unexpected(output.error());
}

Result<std::optional<std::string>> Git::find_commit(const std::string& commit) const
{
    // --verify --quiet: exit 1 and no words when there is no such commit.
    auto output =
        run_git({"rev-parse", "--verify", "--quiet", "--end-of-options", commit + "^{commit}"},
                RunOptions{.answer_exit = 1});
    if (!output) {
        return std::unexpected(output.error());
    }
    if (output->exit_code != 0) {
        return std::nullopt;
    }
    return std::string(trim(output->out));
}

Result<std::vector<Git::LogEntry>>
Git::commits_between(const std::string& from, const std::string& to, std::size_t limit) const
{
    std::vector<std::string> args{"log",
                                  "--no-color",
                                  "-z",
                                  "--format=%H%x00%an%x00%s",
                                  fmt::format("--max-count={}", limit),
                                  "--end-of-options"};
    args.push_back(from.empty() ? to : from + ".." + to);
    auto output = run_git(std::move(args));
    if (!output) {
        return std::unexpected(output.error());
    }
    // -z ends each entry with a NUL too: hash, author, subject, then the next hash.
    const auto fields = split(output->out, '\0');
    std::vector<LogEntry> entries;
    for (std::size_t i = 0; i + 2 < fields.size(); i += 3) {
        entries.push_back({std::string(trim(fields[i])), fields[i + 1], fields[i + 2]});
    }
    return entries;
}

Result<std::vector<std::string>> Git::changed_files(const std::string& from, const std::string& to,
                                                    std::span<const Link> links) const
{
    auto output = run_git(preview_diff(from, to, links, {"--name-status", "-z"}));
    if (!output) {
        return std::unexpected(output.error());
    }
    // Status, NUL, path, NUL, …
    const auto fields = split(output->out, '\0');
    std::vector<std::string> files;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        files.push_back(fields[i] + "\t" + fields[i + 1]);
    }
    return files;
}

Result<Git::Diff> Git::diff_text(const std::string& from, const std::string& to,
                                 std::span<const Link> links, std::size_t max_bytes) const
{
    auto output = run_git(preview_diff(from, to, links, {}),
                          RunOptions{.max_output = max_bytes, .cut_ok = true});
    if (!output) {
        return std::unexpected(output.error());
    }
    return Diff{std::move(output->out), output->truncated};
}

Result<std::optional<std::string>> Git::checked_out() const
{
    if (auto text = read_git_file("HEAD")) {
        const auto hash = trim(*text);
        if (hash.size() == 40 && is_commit_hash(hash)) {
            return std::string(hash);
        }
    }
    return find_commit("HEAD");
}

Result<std::string> Git::detached_head() const
{
    auto found = checked_out();
    if (found && !*found) {
        return fail("no commit is checked out in {}", m_dir);
    }
    return found ? Result<std::string>(**found) : std::unexpected(found.error());
}

namespace {

constexpr auto kEmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

// `git ls-tree -z [-l]` records: "<mode> <type> <object>[ <size>]\t<path>".
TreeListing parse_tree(const std::string& text)
{
    TreeListing entries;
    for (const auto& record : split_nul(text)) {
        const auto tab = record.find('\t');
        if (tab == std::string::npos) {
            continue;
        }
        std::vector<std::string> meta;
        for (auto& field : split(record.substr(0, tab), ' ')) {
            if (!field.empty()) {
                meta.push_back(std::move(field));
            }
        }
        if (meta.size() < 3) {
            continue;
        }
        TreeEntry entry{meta[0], meta[1], 0};
        if (meta.size() > 3 && meta[3] != "-") {
            entry.size = std::strtoull(meta[3].c_str(), nullptr, 10);
        }
        entries.emplace(record.substr(tab + 1), std::move(entry));
    }
    return entries;
}

std::string symlink_refusal(const Link& link, const std::string& at, const std::string& commit)
{
    const auto link_path = join(path_components(link.path), "/");
    return fmt::format("link {} is a symlink in {}{}", quote(link.path), commit.substr(0, 8),
                       at == link_path ? "" : fmt::format(" (at {})", quote(at)));
}

// One link against the listed tree: every directory on its way must be a tree, the link
// itself a tree or a regular file as configured; a symlink anywhere is refused.
// `entry_of` lists one path alone (ls-tree without -r), for what -t does not show.
[[nodiscard]] Result<std::optional<std::string>>
vet_link(const Link& link, const std::string& commit, const TreeListing& entries,
         const std::function<Result<TreeListing>(const std::string&)>& entry_of)
{
    const auto parts = path_components(link.path);
    const auto short_commit = commit.substr(0, 8);
    std::string at;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        at += (i == 0 ? "" : "/") + parts[i];
        auto found = entries.find(at);
        if (found == entries.end()) {
            // ls-tree -t shows only trees on the way: ask what `at` is (a symlink or nothing).
            auto what = entry_of(at);
            if (!what) {
                return std::unexpected(what.error());
            }
            if (auto it = what->find(at); it != what->end() && it->second.mode == "120000") {
                return symlink_refusal(link, at, commit);
            }
            return fmt::format("link {} does not exist in {}", quote(link.path), short_commit);
        }
        const auto& entry = found->second;
        if (entry.mode == "120000") {
            return symlink_refusal(link, at, commit);
        }
        const bool last = i + 1 == parts.size();
        if (entry.type == "commit") {
            return fmt::format("link {} is a submodule in {}", quote(link.path), short_commit);
        }
        if (!last && entry.type != "tree") {
            return fmt::format("link {} does not exist in {} ({} is a file)", quote(link.path),
                               short_commit, quote(at));
        }
        if (last && link.file && entry.type != "blob") {
            return fmt::format("link {} is not a file in {} (file = true)", quote(link.path),
                               short_commit);
        }
        if (last && !link.file && entry.type != "tree") {
            return fmt::format("link {} is not a directory in {} (set file = true for a file)",
                               quote(link.path), short_commit);
        }
    }
    return std::nullopt;
}

} // namespace

Result<std::vector<std::string>> Git::changed_fetching(const std::string& from,
                                                       const std::string& to,
                                                       std::span<const Link> links) const
{
    if (links.empty()) {
        return std::vector<std::string>{};
    }
    std::vector<std::string> args{"diff",
                                  "--numstat",
                                  "-z",
                                  "--no-renames",
                                  "--end-of-options",
                                  from.empty() ? kEmptyTree : from,
                                  to,
                                  "--"};
    for (auto& spec : pathspecs(links)) {
        args.push_back(std::move(spec));
    }
    auto output = run_git(std::move(args), RunOptions{.max_output = std::size_t(64) << 20});
    if (!output) {
        return std::unexpected(output.error());
    }
    // "<added>\t<deleted>\t<path>" per file, NUL-terminated ("-\t-\t" for binary files).
    std::vector<std::string> paths;
    for (const auto& record : split_nul(output->out)) {
        const auto first = record.find('\t');
        const auto second = first == std::string::npos ? first : record.find('\t', first + 1);
        if (second != std::string::npos) {
            paths.push_back(record.substr(second + 1));
        }
    }
    return paths;
}

Result<TreeListing> Git::list_tree(const std::string& commit, std::span<const Link> links) const
{
    if (links.empty()) {
        return TreeListing{};
    }
    std::vector<std::string> list{"ls-tree",          "-r",   "-t", "-l", "-z",
                                  "--end-of-options", commit, "--"};
    for (auto& spec : pathspecs(links)) {
        list.push_back(std::move(spec));
    }
    auto listed = run_git(std::move(list), RunOptions{.max_output = std::size_t(256) << 20});
    if (!listed) {
        return std::unexpected(listed.error());
    }
    return parse_tree(listed->out);
}

Result<std::optional<std::string>> Git::judge_tree(const TreeListing& entries,
                                                   const std::string& commit,
                                                   std::span<const Link> links,
                                                   std::uint64_t max_file_size) const
{
    const auto entry_of = [&](const std::string& path) -> Result<TreeListing> {
        auto alone =
            run_git({"ls-tree", "-z", "--end-of-options", commit, "--", ":(literal)" + path});
        if (!alone) {
            return std::unexpected(alone.error());
        }
        return parse_tree(alone->out);
    };
    for (const auto& link : links) {
        auto refusal = vet_link(link, commit, entries, entry_of);
        if (!refusal) {
            return std::unexpected(refusal.error());
        }
        if (*refusal) {
            return refusal;
        }
    }
    // The listing may hold other services' paths too: only ours count.
    for (const auto& link : links) {
        const auto top = join(path_components(link.path), "/");
        for (auto it = entries.lower_bound(top); it != entries.end(); ++it) {
            const auto& [path, entry] = *it;
            if (path != top && !path.starts_with(top + "/")) {
                if (path > top + "/") {
                    break;
                }
                continue;
            }
            if (entry.type == "blob" && entry.size > max_file_size) {
                return fmt::format("file {} is {} bytes in {}, over max_file_size ({} bytes)",
                                   quote(path), entry.size, commit.substr(0, 8), max_file_size);
            }
        }
    }
    return std::nullopt;
}

void Git::remove_leftovers(const std::string& service) const
{
    // find(1) as the user, argv only: -P (the default) follows no symlink, not even .git. The
    // index of a plain tree's step is that step's to remove: another service's may be running.
    auto found =
        run(Command{.argv = {"find", m_dir + "/.git", "-xdev", "(", "-name", "*.lock", "!", "-name",
                             "gitopper-*.index.lock", "-o", "-path", "*/objects/*", "-name",
                             "tmp_*", ")", "-type", "f", "-print", "-delete"},
                    .timeout = m_timeout,
                    .as_user = m_user,
                    .env = git_environment(m_user, ""),
                    .cwd = "/"});
    if (!found) {
        log::warn("[{}] cannot look for stale git files: {}", service, found.error().message);
        return;
    }
    for (const auto& file : split(found->out, '\n')) {
        if (!file.empty()) {
            log::warn("[{}] removing stale {}", service, escape_controls(file));
        }
    }
}

// A user can leave millions of files: their names are counted, not kept, and the output has
// a bound (64 MiB: over a million paths of 60 bytes) so root's memory has one too. Past it
// this fails, and the caller saves and reverts all the same.
Result<Git::Changes> Git::local_changes(std::size_t listed) const
{
    if (m_plain) {
        return plain_changes(listed);
    }
    auto output = run_git(
        {"status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=no", "--no-renames"},
        RunOptions{.max_output = std::size_t(64) << 20});
    if (!output) {
        return std::unexpected(output.error());
    }
    Changes changes;
    for (const auto& entry : split_nul(output->out)) {
        if (entry.size() > 3) {
            ++changes.count;
            if (changes.listed.size() < listed) {
                changes.listed.push_back(entry.substr(3)); // "XY path"
            }
        }
    }
    return changes;
}

// `--sparse`: a file the user leaves outside the sparse paths (where git refuses to add
// anything otherwise) is saved and then removed like any other: the work tree must be
// exactly git's, and one stray file must not make the whole revert fail.
Result<> Git::take_local_changes(int patch_fd, const std::function<Result<>()>& keep,
                                 std::uint64_t max_patch_bytes) const
{
    if (m_plain) {
        return take_plain_changes(patch_fd, keep, max_patch_bytes);
    }
    const auto staged = run_git({"add", "--sparse", "--all"});
    auto saved =
        staged ? write_staged_patch(patch_fd, max_patch_bytes) : std::unexpected(staged.error());
    if (saved) {
        saved = keep();
    }
    if (!saved) {
        (void)run_git({"reset", "--quiet"}); // unstage; the files stay as they are
        return saved;
    }
    if (auto r = run_git({"reset", "--quiet", "--hard", "HEAD"}); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = run_git({"clean", "--quiet", "-d", "--force"}); !r) {
        return std::unexpected(r.error());
    }
    return {};
}

namespace {

// Git says only "unknown write failure on standard output" when the disk is full: the
// filesystem says why.
std::string full_filesystem_note(int fd)
{
    struct statvfs info {};
    if (::fstatvfs(fd, &info) == 0 && info.f_blocks > 0 && info.f_bavail == 0) {
        return fmt::format(" ({})", errno_message(ENOSPC));
    }
    return "";
}

// Past max_bytes the kernel stopped git (SIGXFSZ): say that, or why else it failed.
std::string too_large_note(int fd, std::uint64_t max_bytes)
{
    const off_t size = ::lseek(fd, 0, SEEK_END);
    if (max_bytes != 0 && size >= 0 && static_cast<std::uint64_t>(size) >= max_bytes) {
        return fmt::format(" (the patch is larger than {} MiB, the most kept for drift)",
                           max_bytes >> 20);
    }
    return full_filesystem_note(fd);
}

} // namespace

// Git writes to the file itself: a write error there (a full disk) makes it exit non-zero,
// which git does for a regular file as stdout, where it ignores one for a pipe. Git's own
// diff only: an external diff or textconv from the checkout's config would not apply back.
Result<> Git::write_staged_patch(int patch_fd, std::uint64_t max_bytes,
                                 const std::string& base) const
{
    auto written = run_git(
        {"diff", "--cached", "--binary", "--no-renames", "--no-ext-diff", "--no-textconv", base},
        RunOptions{.stdout_fd = patch_fd, .max_file_size = max_bytes});
    if (!written) {
        return fail("{}{}", written.error().message, too_large_note(patch_fd, max_bytes));
    }
    return check_patch(patch_fd);
}

// The patch read back from its start to its end undoes exactly what is staged: it is whole.
// Git reads it through the descriptor: the file is root's, in root's directory.
Result<> Git::check_patch(int patch_fd) const
{
    const off_t size = ::lseek(patch_fd, 0, SEEK_END);
    if (size < 0 || ::lseek(patch_fd, 0, SEEK_SET) != 0) {
        return fail("reading the patch back: {}", errno_message(errno));
    }
    if (size == 0) {
        return {}; // nothing staged: no patch to check
    }
    auto checked = run_git({"apply", "--check", "--cached", "--reverse", "--whitespace=nowarn"},
                           RunOptions{.stdin_fd = patch_fd});
    if (!checked) {
        return fail("the patch git wrote does not read back whole: {}", checked.error().message);
    }
    return {};
}

// ---- plain trees ---------------------------------------------------------------------------

// The transport for one git process; before one that connects, the host key learnt on
// first use.
Result<Transport> Git::prepare_transport(const std::string& subcommand,
                                         const std::string& remote) const
{
    static constexpr std::array<std::string_view, 3> kConnecting{"ls-remote", "fetch", "clone"};
    if (std::find(kConnecting.begin(), kConnecting.end(), subcommand) != kConnecting.end()) {
        if (auto learnt = learn_host_key(remote, *m_access, m_timeout); !learnt) {
            return std::unexpected(learnt.error());
        }
    }
    return transport_for(remote, *m_access, m_user);
}

Git Git::plain_tree(std::string dir, std::optional<Credentials> user,
                    std::chrono::milliseconds timeout, std::string upstream, Plain plain)
{
    Git git(std::move(dir), std::move(user), timeout, std::move(upstream));
    git.m_plain = std::move(plain);
    return git;
}

// Root removes the file by its name beneath the store's .git, opened following no symlink:
// unlinking never follows one either.
// `args`, then "--" and the plain tree's links as literal pathspecs.
Result<Output> Git::run_on_links(std::vector<std::string> args) const
{
    args.emplace_back("--");
    for (auto& spec : pathspecs(m_plain->links)) {
        args.push_back(std::move(spec));
    }
    return run_git(std::move(args));
}

Result<> Git::drop_index() const
{
    auto dir = open_no_symlinks(m_plain->git_dir, O_PATH | O_DIRECTORY);
    if (!dir) {
        return std::unexpected(dir.error());
    }
    for (const auto& name : {m_plain->index, m_plain->index + ".lock"}) {
        if (::unlinkat(dir->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
            return fail("remove {}/{}: {}", m_plain->git_dir, name, errno_message(errno));
        }
    }
    m_plain->index_written = false;
    return {};
}

Result<> Git::index_at(const std::string& commit) const
{
    if (auto r = drop_index(); !r) {
        return r;
    }
    if (m_plain->links.empty()) {
        return {}; // no paths: an empty index
    }
    // Git 2.39's reset takes no --end-of-options; a hash cannot be taken for an option.
    if (commit.size() != 40 || !is_commit_hash(commit)) {
        return fail("not a commit hash: {}", quote(commit));
    }
    auto output = run_on_links({"reset", "--quiet", commit});
    return output ? Result<>{} : std::unexpected(output.error());
}

// No index needed: restore takes the files from the commit alone, and only those of the links.
// With `keep_index` it writes the index of what it wrote too (stat data and all), for
// written_changes() to compare against in one process.
Result<> Git::write_plain(bool keep_index) const
{
    if (auto r = drop_index(); !r || m_plain->links.empty()) {
        return r;
    }
    std::vector<std::string> args{"restore", "--quiet", "--worktree",
                                  "--source=" + m_plain->commit};
    if (keep_index) {
        args.emplace_back("--staged");
    }
    auto output = run_on_links(std::move(args));
    if (!output) {
        return std::unexpected(output.error());
    }
    m_plain->index_written = keep_index;
    return {};
}

// With the index at the old commit, a restore that does not overlay removes what `to` lacks.
Result<> Git::move_plain(const std::string& to)
{
    if (auto r = index_at(m_plain->commit); !r) {
        return r;
    }
    if (m_plain->links.empty()) {
        m_plain->commit = to;
        return {};
    }
    auto output =
        run_on_links({"restore", "--quiet", "--worktree", "--no-overlay", "--source=" + to});
    (void)drop_index();
    if (!output) {
        return std::unexpected(output.error());
    }
    m_plain->commit = to;
    return {};
}

// ls-files compares the content of entries that have no stat data, so an index made for the
// one question answers it: modified (C) and deleted (R; also listed as C) files under the
// links, and others (?) anywhere in the tree. Ignored files count as in a work tree: not.
// Git's own files come first as `git status` has them: a changed file is not hidden behind
// thousands of added ones.
Result<Git::Changes> Git::plain_changes(std::size_t listed) const
{
    if (auto r = index_at(m_plain->commit); !r) {
        return std::unexpected(r.error());
    }
    return list_changes(listed);
}

Result<Git::Changes> Git::written_changes(std::size_t listed) const
{
    return m_plain->index_written ? list_changes(listed) : plain_changes(listed);
}

Result<Git::Changes> Git::list_changes(std::size_t listed) const
{
    auto output = run_git(
        {"ls-files", "-z", "-t", "--modified", "--deleted", "--others", "--exclude-standard"},
        RunOptions{.max_output = std::size_t(64) << 20});
    (void)drop_index();
    if (!output) {
        return std::unexpected(output.error());
    }
    std::set<std::string_view> seen;
    std::vector<std::string_view> tracked;
    std::vector<std::string_view> others;
    for (std::string_view rest = output->out; !rest.empty();) {
        const auto end = std::min(rest.find('\0'), rest.size());
        const auto entry = rest.substr(0, end);
        rest.remove_prefix(std::min(end + 1, rest.size()));
        if (entry.size() < 3 || entry[1] != ' ') {
            continue;
        }
        const auto path = entry.substr(2);
        if (seen.insert(path).second) {
            (entry[0] == '?' ? others : tracked).push_back(path);
        }
    }
    Changes changes;
    changes.count = seen.size();
    for (const auto* group : {&tracked, &others}) {
        for (const auto path : *group) {
            if (changes.listed.size() < listed) {
                changes.listed.emplace_back(path);
            }
        }
    }
    return changes;
}

// The commit's files under the links become a tree object (the patch's base); everything in
// the work tree is staged over them; the patch is the difference. Reading the base back into
// the index with -u then writes back what changed and removes whatever was added.
Result<> Git::take_plain_changes(int patch_fd, const std::function<Result<>()>& keep,
                                 std::uint64_t max_patch_bytes) const
{
    auto saved = [&]() -> Result<std::string> {
        if (auto r = index_at(m_plain->commit); !r) {
            return std::unexpected(r.error());
        }
        auto base = run_git({"write-tree"});
        if (!base) {
            return std::unexpected(base.error());
        }
        const auto tree = std::string(trim(base->out));
        if (tree.size() != 40 || !is_commit_hash(tree)) {
            return fail("git write-tree: {}", quote(tree));
        }
        if (auto r = run_git({"add", "--all"}); !r) {
            return std::unexpected(r.error());
        }
        if (auto r = write_staged_patch(patch_fd, max_patch_bytes, tree); !r) {
            return std::unexpected(r.error());
        }
        if (auto r = keep(); !r) {
            return std::unexpected(r.error());
        }
        return tree;
    }();
    if (!saved) {
        (void)drop_index(); // the files stay as they are
        return std::unexpected(saved.error());
    }
    auto reverted = run_git({"read-tree", "--reset", "-u", "--end-of-options", *saved});
    (void)drop_index();
    return reverted ? Result<>{} : std::unexpected(reverted.error());
}

} // namespace gitopper
