#include "host/systemd.hpp"

#include <algorithm>
#include <array>

#include "util/log.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

[[nodiscard]] Result<> systemctl(std::vector<std::string> args)
{
    args.insert(args.begin(), "systemctl");
    log::debug("running {}", printable(args));
    auto output =
        run_checked(Command{.argv = std::move(args), .timeout = std::chrono::seconds(90)});
    if (!output) {
        return std::unexpected(output.error());
    }
    return {};
}

} // namespace

Result<> Systemctl::daemon_reload()
{
    std::unique_lock lock(m_mutex);
    const auto ticket = ++m_asked;
    while (m_covered < ticket) {
        if (m_running) {
            m_done_cv.wait(lock);
            continue;
        }
        // This run starts after every ticket handed out so far: it covers them all.
        m_running = true;
        const auto covers = m_asked;
        lock.unlock();
        auto outcome = systemctl({"daemon-reload"});
        lock.lock();
        m_running = false;
        m_covered = covers;
        m_last = std::move(outcome);
        m_done_cv.notify_all();
    }
    return m_last;
}

Result<> Systemctl::run(const std::string& verb, const std::string& unit)
{
    return systemctl({verb, unit}); // unit names are validated: never option-like
}

namespace {

// `systemctl show -p PROPERTY --value UNIT`: a query, answered from systemd's memory.
[[nodiscard]] Result<std::string> show(const std::string& unit, const char* property)
{
    std::vector<std::string> args{"systemctl", "show", "-p", property, "--value", unit};
    log::debug("running {}", printable(args));
    auto output =
        run_checked(Command{.argv = std::move(args), .timeout = std::chrono::seconds(90)});
    if (!output) {
        return std::unexpected(output.error());
    }
    return std::string(trim(output->out));
}

} // namespace

Result<bool> Systemctl::needs_daemon_reload(const std::string& unit)
{
    auto value = show(unit, "NeedDaemonReload");
    return value ? Result<bool>(*value == "yes") : std::unexpected(value.error());
}

Result<bool> Systemctl::is_running(const std::string& unit)
{
    // Starting counts: it may have read its files already.
    auto state = show(unit, "ActiveState");
    if (!state) {
        return std::unexpected(state.error());
    }
    return *state == "active" || *state == "reloading" || *state == "activating";
}

bool may_hold_unit_files(std::string_view path)
{
    static constexpr std::array<std::string_view, 8> kUnitDirectories{
        "/etc/systemd/system",   "/run/systemd/system",           "/usr/lib/systemd/system",
        "/lib/systemd/system",   "/usr/local/lib/systemd/system", "/etc/systemd/user",
        "/usr/lib/systemd/user", "/run/systemd/generator"};
    const auto within = [](std::string_view inner, std::string_view outer) {
        return inner == outer || (inner.starts_with(outer) && inner.size() > outer.size() &&
                                  inner[outer.size()] == '/');
    };
    return std::any_of(kUnitDirectories.begin(), kUnitDirectories.end(), [&](std::string_view dir) {
        return within(path, dir) || within(dir, path);
    });
}

bool is_template_instance(const std::string& unit)
{
    const auto at = unit.find('@');
    return at != std::string::npos && at > 0 && at + 1 < unit.size();
}

} // namespace gitopper
