#include "git/git.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "git_fixture.hpp"
#include "util/fd.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

using namespace gitopper;

namespace {

// The commit `rev` names in `git`'s repository, "<none>" or "<error: ...>" otherwise.
std::string resolved(const Git& git, const std::string& rev)
{
    const auto found = git.find_commit(rev);
    return !found ? "<error: " + found.error().message + ">" : found->value_or("<none>");
}

} // namespace
using namespace std::chrono_literals;

namespace {

using Paths = std::set<std::string>;

Link dir_link(std::string path)
{
    return Link{.local = "/srv/unused", .path = std::move(path), .file = false};
}

Link file_link(std::string path)
{
    return Link{.local = "/srv/unused", .path = std::move(path), .file = true};
}

Paths as_set(const std::vector<std::string>& paths)
{
    return {paths.begin(), paths.end()};
}

// A real upstream repository (served over file:// so that partial clones work) and an empty
// work tree for the Git under test, in a temp dir of their own.
class GitTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "git-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_root = std::filesystem::canonical(pattern);
        m_upstream = m_root / "upstream";
        m_work = m_root / "work";
        std::filesystem::create_directory(m_upstream);
        std::filesystem::create_directory(m_work);
        m_url = "file://" + m_upstream.string();

        upstream_git({"init", "--quiet", "-b", "main"});
        upstream_git({"config", "uploadpack.allowFilter", "true"});
        m_first = commit({{"README", "top level\n"},
                          {"a/b/one.txt", "one\n"},
                          {"a/b/sub/two.txt", "two\n"},
                          {"a/x", "x\n"},
                          {"a/bc/x", "bc\n"},
                          {"a/b.txt", "b.txt\n"},
                          {"c/file.txt", "file\n"},
                          {"c/other", "other\n"},
                          {"d*/f", "star\n"},
                          {"dx/f", "dx\n"}},
                         "first");
    }

    void TearDown() override { std::filesystem::remove_all(m_root); }

    std::string git_in(const std::filesystem::path& dir, std::vector<std::string> args) const
    {
        return test_support::fixture_git(dir, std::move(args));
    }

    std::string upstream_git(std::vector<std::string> args) const
    {
        return git_in(m_upstream, std::move(args));
    }

    // Writes (or, with `removed`, deletes) files upstream and commits; returns the new head.
    std::string commit(const std::map<std::string, std::string>& files, const std::string& message,
                       const std::vector<std::string>& removed = {}) const
    {
        for (const auto& [path, content] : files) {
            write(m_upstream / path, content);
        }
        for (const auto& path : removed) {
            std::filesystem::remove(m_upstream / path);
        }
        upstream_git({"add", "--all"});
        upstream_git({"commit", "--quiet", "-m", message});
        return upstream_git({"rev-parse", "HEAD"});
    }

    static void write(const std::filesystem::path& path, const std::string& content)
    {
        std::filesystem::create_directories(path.parent_path());
        std::ofstream file(path, std::ios::binary);
        file << content;
        file.close();
        ASSERT_TRUE(file) << path;
    }

    static std::string read(const std::filesystem::path& path)
    {
        std::ifstream file(path, std::ios::binary);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

    // Every file in the work tree, relative to it, .git left out.
    Paths work_files() const
    {
        Paths files;
        for (auto entry = std::filesystem::recursive_directory_iterator(m_work);
             entry != std::filesystem::recursive_directory_iterator(); ++entry) {
            if (entry->path().filename() == ".git") {
                entry.disable_recursion_pending();
                continue;
            }
            if (!entry->is_directory()) {
                files.insert(std::filesystem::relative(entry->path(), m_work).string());
            }
        }
        return files;
    }

    // An empty file for take_local_changes to write its patch to: m_root/drift.patch.
    Fd patch_file() const
    {
        Fd fd(
            ::open((m_root / "drift.patch").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        EXPECT_TRUE(fd.valid());
        return fd;
    }

    // The edits of the LeavesEverything tests, as they were made, and nothing staged.
    void expect_untouched(const Git& git) const
    {
        EXPECT_EQ(read(m_work / "a/b/one.txt"), "edited\n");
        EXPECT_EQ(read(m_work / "a/b/new.txt"), "new\n");
        EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/sub/two.txt"));
        EXPECT_EQ(git_in(m_work, {"diff", "--cached", "--name-only"}), "");
        const auto changes = git.local_changes();
        ASSERT_TRUE(changes) << changes.error().message;
        EXPECT_EQ(as_set(changes->listed),
                  (Paths{"a/b/one.txt", "a/b/new.txt", "a/b/sub/two.txt"}));
    }

    Git work_git() const { return Git(m_work.string(), std::nullopt, 60s); }

    // A sparse partial clone of upstream's main in the work tree, holding only `links`, as
    // gitopper before object stores (and the Go tool) left them: what migration takes over.
    Git cloned(const std::vector<Link>& links) const
    {
        git_in(m_root, {"clone", "--quiet", "--filter=blob:none", "--no-checkout", "--branch",
                        "main", m_url, m_work.string()});
        std::vector<std::string> sparse{"sparse-checkout", "set", "--no-cone"};
        for (const auto& link : links) {
            sparse.push_back("/" + link.path + (link.file ? "" : "/"));
        }
        git_in(m_work, std::move(sparse));
        git_in(m_work, {"checkout", "--quiet", "--detach", "origin/main"});
        return work_git();
    }

    std::filesystem::path m_root;
    std::filesystem::path m_upstream;
    std::filesystem::path m_work;
    std::string m_url;
    std::string m_first;
};

} // namespace

TEST(GitHashTest, AcceptsFourToFortyHexDigits)
{
    EXPECT_TRUE(is_commit_hash("abcd"));
    EXPECT_TRUE(is_commit_hash("0123456789"));
    EXPECT_TRUE(is_commit_hash("DEADBEEF"));
    EXPECT_TRUE(is_commit_hash(std::string(40, 'f')));
    EXPECT_TRUE(is_commit_hash("0123456789abcdef0123456789ABCDEF01234567"));
}

TEST(GitHashTest, RejectsEverythingElse)
{
    EXPECT_FALSE(is_commit_hash(""));
    EXPECT_FALSE(is_commit_hash("abc"));
    EXPECT_FALSE(is_commit_hash(std::string(41, 'a')));
    EXPECT_FALSE(is_commit_hash("xyz1"));
    EXPECT_FALSE(is_commit_hash("-abc"));
    EXPECT_FALSE(is_commit_hash("abcd "));
    EXPECT_FALSE(is_commit_hash("HEAD"));
    EXPECT_FALSE(is_commit_hash("abcg"));
}

TEST_F(GitTest, RemoteHeadsAreTheBranchHeads)
{
    const auto heads = work_git().remote_heads(m_url, {"main"});
    ASSERT_TRUE(heads) << heads.error().message;
    EXPECT_EQ(*heads, (std::map<std::string, std::string>{{"main", m_first}}));
    EXPECT_TRUE(is_commit_hash(heads->at("main")));

    const auto second = commit({{"a/b/one.txt", "changed\n"}}, "second");
    upstream_git({"branch", "dev", m_first});
    const auto both = work_git().remote_heads(m_url, {"main", "dev"});
    ASSERT_TRUE(both) << both.error().message;
    EXPECT_EQ(*both, (std::map<std::string, std::string>{{"main", second}, {"dev", m_first}}));
}

TEST_F(GitTest, RemoteHeadsLeaveOutAMissingBranch)
{
    const auto heads = work_git().remote_heads(m_url, {"no-such-branch", "main"});
    ASSERT_TRUE(heads) << heads.error().message;
    EXPECT_EQ(*heads, (std::map<std::string, std::string>{{"main", m_first}}));
}

TEST_F(GitTest, RemoteHeadsMatchTheWholeRefName)
{
    // ls-remote patterns match the tail of a ref: these branches also end in
    // "refs/heads/main" and "refs/heads/dev", and sort before refs/heads/main.
    upstream_git({"branch", "a/refs/heads/dev"});
    commit({{"a/b/one.txt", "moved on\n"}}, "second");
    upstream_git({"branch", "a/refs/heads/main", m_first});
    const auto main_head = upstream_git({"rev-parse", "main"});

    const auto heads = work_git().remote_heads(m_url, {"main", "dev"});
    ASSERT_TRUE(heads) << heads.error().message;
    EXPECT_EQ(*heads, (std::map<std::string, std::string>{{"main", main_head}}));
}

TEST_F(GitTest, RemoteHeadsOfAnUnreachableUpstreamFail)
{
    const auto heads = work_git().remote_heads("file://" + (m_root / "nowhere").string(), {"main"});
    ASSERT_FALSE(heads);
    EXPECT_NE(heads.error().message.find("ls-remote"), std::string::npos) << heads.error().message;
}

TEST_F(GitTest, GlobCharactersInLinksMeanOnlyThemselves)
{
    const auto git = cloned({dir_link("a/b")});
    const auto second = commit({{"dx/f", "dx changed\n"}}, "dx");
    const auto third = commit({{"d*/f", "star changed\n"}}, "star");
    ASSERT_TRUE(git.fetch("main"));
    const std::vector<Link> links{dir_link("d*")};
    EXPECT_EQ(git.changed_fetching(m_first, second, links).value_or(std::vector<std::string>{"?"}),
              std::vector<std::string>{});
    EXPECT_EQ(git.changed_fetching(second, third, links).value_or(std::vector<std::string>{}),
              std::vector<std::string>{"d*/f"});
}

TEST_F(GitTest, ChangedFetchingUsesExactPathPrefixes)
{
    const auto git = cloned({dir_link("a/b")});
    const auto neighbours =
        commit({{"a/bc/x", "bc changed\n"}, {"a/b.txt", "b.txt changed\n"}}, "neighbours of a/b");
    const auto inside = commit({{"a/b/x", "new\n"}}, "inside a/b");
    ASSERT_TRUE(git.fetch("main"));

    const std::vector<Link> links{dir_link("a/b")};
    const auto none = git.changed_fetching(m_first, neighbours, links);
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_EQ(*none, std::vector<std::string>{});

    const auto some = git.changed_fetching(neighbours, inside, links);
    ASSERT_TRUE(some) << some.error().message;
    EXPECT_EQ(*some, std::vector<std::string>{"a/b/x"});

    const auto both = git.changed_fetching(m_first, inside, links);
    ASSERT_TRUE(both) << both.error().message;
    EXPECT_EQ(*both, std::vector<std::string>{"a/b/x"});

    // Without links nothing can have changed.
    EXPECT_EQ(git.changed_fetching(m_first, inside, {}).value_or(std::vector<std::string>{"?"}),
              std::vector<std::string>{});
}

TEST_F(GitTest, ChangedFetchingOfAFileLinkAndDeletions)
{
    const auto git = cloned({file_link("c/file.txt"), dir_link("a/b")});
    const auto next =
        commit({{"c/file.txt", "changed\n"}, {"c/other", "changed\n"}}, "c", {"a/b/sub/two.txt"});
    ASSERT_TRUE(git.fetch("main"));
    const std::vector<Link> links{file_link("c/file.txt"), dir_link("a/b")};
    const auto paths = git.changed_fetching(m_first, next, links);
    ASSERT_TRUE(paths) << paths.error().message;
    EXPECT_EQ(as_set(*paths), (Paths{"a/b/sub/two.txt", "c/file.txt"}));
}

TEST_F(GitTest, ChangedFetchingReportsLongAndUnusualNamesInFull)
{
    const auto git = cloned({dir_link("a/b")});
    const std::string long_path =
        "a/b/" + std::string(60, 'd') + "/" + std::string(60, 'f') + " with spaces \xc3\xa9.txt";
    ASSERT_GT(long_path.size(), 100u);
    const auto next = commit({{long_path, "long\n"}}, "long");
    ASSERT_TRUE(git.fetch("main"));
    const std::vector<Link> links{dir_link("a/b")};
    const auto paths = git.changed_fetching(m_first, next, links);
    ASSERT_TRUE(paths) << paths.error().message;
    EXPECT_EQ(*paths, std::vector<std::string>{long_path});
}

TEST_F(GitTest, ChangedFetchingBetweenUnknownCommitsFails)
{
    const auto git = cloned({dir_link("a/b")});
    const std::vector<Link> links{dir_link("a/b")};
    EXPECT_FALSE(git.changed_fetching(m_first, std::string(40, 'e'), links));
}

TEST_F(GitTest, FetchFollowsAForcePush)
{
    const auto git = cloned({dir_link("a/b")});
    const auto second = commit({{"a/b/one.txt", "second\n"}}, "second");
    ASSERT_TRUE(git.fetch("main"));
    EXPECT_EQ(resolved(git, "origin/main"), second);

    // Upstream rewrites history: "second" is gone, "rewritten" replaces it.
    upstream_git({"reset", "--quiet", "--hard", "HEAD~1"});
    const auto rewritten = commit({{"a/b/one.txt", "rewritten\n"}}, "rewritten");
    ASSERT_NE(rewritten, second);
    EXPECT_EQ(resolved(git, "origin/main"), second);

    const auto fetched = git.fetch("main");
    ASSERT_TRUE(fetched) << fetched.error().message;
    EXPECT_EQ(resolved(git, rewritten), rewritten);
    EXPECT_EQ(resolved(git, "origin/main"), rewritten);
}

TEST_F(GitTest, FetchOfAMissingBranchFails)
{
    const auto git = cloned({dir_link("a/b")});
    const auto result = git.fetch("no-such-branch");
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("fetch"), std::string::npos) << result.error().message;
}

