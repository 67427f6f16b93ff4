#include "util/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "util/fd.hpp"

using namespace gitopper;

namespace {

class AtomicFileTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "atomic-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
    }

    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::string path_of(const std::string& name) const { return (m_dir / name).string(); }

    std::set<std::string> entries() const
    {
        std::set<std::string> names;
        for (const auto& entry : std::filesystem::directory_iterator(m_dir)) {
            names.insert(entry.path().filename().string());
        }
        return names;
    }

    std::filesystem::path m_dir;
};

mode_t mode_of(const std::string& path)
{
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0);
    return info.st_mode & 07777;
}

} // namespace

TEST_F(AtomicFileTest, CreatesWithTheGivenMode)
{
    const auto path = path_of("state");
    ASSERT_TRUE(write_file_atomic(path, "hello\n", 0600));
    EXPECT_EQ(mode_of(path), 0600u);
    EXPECT_EQ(read_file(path).value_or("<error>"), "hello\n");

    const auto other = path_of("public");
    ASSERT_TRUE(write_file_atomic(other, "x"));
    EXPECT_EQ(mode_of(other), 0644u);
}

TEST_F(AtomicFileTest, ReplacesExistingContentAndMode)
{
    const auto path = path_of("state");
    ASSERT_TRUE(write_file_atomic(path, "a much longer old content\n", 0644));
    ASSERT_TRUE(write_file_atomic(path, "new\n", 0640));
    EXPECT_EQ(read_file(path).value_or("<error>"), "new\n");
    EXPECT_EQ(mode_of(path), 0640u);
}

TEST_F(AtomicFileTest, WritesEmptyAndLargeFiles)
{
    const auto path = path_of("big");
    std::string big(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>(i % 251);
    }
    ASSERT_TRUE(write_file_atomic(path, big));
    EXPECT_EQ(read_file(path).value_or("<error>"), big);
    ASSERT_TRUE(write_file_atomic(path, ""));
    EXPECT_EQ(read_file(path).value_or("<error>"), "");
}

TEST_F(AtomicFileTest, LeavesNoTempFilesBehind)
{
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(write_file_atomic(path_of("state"), std::to_string(i)));
    }
    EXPECT_EQ(entries(), (std::set<std::string>{"state"}));
}

TEST_F(AtomicFileTest, RemovesTheTempFileWhenTheRenameFails)
{
    // A directory in the way: the temp file is written, the rename fails.
    std::filesystem::create_directory(m_dir / "target");
    const auto result = write_file_atomic(path_of("target"), "x");
    ASSERT_FALSE(result);
    EXPECT_TRUE(result.error().message.starts_with("cannot write " + path_of("target") + ": "))
        << result.error().message;
    EXPECT_EQ(entries(), (std::set<std::string>{"target"}));
}

TEST_F(AtomicFileTest, FailsClearlyInAMissingDirectory)
{
    const auto path = path_of("missing/state");
    const auto result = write_file_atomic(path, "x");
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message,
              "cannot write " + path + ": creating temporary file: No such file or directory");
}

TEST_F(AtomicFileTest, ReadingAMissingFileNamesIt)
{
    const auto path = path_of("absent");
    const auto result = read_file(path);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "cannot read " + path + ": No such file or directory");
}

TEST_F(AtomicFileTest, WorksWithARelativePath)
{
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(m_dir);
    const auto written = write_file_atomic("relative", "r");
    const auto content = read_file("relative");
    std::filesystem::current_path(cwd);
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(content.value_or("<error>"), "r");
}

