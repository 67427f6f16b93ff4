#include "host/systemd.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "util/atomic_file.hpp"
#include "util/strings.hpp"

using namespace gitopper;

namespace {

// A stand-in systemctl first on PATH: it records each call and takes 200 ms, so calls made
// while one runs really overlap; it fails while `fail` exists next to it.
class SystemctlTest : public testing::Test {
protected:
    void SetUp() override
    {
        if (const char* path = std::getenv("PATH")) {
            m_old_path = path;
        }
        std::string pattern = (std::filesystem::temp_directory_path() / "systemd-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = std::filesystem::canonical(pattern);
        std::ofstream(m_dir / "systemctl") << "#!/bin/sh\necho \"$*\" >>" << (m_dir / "calls.log")
                                           << "\nsleep 0.2\n[ ! -e " << (m_dir / "fail") << " ]\n";
        std::filesystem::permissions(m_dir / "systemctl", std::filesystem::perms::owner_all);
        const auto new_path = m_dir.string() + ":" + m_old_path.value_or("/usr/bin:/bin");
        ASSERT_EQ(::setenv("PATH", new_path.c_str(), 1), 0);
    }

    void TearDown() override
    {
        if (m_old_path) {
            ::setenv("PATH", m_old_path->c_str(), 1);
        }
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    }

    std::vector<std::string> calls() const
    {
        auto text = read_file((m_dir / "calls.log").string());
        return text ? split(std::string(trim(*text)), '\n') : std::vector<std::string>{};
    }

    // `n` threads ask for a daemon-reload at once; how many succeeded.
    int reload_from(Systemctl& systemctl, int n)
    {
        std::vector<int> ok(static_cast<std::size_t>(n));
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < ok.size(); ++i) {
            threads.emplace_back([&, i] { ok[i] = systemctl.daemon_reload() ? 1 : 0; });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        return std::accumulate(ok.begin(), ok.end(), 0);
    }

    std::filesystem::path m_dir;
    std::optional<std::string> m_old_path;
};

} // namespace

TEST_F(SystemctlTest, ConcurrentDaemonReloadsShareRuns)
{
    Systemctl systemctl;
    EXPECT_EQ(reload_from(systemctl, 8), 8);
    const auto during = calls().size();
    EXPECT_GE(during, 1u);
    EXPECT_LE(during, 3u) << "eight overlapping callers, " << during << " runs";
    for (const auto& call : calls()) {
        EXPECT_EQ(call, "daemon-reload");
    }
    // A later caller is not served by a reload that ran before it asked.
    ASSERT_TRUE(systemctl.daemon_reload());
    EXPECT_EQ(calls().size(), during + 1);
}

TEST_F(SystemctlTest, AFailedSharedReloadFailsEveryCallerItServed)
{
    std::ofstream(m_dir / "fail") << "";
    Systemctl systemctl;
    EXPECT_EQ(reload_from(systemctl, 4), 0);
    std::filesystem::remove(m_dir / "fail");
    EXPECT_TRUE(systemctl.daemon_reload());
}

TEST_F(SystemctlTest, VerbsRunOneEach)
{
    Systemctl systemctl;
    ASSERT_TRUE(systemctl.run("reload", "nginx"));
    ASSERT_TRUE(systemctl.run("start", "getty@tty9"));
    EXPECT_EQ(calls(), (std::vector<std::string>{"reload nginx", "start getty@tty9"}));
}
