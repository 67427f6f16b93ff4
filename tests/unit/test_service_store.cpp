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

namespace fs = std::filesystem;

class StateStoreTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "store-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
        m_services = m_dir / "gitopper-state";
        m_old = (m_dir / "gitopper-state.json").string();
    }

    void TearDown() override { fs::remove_all(m_dir); }

    StateStore store() const { return StateStore(m_dir.string()); }
    std::string file_of(const std::string& service) const
    {
        return (m_services / state_file_name(service)).string();
    }

    // Writes `content` to `path`, making gitopper-state/ first (as the store would, 0700).
    void write(const std::string& path, const std::string& content) const
    {
        fs::create_directories(m_services);
        fs::permissions(m_services, fs::perms::owner_all);
        std::ofstream file(path, std::ios::binary);
        file << content;
        file.close();
        ASSERT_TRUE(file);
    }

    std::set<std::string> entries(const fs::path& dir) const
    {
        std::set<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir)) {
            names.insert(entry.path().filename().string());
        }
        return names;
    }

    fs::path m_dir;      // the state dir
    fs::path m_services; // its gitopper-state/
    std::string m_old;   // the single file of earlier versions
};

std::string content(const std::string& path)
{
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

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

SavedService with_pin(const std::string& pin)
{
    SavedService saved;
    saved.frozen = true;
    saved.pin = pin;
    saved.history.push_back(entry(7, "", pin, "rollback", "ok"));
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

// `entries` history entries, times 0, 1, …, as JSON.
std::string history_of(std::size_t entries)
{
    std::string history;
    for (std::size_t i = 0; i < entries; ++i) {
        history += (i == 0 ? "" : ",") + std::string(R"({"time": )") + std::to_string(i) +
                   R"(, "from": "a", "to": "b", "trigger": "poll", "result": "ok"})";
    }
    return "[" + history + "]";
}

// A valid file of the service "web" holding `entries` history entries.
std::string file_with_history(std::size_t entries)
{
    return R"({"version": 1, "service": "web", "frozen": false, "pin": "", "info": "", )"
           R"("history": )" +
           history_of(entries) + "}\n";
}

// The single file of earlier versions: {"version": 1, "services": {name: entry, ...}}.
std::string old_file(const std::map<std::string, std::string>& services)
{
    std::string text = R"({"version": 1, "services": {)";
    for (const auto& [name, object] : services) {
        text += (text.back() == '{' ? "\"" : ", \"") + name + "\": " + object;
    }
    return text + "}}\n";
}

struct Stamp {
    ino_t inode = 0;
    timespec mtime{};

    bool operator==(const Stamp& other) const
    {
        return inode == other.inode && mtime.tv_sec == other.mtime.tv_sec &&
               mtime.tv_nsec == other.mtime.tv_nsec;
    }
};

Stamp stamp_of(const std::string& path)
{
    struct stat info {};
    EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
    return {info.st_ino, info.st_mtim};
}

mode_t mode_of(const fs::path& path)
{
    struct stat info {};
    EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
}

std::size_t count_with(const std::set<std::string>& names, const std::string& part)
{
    return static_cast<std::size_t>(std::count_if(names.begin(), names.end(), [&](const auto& n) {
        return n.find(part) != std::string::npos;
    }));
}

} // namespace

TEST_F(StateStoreTest, SaveThenLoadRoundTrips)
{
    const auto web = sample();
    SavedService db;
    db.history.push_back(entry(42, "cccc", "dddd", "webhook", "ok"));
    {
        auto first = store();
        ASSERT_TRUE(first.load({"web", "db"}).empty());
        ASSERT_TRUE(first.save("web", web));
        ASSERT_TRUE(first.save("db", db));
    }

    const auto loaded = store().load({"web", "db"});
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
    ASSERT_TRUE(store().save("web", saved));
    const auto loaded = store().load({"web"});
    ASSERT_TRUE(loaded.contains("web"));
    EXPECT_EQ(loaded.at("web").info, "fatal: \xef\xbf\xbd\xef\xbf\xbd bad"); // U+FFFD twice
    EXPECT_EQ(loaded.at("web").history.at(0).result, "git fetch: caf\xef\xbf\xbd");
}

TEST_F(StateStoreTest, EachServiceHasAPrivateVersionedFileOfItsOwn)
{
    auto first = store();
    ASSERT_TRUE(first.save("web", sample()));
    ASSERT_TRUE(first.save("db", SavedService{}));
    EXPECT_EQ(first.dir(), m_services.string());
    EXPECT_EQ(entries(m_dir), (std::set<std::string>{"gitopper-state"}));
    EXPECT_EQ(entries(m_services), (std::set<std::string>{"web.json", "db.json"}));
    EXPECT_EQ(mode_of(m_services), 0700u);
    EXPECT_EQ(mode_of(file_of("web")), 0600u);
    EXPECT_EQ(mode_of(file_of("db")), 0600u);

    const auto text = content(file_of("web"));
    EXPECT_TRUE(text.starts_with("{\n \"version\": 1,\n \"service\": \"web\",\n")) << text;
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(content(file_of("db")).find("web"), std::string::npos);
}

TEST_F(StateStoreTest, AnOpenServicesDirIsMadePrivate)
{
    fs::create_directories(m_services);
    fs::permissions(m_services, fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    ASSERT_TRUE(store().save("web", sample()));
    EXPECT_EQ(mode_of(m_services), 0700u);
}

TEST_F(StateStoreTest, SavingOneServiceTouchesOnlyItsOwnFile)
{
    auto first = store();
    for (const auto* name : {"web", "db", "app"}) {
        ASSERT_TRUE(first.save(name, sample()));
    }
    const auto web = stamp_of(file_of("web"));
    const auto db = stamp_of(file_of("db"));
    const auto app = stamp_of(file_of("app"));
    const auto db_text = content(file_of("db"));

    auto changed = sample();
    changed.history.push_back(entry(1700000120, "bbbb", "cccc", "poll", "ok"));
    ASSERT_TRUE(first.save("web", changed));
    EXPECT_FALSE(stamp_of(file_of("web")) == web); // the check below means something
    EXPECT_TRUE(stamp_of(file_of("db")) == db);
    EXPECT_TRUE(stamp_of(file_of("app")) == app);
    EXPECT_EQ(content(file_of("db")), db_text);
    EXPECT_EQ(entries(m_services), (std::set<std::string>{"web.json", "db.json", "app.json"}));

    const auto loaded = store().load({"web", "db", "app"});
    ASSERT_EQ(loaded.size(), 3u);
    expect_same(loaded.at("web"), changed);
    expect_same(loaded.at("db"), sample());
}

TEST_F(StateStoreTest, AThousandServicesThenOneSaveWritesOneFile)
{
    std::set<std::string> names;
    for (int i = 0; i < 1000; ++i) {
        const auto name = "svc-" + std::to_string(i) + "@instance.service";
        names.insert(name);
        write(file_of(name), "{\"version\": 1, \"service\": \"" + name +
                                 "\", \"history\": " + history_of(10) + "}\n");
    }
    auto loaded_store = store();
    auto loaded = loaded_store.load(names);
    ASSERT_EQ(loaded.size(), 1000u);
    std::map<std::string, Stamp> before;
    for (const auto& name : names) {
        before[name] = stamp_of(file_of(name));
    }

    const std::string changed = "svc-500@instance.service";
    loaded[changed].history.push_back(entry(1000, "b", "c", "poll", "ok"));
    ASSERT_TRUE(loaded_store.save(changed, loaded[changed]));

    std::size_t rewritten = 0;
    for (const auto& name : names) {
        rewritten += !(stamp_of(file_of(name)) == before[name]);
    }
    EXPECT_EQ(rewritten, 1u);
    EXPECT_FALSE(stamp_of(file_of(changed)) == before[changed]);
    EXPECT_EQ(entries(m_services).size(), 1000u);
    const auto reloaded = store().load(names);
    ASSERT_EQ(reloaded.size(), 1000u);
    ASSERT_EQ(reloaded.at(changed).history.size(), 11u);
    EXPECT_EQ(reloaded.at(changed).history.back().time, 1000);
}

TEST_F(StateStoreTest, MissingFileIsAnEmptyState)
{
    EXPECT_TRUE(store().load({"web"}).empty());
    EXPECT_TRUE(entries(m_services).empty());
}

TEST_F(StateStoreTest, ACorruptFileCostsOnlyThatService)
{
    {
        auto first = store();
        ASSERT_TRUE(first.save("web", sample()));
        ASSERT_TRUE(first.save("db", with_pin("dddd")));
    }
    const auto full = content(file_of("web"));
    write(file_of("web"), full.substr(0, full.size() / 2));

    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store().load({"web", "db"}));
    ASSERT_EQ(loaded.size(), 1u);
    expect_same(loaded.at("db"), with_pin("dddd"));

    // Nothing lost: the damaged file is kept aside, not overwritten by the next save.
    const auto names = entries(m_services);
    EXPECT_EQ(count_with(names, "web.json.unreadable-"), 1u);
    EXPECT_FALSE(names.contains("web.json"));
    EXPECT_TRUE(names.contains("db.json"));
}

TEST_F(StateStoreTest, GarbageIsAnEmptyState)
{
    write(file_of("web"), std::string("\x00\xff\xfe garbage \x80{[\"", 16));
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store().load({"web"}));
    EXPECT_TRUE(loaded.empty());
}

