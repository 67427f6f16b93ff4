#include "host/mount.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "util/fd.hpp"

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif

using namespace gitopper;
namespace fs = std::filesystem;

namespace {

constexpr int files = 40; // in each tree's conf/, for the reader of the atomicity test

std::string read_text(const fs::path& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const fs::path& path, const std::string& text)
{
    std::ofstream(path) << text;
}

// What a switch killed after its first step leaves: `source` mounted beneath the top mount on
// `target`, which stays on top.
void mount_beneath(const fs::path& source, const fs::path& target)
{
    Fd from(::open(source.c_str(), O_PATH | O_CLOEXEC));
    Fd tree(static_cast<int>(
        ::open_tree(from.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
    Fd to(::open(target.c_str(), O_PATH | O_CLOEXEC));
    ASSERT_TRUE(from && tree && to) << std::strerror(errno);
    ASSERT_EQ(::move_mount(tree.get(), "", to.get(), "",
                           MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_BENEATH),
              0)
        << std::strerror(errno);
}

// Two work trees, a and b, whose conf/ and app.conf say which tree they are in; the targets
// go to etc/ (missing until mounted).
class HostMountTest : public testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "needs root to mount";
        }
        std::string pattern = (fs::temp_directory_path() / "host-mount-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_root = fs::canonical(pattern);
        for (const auto* tree : {"a", "b"}) {
            const std::string version = tree[0] == 'a' ? "A" : "B";
            fs::create_directories(m_root / tree / "conf");
            write_text(m_root / tree / "conf/version", version);
            for (int i = 0; i < files; ++i) {
                write_text(m_root / tree / "conf" / ("f" + std::to_string(i)), version);
            }
            write_text(m_root / tree / "app.conf", "file " + version);
        }
    }
    void TearDown() override
    {
        if (!m_root.empty()) {
            fs::remove_all(m_root);
        }
    }

    // Runs `body` in a child of its own private mount namespace, so every mount made there is
    // gone with it. Its failures are printed there; here the test fails if there were any.
    void in_private_namespace(const std::function<void()>& body)
    {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (::unshare(CLONE_NEWNS) != 0 ||
                ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
                ::_exit(77);
            }
            body();
            std::fflush(nullptr);
            ::_exit(testing::Test::HasFailure() ? 1 : 0);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
        if (WEXITSTATUS(status) == 77) {
            GTEST_SKIP() << "no mount namespace here";
        }
        EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's failures are printed above";
    }

    fs::path at(const std::string& relative) const { return m_root / relative; }

    // Someone else's mount on `target`: a tmpfs holding the file "whose", or for a file a bind
    // mount of one saying `whose`.
    void mount_foreign(const fs::path& target, const std::string& whose) const
    {
        if (fs::is_directory(target)) {
            ASSERT_EQ(::mount("tmpfs", target.c_str(), "tmpfs", 0, nullptr), 0)
                << std::strerror(errno);
            write_text(target / "whose", whose);
            return;
        }
        write_text(at(whose), whose);
        ASSERT_EQ(::mount(at(whose).c_str(), target.c_str(), nullptr, MS_BIND, nullptr), 0)
            << std::strerror(errno);
    }

    BindMount conf(const std::string& tree) const
    {
        return {.checkout = at(tree), .path = "conf", .target = at("etc/conf")};
    }
    BindMount app_file(const std::string& tree) const
    {
        return {
            .checkout = at(tree), .path = "app.conf", .target = at("etc/app.conf"), .file = true};
    }

    // Both trees' links: what a mount of ours on the target may show.
    static std::vector<FileId> both(const BindMount& a, const BindMount& b)
    {
        std::vector<FileId> ours;
        for (const auto& mount : {a, b}) {
            if (auto id = source_id(mount)) {
                ours.push_back(*id);
            }
        }
        return ours;
    }

    // Switches the target of `next` to it, with both trees' links as ours; the result.
    static MountResult switch_to(const BindMount& next, const BindMount& other)
    {
        auto switched = switch_bind_mount(next, both(next, other), std::nullopt);
        EXPECT_TRUE(switched) << switched.error().message;
        return switched ? switched->result : MountResult::unchanged;
    }

    fs::path m_root;
};

// Readers of a target while it is switched: `passes` opens the directory once per pass and
// then each file from that descriptor, so one pass is one version; `lookups` opens each file
// by path, so versions may mix between files, but a file must always be there.
struct Readers {
    std::atomic<bool> stop{false};
    std::atomic<int> passes{0}, mixed{0}, missing{0}, seen_a{0}, seen_b{0}, lookups{0};

    void read_passes(const fs::path& target)
    {
        while (!stop) {
            Fd dir(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            std::string first;
            bool mix = false;
            bool lost = !dir;
            for (int i = 0; i < files && !lost; ++i) {
                Fd file(
                    ::openat(dir.get(), ("f" + std::to_string(i)).c_str(), O_RDONLY | O_CLOEXEC));
                char text[8] = {};
                lost = !file || ::read(file.get(), text, sizeof text) <= 0;
                first = i == 0 ? std::string(text) : first;
                mix = mix || first != text;
            }
            ++(lost ? missing : mix ? mixed : first == "A" ? seen_a : seen_b);
            ++passes;
        }
    }

    void read_lookups(const fs::path& target)
    {
        for (int i = 0; !stop; i = (i + 1) % files) {
            Fd file(::open((target / ("f" + std::to_string(i))).c_str(), O_RDONLY | O_CLOEXEC));
            char text[8] = {};
            if (!file || ::read(file.get(), text, sizeof text) <= 0) {
                ++missing;
            }
            ++lookups;
        }
    }

    // Until both readers went on at least twice since `passes_then`, `lookups_then`.
    bool wait_for_both(int passes_then, int lookups_then) const
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (passes < passes_then + 2 || lookups < lookups_then + 2) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::yield();
        }
        return true;
    }
};

} // namespace

