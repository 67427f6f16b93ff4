#include "service/store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

class StateStoreTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "store-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
        m_path = (m_dir / "state.json").string();
    }

    void TearDown() override { std::filesystem::remove_all(m_dir); }

    void write(const std::string& content) const
    {
        std::ofstream file(m_path, std::ios::binary);
        file << content;
        file.close();
        ASSERT_TRUE(file);
    }

    std::string content() const
    {
        std::ifstream file(m_path, std::ios::binary);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

    std::filesystem::path m_dir;
    std::string m_path;
};

HistoryEntry entry(std::int64_t time, std::string from, std::string to, std::string trigger,
                   std::string result)
{
    return {time, std::move(from), std::move(to), std::move(trigger), std::move(result)};
}

SavedService sample()
{
    SavedService saved;
    saved.frozen = true;
    saved.pin = "0123456789abcdef0123456789abcdef01234567";
    saved.info = "ROLLBACK: 0123456789abcdef0123456789abcdef01234567";
    saved.applied = "89abcdef0123456789abcdef0123456789abcdef";
    saved.history.push_back(entry(1700000000, "", "aaaa", "start", "ok"));
    saved.history.push_back(
        entry(1700000060, "aaaa", "bbbb", "poll", "git fetch: exited 128: fatal: \"quoted\"\n"));
    return saved;
}

void expect_same(const SavedService& actual, const SavedService& expected)
{
    EXPECT_EQ(actual.frozen, expected.frozen);
    EXPECT_EQ(actual.pin, expected.pin);
    EXPECT_EQ(actual.info, expected.info);
    EXPECT_EQ(actual.applied, expected.applied);
    ASSERT_EQ(actual.history.size(), expected.history.size());
    for (std::size_t i = 0; i < expected.history.size(); ++i) {
        EXPECT_EQ(actual.history[i].time, expected.history[i].time) << i;
        EXPECT_EQ(actual.history[i].from, expected.history[i].from) << i;
        EXPECT_EQ(actual.history[i].to, expected.history[i].to) << i;
        EXPECT_EQ(actual.history[i].trigger, expected.history[i].trigger) << i;
        EXPECT_EQ(actual.history[i].result, expected.history[i].result) << i;
    }
}

// A valid file with one service "web" holding `entries` history entries, times 0, 1, ….
std::string file_with_history(std::size_t entries)
{
    std::string history;
    for (std::size_t i = 0; i < entries; ++i) {
        history += (i == 0 ? "" : ",") + std::string(R"({"time": )") + std::to_string(i) +
                   R"(, "from": "a", "to": "b", "trigger": "poll", "result": "ok"})";
    }
    return R"({"version": 1, "services": {"web": {"frozen": false, "pin": "", "info": "", )"
           R"("history": [)" +
           history + "]}}}\n";
}

struct Stamp {
    ino_t inode = 0;
    timespec mtime{};
};

Stamp stamp_of(const std::string& path)
{
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0);
    return {info.st_ino, info.st_mtim};
}

} // namespace

TEST_F(StateStoreTest, SaveThenLoadRoundTrips)
{
    const auto web = sample();
    SavedService db;
    db.history.push_back(entry(42, "cccc", "dddd", "webhook", "ok"));
    {
        StateStore store(m_path);
        ASSERT_TRUE(store.load({"web", "db"}).empty());
        ASSERT_TRUE(store.save("web", web));
        ASSERT_TRUE(store.save("db", db));
    }

    StateStore fresh(m_path);
    const auto loaded = fresh.load({"web", "db"});
    ASSERT_EQ(loaded.size(), 2u);
    ASSERT_TRUE(loaded.contains("web"));
    ASSERT_TRUE(loaded.contains("db"));
    expect_same(loaded.at("web"), web);
    expect_same(loaded.at("db"), db);
}

TEST_F(StateStoreTest, TextThatIsNotUtf8IsSavedReplaced)
{
    SavedService saved;
    saved.info = "fatal: \xff\xfe bad";
    saved.history.push_back(entry(42, "cccc", "dddd", "poll", "git fetch: caf\xc3")); // cut é
    StateStore store(m_path);
    ASSERT_TRUE(store.save("web", saved));
    const auto loaded = StateStore(m_path).load({"web"});
    ASSERT_TRUE(loaded.contains("web"));
    EXPECT_EQ(loaded.at("web").info, "fatal: \xef\xbf\xbd\xef\xbf\xbd bad"); // U+FFFD twice
    EXPECT_EQ(loaded.at("web").history.at(0).result, "git fetch: caf\xef\xbf\xbd");
}

TEST_F(StateStoreTest, SavingOneServiceKeepsTheOthers)
{
    write(file_with_history(3));
    StateStore store(m_path);
    ASSERT_EQ(store.load({"web", "db"}).size(), 1u);
    ASSERT_TRUE(store.save("db", sample()));

    const auto loaded = StateStore(m_path).load({"web", "db"});
    ASSERT_EQ(loaded.size(), 2u);
    EXPECT_EQ(loaded.at("web").history.size(), 3u);
    expect_same(loaded.at("db"), sample());
}

TEST_F(StateStoreTest, FileIsPrivateAndVersioned)
{
    StateStore store(m_path);
    ASSERT_TRUE(store.save("web", sample()));

    struct stat info {};
    ASSERT_EQ(::stat(m_path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0600u);

    const auto text = content();
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.front(), '{');
    EXPECT_EQ(text.back(), '\n');
    EXPECT_NE(text.find("\"version\": 1"), std::string::npos) << text;
    EXPECT_NE(text.find("\"services\""), std::string::npos) << text;
}