TEST_F(StateStoreTest, JsonOfTheWrongShapeIsAnEmptyState)
{
    for (const std::string text : {
             R"([1, 2, 3])",
             R"("just a string")",
             R"({"version": "1", "service": "web"})",
             R"({"version": 1, "service": "web", "frozen": "yes"})",
             R"({"version": 1, "service": "web", "history": [{"time": "noon"}]})",
             R"({"version": 1, "service": "web", "history": {"a": 1}})",
             R"({"version": 1, "service": 5})",
             R"({"version": 1})",
             R"({"service": "web", "frozen": true})",
         }) {
        write(file_of("web"), text);
        std::map<std::string, SavedService> loaded;
        EXPECT_NO_THROW(loaded = store().load({"web"})) << text;
        EXPECT_TRUE(loaded.empty()) << text;
    }
}

TEST_F(StateStoreTest, NewerVersionIsAnEmptyStateAndKeptAside)
{
    auto text = file_with_history(1);
    text.replace(text.find("\"version\": 1"), 12, "\"version\": 99");
    write(file_of("web"), text);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store().load({"web"}));
    EXPECT_TRUE(loaded.empty());
    EXPECT_EQ(count_with(entries(m_services), "web.json.unreadable-"), 1u);
}

TEST_F(StateStoreTest, AFileHoldingAnotherServiceIsNotTaken)
{
    ASSERT_TRUE(store().save("db", with_pin("dddd")));
    fs::copy_file(file_of("db"), file_of("web"));
    const auto loaded = store().load({"web", "db"});
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_TRUE(loaded.contains("db"));
}

