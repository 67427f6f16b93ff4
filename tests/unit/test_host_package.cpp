#include "host/package.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

// ---- package_manager_for ----

std::optional<std::string> manager_name(std::string_view os_release)
{
    const auto manager = package_manager_for(os_release);
    if (!manager) {
        return std::nullopt;
    }
    return std::string(manager->name);
}

constexpr std::string_view kDebian = R"os(PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
)os";

constexpr std::string_view kUbuntu = R"os(PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
)os";

constexpr std::string_view kMint = R"os(NAME="Linux Mint"
VERSION="21.3 (Virginia)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 21.3"
)os";

constexpr std::string_view kFedora = R"os(NAME="Fedora Linux"
VERSION="39 (Server Edition)"
ID=fedora
VERSION_ID=39
PLATFORM_ID="platform:f39"
)os";

constexpr std::string_view kRocky = R"os(NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
)os";

constexpr std::string_view kArch = R"os(NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
)os";

constexpr std::string_view kAlpine = R"os(NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
)os";

constexpr std::string_view kLeap = R"os(NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
)os";

constexpr std::string_view kPlan9 = R"os(NAME="Plan 9"
ID=plan9
VERSION_ID=4
)os";

} // namespace

TEST(PackageManagerForTest, Debian)
{
    EXPECT_EQ(manager_name(kDebian), "apt-get");
}

TEST(PackageManagerForTest, UbuntuThroughIdLike)
{
    EXPECT_EQ(manager_name(kUbuntu), "apt-get");
}

TEST(PackageManagerForTest, LinuxMintWithQuotedIdLike)
{
    EXPECT_EQ(manager_name(kMint), "apt-get");
}

TEST(PackageManagerForTest, Fedora)
{
    EXPECT_EQ(manager_name(kFedora), "dnf");
}

TEST(PackageManagerForTest, RockyWithQuotedId)
{
    EXPECT_EQ(manager_name(kRocky), "dnf");
}

TEST(PackageManagerForTest, Arch)
{
    EXPECT_EQ(manager_name(kArch), "pacman");
}

TEST(PackageManagerForTest, Alpine)
{
    EXPECT_EQ(manager_name(kAlpine), "apk");
}

TEST(PackageManagerForTest, OpenSuseLeap)
{
    EXPECT_EQ(manager_name(kLeap), "zypper");
}

TEST(PackageManagerForTest, UnknownOsHasNoManager)
{
    EXPECT_EQ(manager_name(kPlan9), std::nullopt);
    EXPECT_EQ(manager_name(""), std::nullopt);
    // Only whole words (or "word-…") count: "debianish" is not Debian.
    EXPECT_EQ(manager_name("ID=debianish\n"), std::nullopt);
}

TEST(PackageManagerForTest, IdLikeBeforeIdIsNotMistakenForId)
{
    EXPECT_EQ(manager_name("ID_LIKE=arch\nID=fedora\n"), "dnf");
}

TEST(PackageManagerForTest, ManagersBuildTheirCommands)
{
    const auto apt = package_manager_for(kDebian);
    ASSERT_TRUE(apt);
    EXPECT_EQ(apt->query("nginx"),
              (std::vector<std::string>{"dpkg-query", "--show", "--showformat=${db:Status-Status}",
                                        "--", "nginx"}));
    EXPECT_EQ(apt->environment, (std::vector<std::string>{"DEBIAN_FRONTEND=noninteractive"}));

    const auto dnf = package_manager_for(kFedora);
    ASSERT_TRUE(dnf);
    EXPECT_EQ(dnf->query("nginx"), (std::vector<std::string>{"rpm", "--query", "--", "nginx"}));
    EXPECT_EQ(dnf->install("nginx"),
              (std::vector<std::string>{"dnf", "install", "--assumeyes", "--", "nginx"}));
}

// ---- ensure_package, against fake package managers on PATH ----

