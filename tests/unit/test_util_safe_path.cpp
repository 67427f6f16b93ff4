#include "util/safe_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

using namespace gitopper;
namespace fs = std::filesystem;

namespace {

class SafePathTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "safe-path-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
        ::chmod(m_dir.c_str(), 0755);
        fs::create_directories(m_dir / "tree/sub");
        std::ofstream(m_dir / "tree/sub/file") << "content";
        fs::create_directories(m_dir / "outside");
        std::ofstream(m_dir / "outside/secret") << "secret";
        m_tree = Fd(::open((m_dir / "tree").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(m_tree);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    std::string at(const std::string& name) const { return (m_dir / name).string(); }

    fs::path m_dir;
    Fd m_tree;
};

} // namespace

TEST_F(SafePathTest, OpensRealPathsBeneath)
{
    EXPECT_TRUE(open_beneath(m_tree.get(), "sub/file", O_RDONLY));
    EXPECT_TRUE(open_beneath(m_tree.get(), "./sub//file", O_RDONLY));
    EXPECT_TRUE(open_beneath(m_tree.get(), "", O_PATH)); // the directory itself
}

TEST_F(SafePathTest, RefusesASymlinkAsTheLastComponentAndNamesIt)
{
    fs::create_symlink(at("outside/secret"), at("tree/sub/link"));
    auto fd = open_beneath(m_tree.get(), "sub/link", O_RDONLY);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().message, "\"sub/link\" is a symlink");
}

TEST_F(SafePathTest, RefusesASymlinkOnTheWayEvenARelativeOneThatStaysInside)
{
    fs::create_directory_symlink("sub", at("tree/alias"));
    auto fd = open_beneath(m_tree.get(), "alias/file", O_RDONLY);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().message, "\"alias\" is a symlink");
}

TEST_F(SafePathTest, NeverLeavesTheDirectory)
{
    auto fd = open_beneath(m_tree.get(), "../outside/secret", O_RDONLY);
    ASSERT_FALSE(fd);
    EXPECT_NE(fd.error().message.find("leaves its directory"), std::string::npos)
        << fd.error().message;
}

TEST_F(SafePathTest, MissingIsNulloptOnlyWithFind)
{
    auto found = find_beneath(m_tree.get(), "sub/none", O_PATH);
    ASSERT_TRUE(found);
    EXPECT_FALSE(*found);
    fs::create_symlink("/nonexistent", at("tree/dangling"));
    EXPECT_FALSE(find_beneath(m_tree.get(), "dangling", O_PATH)); // an error, not "missing"
    EXPECT_FALSE(open_beneath(m_tree.get(), "sub/none", O_PATH));
}

TEST_F(SafePathTest, AbsolutePathsFollowNoSymlinkAndNoMagicLink)
{
    EXPECT_TRUE(open_no_symlinks(at("tree/sub/file"), O_RDONLY));
    fs::create_directory_symlink(at("outside"), at("tree/out"));
    auto fd = open_no_symlinks(at("tree/out/secret"), O_RDONLY);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().message, "\"" + at("tree/out") + "\" is a symlink");
    // /proc/self/root is a magic link: refused too.
    EXPECT_FALSE(open_no_symlinks("/proc/self/root" + at("tree/sub/file"), O_RDONLY));
}