TEST_F(GitTest, FindCommitExpandsAbbreviatedHashes)
{
    const auto git = cloned({dir_link("a/b")});
    EXPECT_EQ(resolved(git, m_first.substr(0, 7)), m_first);
    EXPECT_EQ(resolved(git, m_first), m_first);
}

TEST_F(GitTest, FindCommitOfAnUnknownOrOptionLikeCommitIsNone)
{
    const auto git = cloned({dir_link("a/b")});
    EXPECT_EQ(git.find_commit("deadbeef").value_or("<error>"), std::nullopt);
    EXPECT_EQ(git.find_commit(std::string(40, 'e')).value_or("<error>"), std::nullopt);
    EXPECT_EQ(git.find_commit("--all").value_or("<error>"), std::nullopt);
}

// "There is no such commit" and "git could not tell" are different answers: only the first
// may lead anyone to give up on a tree.
TEST_F(GitTest, FindCommitTellsNotFoundFromAFailure)
{
    const auto git = cloned({dir_link("a/b")});
    const auto missing = git.find_commit("deadbeef");
    ASSERT_TRUE(missing) << missing.error().message;
    EXPECT_FALSE(*missing);
    EXPECT_EQ(git.find_commit(m_first).value_or(std::nullopt).value_or("<none>"), m_first);
    // A tree whose .git leads nowhere: git cannot tell, which is not "no such commit".
    std::filesystem::create_directory(m_root / "broken");
    write(m_root / "broken/.git", "gitdir: /nonexistent\n");
    const Git broken_git((m_root / "broken").string(), std::nullopt, 60s);
    const auto broken = broken_git.find_commit("HEAD");
    ASSERT_FALSE(broken);
    EXPECT_TRUE(broken.error().message.starts_with("git rev-parse: exited 128"))
        << broken.error().message;
    EXPECT_FALSE(broken_git.checked_out());
}