TEST_F(StateStoreTest, FilesOfUnknownServicesAreSkippedAndLeft)
{
    {
        auto first = store();
        ASSERT_TRUE(first.save("web", sample()));
        ASSERT_TRUE(first.save("gone", sample()));
    }
    const auto gone = content(file_of("gone"));
    const auto loaded = store().load({"web", "db"});
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_TRUE(loaded.contains("web"));
    EXPECT_EQ(content(file_of("gone")), gone);
}

TEST_F(StateStoreTest, TempFilesOfAnUnfinishedWriteAreRemoved)
{
    ASSERT_TRUE(store().save("web", sample()));
    write((m_services / "web.json.tmp.AbC123").string(), "{\"half");
    write((m_services / "notes.txt").string(), "the operator's");
    write((m_services / "web.json.unreadable-1700000000").string(), "kept");
    EXPECT_EQ(store().load({"web"}).size(), 1u);
    EXPECT_EQ(entries(m_services),
              (std::set<std::string>{"web.json", "notes.txt", "web.json.unreadable-1700000000"}));
}

TEST_F(StateStoreTest, MissingFieldsTakeDefaults)
{
    write(file_of("web"), R"({"version": 1, "service": "web"})");
    const auto loaded = store().load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    expect_same(loaded.at("web"), SavedService{});
}

