#pragma once
// Telling services about their files: `systemctl` through util/process. An interface so tests
// of the reconcile step can count calls without a system manager.

#include <string>

#include "util/error.hpp"

namespace gitopper {

class ServiceManager {
public:
    virtual ~ServiceManager() = default;
    virtual Result<> daemon_reload() = 0;
    // `systemctl <verb> <unit>`, verb one of the config's actions, "start" or "enable".
    virtual Result<> run(const std::string& verb, const std::string& unit) = 0;
};

// Runs `systemctl` found on PATH.
class Systemctl final : public ServiceManager {
public:
    Result<> daemon_reload() override;
    Result<> run(const std::string& verb, const std::string& unit) override;
};

bool is_template_instance(const std::string& unit); // "name@instance"

} // namespace gitopper