TEST_F(GitTest, AnEmptyDirectoryIsNoRepository)
{
    EXPECT_EQ(work_git().is_repository().value_or(true), false);
}

// A git that could not tell is no answer: migration would move a good checkout aside on it.
TEST_F(GitTest, IsRepositoryTellsNoFromAFailure)
{
    const auto git = cloned({dir_link("a/b")});
    EXPECT_EQ(git.is_repository().value_or(false), true);
    // A git that takes longer than it may (not a real git on 1 ms: that one may answer).
    const auto slow = m_work.parent_path() / "slow-bin";
    std::filesystem::create_directories(slow);
    write(slow / "git", "#!/bin/sh\nexec sleep 10\n");
    std::filesystem::permissions(slow / "git", std::filesystem::perms::owner_all);
    const std::string path = std::getenv("PATH");
    ::setenv("PATH", (slow.string() + ":" + path).c_str(), 1);
    const Git hurried(m_work.string(), std::nullopt, 200ms);
    const auto unsure = hurried.is_repository();
    ::setenv("PATH", path.c_str(), 1);
    ASSERT_FALSE(unsure) << "answered " << *unsure;
    EXPECT_NE(unsure.error().message.find("timed out"), std::string::npos)
        << unsure.error().message;
}

TEST_F(GitTest, LocalChangesListsEditsAdditionsAndDeletions)
{
    const auto git = cloned({dir_link("a/b"), file_link("c/file.txt")});
    const auto clean = git.local_changes();
    ASSERT_TRUE(clean) << clean.error().message;
    EXPECT_EQ(clean->count, 0u);

    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new file.txt", "new\n");
    std::filesystem::remove(m_work / "a/b/sub/two.txt");

    const auto changes = git.local_changes();
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(as_set(changes->listed),
              (Paths{"a/b/one.txt", "a/b/new file.txt", "a/b/sub/two.txt"}));
}