TEST_F(StateStoreTest, LongHistoryIsTrimmedToTheNewest)
{
    write(file_of("web"), file_with_history(kHistoryLimit + 50));
    const auto loaded = store().load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    const auto& history = loaded.at("web").history;
    ASSERT_EQ(history.size(), kHistoryLimit);
    EXPECT_EQ(history.front().time, 50);
    EXPECT_EQ(history.back().time, static_cast<std::int64_t>(kHistoryLimit + 49));
}

TEST_F(StateStoreTest, HistoryAtTheLimitIsKept)
{
    write(file_of("web"), file_with_history(kHistoryLimit));
    const auto loaded = store().load({"web"});
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded.at("web").history.size(), kHistoryLimit);
    EXPECT_EQ(loaded.at("web").history.front().time, 0);
}

TEST_F(StateStoreTest, SavedHistoryIsBounded)
{
    SavedService saved;
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(kHistoryLimit) + 30; ++i) {
        saved.history.push_back(entry(i, "a", "b", "poll", "ok"));
    }
    ASSERT_TRUE(store().save("web", saved));
    const auto text = content(file_of("web"));
    std::size_t entries = 0;
    for (auto at = text.find("\"trigger\""); at != std::string::npos;
         at = text.find("\"trigger\"", at + 1)) {
        ++entries;
    }
    EXPECT_EQ(entries, kHistoryLimit);
    EXPECT_EQ(store().load({"web"}).at("web").history.front().time, 30);
}

TEST_F(StateStoreTest, SavingTheSameContentDoesNotRewrite)
{
    auto first = store();
    ASSERT_TRUE(first.save("web", sample()));
    const auto before = stamp_of(file_of("web"));

    ASSERT_TRUE(first.save("web", sample()));
    EXPECT_TRUE(stamp_of(file_of("web")) == before);

    // Nor after a restart: what was loaded is what the file holds.
    auto second = store();
    const auto loaded = second.load({"web"});
    ASSERT_TRUE(second.save("web", loaded.at("web")));
    EXPECT_TRUE(stamp_of(file_of("web")) == before);

    // A real change does rewrite, through a new file: the checks above mean something.
    auto changed = sample();
    changed.frozen = false;
    ASSERT_TRUE(second.save("web", changed));
    EXPECT_NE(stamp_of(file_of("web")).inode, before.inode);
    EXPECT_FALSE(store().load({"web"}).at("web").frozen);
}

TEST_F(StateStoreTest, SaveFailureIsReported)
{
    StateStore missing((m_dir / "missing-dir").string());
    const auto result = missing.save("web", sample());
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("missing-dir"), std::string::npos)
        << result.error().message;
}

