#include "host/package.hpp"

#include <array>
#include <mutex>

#include <fmt/format.h>

#include "util/log.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using Argv = std::vector<std::string>;

// One row per package manager: how to ask and how to install. "--" keeps the name an operand.
const std::array<std::pair<std::string_view, PackageManager>, 5> kManagers{{
    {"debian",
     {"apt-get",
      [](const std::string& p) -> Argv {
          return {"dpkg-query", "--show", "--showformat=${db:Status-Status}", "--", p};
      },
      [](const std::string& p) -> Argv {
          return {"apt-get", "install",
                  "--yes",   "--no-upgrade",
                  "-o",      "Dpkg::Options::=--force-confdef",
                  "-o",      "Dpkg::Options::=--force-confold",
                  "--",      p};
      },
      {"DEBIAN_FRONTEND=noninteractive"}}},
    {"fedora",
     {"dnf",
      [](const std::string& p) -> Argv {
          return {"rpm", "--query", "--", p};
      },
      [](const std::string& p) -> Argv {
          return {"dnf", "install", "--assumeyes", "--", p};
      },
      {}}},
    {"arch",
     {"pacman",
      [](const std::string& p) -> Argv {
          return {"pacman", "--query", "--", p};
      },
      [](const std::string& p) -> Argv {
          return {"pacman", "--sync", "--noconfirm", "--needed", "--", p};
      },
      {}}},
    {"alpine",
     {"apk",
      [](const std::string& p) -> Argv {
          return {"apk", "info", "--installed", "--", p};
      },
      [](const std::string& p) -> Argv {
          return {"apk", "add", "--", p};
      },
      {}}},
    {"suse",
     {"zypper",
      [](const std::string& p) -> Argv {
          return {"rpm", "--query", "--", p};
      },
      [](const std::string& p) -> Argv {
          return {"zypper", "--non-interactive", "install", "--", p};
      },
      {}}},
}};

// Families an ID or ID_LIKE word belongs to.
const std::array<std::pair<std::string_view, std::string_view>, 14> kFamilies{{
    {"debian", "debian"},
    {"ubuntu", "debian"},
    {"raspbian", "debian"},
    {"linuxmint", "debian"},
    {"fedora", "fedora"},
    {"rhel", "fedora"},
    {"centos", "fedora"},
    {"rocky", "fedora"},
    {"almalinux", "fedora"},
    {"arch", "arch"},
    {"manjaro", "arch"},
    {"alpine", "alpine"},
    {"suse", "suse"},
    {"opensuse", "suse"},
}};

std::string os_release_value(std::string_view os_release, std::string_view key)
{
    for (const auto& line : split(os_release, '\n')) {
        const auto text = trim(line);
        if (text.starts_with(key) && text.size() > key.size() && text[key.size()] == '=') {
            auto value = std::string(text.substr(key.size() + 1));
            if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) {
                value = value.substr(1, value.size() - 2);
            }
            return value;
        }
    }
    return {};
}

std::optional<std::string_view> family_of(std::string_view word)
{
    for (const auto& [id, family] : kFamilies) {
        if (word == id || (word.starts_with(id) && word.substr(id.size()).starts_with('-'))) {
            return family; // "opensuse-leap" is suse
        }
    }
    return std::nullopt;
}

} // namespace

std::optional<PackageManager> package_manager_for(std::string_view os_release)
{
    std::vector<std::string> words{os_release_value(os_release, "ID")};
    for (auto& word : split(os_release_value(os_release, "ID_LIKE"), ' ')) {
        words.push_back(std::move(word));
    }
    for (const auto& word : words) {
        if (const auto family = family_of(word)) {
            for (const auto& [name, manager] : kManagers) {
                if (name == *family) {
                    return manager;
                }
            }
        }
    }
    return std::nullopt;
}

[[nodiscard]] Result<bool> ensure_package(const PackageManager& manager, const std::string& package)
{
    // Package managers hold a system-wide lock: one install at a time, whoever asks.
    static std::mutex one_at_a_time;
    std::lock_guard lock(one_at_a_time);
    auto query = run(Command{.argv = manager.query(package), .timeout = std::chrono::seconds(60)});
    if (!query) {
        return std::unexpected(query.error());
    }
    // dpkg-query prints the status; rpm/pacman/apk answer with the exit status.
    const bool installed =
        query->ok() && (manager.name != "apt-get" || trim(query->out) == "installed");
    if (installed) {
        return false;
    }
    const auto argv = manager.install(package);
    log::info("installing package {} with {}", quote(package), printable(argv));
    auto install = run_checked(Command{.argv = argv,
                                       .timeout = std::chrono::minutes(15),
                                       .env = environment_with(manager.environment)});
    if (!install) {
        return fail("installing package {}: {}", quote(package), install.error().message);
    }
    return true;
}

} // namespace gitopper