TEST_F(GitTest, TakeLocalChangesWritesAPatchAndReverts)
{
    const auto git = cloned({dir_link("a/b"), file_link("c/file.txt")});
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new.txt", "new\n");
    write(m_work / "a/b/deep/er/untracked.bin", std::string("\0\1\2binary", 9));
    std::filesystem::remove(m_work / "a/b/sub/two.txt");

    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    const auto patch = read(m_root / "drift.patch");
    for (const auto* path :
         {"a/b/one.txt", "a/b/new.txt", "a/b/sub/two.txt", "a/b/deep/er/untracked.bin"}) {
        EXPECT_NE(patch.find(path), std::string::npos) << path << " in\n" << patch;
    }
    EXPECT_NE(patch.find("+edited"), std::string::npos) << patch;

    const auto after = git.local_changes();
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ(after->count, 0u) << join(after->listed, ", ");
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one\n");
    EXPECT_EQ(read(m_work / "a/b/sub/two.txt"), "two\n");
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/new.txt"));
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/deep"));
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt", "c/file.txt"}));
    EXPECT_EQ(resolved(git, "HEAD"), m_first);

    // The patch brings the changes back.
    git_in(m_work, {"apply", (m_root / "drift.patch").string()});
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "edited\n");
    EXPECT_EQ(read(m_work / "a/b/new.txt"), "new\n");
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/sub/two.txt"));
}