TEST_F(StateStoreTest, UnsafeServiceNamesMapToSafeFileNames)
{
    const std::map<std::string, std::string> expected{
        {"web", "web.json"},
        {"getty@tty1.service", "getty@tty1.service.json"},
        {"mnt-data\\x2dold.mount", "mnt-data%5Cx2dold.mount.json"},
        {"a:b_c", "a:b_c.json"},
        {"a/b", "a%2Fb.json"},
        {"a%2Fb", "a%252Fb.json"},
        {".", "%2E.json"},
        {"..", "%2E..json"},
        {"../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd.json"},
        {".hidden", "%2Ehidden.json"},
        {"-rf", "%2Drf.json"},
        {"a-.b", "a-.b.json"},
        {"x y\n\x7f\xc3\xa9", "x%20y%0A%7F%C3%A9.json"},
        {"", "%.json"},
    };
    std::set<std::string> files;
    for (const auto& [service, file] : expected) {
        EXPECT_EQ(state_file_name(service), file) << service;
        files.insert(state_file_name(service));
    }
    EXPECT_EQ(files.size(), expected.size()); // distinct names, distinct files
}

TEST_F(StateStoreTest, LongServiceNamesFitWithTheirSuffixes)
{
    const std::string longest(255, 'a');
    const std::string backslashes(255, '\\');
    std::set<std::string> files;
    for (const auto& name : {longest, longest.substr(1), backslashes, backslashes.substr(1),
                             std::string(195, 'a'), std::string(66, '\\') + "x"}) {
        const auto file = state_file_name(name);
        EXPECT_LE(file.size() + std::string(".unreadable-1700000000-99").size(), 255u) << file;
        EXPECT_EQ(file.find('/'), std::string::npos);
        files.insert(file);
    }
    EXPECT_EQ(files.size(), 6u);
    EXPECT_EQ(state_file_name(std::string(195, 'a')), std::string(195, 'a') + ".json");
    EXPECT_NE(state_file_name(longest).find('+'), std::string::npos);

    // Such a service's state comes back like any other.
    ASSERT_TRUE(store().save(backslashes, with_pin("eeee")));
    expect_same(store().load({backslashes}).at(backslashes), with_pin("eeee"));
}

TEST_F(StateStoreTest, AnUnsafeNameStaysInsideTheServicesDir)
{
    const std::string name = "../../escape/x";
    ASSERT_TRUE(store().save(name, with_pin("ffff")));
    EXPECT_EQ(entries(m_dir), (std::set<std::string>{"gitopper-state"}));
    EXPECT_EQ(entries(m_services), (std::set<std::string>{state_file_name(name)}));
    expect_same(store().load({name}).at(name), with_pin("ffff"));
}

TEST_F(StateStoreTest, TheOldSingleFileIsTakenOverAndKept)
{
    const auto old = old_file({
        {"web", R"({"frozen": true, "pin": "aaaa", "info": "ROLLBACK: aaaa", "applied": "bbbb", )"
                R"("history": [{"time": 5, "from": "", "to": "aaaa", "trigger": "rollback", )"
                R"("result": "ok"}]})"},
        {"db", R"({"history": )" + history_of(3) + "}"},
        {"gone", R"({"pin": "cccc"})"},
    });
    std::ofstream(m_old) << old;

    const auto loaded = store().load({"web", "db"});
    ASSERT_EQ(loaded.size(), 2u);
    SavedService web;
    web.frozen = true;
    web.pin = "aaaa";
    web.info = "ROLLBACK: aaaa";
    web.applied = "bbbb";
    web.history.push_back(entry(5, "", "aaaa", "rollback", "ok"));
    expect_same(loaded.at("web"), web);
    EXPECT_EQ(loaded.at("db").history.size(), 3u);

    // Each in its own file, the gone service's too (left there, skipped); the old file renamed
    // as it was.
    EXPECT_EQ(entries(m_services), (std::set<std::string>{"web.json", "db.json", "gone.json"}));
    EXPECT_EQ(entries(m_dir),
              (std::set<std::string>{"gitopper-state", "gitopper-state.json.migrated"}));
    EXPECT_EQ(content(m_old + ".migrated"), old);

    // The next start reads the services' own files.
    const auto again = store().load({"web", "db", "gone"});
    ASSERT_EQ(again.size(), 3u);
    expect_same(again.at("web"), web);
    EXPECT_EQ(again.at("gone").pin, "cccc");
}

