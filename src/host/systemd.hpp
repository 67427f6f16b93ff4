#pragma once
// Telling services about their files: `systemctl` through util/process. An interface so tests
// of the reconcile step can count calls without a system manager.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gitopper {

class ServiceManager {
public:
    virtual ~ServiceManager() = default;
    [[nodiscard]] virtual Result<> daemon_reload() = 0;
    // `systemctl <verb> <unit>`, verb one of the config's actions, "start" or "enable".
    [[nodiscard]] virtual Result<> run(const std::string& verb, const std::string& unit) = 0;
    // Whether systemd says the unit's files changed since it read them (NeedDaemonReload).
    [[nodiscard]] virtual Result<bool> needs_daemon_reload(const std::string& unit) = 0;
    // Whether the unit runs (or is starting, or reloading): `start` would not tell it anything.
    [[nodiscard]] virtual Result<bool> is_running(const std::string& unit) = 0;
};

// Runs `systemctl` found on PATH. Thread-safe.
class Systemctl final : public ServiceManager {
public:
    // Concurrent callers share one run: a daemon-reload takes systemd a good fraction of a
    // second on a real host and reloads everything, so a caller needs only one that started
    // after it asked. Services starting side by side thus cost one or two, not one each.
    [[nodiscard]] Result<> daemon_reload() override;
    [[nodiscard]] Result<> run(const std::string& verb, const std::string& unit) override;
    // `systemctl show -p NeedDaemonReload --value UNIT`: a query, cheap, unlike the reload.
    [[nodiscard]] Result<bool> needs_daemon_reload(const std::string& unit) override;
    // `systemctl show -p ActiveState --value UNIT`.
    [[nodiscard]] Result<bool> is_running(const std::string& unit) override;

private:
    std::mutex m_mutex;
    std::condition_variable m_done_cv;
    std::uint64_t m_asked = 0;   // tickets handed out
    std::uint64_t m_covered = 0; // every ticket up to this one has had its reload
    bool m_running = false;
    Result<> m_last; // the outcome of the reload that covered m_covered
};

bool is_template_instance(const std::string& unit); // "name@instance"

// Whether a mount onto `path` can change unit files: it is in one of systemd's unit
// directories (/etc/systemd/system, /run/systemd/system, /usr/lib/systemd/system, ...), or
// holds one (/etc/systemd).
bool may_hold_unit_files(std::string_view path);

} // namespace gitopper