TEST_F(AtomicFileTest, AFileFilledThroughItsDescriptorAppearsOnlyOnCommit)
{
    const auto path = path_of("drift.patch");
    auto file = AtomicFile::create(path, 0600);
    ASSERT_TRUE(file) << file.error().message;
    struct stat info {};
    ASSERT_EQ(::fstat(file->fd(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0600u); // from the start, not only once complete
    ASSERT_EQ(::write(file->fd(), "whole\n", 6), 6);
    EXPECT_FALSE(std::filesystem::exists(path));
    ASSERT_EQ(entries().size(), 1u);
    EXPECT_TRUE(entries().begin()->starts_with("drift.patch.tmp.")) << *entries().begin();

    const auto committed = file->commit(Replace::no);
    ASSERT_TRUE(committed) << committed.error().message;
    EXPECT_EQ(read_file(path).value_or("<error>"), "whole\n");
    EXPECT_EQ(mode_of(path), 0600u);
    EXPECT_EQ(entries(), (std::set<std::string>{"drift.patch"}));
}

TEST_F(AtomicFileTest, AFileNeverCommittedLeavesNothing)
{
    {
        auto file = AtomicFile::create(path_of("drift.patch"), 0600);
        ASSERT_TRUE(file) << file.error().message;
        ASSERT_EQ(::write(file->fd(), "half", 4), 4);
    }
    EXPECT_EQ(entries(), (std::set<std::string>{}));
}

TEST_F(AtomicFileTest, ACommitThatMustNotReplaceKeepsTheOldFile)
{
    const auto path = path_of("drift.patch");
    ASSERT_TRUE(write_file_atomic(path, "earlier\n", 0600));
    {
        auto file = AtomicFile::create(path, 0600);
        ASSERT_TRUE(file) << file.error().message;
        ASSERT_EQ(::write(file->fd(), "later\n", 6), 6);
        const auto committed = file->commit(Replace::no);
        ASSERT_FALSE(committed);
        EXPECT_NE(committed.error().message.find("File exists"), std::string::npos)
            << committed.error().message;
    }
    EXPECT_EQ(read_file(path).value_or("<error>"), "earlier\n");
    EXPECT_EQ(entries(), (std::set<std::string>{"drift.patch"}));
}

TEST_F(AtomicFileTest, CreatingInAMissingDirectoryNamesIt)
{
    const auto path = path_of("missing/drift.patch");
    const auto file = AtomicFile::create(path, 0600);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().message,
              "cannot write " + path + ": creating temporary file: No such file or directory");
}

TEST_F(AtomicFileTest, WritingBeneathADescriptorNeverLooksUpThePathAgain)
{
    std::filesystem::create_directory(m_dir / "dir");
    Fd dir(::open(path_of("dir").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    // The path now leads elsewhere: the file still goes into the directory that was opened.
    std::filesystem::rename(m_dir / "dir", m_dir / "moved");
    std::filesystem::create_directory(m_dir / "dir");
    const auto written =
        write_file_atomic_at(dir.get(), "state", "through the fd\n", 0600, path_of("dir/state"));
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(read_file(path_of("moved/state")).value_or("<error>"), "through the fd\n");
    EXPECT_EQ(mode_of(path_of("moved/state")), 0600u);
    EXPECT_FALSE(std::filesystem::exists(m_dir / "dir" / "state"));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(m_dir / "moved"), {}), 1);
}

// A directory held by an O_PATH descriptor (as open_no_symlinks hands them out) cannot be
// fsync'ed itself: the write must still succeed and be made durable.
TEST_F(AtomicFileTest, WritingBeneathAnOPathDescriptorSucceeds)
{
    Fd dir(::open(m_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    const auto written = write_file_atomic_at(dir.get(), "key", "k\n", 0600, path_of("key"));
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(read_file(path_of("key")).value_or("<error>"), "k\n");
}

TEST_F(AtomicFileTest, ASymlinkAtTheNameIsReplacedNotFollowed)
{
    ASSERT_TRUE(write_file_atomic(path_of("victim"), "untouched\n", 0644));
    std::filesystem::create_symlink(path_of("victim"), m_dir / "state");
    Fd dir(::open(m_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    ASSERT_TRUE(write_file_atomic_at(dir.get(), "state", "new\n", 0600, path_of("state")));
    EXPECT_EQ(read_file(path_of("victim")).value_or("<error>"), "untouched\n");
    EXPECT_FALSE(std::filesystem::is_symlink(m_dir / "state"));
    EXPECT_EQ(read_file(path_of("state")).value_or("<error>"), "new\n");
}

TEST_F(AtomicFileTest, WritingBeneathADescriptorNamesTheShownPath)
{
    std::filesystem::create_directory(m_dir / "target"); // in the way of the rename
    Fd dir(::open(m_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    const auto result = write_file_atomic_at(dir.get(), "target", "x", 0600, "/shown/target");
    ASSERT_FALSE(result);
    EXPECT_TRUE(result.error().message.starts_with("cannot write /shown/target: renaming "))
        << result.error().message;
    EXPECT_EQ(entries(), (std::set<std::string>{"target"}));
}