TEST_F(StateStoreTest, AServicesOwnFileWinsOverTheOldFile)
{
    ASSERT_TRUE(store().save("web", with_pin("newer")));
    const auto before = stamp_of(file_of("web"));
    std::ofstream(m_old) << old_file({{"web", R"({"pin": "older"})"}, {"db", R"({"pin": "d"})"}});

    const auto loaded = store().load({"web", "db"});
    EXPECT_EQ(loaded.at("web").pin, "newer");
    EXPECT_EQ(loaded.at("db").pin, "d");
    EXPECT_TRUE(stamp_of(file_of("web")) == before);
    EXPECT_TRUE(fs::exists(m_old + ".migrated"));
}

TEST_F(StateStoreTest, AnEarlierMigratedFileIsNeverReplaced)
{
    std::ofstream(m_old + ".migrated") << "earlier";
    std::ofstream(m_old) << old_file({{"web", R"({"pin": "aaaa"})"}});
    EXPECT_EQ(store().load({"web"}).at("web").pin, "aaaa");
    EXPECT_EQ(content(m_old + ".migrated"), "earlier");
    EXPECT_EQ(content(m_old + ".migrated-2"), old_file({{"web", R"({"pin": "aaaa"})"}}));
    EXPECT_FALSE(fs::exists(m_old));
}

TEST_F(StateStoreTest, ADamagedOldFileIsKeptAside)
{
    const auto old = old_file({{"web", R"({"pin": "aaaa"})"}});
    std::ofstream(m_old) << old.substr(0, old.size() / 2);
    std::map<std::string, SavedService> loaded;
    EXPECT_NO_THROW(loaded = store().load({"web"}));
    EXPECT_TRUE(loaded.empty());
    const auto names = entries(m_dir);
    EXPECT_EQ(count_with(names, "gitopper-state.json.unreadable-"), 1u);
    EXPECT_FALSE(names.contains("gitopper-state.json"));
    EXPECT_FALSE(names.contains("gitopper-state.json.migrated"));
}

TEST_F(StateStoreTest, AnOldFileOfANewerVersionIsNotTaken)
{
    std::ofstream(m_old) << R"({"version": 2, "services": {"web": {"pin": "aaaa"}}})";
    EXPECT_TRUE(store().load({"web"}).empty());
    EXPECT_TRUE(entries(m_services).empty());
    EXPECT_EQ(count_with(entries(m_dir), "gitopper-state.json.unreadable-"), 1u);
}

// Attack: someone who could plant symlinks there makes root read or write elsewhere.
TEST_F(StateStoreTest, ASymlinkedServicesDirIsRefused)
{
    fs::create_directory(m_dir / "elsewhere");
    fs::create_directory_symlink(m_dir / "elsewhere", m_services);
    EXPECT_TRUE(store().load({"web"}).empty());
    const auto saved = store().save("web", sample());
    ASSERT_FALSE(saved);
    EXPECT_NE(saved.error().message.find("is a symlink"), std::string::npos)
        << saved.error().message;
    EXPECT_TRUE(entries(m_dir / "elsewhere").empty());
}

TEST_F(StateStoreTest, ASymlinkedServiceFileIsNeitherReadNorWrittenThrough)
{
    ASSERT_TRUE(store().save("db", with_pin("dddd")));
    const auto target = (m_dir / "target.json").string();
    std::ofstream(target) << R"({"version": 1, "service": "web", "pin": "planted"})";
    fs::create_symlink(target, file_of("web"));

    auto second = store();
    const auto loaded = second.load({"web", "db"});
    EXPECT_FALSE(loaded.contains("web"));
    ASSERT_TRUE(second.save("web", with_pin("wwww")));
    EXPECT_EQ(content(target), R"({"version": 1, "service": "web", "pin": "planted"})");
    EXPECT_FALSE(fs::is_symlink(file_of("web")));
    EXPECT_EQ(store().load({"web"}).at("web").pin, "wwww");
}