TEST_F(GitTest, TakeLocalChangesWritesMoreThanAnyOutputLimit)
{
    const auto git = cloned({dir_link("a/b")});
    // 3 MiB that do not compress, so the binary patch is larger still.
    std::string big(3 << 20, '\0');
    std::uint64_t x = 88172645463325252ULL;
    for (auto& c : big) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c = static_cast<char>(x);
    }
    write(m_work / "a/b/big.bin", big);

    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_GT(std::filesystem::file_size(m_root / "drift.patch"), big.size());
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/big.bin"));
    git_in(m_work, {"apply", (m_root / "drift.patch").string()});
    EXPECT_EQ(read(m_work / "a/b/big.bin"), big);
}

TEST_F(GitTest, TakeLocalChangesKeepsThePatchBeforeReverting)
{
    const auto git = cloned({dir_link("a/b")});
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new.txt", "new\n");

    auto file = patch_file();
    std::string kept;
    const auto taken = git.take_local_changes(file.get(), [&]() -> Result<> {
        kept = read(m_root / "drift.patch"); // whole when keep runs
        // Called before anything is reverted.
        EXPECT_EQ(read(m_work / "a/b/one.txt"), "edited\n");
        return {};
    });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_EQ(kept, read(m_root / "drift.patch"));
    EXPECT_NE(kept.find("a/b/new.txt"), std::string::npos) << kept;
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one\n");
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/new.txt"));
}

TEST_F(GitTest, TakeLocalChangesLeavesEverythingWhenKeepFails)
{
    const auto git = cloned({dir_link("a/b")});
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new.txt", "new\n");
    std::filesystem::remove(m_work / "a/b/sub/two.txt");

    auto file = patch_file();
    const auto taken =
        git.take_local_changes(file.get(), []() -> Result<> { return fail("disk full"); });
    ASSERT_FALSE(taken);
    EXPECT_EQ(taken.error().message, "disk full");
    expect_untouched(git);
}

