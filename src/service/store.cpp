#include "service/store.hpp"

#include <unistd.h>

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/atomic_file.hpp"
#include "util/log.hpp"

namespace gitopper {
namespace {

using nlohmann::json;

constexpr int kVersion = 1;

// An unreadable (or newer) state file is kept for the operator rather than overwritten by the
// next save.
void keep_aside(const std::string& path)
{
    const auto aside = fmt::format("{}.unreadable-{}", path, std::time(nullptr));
    if (::rename(path.c_str(), aside.c_str()) == 0) {
        log::warn("kept the unreadable state file as {}", aside);
    }
}

json to_json(const SavedService& saved)
{
    json history = json::array();
    for (const auto& entry : saved.history) {
        history.push_back({{"time", entry.time},
                           {"from", entry.from},
                           {"to", entry.to},
                           {"trigger", entry.trigger},
                           {"result", entry.result}});
    }
    return {{"frozen", saved.frozen},
            {"pin", saved.pin},
            {"info", saved.info},
            {"applied", saved.applied},
            {"history", history}};
}

SavedService from_json(const json& object)
{
    SavedService saved;
    saved.frozen = object.value("frozen", false);
    saved.pin = object.value("pin", "");
    saved.info = object.value("info", "");
    saved.applied = object.value("applied", "");
    for (const auto& entry : object.value("history", json::array())) {
        saved.history.push_back({entry.value("time", std::int64_t{0}), entry.value("from", ""),
                                 entry.value("to", ""), entry.value("trigger", ""),
                                 entry.value("result", "")});
    }
    while (saved.history.size() > kHistoryLimit) {
        saved.history.pop_front();
    }
    return saved;
}

} // namespace

std::map<std::string, SavedService> StateStore::load(const std::set<std::string>& known)
{
    std::map<std::string, SavedService> services;
    if (::access(m_path.c_str(), F_OK) != 0) {
        return services; // first start
    }
    auto text = read_file(m_path);
    if (!text) {
        log::warn("{}; starting with default state", text.error().message);
        return services;
    }
    try {
        const auto root = json::parse(*text);
        if (root.value("version", 0) != kVersion) {
            log::warn("state file {}: version {} is not {}; starting with default state", m_path,
                      root.value("version", 0), kVersion);
            keep_aside(m_path);
            return services;
        }
        for (const auto& [name, object] : root.at("services").items()) {
            if (!known.contains(name)) {
                log::warn("state file {}: skipping service {} that this host no longer runs",
                          m_path, name);
                continue;
            }
            services[name] = from_json(object);
        }
    } catch (const json::exception& e) {
        log::warn("state file {} is damaged ({}); starting with default state", m_path, e.what());
        keep_aside(m_path);
        services.clear();
    }
    std::lock_guard lock(m_mutex);
    m_services = services;
    return services;
}

Result<> StateStore::save(const std::string& service, const SavedService& saved)
{
    std::lock_guard lock(m_mutex);
    m_services[service] = saved;
    return write_locked();
}

Result<> StateStore::write_locked()
{
    json services = json::object();
    for (const auto& [name, saved] : m_services) {
        services[name] = to_json(saved);
    }
    // History results and infos quote git's output, which need not be UTF-8 (or is cut
    // inside a character): replace such bytes instead of throwing on the poll thread.
    const auto text = json{{"version", kVersion}, {"services", services}}.dump(
                          1, ' ', false, json::error_handler_t::replace) +
                      "\n";
    if (text == m_written) {
        return {};
    }
    if (auto r = write_file_atomic(m_path, text, 0600); !r) {
        return r;
    }
    m_written = text;
    return {};
}

} // namespace gitopper