TEST_F(SafePathTest, MakesMissingDirectoriesButNotThroughASymlink)
{
    auto made = make_dirs_no_symlinks(at("tree/new/deeper"));
    ASSERT_TRUE(made) << made.error().message;
    EXPECT_TRUE(fs::is_directory(at("tree/new/deeper")));
    EXPECT_EQ(fs::status(at("tree/new")).permissions() & fs::perms::all,
              fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                  fs::perms::others_read | fs::perms::others_exec);
    fs::create_directory_symlink(at("outside"), at("tree/out"));
    auto refused = make_dirs_no_symlinks(at("tree/out/x"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "\"" + at("tree/out") + "\" is a symlink");
    EXPECT_FALSE(fs::exists(at("outside/x")));
}

TEST_F(SafePathTest, ReadsWithABoundAndOnlyRegularFiles)
{
    auto text = read_beneath(m_tree.get(), "sub/file", 100);
    ASSERT_TRUE(text) << text.error().message;
    EXPECT_EQ(*text, "content");
    EXPECT_FALSE(read_beneath(m_tree.get(), "sub/file", 3)); // larger than the bound
    ASSERT_EQ(::mkfifo(at("tree/fifo").c_str(), 0600), 0);
    auto fifo = read_beneath(m_tree.get(), "fifo", 100); // must not wait for a writer
    ASSERT_FALSE(fifo);
    EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
    fs::create_symlink("/dev/zero", at("tree/zero"));
    EXPECT_FALSE(read_beneath(m_tree.get(), "zero", 100));
    EXPECT_FALSE(read_beneath(m_tree.get(), "sub", 100)); // a directory
}

TEST_F(SafePathTest, ReadsUpToTheBoundExactly)
{
    EXPECT_EQ(read_beneath(m_tree.get(), "sub/file", 7).value_or("<error>"), "content");
    EXPECT_FALSE(read_beneath(m_tree.get(), "sub/file", 6));
    // A regular file longer than fstat says (procfs says 0): read whole, within the bound.
    Fd proc(::open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(proc);
    const auto status = read_beneath(proc.get(), "status", 1 << 20);
    ASSERT_TRUE(status) << status.error().message;
    EXPECT_TRUE(status->starts_with("Name:")) << *status;
    EXPECT_NE(status->find("\nPid:"), std::string::npos);
    EXPECT_FALSE(read_beneath(proc.get(), "status", 10));
}

TEST_F(SafePathTest, TrustsOnlyOurOwnClosedDirectoriesOrStickyOnes)
{
    const auto check = [&](mode_t mode) {
        ::chmod(at("tree").c_str(), mode);
        return check_trusted_dir(m_tree.get(), "dir");
    };
    EXPECT_EQ(check(0755).value_or(DirTrust::sticky), DirTrust::private_dir);
    EXPECT_EQ(check(0700).value_or(DirTrust::sticky), DirTrust::private_dir);
    EXPECT_EQ(check(01777).value_or(DirTrust::private_dir), DirTrust::sticky);
    auto group = check(0775);
    ASSERT_FALSE(group);
    EXPECT_EQ(group.error().message,
              "dir has mode 0775: group or others may write to it (chmod go-w)");
    EXPECT_FALSE(check(0777));  // writable by all, not sticky
    EXPECT_FALSE(check(01775)); // sticky, but only group-writable: not /tmp-like
    if (::geteuid() == 0) {
        ::chmod(at("tree").c_str(), 0755);
        ASSERT_EQ(::chown(at("tree").c_str(), 65534, 65534), 0);
        auto foreign = check_trusted_dir(m_tree.get(), "dir");
        ASSERT_FALSE(foreign);
        EXPECT_NE(foreign.error().message.find("belongs to uid 65534"), std::string::npos);
    }
}

// What std::filesystem::exists answers, without its exceptions and without following links.
TEST_F(SafePathTest, ExistsTellsWhatIsThereWithoutFollowingOrThrowing)
{
    EXPECT_EQ(exists_no_symlinks(at("tree/sub/file")), true);
    EXPECT_EQ(exists_no_symlinks(at("tree/sub")), true);
    EXPECT_EQ(exists_no_symlinks(at("tree/missing")), false);
    EXPECT_EQ(exists_no_symlinks(at("no/such/dir")), false);
    EXPECT_EQ(exists_no_symlinks(at("tree/sub/file/below")), false) << "a file on the way";
    fs::create_symlink(m_dir / "nowhere", m_dir / "tree/dangling");
    EXPECT_EQ(exists_no_symlinks(at("tree/dangling")), true) << "the link itself is there";
    fs::create_directory_symlink(m_dir / "outside", m_dir / "tree/detour");
    const auto through = exists_no_symlinks(at("tree/detour/secret"));
    ASSERT_FALSE(through);
    EXPECT_NE(through.error().message.find("is a symlink"), std::string::npos)
        << through.error().message;
    // A name longer than NAME_MAX: std::filesystem::exists throws filesystem_error here.
    const auto long_name = at("tree/" + std::string(300, 'x'));
    EXPECT_THROW((void)fs::exists(long_name), fs::filesystem_error);
    const auto too_long = exists_no_symlinks(long_name);
    ASSERT_FALSE(too_long);
    EXPECT_NE(too_long.error().message.find("too long"), std::string::npos)
        << too_long.error().message;
}