TEST_F(GitTest, TakeLocalChangesLeavesEverythingWhenThePatchCannotBeWritten)
{
    const auto git = cloned({dir_link("a/b")});
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new.txt", "new\n");
    std::filesystem::remove(m_work / "a/b/sub/two.txt");

    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    Fd full(::open("/dev/full", O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(full.valid());
    bool kept = false;
    const auto taken = git.take_local_changes(full.get(), [&] {
        kept = true;
        return Result<>{};
    });
    ASSERT_FALSE(taken);
    EXPECT_TRUE(taken.error().message.starts_with("git diff: exited 128: "))
        << taken.error().message;
    EXPECT_FALSE(kept) << "keep was called for a patch git could not write";
    expect_untouched(git);
}

TEST_F(GitTest, TakeLocalChangesOfModesAndADirectoryTurnedSymlink)
{
    const auto git = cloned({dir_link("a/b")});
    std::filesystem::permissions(m_work / "a/b/one.txt", std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
    std::filesystem::remove_all(m_work / "a/b/sub");
    std::filesystem::create_symlink("/etc", m_work / "a/b/sub");
    write(m_work / "a/b/empty", "");

    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt"}));
    EXPECT_FALSE(std::filesystem::is_symlink(m_work / "a/b/sub"));
    git_in(m_work, {"apply", (m_root / "drift.patch").string()});
    EXPECT_TRUE(std::filesystem::is_symlink(m_work / "a/b/sub"));
    EXPECT_TRUE(std::filesystem::exists(m_work / "a/b/empty"));
}

// What the user leaves outside the sparse paths (where `git add` refuses to go) is saved and
// removed too: new files at the top, a tracked file of another link written back, a directory
// moved out of a link. And it does not stop the edit of a linked file being reverted.
TEST_F(GitTest, TakeLocalChangesOutsideTheSparsePaths)
{
    const auto git = cloned({dir_link("a/b")});
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "outside", "junk\n");
    write(m_work / "c/other", "mine\n");
    write(m_work / ".moved/f", "moved\n");

    const auto changes = git.local_changes();
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(as_set(changes->listed), (Paths{"a/b/one.txt", "outside", "c/other", ".moved/f"}));
    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    const auto patch = read(m_root / "drift.patch");
    for (const auto* text : {"+edited", "outside", "+junk", "c/other", "+mine", ".moved/f"}) {
        EXPECT_NE(patch.find(text), std::string::npos) << text << " in\n" << patch;
    }
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt"}));
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one\n");
    const auto after = git.local_changes();
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ(after->count, 0u) << join(after->listed, ", ");
}

// Megabytes of `git status` (30000 untracked files): counted, the first few named.
TEST_F(GitTest, LocalChangesCountsManyFilesAndNamesTheFirst)
{
    const auto git = cloned({dir_link("a/b")});
    std::filesystem::create_directories(m_work / "a/b/many");
    const std::string pad(40, 'p');
    for (int i = 0; i < 30000; ++i) {
        std::ofstream(m_work / "a/b/many" / (pad + std::to_string(i)));
    }
    const auto changes = git.local_changes(20);
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(changes->count, 30000u);
    EXPECT_EQ(changes->listed.size(), 20u);
}

// A patch over the limit is refused while git writes it: nothing kept, nothing reverted.
TEST_F(GitTest, TakeLocalChangesRefusesAPatchOverTheLimit)
{
    const auto git = cloned({dir_link("a/b")});
    std::string big(2 << 20, '\0');
    std::uint64_t x = 88172645463325252ULL;
    for (auto& c : big) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c = static_cast<char>(x);
    }
    write(m_work / "a/b/big.bin", big);
    write(m_work / "a/b/one.txt", "edited\n");

    auto file = patch_file();
    bool kept = false;
    const auto taken = git.take_local_changes(
        file.get(),
        [&] {
            kept = true;
            return Result<>{};
        },
        1 << 20);
    ASSERT_FALSE(taken);
    EXPECT_NE(taken.error().message.find("larger than 1 MiB"), std::string::npos)
        << taken.error().message;
    EXPECT_FALSE(kept);
    EXPECT_LE(std::filesystem::file_size(m_root / "drift.patch"), 1u << 20);
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "edited\n");
    EXPECT_EQ(read(m_work / "a/b/big.bin"), big);
    EXPECT_EQ(git_in(m_work, {"diff", "--cached", "--name-only"}), "");
}

TEST_F(GitTest, TakeLocalChangesOfACleanTreeIsEmpty)
{
    const auto git = cloned({dir_link("a/b")});
    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_EQ(std::filesystem::file_size(m_root / "drift.patch"), 0u);
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt"}));
}

// ---- plain trees: a service's files only, git working through the store ----------------------

namespace {

class PlainTreeTest : public GitTest {
protected:
    void SetUp() override
    {
        GitTest::SetUp();
        m_store = m_root / "store";
        const auto cloned = Git(m_store.string(), std::nullopt, 60s).clone_store(m_url, "main");
        ASSERT_TRUE(cloned) << cloned.error().message;
    }

    Git plain(const std::string& commit, std::vector<Link> links) const
    {
        return Git::plain_tree(m_work.string(), std::nullopt, 60s, m_url,
                               Git::Plain{.git_dir = (m_store / ".git").string(),
                                          .index = "gitopper-t.index",
                                          .commit = commit,
                                          .links = std::move(links)});
    }