TEST_F(StateStoreTest, MissingFileIsAnEmptyState)
{
    StateStore store((m_dir / "nothing-here.json").string());
    EXPECT_TRUE(store.load({"web"}).empty());
    EXPECT_FALSE(std::filesystem::exists(m_dir / "nothing-here.json"));
}

TEST_F(StateStoreTest, TruncatedFileIsAnEmptyState)
{
    {
        StateStore store(m_path);
        ASSERT_TRUE(store.save("web", sample()));
    }
    const auto full = content();
    write(full.substr(0, full.size() / 2));

    StateStore store(m_path);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store.load({"web"}));
    EXPECT_TRUE(loaded.empty());

    // Nothing lost: the damaged file is kept aside, not overwritten by the next save.
    int kept = 0;
    for (const auto& entry : std::filesystem::directory_iterator(m_dir)) {
        kept += entry.path().filename().string().find(".unreadable-") != std::string::npos;
    }
    EXPECT_EQ(kept, 1);
    EXPECT_FALSE(std::filesystem::exists(m_path));
}

TEST_F(StateStoreTest, GarbageIsAnEmptyState)
{
    write(std::string("\x00\xff\xfe garbage \x80{[\"", 16));
    StateStore store(m_path);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store.load({"web"}));
    EXPECT_TRUE(loaded.empty());
}

TEST_F(StateStoreTest, JsonOfTheWrongShapeIsAnEmptyState)
{
    for (const std::string text : {
             R"([1, 2, 3])",
             R"("just a string")",
             R"({"version": "1", "services": {}})",
             R"({"version": 1, "services": {"web": []}})",
             R"({"version": 1, "services": {"web": {"frozen": "yes"}}})",
             R"({"version": 1, "services": {"web": {"history": [{"time": "noon"}]}}})",
         }) {
        write(text);
        StateStore store(m_path);
        std::map<std::string, SavedService> loaded;
        EXPECT_NO_THROW(loaded = store.load({"web"})) << text;
        EXPECT_TRUE(loaded.empty()) << text;
    }
}

TEST_F(StateStoreTest, NewerVersionIsAnEmptyState)
{
    auto text = file_with_history(1);
    text.replace(text.find("\"version\": 1"), 12, "\"version\": 99");
    write(text);
    StateStore store(m_path);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store.load({"web"}));
    EXPECT_TRUE(loaded.empty());
}

TEST_F(StateStoreTest, MissingServicesIsAnEmptyState)
{
    write(R"({"version": 1})");
    StateStore store(m_path);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store.load({"web"}));
    EXPECT_TRUE(loaded.empty());
}

TEST_F(StateStoreTest, ValidFileWithoutVersionIsAnEmptyState)
{
    write(R"({"services": {"web": {"frozen": true}}})");
    EXPECT_TRUE(StateStore(m_path).load({"web"}).empty());
}

TEST_F(StateStoreTest, UnknownServicesAreSkipped)
{
    {
        StateStore store(m_path);
        ASSERT_TRUE(store.save("web", sample()));
        ASSERT_TRUE(store.save("gone", sample()));
    }
    const auto loaded = StateStore(m_path).load({"web", "db"});
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_TRUE(loaded.contains("web"));
    EXPECT_FALSE(loaded.contains("gone"));
}

TEST_F(StateStoreTest, MissingFieldsTakeDefaults)
{
    write(R"({"version": 1, "services": {"web": {}}})");
    const auto loaded = StateStore(m_path).load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    expect_same(loaded.at("web"), SavedService{});
}

TEST_F(StateStoreTest, LongHistoryIsTrimmedToTheNewest)
{
    write(file_with_history(kHistoryLimit + 50));
    const auto loaded = StateStore(m_path).load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    const auto& history = loaded.at("web").history;
    ASSERT_EQ(history.size(), kHistoryLimit);
    EXPECT_EQ(history.front().time, 50);
    EXPECT_EQ(history.back().time, static_cast<std::int64_t>(kHistoryLimit + 49));
}

TEST_F(StateStoreTest, HistoryAtTheLimitIsKept)
{
    write(file_with_history(kHistoryLimit));
    const auto loaded = StateStore(m_path).load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded.at("web").history.size(), kHistoryLimit);
    EXPECT_EQ(loaded.at("web").history.front().time, 0);
}

TEST_F(StateStoreTest, SavingTheSameContentDoesNotRewrite)
{
    StateStore store(m_path);
    ASSERT_TRUE(store.save("web", sample()));
    const auto before = stamp_of(m_path);

    ASSERT_TRUE(store.save("web", sample()));
    const auto after = stamp_of(m_path);
    EXPECT_EQ(after.inode, before.inode);
    EXPECT_EQ(after.mtime.tv_sec, before.mtime.tv_sec);
    EXPECT_EQ(after.mtime.tv_nsec, before.mtime.tv_nsec);

    // A real change does rewrite, through a new file: the check above means something.
    auto changed = sample();
    changed.frozen = false;
    ASSERT_TRUE(store.save("web", changed));
    EXPECT_NE(stamp_of(m_path).inode, before.inode);
    EXPECT_FALSE(StateStore(m_path).load({"web"}).at("web").frozen);
}

TEST_F(StateStoreTest, SaveFailureIsReported)
{
    StateStore store((m_dir / "missing-dir" / "state.json").string());
    const auto result = store.save("web", sample());
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("missing-dir"), std::string::npos)
        << result.error().message;
}