TEST_F(HostMountTest, BeneathIsKnownFromLinux65On)
{
    utsname host{};
    int major = 0;
    int minor = 0;
    ASSERT_EQ(::uname(&host), 0);
    ASSERT_EQ(std::sscanf(host.release, "%d.%d", &major, &minor), 2) << host.release;
    EXPECT_EQ(mount_beneath_supported(), major > 6 || (major == 6 && minor >= 5)) << host.release;
}

TEST_F(HostMountTest, SwitchesADirectoryBackAndForthLeavingOneMount)
{
    in_private_namespace([&] {
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        EXPECT_EQ(read_text(at("etc/conf/version")), "A");
        for (const auto* tree : {"b", "a", "b"}) {
            const auto other = tree[0] == 'a' ? "b" : "a";
            EXPECT_EQ(switch_to(conf(tree), conf(other)), MountResult::switched) << tree;
            EXPECT_EQ(read_text(at("etc/conf/version")), tree[0] == 'a' ? "A" : "B");
            EXPECT_EQ(mount_count(at("etc/conf")), 1) << tree;
        }
    });
}

TEST_F(HostMountTest, AlreadyShowingTheSourceMountsNothing)
{
    in_private_namespace([&] {
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::unchanged);
        EXPECT_EQ(mount_count(at("etc/conf")), 1);
    });
}

TEST_F(HostMountTest, SwitchesASingleFile)
{
    in_private_namespace([&] {
        EXPECT_EQ(switch_to(app_file("a"), app_file("b")), MountResult::mounted);
        EXPECT_EQ(switch_to(app_file("b"), app_file("a")), MountResult::switched);
        EXPECT_EQ(read_text(at("etc/app.conf")), "file B");
        EXPECT_EQ(switch_to(app_file("a"), app_file("b")), MountResult::switched);
        EXPECT_EQ(read_text(at("etc/app.conf")), "file A");
        EXPECT_EQ(mount_count(at("etc/app.conf")), 1);
    });
}