    // No index (nor its lock) is left in the store once a step is over.
    void expect_no_index() const
    {
        EXPECT_FALSE(std::filesystem::exists(m_store / ".git/gitopper-t.index"));
        EXPECT_FALSE(std::filesystem::exists(m_store / ".git/gitopper-t.index.lock"));
    }

    // Everything in the work tree, directories too, relative to it.
    Paths everything() const
    {
        Paths all;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(m_work)) {
            all.insert(std::filesystem::relative(entry.path(), m_work).string());
        }
        return all;
    }

    std::filesystem::path m_store;
};

} // namespace

TEST_F(PlainTreeTest, WriteTakesOnlyTheLinksAndLeavesNoGitMetadata)
{
    const auto git = plain(m_first, {dir_link("a/b"), file_link("c/file.txt")});
    // What a killed step left behind does not stop the next one.
    write(m_store / ".git/gitopper-t.index.lock", "stale");
    const auto written = git.write_plain();
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(everything(),
              (Paths{"a", "a/b", "a/b/one.txt", "a/b/sub", "a/b/sub/two.txt", "c", "c/file.txt"}));
    EXPECT_EQ(read(m_work / "a/b/sub/two.txt"), "two\n");
    expect_no_index();
}

// The check of a new tree before it goes live: git's index of what it wrote, one process.
TEST_F(PlainTreeTest, WrittenChangesAreTheUsersWritesSinceGitWrote)
{
    const auto git = plain(m_first, {dir_link("a/b"), file_link("c/file.txt")});
    ASSERT_TRUE(git.write_plain(true));
    const auto clean = git.written_changes();
    ASSERT_TRUE(clean) << clean.error().message;
    EXPECT_EQ(clean->count, 0u) << join(clean->listed, ", ");
    expect_no_index();

    ASSERT_TRUE(git.write_plain(true));
    write(m_work / "a/b/one.txt", "ONE\n"); // the same size, at once: git looks at the content
    write(m_work / "a/b/planted.conf", "evil\n");
    const auto changes = git.written_changes();
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(as_set(changes->listed), (Paths{"a/b/one.txt", "a/b/planted.conf"}));
    expect_no_index();
}

TEST_F(PlainTreeTest, LocalChangesOfAPlainTree)
{
    const auto git = plain(m_first, {dir_link("a/b"), file_link("c/file.txt")});
    ASSERT_TRUE(git.write_plain());
    const auto clean = git.local_changes();
    ASSERT_TRUE(clean) << clean.error().message;
    EXPECT_EQ(clean->count, 0u) << join(clean->listed, ", ");

    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/new file.txt", "new\n");
    write(m_work / "README", "not a link of this tree\n");
    std::filesystem::remove(m_work / "a/b/sub/two.txt");
    const auto changes = git.local_changes(2);
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(changes->count, 4u);
    EXPECT_EQ(changes->listed.size(), 2u);
    const auto all = git.local_changes();
    ASSERT_TRUE(all);
    EXPECT_EQ(as_set(all->listed),
              (Paths{"a/b/one.txt", "a/b/new file.txt", "a/b/sub/two.txt", "README"}));
    expect_no_index();
}

// Each tree's steps have an index of their own, never the store's: a git busy with the
// store's index (its lock held) or with another tree's does not get in the way.
TEST_F(PlainTreeTest, StepsUseTheTreesOwnIndex)
{
    write(m_store / ".git/index.lock", "");
    write(m_store / ".git/gitopper-other.index.lock", "");
    const auto git = plain(m_first, {dir_link("a/b")});
    ASSERT_TRUE(git.write_plain());
    write(m_work / "a/b/one.txt", "edited\n");
    const auto changes = git.local_changes();
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(as_set(changes->listed), (Paths{"a/b/one.txt"}));
    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one\n");
    EXPECT_TRUE(std::filesystem::exists(m_store / ".git/index.lock"));
    EXPECT_FALSE(std::filesystem::exists(m_store / ".git/index"));
    expect_no_index();
}

