#include "service/drift.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

using Ids = std::set<std::size_t>;

// Checkouts in a temp dir: <root>/<service>/<links>, with as many directories as a test wants.
class DriftWatcherTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "drift-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_root = std::filesystem::canonical(pattern);
    }

    void TearDown() override { std::filesystem::remove_all(m_root); }

    // A service whose checkout holds `links`, each a directory (made here, empty).
    Service service(const std::string& name, const std::vector<std::string>& links) const
    {
        Service config;
        config.name = name;
        config.mount = m_root.string();
        for (const auto& link : links) {
            std::filesystem::create_directories(m_root / name / link);
            config.dirs.push_back(Link{.local = "/srv/unused", .path = link});
        }
        return config;
    }

    // Directories d0 … d<count-1> under `dir` of the checkout of `config`.
    void make_dirs(const Service& config, const std::string& dir, int count) const
    {
        for (int i = 0; i < count; ++i) {
            std::filesystem::create_directories(path(config, dir) / ("d" + std::to_string(i)));
        }
    }

    std::filesystem::path path(const Service& config, const std::string& relative) const
    {
        return std::filesystem::path(config.checkout_dir()) / relative;
    }

    static void edit(const std::filesystem::path& file) { std::ofstream(file) << "edited\n"; }

    std::filesystem::path m_root;
};

} // namespace

// A budget of 3: the checkout's top, the link, one directory below it.
TEST_F(DriftWatcherTest, UnderTheBudgetTheCheckoutIsWatched)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 1);
    DriftWatcher watcher(3);
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 3u);

    edit(path(app, "conf/d0/new.conf"));
    EXPECT_EQ(watcher.drain(), (Ids{0}));
}

TEST_F(DriftWatcherTest, OverTheBudgetTakesNoWatchesAndIsScanned)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 2);
    DriftWatcher watcher(3);
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);

    edit(path(app, "conf/d0/new.conf"));
    std::filesystem::remove_all(path(app, "conf/d1"));
    EXPECT_EQ(watcher.drain(), Ids{});
}

TEST_F(DriftWatcherTest, GrowingOverTheBudgetGivesBackTheWatchesItTook)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 1);
    DriftWatcher watcher(3);
    ASSERT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    ASSERT_EQ(watcher.watches(0), 3u);

    make_dirs(app, "conf", 2); // d1 is new: one too many
    EXPECT_EQ(watcher.drain(), (Ids{0}));
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);
    edit(path(app, "conf/d0/new.conf"));
    EXPECT_EQ(watcher.drain(), Ids{});
}

TEST_F(DriftWatcherTest, BackUnderTheBudgetItIsWatchedAgain)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 3);
    DriftWatcher watcher(3);
    ASSERT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);

    // A deploy removed directories.
    std::filesystem::remove_all(path(app, "conf/d1"));
    std::filesystem::remove_all(path(app, "conf/d2"));
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 3u);
    edit(path(app, "conf/d0/new.conf"));
    EXPECT_EQ(watcher.drain(), (Ids{0}));
}

TEST_F(DriftWatcherTest, TheBudgetCountsEveryLinkOfTheCheckout)
{
    // Top, two links, one directory below the first: 4 watches, none too many for either link.
    const auto app = service("app", {"conf", "data"});
    make_dirs(app, "conf", 1);
    DriftWatcher watcher(3);
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);

    // A file link costs its directory and itself.
    auto single = service("single", {});
    std::filesystem::create_directories(path(single, "etc"));
    edit(path(single, "etc/single.conf"));
    single.dirs.push_back(Link{.local = "/srv/unused", .path = "etc/single.conf", .file = true});
    EXPECT_EQ(watcher.watch(1, single, single.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(1), 3u);
    single.dirs.push_back(Link{.local = "/srv/unused2", .path = "other.conf", .file = true});
    edit(path(single, "other.conf")); // its directory is the top, already counted
    EXPECT_EQ(watcher.watch(1, single, single.checkout_dir()), WatchMode::scan);
}

TEST_F(DriftWatcherTest, EachCheckoutHasABudgetOfItsOwn)
{
    const auto big = service("big", {"conf"});
    make_dirs(big, "conf", 5);
    const auto small = service("small", {"conf"});
    make_dirs(small, "conf", 1);
    DriftWatcher watcher(3);
    EXPECT_EQ(watcher.watch(0, big, big.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watch(1, small, small.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 0u);
    EXPECT_EQ(watcher.watches(1), 3u);

    edit(path(big, "conf/d0/new.conf"));
    edit(path(small, "conf/d0/new.conf"));
    EXPECT_EQ(watcher.drain(), (Ids{1}));
}

TEST_F(DriftWatcherTest, TheDefaultBudgetFitsOrdinaryCheckouts)
{
    EXPECT_EQ(kDefaultWatchBudget, 4096u);
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 100);
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 102u);
}

// The service user swaps its link for a symlink to a tree of the user's choosing (standing in
// for /usr): root neither walks nor watches it, and leaves the checkout to the scan.
TEST_F(DriftWatcherTest, ALinkThatIsASymlinkIsNeitherWalkedNorWatched)
{
    auto app = service("app", {"conf"});
    std::filesystem::create_directories(m_root / "victim");
    for (int i = 0; i < 50; ++i) {
        std::filesystem::create_directories(m_root / "victim" / ("d" + std::to_string(i)));
    }
    std::filesystem::remove_all(path(app, "conf"));
    std::filesystem::create_directory_symlink(m_root / "victim", path(app, "conf"));
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);
    edit(m_root / "victim" / "d7" / "x.conf");
    EXPECT_EQ(watcher.drain(), Ids{});

    // Back to a directory (the revert): watched again, the victim still not.
    std::filesystem::remove(path(app, "conf"));
    std::filesystem::create_directory(path(app, "conf"));
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 2u);
    edit(m_root / "victim" / "d8" / "x.conf");
    EXPECT_EQ(watcher.drain(), Ids{});
}