// A file mount pins the inode: once git replaced the file, the mount shows a file nobody links
// to, which is ours and switched away from like the other tree.
TEST_F(HostMountTest, AStaleFileMountOfOursIsSwitchedToo)
{
    in_private_namespace([&] {
        EXPECT_EQ(switch_to(app_file("a"), app_file("b")), MountResult::mounted);
        write_text(at("a/app.conf.new"), "file A2");
        fs::rename(at("a/app.conf.new"), at("a/app.conf"));
        auto again = switch_bind_mount(app_file("a"), {}, std::nullopt);
        ASSERT_TRUE(again) << again.error().message;
        EXPECT_EQ(again->result, MountResult::switched);
        EXPECT_EQ(read_text(at("etc/app.conf")), "file A2");
        EXPECT_EQ(mount_count(at("etc/app.conf")), 1);
    });
}

TEST_F(HostMountTest, AReaderNeverSeesAMixNorAnEmptyTarget)
{
    in_private_namespace([&] {
        ASSERT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        Readers readers;
        std::thread passes([&] { readers.read_passes(at("etc/conf")); });
        std::thread lookups([&] { readers.read_lookups(at("etc/conf")); });
        for (int i = 0; i < 12; ++i) {
            // Each switch while both readers are busy, not before or after them.
            if (!readers.wait_for_both(readers.passes, readers.lookups)) {
                ADD_FAILURE() << "the readers stopped";
                break;
            }
            const bool to_b = i % 2 == 0;
            EXPECT_EQ(switch_to(conf(to_b ? "b" : "a"), conf(to_b ? "a" : "b")),
                      MountResult::switched);
        }
        EXPECT_TRUE(readers.wait_for_both(readers.passes, readers.lookups));
        readers.stop = true;
        passes.join();
        lookups.join();
        EXPECT_EQ(readers.mixed, 0) << "passes that saw both trees, of " << readers.passes;
        EXPECT_EQ(readers.missing, 0) << "files not there, of " << readers.passes << " passes and "
                                      << readers.lookups << " lookups";
        EXPECT_GT(readers.seen_a, 0);
        EXPECT_GT(readers.seen_b, 0);
        EXPECT_EQ(mount_count(at("etc/conf")), 1);
    });
}

// Killed between its two steps, a switch to b left b beneath a; asked again for b, only a is
// taken off.
TEST_F(HostMountTest, AKilledSwitchIsSettledToTheMountBeneath)
{
    in_private_namespace([&] {
        ASSERT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        mount_beneath(at("b/conf"), at("etc/conf"));
        ASSERT_EQ(mount_count(at("etc/conf")), 2);
        ASSERT_EQ(read_text(at("etc/conf/version")), "A");
        EXPECT_EQ(switch_to(conf("b"), conf("a")), MountResult::unchanged);
        EXPECT_EQ(read_text(at("etc/conf/version")), "B");
        EXPECT_EQ(mount_count(at("etc/conf")), 1);
    });
}

// The same pile, asked for a (say, the deploy was rolled back): settled to b, then switched.
TEST_F(HostMountTest, AKilledSwitchIsSettledBeforeSwitchingBack)
{
    in_private_namespace([&] {
        ASSERT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        mount_beneath(at("b/conf"), at("etc/conf"));
        mount_beneath(at("a/conf"), at("etc/conf")); // killed twice, settled never
        ASSERT_EQ(mount_count(at("etc/conf")), 3);
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::switched);
        EXPECT_EQ(read_text(at("etc/conf/version")), "A");
        EXPECT_EQ(mount_count(at("etc/conf")), 1);
    });
}

TEST_F(HostMountTest, AForeignMountBeneathIsLeftAlone)
{
    in_private_namespace([&] {
        fs::create_directories(at("etc/conf"));
        mount_foreign(at("etc/conf"), "admin");
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        EXPECT_EQ(switch_to(conf("b"), conf("a")), MountResult::switched);
        EXPECT_EQ(read_text(at("etc/conf/version")), "B");
        EXPECT_EQ(mount_count(at("etc/conf")), 2);
        ASSERT_EQ(::umount2(at("etc/conf").c_str(), MNT_DETACH), 0);
        EXPECT_EQ(read_text(at("etc/conf/whose")), "admin");
    });
}