namespace {

// One run of a fake program: its name, its arguments and the DEBIAN_FRONTEND it saw.
struct Invocation {
    std::string program;
    std::vector<std::string> args;
    std::string frontend;
};

class EnsurePackageTest : public testing::Test {
protected:
    void SetUp() override
    {
        // Saved first: TearDown restores them even when the rest of SetUp fails.
        m_old_path = get("PATH");
        m_old_frontend = get("DEBIAN_FRONTEND");

        std::string pattern = (std::filesystem::temp_directory_path() / "package-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = std::filesystem::canonical(pattern);
        m_log = m_dir / "calls.log";

        const auto new_path = m_dir.string() + ":" + m_old_path.value_or("/usr/bin:/bin");
        ASSERT_EQ(::setenv("PATH", new_path.c_str(), 1), 0);
        // The frontend must come from the manager's environment, not from ours.
        ASSERT_EQ(::unsetenv("DEBIAN_FRONTEND"), 0);
    }

    void TearDown() override
    {
        restore("PATH", m_old_path);
        restore("DEBIAN_FRONTEND", m_old_frontend);
        if (!m_dir.empty()) {
            std::filesystem::remove_all(m_dir);
        }
    }

    static std::optional<std::string> get(const char* name)
    {
        const char* value = std::getenv(name);
        return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
    }

    static void restore(const char* name, const std::optional<std::string>& value)
    {
        if (value) {
            ::setenv(name, value->c_str(), 1);
        } else {
            ::unsetenv(name);
        }
    }

    // A program `name` in the fake dir that logs its call, prints `out` and `err`, and exits
    // with `code`.
    void fake(const std::string& name, const std::string& out, const std::string& err, int code)
    {
        const auto path = m_dir / name;
        std::ofstream script(path);
        script << "#!/bin/sh\n"
               << "{\n"
               << "  printf 'call %s %s\\n' \"" << name << "\" \"${DEBIAN_FRONTEND-<unset>}\"\n"
               << "  for arg in \"$@\"; do printf 'arg %s\\n' \"$arg\"; done\n"
               << "} >> '" << m_log.string() << "'\n"
               << "printf '%s' '" << out << "'\n"
               << "printf '%s' '" << err << "' >&2\n"
               << "exit " << code << "\n";
        script.close();
        ASSERT_TRUE(script);
        ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
    }

    std::vector<Invocation> calls() const
    {
        std::vector<Invocation> result;
        std::ifstream log(m_log);
        std::string line;
        while (std::getline(log, line)) {
            if (line.starts_with("call ")) {
                std::istringstream words(line.substr(5));
                Invocation call;
                words >> call.program >> call.frontend;
                result.push_back(call);
            } else if (line.starts_with("arg ") && !result.empty()) {
                result.back().args.push_back(line.substr(4));
            }
        }
        return result;
    }

    std::filesystem::path m_dir;
    std::filesystem::path m_log;
    std::optional<std::string> m_old_path;
    std::optional<std::string> m_old_frontend;
};

PackageManager manager_for(std::string_view os_release)
{
    auto manager = package_manager_for(os_release);
    EXPECT_TRUE(manager.has_value());
    return manager ? *manager : PackageManager{};
}

} // namespace

TEST_F(EnsurePackageTest, AptInstalledPackageIsLeftAlone)
{
    fake("dpkg-query", "installed", "", 0);
    fake("apt-get", "", "", 0);

    const auto result = ensure_package(manager_for(kDebian), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_FALSE(*result);

    const auto log = calls();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].program, "dpkg-query");
    EXPECT_EQ(log[0].args, (std::vector<std::string>{"--show", "--showformat=${db:Status-Status}",
                                                     "--", "nginx"}));
    EXPECT_EQ(log[0].frontend, "<unset>");
}

TEST_F(EnsurePackageTest, AptMissingPackageIsInstalledNoninteractively)
{
    fake("dpkg-query", "", "dpkg-query: no packages found matching nginx", 1);
    fake("apt-get", "Setting up nginx", "", 0);

    const auto result = ensure_package(manager_for(kDebian), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_TRUE(*result);

    const auto log = calls();
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[0].program, "dpkg-query");
    EXPECT_EQ(log[1].program, "apt-get");
    EXPECT_EQ(log[1].frontend, "noninteractive");
    const auto& args = log[1].args;
    ASSERT_GE(args.size(), 4u);
    EXPECT_EQ(args.front(), "install");
    EXPECT_NE(std::find(args.begin(), args.end(), "--yes"), args.end());
    EXPECT_NE(std::find(args.begin(), args.end(), "--no-upgrade"), args.end());
    EXPECT_EQ(args[args.size() - 2], "--");
    EXPECT_EQ(args.back(), "nginx");
}

