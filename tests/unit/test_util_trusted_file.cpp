#include "util/trusted_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace gitopper {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kNobody = 65534;

// A root-owned 0700 directory of its own in /tmp (root's, sticky: trusted) per test.
class TrustedFileTest : public testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "needs root to make files of another owner";
        }
        std::string pattern = "/tmp/trusted-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
    }
    void TearDown() override
    {
        if (!m_dir.empty()) {
            fs::remove_all(m_dir);
        }
    }

    std::string file(const std::string& name, mode_t mode, const std::string& text = "key\n")
    {
        const auto path = m_dir / name;
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
        return path.string();
    }

    fs::path m_dir;
};

TEST_F(TrustedFileTest, ARootFileInRootsDirectoriesIsRead)
{
    const auto read = read_trusted_file(file("signers", 0644), Trust::keys);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, "key\n");
}

TEST_F(TrustedFileTest, AFileOthersCanWriteIsRefused)
{
    const auto path = file("signers", 0664);
    const auto read = read_trusted_file(path, Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message,
              path + " must be root's and writable by root alone (it is uid 0, mode 0664)");
}

TEST_F(TrustedFileTest, AFileOfAnotherUserIsRefused)
{
    const auto path = file("signers", 0644);
    ASSERT_EQ(::chown(path.c_str(), kNobody, kNobody), 0);
    const auto read = read_trusted_file(path, Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().message.find("it is uid 65534"), std::string::npos)
        << read.error().message;
}

TEST_F(TrustedFileTest, ADirectoryOthersCanWriteIsRefused)
{
    const auto path = file("signers", 0644);
    ::chmod(m_dir.c_str(), 0775);
    const auto read = read_trusted_file(path, Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, path + ": directory " + m_dir.string() +
                                        " must be root's and writable by root alone (it is uid "
                                        "0, mode 0775): whoever can write it can put another "
                                        "file in its place");
}

TEST_F(TrustedFileTest, AStickyDirectoryAllMayWriteIsFine)
{
    const auto path = file("signers", 0644);
    ::chmod(m_dir.c_str(), 01777);
    EXPECT_TRUE(read_trusted_file(path, Trust::keys));
}

// The link points at a good file, but whoever owns the directory it is in can point it
// elsewhere.
TEST_F(TrustedFileTest, ASymlinkInAnotherUsersDirectoryIsRefused)
{
    const auto target = file("signers", 0644);
    const auto theirs = m_dir / "theirs";
    fs::create_directory(theirs);
    ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
    fs::create_symlink(target, theirs / "link");
    const auto read = read_trusted_file((theirs / "link").string(), Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().message.find("directory " + theirs.string() + " must be root's"),
              std::string::npos)
        << read.error().message;
}

// Root's link, but it leads into a directory someone else can change.
TEST_F(TrustedFileTest, ASymlinkIntoAnotherUsersDirectoryIsRefused)
{
    const auto theirs = m_dir / "theirs";
    fs::create_directory(theirs);
    std::ofstream(theirs / "signers") << "key\n";
    ::chmod((theirs / "signers").c_str(), 0644);
    ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
    fs::create_symlink(theirs / "signers", m_dir / "link");
    const auto read = read_trusted_file((m_dir / "link").string(), Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().message.find("directory " + theirs.string() + " must be root's"),
              std::string::npos)
        << read.error().message;
}

TEST_F(TrustedFileTest, ASymlinkInRootsDirectoriesIsFollowed)
{
    file("signers", 0644);
    fs::create_directory(m_dir / "etc");
    fs::create_symlink("../signers", m_dir / "etc" / "link");
    const auto read = read_trusted_file((m_dir / "etc" / "link").string(), Trust::keys);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, "key\n");
}

// Anyone may add to a sticky directory (/tmp): a symlink someone else put there under the
// expected name leads nowhere, whatever it points at (here a good file of root's).
TEST_F(TrustedFileTest, AnotherUsersSymlinkInAStickyDirectoryIsRefused)
{
    const auto target = file("signers", 0644);
    ::chmod(m_dir.c_str(), 01777);
    const auto link = m_dir / "squatted";
    fs::create_symlink(target, link);
    ASSERT_EQ(::lchown(link.c_str(), kNobody, kNobody), 0);
    const auto read = read_trusted_file(link.string(), Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, link.string() + ": " + link.string() +
                                        " is in a directory others can write and is not root's "
                                        "(it is uid 65534)");
}

// A hard link to some file of root's, made in a sticky directory where the kernel's
// protected_hardlinks is off, is not root's choice of file.
TEST_F(TrustedFileTest, AHardLinkInAStickyDirectoryIsRefused)
{
    const auto target = file("signers", 0644);
    ::chmod(m_dir.c_str(), 01777);
    const auto link = m_dir / "linked";
    fs::create_hard_link(target, link);
    const auto read = read_trusted_file(link.string(), Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, link.string() + ": " + link.string() +
                                        " is in a directory others can write and has 2 links");
}

TEST_F(TrustedFileTest, ADeviceIsNotOpened)
{
    const auto read = read_trusted_file("/dev/null", Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, "/dev/null is not a regular file");
}

TEST_F(TrustedFileTest, ASecretOthersCanReadIsRefused)
{
    const auto path = file("token", 0640, "s3cret\n");
    const auto read = read_trusted_file(path, Trust::secret);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message,
              path + " holds a secret and is readable by others (mode 0640): chmod go-r");
    EXPECT_EQ(read.error().message.find("s3cret"), std::string::npos);
    ::chmod(path.c_str(), 0600);
    EXPECT_TRUE(read_trusted_file(path, Trust::secret));
}

TEST_F(TrustedFileTest, AFifoIsRefusedWithoutBlocking)
{
    const auto path = (m_dir / "fifo").string();
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
    const auto read = read_trusted_file(path, Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message, path + " is not a regular file");
}

TEST_F(TrustedFileTest, AMissingFileSaysWhere)
{
    const auto path = (m_dir / "none").string();
    const auto read = read_trusted_file(path, Trust::keys);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().message,
              "cannot read " + path + ": " + path + ": No such file or directory");
}

TEST_F(TrustedFileTest, ALargerFileThanTheLimitIsRefused)
{
    const auto path = file("big", 0644, std::string(100, 'x'));
    EXPECT_FALSE(read_trusted_file(path, Trust::keys, 99));
    EXPECT_TRUE(read_trusted_file(path, Trust::keys, 100));
}

} // namespace
} // namespace gitopper