TEST_F(PlainTreeTest, TakeLocalChangesOfAPlainTreeWritesAPatchAndReverts)
{
    const auto git = plain(m_first, {dir_link("a/b"), file_link("c/file.txt")});
    ASSERT_TRUE(git.write_plain());
    write(m_work / "a/b/one.txt", "edited\n");
    write(m_work / "a/b/deep/er/untracked.bin", std::string("\0\1\2binary", 9));
    write(m_work / "c/other", "outside the links\n");
    std::filesystem::remove(m_work / "a/b/sub/two.txt");

    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    const auto patch = read(m_root / "drift.patch");
    for (const auto* path :
         {"a/b/one.txt", "a/b/sub/two.txt", "a/b/deep/er/untracked.bin", "c/other"}) {
        EXPECT_NE(patch.find(path), std::string::npos) << path << " in\n" << patch;
    }
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt", "c/file.txt"}));
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one\n");
    const auto after = git.local_changes();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->count, 0u) << join(after->listed, ", ");
    expect_no_index();

    // The patch brings the changes back onto the commit's files.
    git_in(m_work, {"apply", (m_root / "drift.patch").string()});
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "edited\n");
    EXPECT_EQ(read(m_work / "c/other"), "outside the links\n");
    EXPECT_FALSE(std::filesystem::exists(m_work / "a/b/sub/two.txt"));
}

TEST_F(PlainTreeTest, TakeLocalChangesOfACleanPlainTreeIsEmpty)
{
    const auto git = plain(m_first, {dir_link("a/b")});
    ASSERT_TRUE(git.write_plain());
    auto file = patch_file();
    const auto taken = git.take_local_changes(file.get(), [] { return Result<>{}; });
    ASSERT_TRUE(taken) << taken.error().message;
    EXPECT_EQ(std::filesystem::file_size(m_root / "drift.patch"), 0u);
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/sub/two.txt"}));
}

TEST_F(PlainTreeTest, MoveRewritesWhatChangedAndRemovesWhatIsGone)
{
    const auto second = commit({{"a/b/one.txt", "one, second\n"}, {"a/b/three.txt", "three\n"}},
                               "second", {"a/b/sub/two.txt"});
    ASSERT_TRUE(Git(m_store.string(), std::nullopt, 60s).fetch("main"));
    auto git = plain(m_first, {dir_link("a/b")});
    ASSERT_TRUE(git.write_plain());
    const auto moved = git.move_plain(second);
    ASSERT_TRUE(moved) << moved.error().message;
    EXPECT_EQ(work_files(), (Paths{"a/b/one.txt", "a/b/three.txt"}));
    EXPECT_EQ(read(m_work / "a/b/one.txt"), "one, second\n");
    const auto clean = git.local_changes();
    ASSERT_TRUE(clean);
    EXPECT_EQ(clean->count, 0u) << join(clean->listed, ", ");
    expect_no_index();
}

TEST_F(GitTest, CountersCountOperationsAndErrors)
{
    const auto git = cloned({dir_link("a/b")});
    auto& counters = git_counters();

    const auto ops = counters.ops.load();
    const auto errors = counters.errors.load();
    ASSERT_TRUE(git.find_commit("HEAD"));
    EXPECT_EQ(counters.ops.load(), ops + 1);
    EXPECT_EQ(counters.errors.load(), errors);

    ASSERT_TRUE(git.local_changes());
    EXPECT_EQ(counters.ops.load(), ops + 2);
    EXPECT_EQ(counters.errors.load(), errors);

    ASSERT_EQ(git.find_commit("deadbeef").value_or("<error>"), std::nullopt); // an answer
    EXPECT_EQ(counters.ops.load(), ops + 3);
    EXPECT_EQ(counters.errors.load(), errors);

    ASSERT_FALSE(git.is_ancestor("deadbeef", "HEAD"));
    EXPECT_EQ(counters.ops.load(), ops + 4);
    EXPECT_EQ(counters.errors.load(), errors + 1);
}

TEST(GitUrl, PublicUrlDropsOnlyThePassword)
{
    EXPECT_EQ(public_url("https://deploy:tok@h/x.git"), "https://deploy@h/x.git");
    EXPECT_EQ(public_url("https://deploy:tok@h:8443/x"), "https://deploy@h:8443/x");
    EXPECT_EQ(public_url("https://h/x"), "https://h/x");
    EXPECT_EQ(public_url("https://h:443/x"), "https://h:443/x");
    EXPECT_EQ(public_url("git@h:x/y"), "git@h:x/y");
    EXPECT_EQ(public_url("file://u:p@localhost/srv/x"), "file://u@localhost/srv/x");
    EXPECT_EQ(public_url("https://ghp_abc@github.com/o/r"), "https://github.com/o/r");
    EXPECT_EQ(public_url("ssh://git@h/x"), "ssh://git@h/x");
}
