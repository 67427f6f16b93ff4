#include "git/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/user.hpp"

namespace gitopper {
namespace {

// The first 8 bytes of HMAC-SHA256(key, text), in hex.
std::string keyed_hash(std::string_view key, std::string_view text)
{
    std::array<unsigned char, 32> mac{};
    std::size_t size = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                  reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac.data(),
                  mac.size(), &size) == nullptr) {
        return "0000000000000000";
    }
    std::string hex;
    for (std::size_t i = 0; i < 8; ++i) {
        hex += fmt::format("{:02x}", mac[i]);
    }
    return hex;
}

std::string link_path(const Link& link)
{
    return join(path_components(link.path), "/");
}

bool under(const std::string& path, const std::string& top)
{
    return path == top ||
           (path.size() > top.size() && path.starts_with(top) && path[top.size()] == '/');
}

} // namespace

Store::Store(std::string dir, std::string upstream, std::chrono::milliseconds timeout,
             std::shared_ptr<const Access> access)
    : m_dir(std::move(dir)), m_upstream(std::move(upstream)), m_timeout(timeout),
      m_access(std::move(access)), m_git(m_dir, std::nullopt, m_timeout, m_upstream)
{
    m_git.set_access(m_access);
}

Result<> Store::open(const std::optional<Credentials>& user, const std::function<Result<>()>& open)
{
    std::lock_guard lock(m_open_mutex);
    if (m_open) {
        return {};
    }
    m_user = user;
    m_git = Git(m_dir, m_user, m_timeout, m_upstream);
    m_git.set_access(m_access);
    auto opened = open();
    m_open = opened.has_value();
    return opened;
}

bool Store::is_open() const
{
    std::lock_guard lock(m_open_mutex);
    return m_open;
}

void Store::prune_worktrees() const
{
    if (auto r = m_git.prune_worktrees(); !r) {
        log::warn("{}: {}", m_dir, r.error().message);
    }
}

std::string Store::name_for(const std::string& upstream, const std::string& user,
                            std::string_view key)
{
    std::string slug;
    for (const char c : normalize_repository_url(upstream)) {
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        slug += plain ? c : '-';
    }
    slug = slug.substr(0, 60);
    while (!slug.empty() && slug.front() == '.') {
        slug.erase(0, 1);
    }
    // The full URL (credentials too) and the user: one store per (upstream, user, credentials).
    return fmt::format("{}-{}", slug.empty() ? "repo" : slug,
                       keyed_hash(key, upstream + '\0' + user));
}

Result<> Store::clone_into(const std::string& dir, const std::string& branch) const
{
    Git git(dir, m_user, m_timeout, m_upstream);
    git.set_access(m_access);
    return git.clone_store(m_upstream, branch);
}

Result<std::map<std::string, std::string>>
Store::remote_heads(const std::vector<std::string>& branches) const
{
    return m_git.remote_heads(m_upstream, branches);
}

Result<> Store::fetch(const std::vector<std::string>& branches)
{
    auto fetched = m_git.fetch(branches);
    std::lock_guard lock(m_mutex);
    m_heads.reset();
    m_surveys.clear();
    return fetched;
}

Result<std::map<std::string, std::string>>
Store::fetch_heads(const std::vector<std::string>& branches)
{
    if (auto r = fetch(branches); !r) {
        return std::unexpected(r.error());
    }
    std::map<std::string, std::string> heads;
    // The store is the user's: read by root without following symlinks, with a bound.
    auto refs = open_no_symlinks(m_dir + "/.git/refs/remotes/origin", O_PATH | O_DIRECTORY);
    for (const auto& branch : branches) {
        auto text = refs ? read_beneath(refs->get(), branch, 128) : std::unexpected(refs.error());
        const auto hash = text ? std::string(trim(*text)) : std::string();
        if (hash.size() == 40 && is_commit_hash(hash)) {
            heads[branch] = hash;
        }
    }
    if (heads.size() == branches.size()) {
        return heads;
    }
    auto all = m_git.tracking_heads(); // packed refs
    if (!all) {
        return std::unexpected(all.error());
    }
    for (const auto& branch : branches) {
        if (auto it = all->find(branch); it != all->end()) {
            heads.try_emplace(branch, it->second);
        }
    }
    return heads;
}

Result<std::string> Store::tracking_head(const std::string& branch)
{
    std::lock_guard lock(m_mutex);
    if (!m_heads) {
        auto heads = m_git.tracking_heads();
        if (!heads) {
            return std::unexpected(heads.error());
        }
        m_heads = std::move(*heads);
    }
    if (auto it = m_heads->find(branch); it != m_heads->end()) {
        return it->second;
    }
    return fail("branch {} not fetched into {}", quote(branch), m_dir);
}

void Store::new_cycle()
{
    std::lock_guard lock(m_mutex);
    m_surveys.clear();
    m_heads.reset();
}

Result<> Store::prepare(const std::string& from, const std::string& to, std::span<const Link> links)
{
    std::lock_guard lock(m_mutex);
    return survey_locked(m_surveys[{from, to}], from, to, links);
}

// The links not surveyed yet for this pair, in one diff (which fetches their blobs) and one
// ls-tree.
Result<> Store::survey_locked(Surveyed& surveyed, const std::string& from, const std::string& to,
                              std::span<const Link> links)
{
    std::vector<Link> missing;
    for (const auto& link : links) {
        const auto path = link_path(link);
        if (!surveyed.links.contains(path)) {
            missing.push_back(link);
            surveyed.links.insert(path);
        }
    }
    if (missing.empty()) {
        return {};
    }
    auto fail_all = [&](const Error& error) {
        for (const auto& link : missing) {
            surveyed.links.erase(link_path(link));
        }
        return std::unexpected(error);
    };
    auto changed = m_git.changed_fetching(from, to, missing);
    if (!changed) {
        return fail_all(changed.error());
    }
    auto listing = m_git.list_tree(to, missing);
    if (!listing) {
        return fail_all(listing.error());
    }
    surveyed.changed.insert(changed->begin(), changed->end());
    surveyed.at.merge(*listing);
    return {};
}

Result<Survey> Store::survey(const std::string& from, const std::string& to,
                             std::span<const Link> links, std::uint64_t max_file_size)
{
    std::lock_guard lock(m_mutex);
    auto& surveyed = m_surveys[{from, to}];
    if (auto r = survey_locked(surveyed, from, to, links); !r) {
        return std::unexpected(r.error());
    }
    Survey survey;
    for (const auto& path : surveyed.changed) {
        for (const auto& link : links) {
            if (under(path, link_path(link))) {
                survey.changed.push_back(path);
                break;
            }
        }
    }
    auto refusal = m_git.judge_tree(surveyed.at, to, links, max_file_size);
    if (!refusal) {
        return std::unexpected(refusal.error());
    }
    survey.refusal = std::move(*refusal);
    return survey;
}

Git Store::plain_tree(const std::string& dir, const std::string& index, const std::string& commit,
                      std::span<const Link> links) const
{
    auto git = Git::plain_tree(dir, m_user, m_timeout, m_upstream,
                               Git::Plain{.git_dir = m_dir + "/.git",
                                          .index = index,
                                          .commit = commit,
                                          .links = {links.begin(), links.end()}});
    git.set_access(m_access);
    return git;
}

} // namespace gitopper