// Someone mounted over ours: that mount is not taken off; ours goes on top of it.
TEST_F(HostMountTest, AForeignMountOnTopIsCoveredNotRemoved)
{
    in_private_namespace([&] {
        EXPECT_EQ(switch_to(app_file("a"), app_file("b")), MountResult::mounted);
        mount_foreign(at("etc/app.conf"), "admin");
        EXPECT_EQ(switch_to(app_file("b"), app_file("a")), MountResult::mounted);
        EXPECT_EQ(read_text(at("etc/app.conf")), "file B");
        EXPECT_EQ(mount_count(at("etc/app.conf")), 3);
        ASSERT_EQ(::umount2(at("etc/app.conf").c_str(), MNT_DETACH), 0);
        EXPECT_EQ(read_text(at("etc/app.conf")), "admin");
    });
}

TEST_F(HostMountTest, RefusesASymlinkedTargetOrLink)
{
    in_private_namespace([&] {
        fs::create_directories(at("real"));
        fs::create_directory_symlink(at("real"), at("alias"));
        auto through_alias = conf("a");
        through_alias.target = at("alias/conf");
        auto refused = switch_bind_mount(through_alias, {}, std::nullopt);
        ASSERT_FALSE(refused);
        EXPECT_NE(refused.error().message.find("is a symlink"), std::string::npos)
            << refused.error().message;
        EXPECT_EQ(mount_count(at("real/conf")), 0);

        ASSERT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        fs::remove_all(at("b/conf"));
        fs::create_directory_symlink(at("a/conf"), at("b/conf"));
        refused = switch_bind_mount(conf("b"), both(conf("a"), conf("b")), std::nullopt);
        ASSERT_FALSE(refused);
        EXPECT_NE(refused.error().message.find("is a symlink"), std::string::npos)
            << refused.error().message;
        EXPECT_EQ(mount_count(at("etc/conf")), 1);
    });
}

// Services started by systemd with PrivateTmp= and the like live in namespaces that receive
// the host's mounts (slaves): they see the switch too, and one mount at the end.
TEST_F(HostMountTest, ANamespaceReceivingOurMountsSeesTheSwitch)
{
    in_private_namespace([&] {
        ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_SHARED, nullptr), 0);
        int ask[2];
        int answer[2];
        ASSERT_EQ(::pipe(ask), 0);
        ASSERT_EQ(::pipe(answer), 0);
        std::fflush(nullptr);
        const pid_t receiver = ::fork();
        if (receiver == 0) {
            ::close(ask[1]);
            if (::unshare(CLONE_NEWNS) != 0 ||
                ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
                ::_exit(1);
            }
            (void)!::write(answer[1], "r", 1);
            char c = 0;
            while (::read(ask[0], &c, 1) == 1) {
                const auto seen = read_text(at("etc/conf/version")) + " " +
                                  std::to_string(mount_count(at("etc/conf")));
                (void)!::write(answer[1], seen.data(), seen.size());
            }
            ::_exit(0);
        }
        ::close(ask[0]);
        ::close(answer[1]);
        const auto look = [&] {
            char text[16] = {};
            (void)!::write(ask[1], "?", 1);
            const auto got = ::read(answer[0], text, sizeof text);
            return std::string(text, got > 0 ? static_cast<std::size_t>(got) : 0);
        };
        char ready = 0;
        ASSERT_EQ(::read(answer[0], &ready, 1), 1);
        EXPECT_EQ(switch_to(conf("a"), conf("b")), MountResult::mounted);
        EXPECT_EQ(look(), "A 1");
        EXPECT_EQ(switch_to(conf("b"), conf("a")), MountResult::switched);
        EXPECT_EQ(look(), "B 1");
        ::close(ask[1]);
        ::waitpid(receiver, nullptr, 0);
    });
}