TEST_F(EnsurePackageTest, AptPackageWithOnlyConfigFilesLeftIsInstalled)
{
    // dpkg-query exits 0 for a removed package whose conffiles remain.
    fake("dpkg-query", "config-files", "", 0);
    fake("apt-get", "", "", 0);

    const auto result = ensure_package(manager_for(kDebian), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_TRUE(*result);
    const auto log = calls();
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[1].program, "apt-get");
}

TEST_F(EnsurePackageTest, OptionLikePackageNameStaysAnOperand)
{
    fake("dpkg-query", "", "", 1);
    fake("apt-get", "", "", 0);

    const auto result = ensure_package(manager_for(kDebian), "--purge");
    ASSERT_TRUE(result) << result.error().message;
    const auto log = calls();
    ASSERT_EQ(log.size(), 2u);
    ASSERT_GE(log[0].args.size(), 2u);
    EXPECT_EQ(log[0].args[log[0].args.size() - 2], "--");
    ASSERT_GE(log[1].args.size(), 2u);
    EXPECT_EQ(log[1].args[log[1].args.size() - 2], "--");
    EXPECT_EQ(log[1].args.back(), "--purge");
}

TEST_F(EnsurePackageTest, AptFailureNamesThePackageAndTheReason)
{
    fake("dpkg-query", "", "", 1);
    fake("apt-get", "", "E: Unable to locate package nginx-extra", 100);

    const auto result = ensure_package(manager_for(kDebian), "nginx-extra");
    ASSERT_FALSE(result);
    const auto& message = result.error().message;
    EXPECT_NE(message.find("nginx-extra"), std::string::npos) << message;
    EXPECT_NE(message.find("E: Unable to locate package nginx-extra"), std::string::npos)
        << message;
    EXPECT_NE(message.find("apt-get"), std::string::npos) << message;
    EXPECT_NE(message.find("100"), std::string::npos) << message;
}

TEST_F(EnsurePackageTest, MissingQueryProgramIsAnError)
{
    // No dpkg-query anywhere on PATH: an error, and nothing installed.
    ASSERT_EQ(::setenv("PATH", m_dir.c_str(), 1), 0);
    fake("apt-get", "", "", 0);

    const auto result = ensure_package(manager_for(kDebian), "nginx");
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("dpkg-query"), std::string::npos)
        << result.error().message;
    EXPECT_TRUE(calls().empty());
}

TEST_F(EnsurePackageTest, FedoraInstallsWithDnfWhenRpmDoesNotKnowThePackage)
{
    fake("rpm", "package nginx is not installed", "", 1);
    fake("dnf", "", "", 0);

    const auto result = ensure_package(manager_for(kFedora), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_TRUE(*result);

    const auto log = calls();
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[0].program, "rpm");
    EXPECT_EQ(log[0].args, (std::vector<std::string>{"--query", "--", "nginx"}));
    EXPECT_EQ(log[1].program, "dnf");
    EXPECT_EQ(log[1].args, (std::vector<std::string>{"install", "--assumeyes", "--", "nginx"}));
    EXPECT_EQ(log[1].frontend, "<unset>");
}

TEST_F(EnsurePackageTest, FedoraInstalledPackageIsLeftAlone)
{
    // rpm answers with its exit status; its output does not matter.
    fake("rpm", "nginx-1.24.0-1.fc39.x86_64", "", 0);
    fake("dnf", "", "", 0);

    const auto result = ensure_package(manager_for(kFedora), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_FALSE(*result);
    const auto log = calls();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].program, "rpm");
}

TEST_F(EnsurePackageTest, OpenSuseInstallsWithZypper)
{
    fake("rpm", "", "", 1);
    fake("zypper", "", "", 0);

    const auto result = ensure_package(manager_for(kLeap), "nginx");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_TRUE(*result);
    const auto log = calls();
    ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[1].program, "zypper");
    EXPECT_EQ(log[1].args,
              (std::vector<std::string>{"--non-interactive", "install", "--", "nginx"}));
}
