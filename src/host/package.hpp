#pragma once
// Installing a service's OS package when it is missing (never upgrading or downgrading). The
// package manager is chosen from /etc/os-release ID and ID_LIKE.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gitopper {

struct PackageManager {
    std::string_view name;                                         // "apt-get", for messages
    std::vector<std::string> (*query)(const std::string& package); // exit 0 when installed
    std::vector<std::string> (*install)(const std::string& package);
    std::vector<std::string> environment; // extra "KEY=VALUE" for install
};

// The manager for this OS; nullopt for an OS we do not know (warn and skip).
std::optional<PackageManager> package_manager_for(std::string_view os_release);

// Installs `package` unless the manager says it is installed already. Returns true when it
// installed something.
[[nodiscard]] Result<bool> ensure_package(const PackageManager& manager,
                                          const std::string& package);

} // namespace gitopper
