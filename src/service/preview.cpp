// /list/diff (SPEC §4 beyond): what the next deploy of a service would do, read off the store
// without touching the live tree. Part of ManagedService; in a file of its own because it is
// a report, not a step of the service's life.

#include <nlohmann/json.hpp>

#include "service/managed.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

constexpr std::size_t kMaxCommits = 100;
constexpr std::size_t kMaxDiff = 64 << 10;

} // namespace

// What the action after such a deploy would be.
std::string ManagedService::next_action(bool changes) const
{
    if (!changes) {
        return "none: none of its paths change";
    }
    if (!m_config.exec.empty()) {
        return "exec " + printable(m_config.exec);
    }
    if (!m_config.action.empty()) {
        return fmt::format("systemctl {} {}", m_config.action, m_config.name);
    }
    return "none: no action is set";
}

Completion ManagedService::preview()
{
    if (!m_ready) {
        return {409, fmt::format("{} has no tree yet: {}", m_config.name, status().info)};
    }
    const auto& git = m_store.git();
    auto heads = m_store.remote_heads({m_config.branch});
    if (!heads) {
        return {500, heads.error().message};
    }
    const auto head = heads->find(m_config.branch);
    if (head == heads->end()) {
        return {404, fmt::format("branch {} is not upstream", quote(m_config.branch))};
    }
    const auto& upstream = head->second;
    auto known = git.find_commit(upstream);
    if (known && !*known) {
        if (auto fetched = m_store.fetch({m_config.branch}); !fetched) {
            return {500, fetched.error().message};
        }
    } else if (!known) {
        return {500, known.error().message};
    }
    const auto now = status();
    nlohmann::ordered_json answer{{"service", m_config.name},
                                  {"deployed", now.hash},
                                  {"upstream", upstream},
                                  {"state", state_name(now.state)}};
    std::vector<Git::LogEntry> commits;
    std::vector<std::string> files;
    Git::Diff diff;
    if (upstream != now.hash) {
        auto listed = git.commits_between(now.hash, upstream, kMaxCommits + 1);
        auto changed = git.changed_files(now.hash, upstream, m_config.dirs);
        auto text = git.diff_text(now.hash, upstream, m_config.dirs, kMaxDiff);
        for (const auto* failed :
             {listed ? nullptr : &listed.error(), changed ? nullptr : &changed.error(),
              text ? nullptr : &text.error()}) {
            if (failed != nullptr) {
                return {500, failed->message};
            }
        }
        commits = std::move(*listed);
        files = std::move(*changed);
        diff = std::move(*text);
    }
    auto entries = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < commits.size() && i < kMaxCommits; ++i) {
        entries.push_back({{"hash", commits[i].hash},
                           {"author", commits[i].author},
                           {"subject", commits[i].subject}});
    }
    auto changed = nlohmann::ordered_json::array();
    for (const auto& file : files) {
        const auto tab = file.find('\t');
        changed.push_back({{"status", file.substr(0, tab)}, {"path", file.substr(tab + 1)}});
    }
    answer["commits"] = std::move(entries);
    answer["more_commits"] = commits.size() > kMaxCommits;
    answer["files"] = std::move(changed);
    answer["diff"] = diff.text;
    answer["truncated"] = diff.truncated;
    answer["action"] = next_action(!files.empty());
    if (now.state == State::freeze) {
        answer["note"] = "frozen: this is what unfreezing would bring";
    } else if (!m_windows.empty() && !inside(m_windows, std::chrono::system_clock::now())) {
        const auto opens = next_opening(m_windows, std::chrono::system_clock::now());
        answer["note"] = fmt::format("outside its windows: it would wait (next: {})",
                                     opens ? local_weekday_time(*opens) : "none within 8 days");
    } else {
        answer["note"] = "";
    }
    return {0, answer.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)};
}

} // namespace gitopper
