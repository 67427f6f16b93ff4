#include "service/patches.hpp"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

namespace fs = std::filesystem;
using Names = std::set<std::string>;

class PatchDirTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "patches-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_state = fs::canonical(pattern);
    }

    void TearDown() override { fs::remove_all(m_state); }

    // A saved patch of `size` bytes, `age` seconds old.
    static void save(const PatchDir& dir, const std::string& stem, std::size_t size, int age)
    {
        auto file = dir.create(stem);
        ASSERT_TRUE(file) << file.error().message;
        const std::string content(size, 'x');
        ASSERT_EQ(::write(file->fd(), content.data(), content.size()), ssize_t(size));
        ASSERT_TRUE(file->commit(Replace::no));
        const auto when = fs::file_time_type::clock::now() - std::chrono::seconds(age);
        fs::last_write_time(file->path(), when);
    }

    static Names names(const PatchDir& dir)
    {
        Names found;
        for (const auto& entry : fs::directory_iterator(dir.dir())) {
            found.insert(entry.path().filename().string());
        }
        return found;
    }

    fs::path m_state;
};

} // namespace

TEST_F(PatchDirTest, TheDefaultsBoundCountAndSize)
{
    EXPECT_EQ(kMaxDriftPatches, 100u);
    EXPECT_EQ(kMaxDriftPatchBytes, 256u << 20);
    const PatchDir dir(m_state.string(), "svc");
    EXPECT_EQ(dir.limits().count, kMaxDriftPatches);
    EXPECT_EQ(dir.limits().bytes, kMaxDriftPatchBytes);
    EXPECT_EQ(dir.dir(), m_state.string() + "/gitopper-drift/svc");
}

TEST_F(PatchDirTest, ANewPatchNeverReplacesAnOldOne)
{
    const PatchDir dir(m_state.string(), "svc");
    save(dir, "stem", 1, 0);
    save(dir, "stem", 1, 0);
    save(dir, "stem", 1, 0);
    EXPECT_EQ(names(dir), (Names{"stem.patch", "stem-2.patch", "stem-3.patch"}));
    EXPECT_EQ(fs::status(m_state / "gitopper-drift").permissions(), fs::perms::owner_all);
    EXPECT_EQ(fs::status(m_state / "gitopper-drift/svc/stem.patch").permissions(),
              fs::perms::owner_read | fs::perms::owner_write);
}

// 120 drift cycles against a cap of 5: the 5 newest stay, whatever their names say.
TEST_F(PatchDirTest, AtMostTheCountIsKeptTheOldestGoFirst)
{
    const PatchDir dir(m_state.string(), "svc", PatchLimits{.count = 5, .bytes = 1 << 20});
    for (int i = 0; i < 120; ++i) {
        save(dir, "z" + std::to_string(i), 10, 1000 - i); // later ones are newer
        dir.prune();
    }
    EXPECT_EQ(names(dir),
              (Names{"z115.patch", "z116.patch", "z117.patch", "z118.patch", "z119.patch"}));
}

TEST_F(PatchDirTest, AtMostTheBytesAreKept)
{
    const PatchDir dir(m_state.string(), "svc", PatchLimits{.count = 100, .bytes = 1000});
    save(dir, "old", 100, 40);
    save(dir, "older-but-big", 600, 30);
    save(dir, "mid", 300, 20);
    save(dir, "new", 400, 10);
    dir.prune();
    // new + mid = 700; older-but-big would make 1300, so it goes, and so does anything older
    // even though it would fit: the oldest go first.
    EXPECT_EQ(names(dir), (Names{"new.patch", "mid.patch"}));
}

TEST_F(PatchDirTest, TheNewestIsKeptEvenAlone)
{
    const PatchDir dir(m_state.string(), "svc", PatchLimits{.count = 1, .bytes = 10});
    save(dir, "a", 50, 20);
    save(dir, "b", 50, 10);
    dir.prune();
    EXPECT_EQ(names(dir), Names{"b.patch"});
}

TEST_F(PatchDirTest, OnlyPatchesAreDeleted)
{
    const PatchDir dir(m_state.string(), "svc", PatchLimits{.count = 1, .bytes = 1 << 20});
    save(dir, "a", 1, 20);
    save(dir, "b", 1, 10);
    std::ofstream(fs::path(dir.dir()) / "b.patch.tmp.abcdef") << "being written";
    std::ofstream(fs::path(dir.dir()) / "notes.txt") << "an operator's";
    dir.prune();
    EXPECT_EQ(names(dir), (Names{"b.patch", "b.patch.tmp.abcdef", "notes.txt"}));
}