TEST_F(DriftWatcherTest, SymlinksBelowALinkAreNotFollowed)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 1);
    std::filesystem::create_directories(m_root / "victim" / "a" / "b");
    std::filesystem::create_directory_symlink(m_root / "victim", path(app, "conf/d0/elsewhere"));
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 3u); // top, conf, conf/d0
    edit(m_root / "victim" / "a" / "x.conf");
    EXPECT_EQ(watcher.drain(), Ids{});
}

TEST_F(DriftWatcherTest, ACheckoutThatIsASymlinkIsNotWatched)
{
    const auto app = service("app", {"conf"});
    std::filesystem::rename(m_root / "app", m_root / "real");
    std::filesystem::create_directory_symlink(m_root / "real", m_root / "app");
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);
}

TEST_F(DriftWatcherTest, AFileLinkThatIsASymlinkIsNotWatched)
{
    auto single = service("single", {});
    edit(m_root / "victim.conf");
    std::filesystem::create_directories(path(single, "etc"));
    std::filesystem::create_symlink(m_root / "victim.conf", path(single, "etc/single.conf"));
    single.dirs.push_back(Link{.local = "/srv/unused", .path = "etc/single.conf", .file = true});
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, single, single.checkout_dir()), WatchMode::scan);
    edit(m_root / "victim.conf");
    EXPECT_EQ(watcher.drain(), Ids{});
}

// A watch is on the inode the walk opened: a directory moved out of the checkout takes its
// watch along, and rewatching gives that watch back.
TEST_F(DriftWatcherTest, ADirectoryMovedAwayIsNoLongerWatched)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 1);
    DriftWatcher watcher;
    ASSERT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    std::filesystem::rename(path(app, "conf"), m_root / "moved");
    std::filesystem::create_directory(path(app, "conf"));
    (void)watcher.drain();
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    EXPECT_EQ(watcher.watches(0), 2u);
    edit(m_root / "moved" / "d0" / "x.conf");
    EXPECT_EQ(watcher.drain(), Ids{});
}

// Each level of the walk holds a descriptor: a tree nested deeper than 64 is scanned.
TEST_F(DriftWatcherTest, ATreeNestedTooDeepIsScanned)
{
    const auto app = service("app", {"conf"});
    std::string deep = "conf";
    for (int i = 0; i < 64; ++i) {
        deep += "/d";
    }
    std::filesystem::create_directories(path(app, deep));
    DriftWatcher watcher;
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::inotify);
    std::filesystem::create_directory(path(app, deep + "/d"));
    EXPECT_EQ(watcher.watch(0, app, app.checkout_dir()), WatchMode::scan);
    EXPECT_EQ(watcher.watches(0), 0u);
}

namespace {

bool write_text(const char* path, const std::string& text)
{
    std::ofstream file(path);
    file << text;
    file.close();
    return static_cast<bool>(file);
}

// Runs `body` in a child process of its own user namespace, as its root, which may lower the
// inotify limits there (and only there); returns the child's exit status, 77 when the kernel
// allows no such namespace.
int in_user_namespace(const std::function<int()>& body)
{
    const auto uid = std::to_string(::getuid()); // unmapped, it reads 65534 once inside
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::unshare(CLONE_NEWUSER) != 0 || !write_text("/proc/self/uid_map", "0 " + uid + " 1")) {
            ::_exit(77);
        }
        ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

// A file system mounted inside a link (a user's FUSE tree, say) is not entered: the checkout
// is scanned, by git as the user.
TEST_F(DriftWatcherTest, AMountInsideALinkIsNotEntered)
{
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to mount";
    }
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 1);
    const pid_t pid = ::fork();
    if (pid == 0) {
        // Our own mount namespace, so the tmpfs is gone with the child.
        if (::unshare(CLONE_NEWNS) != 0 ||
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", path(app, "conf/d0").c_str(), "tmpfs", 0, nullptr) != 0) {
            ::_exit(77);
        }
        std::filesystem::create_directories(path(app, "conf/d0/x/y"));
        DriftWatcher watcher;
        ::_exit(watcher.watch(0, app, app.checkout_dir()) == WatchMode::scan &&
                        watcher.watches(0) == 0
                    ? 0
                    : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        GTEST_SKIP() << "no mount namespace here";
    }
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the mount was walked";
}

// The host's limit (fs.inotify.max_user_watches) reached half way: the watches taken are
// given back and the checkout is scanned, as when over its own budget.
TEST_F(DriftWatcherTest, NoWatchesLeftOnTheHostFallsBackToScanning)
{
    const auto app = service("app", {"conf"});
    make_dirs(app, "conf", 3);
    const int status = in_user_namespace([&] {
        if (!write_text("/proc/sys/user/max_inotify_watches", "2")) {
            return 77;
        }
        DriftWatcher watcher(100);
        if (watcher.watch(0, app, app.checkout_dir()) != WatchMode::scan) {
            return 1;
        }
        if (watcher.watches(0) != 0) {
            return 2;
        }
        // Room again (here: a checkout that needs only what the host has left).
        std::filesystem::remove_all(path(app, "conf"));
        return watcher.watch(0, app, app.checkout_dir()) == WatchMode::inotify &&
                       watcher.watches(0) == 1
                   ? 0
                   : 3;
    });
    if (status == 77) {
        GTEST_SKIP() << "no user namespace with its own inotify limit here";
    }
    EXPECT_EQ(status, 0) << "1: not scanned, 2: watches kept, 3: not watched again";
}
