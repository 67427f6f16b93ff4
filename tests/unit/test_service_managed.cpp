#include "service/managed.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "git_fixture.hpp"
#include "service/poller.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

using namespace gitopper;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

constexpr int kSkip = 77;    // a child could not get the namespaces it needs
constexpr int kCrashed = 42; // a child ended where FakeSystemd was told to end it

using Calls = std::vector<std::string>;

// systemctl as the tests see it: every call recorded ("daemon-reload", "start app"); systemd
// says a unit's files changed (NeedDaemonReload) when `unit_files_changed` is set, and that
// it runs when `running` is; a call
// listed in `failing` fails, and the one named by `crash_at` ends the process there, as a
// kill -9 of the daemon would.
class FakeSystemd final : public ServiceManager {
public:
    Result<> daemon_reload() override { return call("daemon-reload"); }
    Result<> run(const std::string& verb, const std::string& unit) override
    {
        return call(verb + " " + unit);
    }
    // Asked, not recorded: what the tests count is what changes something.
    Result<bool> needs_daemon_reload(const std::string&) override { return unit_files_changed; }
    Result<bool> is_running(const std::string&) override { return running; }

    Calls calls;
    bool unit_files_changed = false;
    bool running = false; // the unit ran before gitopper mounted its files
    std::set<std::string> failing;
    std::string crash_at;
    std::string throw_at; // a bug's exception escapes there

private:
    Result<> call(const std::string& what)
    {
        if (what == crash_at) {
            std::fflush(nullptr);
            ::_exit(kCrashed);
        }
        const std::lock_guard lock(m_mutex); // a poll group starts services side by side
        if (what == throw_at) {
            throw std::runtime_error("a bug in " + what);
        }
        calls.push_back(what);
        if (failing.contains(what)) {
            return fail("systemctl {} exited 1: it failed on purpose", what);
        }
        return {};
    }

    std::mutex m_mutex;
};

// One run of the daemon for one service, wired as engine.cpp wires it: a state store loaded
// from the state dir, the host tools, the object store of its upstream, the service. A
// restart is a new Instance over the same directories.
struct Instance {
    Instance(const Service& config, FakeSystemd& systemd, const std::string& state_dir)
        : state(state_dir), host{systemd, std::nullopt, state_dir, state},
          store(Layout(config.mount, config.name).stores() + "/" +
                    Store::name_for(config.upstream, config.user, "test key"),
                config.upstream, std::chrono::minutes(1)),
          service(config, host, store, state.load({config.name})[config.name])
    {
    }

    // What the poll thread does first (PollGroup::start_services).
    void start()
    {
        service.open();
        service.start();
    }

    // One cycle of the poll thread for this one service (PollGroup::poll_upstream): one
    // ls-remote, a fetch when the service wants the head, the reconcile.
    void poll(Trigger trigger = Trigger::poll)
    {
        const auto& branch = service.config().branch;
        store.new_cycle();
        auto heads = store.remote_heads({branch});
        Result<std::string> head = fail("branch {} not found upstream", branch);
        if (!heads) {
            head = std::unexpected(heads.error());
        } else if (auto it = heads->find(branch); it != heads->end()) {
            head = it->second;
        }
        if (head && service.ready() && service.wants(*head, trigger)) {
            if (auto fetched = store.fetch({branch}); !fetched) {
                head = std::unexpected(fetched.error());
            }
        }
        service.reconcile(head, trigger);
    }

    State state_now() const { return service.status().state; }
    std::string hash() const { return service.status().hash; }

    StateStore state;
    HostTools host;
    Store store;
    ManagedService service;
};

enum class Needs { nothing, mounts };

bool write_text(const char* path, const std::string& text)
{
    std::ofstream file(path);
    file << text;
    file.close();
    return static_cast<bool>(file);
}

// Root of a user namespace of our own, mapped to our uid and gid: the mount base and its
// parents then count as ours (see owner_is_us), as they do for root.
bool become_namespace_root(const std::string& uid, const std::string& gid)
{
    return ::unshare(CLONE_NEWUSER) == 0 && write_text("/proc/self/setgroups", "deny") &&
           write_text("/proc/self/uid_map", "0 " + uid + " 1") &&
           write_text("/proc/self/gid_map", "0 " + gid + " 1");
}

// Runs `body` in a child process; returns its exit status (kCrashed when FakeSystemd ended
// it). The child's failures are printed there.
int in_child(const std::function<void()>& body)
{
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        body();
        std::fflush(nullptr);
        ::_exit(testing::Test::HasFailure() ? 1 : 0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs `body` where the service layer can work: the mount base and every directory above it
// must be ours (SPEC §11), so a user other than root runs it as root of a user namespace of
// its own; and mounts go into a private mount namespace, gone with the child. Run in a child
// when either is needed (its failures are printed there and fail the test here); skipped when
// the kernel allows no such namespace.
void isolated(Needs needs, const std::function<void()>& body)
{
    if (::geteuid() == 0 && needs == Needs::nothing) {
        body();
        return;
    }
    const auto uid = std::to_string(::geteuid());
    const auto gid = std::to_string(::getegid());
    const int status = in_child([&] {
        if (::geteuid() != 0 && !become_namespace_root(uid, gid)) {
            ::_exit(kSkip);
        }
        if (needs == Needs::mounts &&
            (::unshare(CLONE_NEWNS) != 0 ||
             ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)) {
            ::_exit(kSkip);
        }
        body();
    });
    if (status == kSkip) {
        GTEST_SKIP() << "no user or mount namespace here";
    }
    EXPECT_EQ(status, 0) << "the child's failures are printed above";
}

std::string read_text(const fs::path& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct FileStamp {
    ino_t inode = 0;
    timespec mtime{};
};

FileStamp stamp(const fs::path& path)
{
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return {st.st_ino, st.st_mtim};
}

// A real upstream (a repository of the test's, served over file:// so that partial clones
// work), a mount base, a state dir, and systemctl faked, in a temp dir of their own. The
// upstream holds app/conf/ (the service's files when it has a link) and other/ (a path of
// nobody's).
class ManagedServiceTest : public testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "managed-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_root = fs::canonical(pattern);
        fs::create_directories(upstream());
        fs::create_directories(mount_base());
        fs::create_directories(state_dir());
        fs::permissions(mount_base(), fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
        fs::permissions(state_dir(), fs::perms::owner_all);
        upstream_git({"init", "--quiet", "-b", "main"});
        upstream_git({"config", "uploadpack.allowFilter", "true"});
        m_first = commit({{"README", "top\n"}, {"app/conf/app.conf", "v1\n"}, {"other/x", "1\n"}},
                         "first");
    }

    void TearDown() override { fs::remove_all(m_root); }

    fs::path upstream() const { return m_root / "upstream"; }
    fs::path mount_base() const { return m_root / "srv"; }
    std::string state_dir() const { return (m_root / "state").string(); }
    fs::path link() const { return mount_base() / "app"; } // M/<service>
    fs::path local() const { return m_root / "etc/app"; }  // where app/conf is mounted
    fs::path state_file() const
    {
        return fs::path(state_dir()) / "gitopper-state" / state_file_name("app");
    }

    // The service "app" on branch main, reloaded when its files change; with no links unless
    // asked for app/conf (mounted on local(), which needs Needs::mounts).
    Service service(bool with_link = false) const
    {
        Service config;
        config.machine = "host";
        config.name = "app";
        config.branch = "main";
        config.action = "reload";
        config.mount = mount_base().string();
        config.upstream = "file://" + upstream().string();
        if (with_link) {
            config.dirs.push_back(Link{.local = local().string(), .path = "app/conf"});
        }
        return config;
    }

    std::unique_ptr<Instance> instance(const Service& config)
    {
        return std::make_unique<Instance>(config, m_systemd, state_dir());
    }

    // What the state file holds now, read as the next start would.
    SavedService saved() const
    {
        StateStore store(state_dir());
        return store.load({"app"})["app"];
    }

    std::string git_in(const std::filesystem::path& dir, std::vector<std::string> args) const
    {
        return test_support::fixture_git(dir, std::move(args));
    }

    std::string upstream_git(std::vector<std::string> args) const
    {
        return git_in(upstream(), std::move(args));
    }

    // Writes files upstream and commits them; returns the new head.
    std::string commit(const std::map<std::string, std::string>& files,
                       const std::string& message) const
    {
        for (const auto& [path, content] : files) {
            fs::create_directories((upstream() / path).parent_path());
            std::ofstream(upstream() / path) << content;
        }
        upstream_git({"add", "--all"});
        upstream_git({"commit", "--quiet", "-m", message});
        return upstream_git({"rev-parse", "HEAD"});
    }

    // The systemctl calls made since the last look.
    Calls new_calls() { return std::exchange(m_systemd.calls, {}); }

    // The commit of the live tree: what M/<service> names (".gitopper/trees/app.<links>.<commit>",
    // the commit's first 12 digits), in full.
    std::string live_head() const
    {
        const auto target = fs::read_symlink(link()).filename().string();
        if (!target.starts_with("app.")) {
            return "not a tree: " + target;
        }
        const auto prefix = target.substr(target.rfind('.') + 1);
        return prefix.size() == 12 ? upstream_git({"rev-parse", prefix})
                                   : "not 12 digits: " + prefix;
    }

    fs::path m_root;
    std::string m_first; // upstream's first commit
    FakeSystemd m_systemd;
};

} // namespace

// (1) A fresh service: a tree of the branch head behind M/<service>, with none of the
// repository's files (no links) and no file of git's, the unit started once, the start
// in its history and the head saved as told.
TEST_F(ManagedServiceTest, AFreshStartChecksOutTheHeadAndStartsTheUnitOnce)
{
    isolated(Needs::nothing, [&] {
        auto app = instance(service());
        app->start();

        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_TRUE(app->service.ready());
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));
        EXPECT_TRUE(fs::is_symlink(link()));
        EXPECT_EQ(fs::read_symlink(link()).parent_path(), ".gitopper/trees");
        EXPECT_EQ(live_head(), m_first);
        std::set<std::string> files;
        for (const auto& entry : fs::directory_iterator(link())) {
            files.insert(entry.path().filename().string());
        }
        EXPECT_EQ(files, (std::set<std::string>{})) << "no link, no file of git's";

        const auto history = app->service.history();
        ASSERT_EQ(history.size(), 1u);
        EXPECT_EQ(history[0].from, "");
        EXPECT_EQ(history[0].to, m_first);
        EXPECT_EQ(history[0].trigger, "start");
        EXPECT_EQ(history[0].result, "ok");
        const auto on_disk = saved();
        EXPECT_EQ(on_disk.applied, m_first);
        EXPECT_EQ(on_disk.history.size(), 1u);
        EXPECT_FALSE(on_disk.frozen);
    });
}

// (2) Upstream moves elsewhere: the recorded commit follows, nothing is told, nothing is
// written (the state file is the same file, untouched).
// systemd is told to read unit files again only when it says a unit's changed (or a link is
// mounted into a unit directory): a daemon-reload holds up all of systemd on a real host.
TEST_F(ManagedServiceTest, ADaemonReloadRunsOnlyWhenSystemdNeedsOne)
{
    isolated(Needs::mounts, [&] {
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));
        m_systemd.calls.clear();
        m_systemd.unit_files_changed = true;
        commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        app->poll();
        EXPECT_EQ(m_systemd.calls, (Calls{"daemon-reload", "reload app", "is-active app"}));
    });
}

// A unit already running when its files are first mounted (nginx, started at boot) read the
// files beneath the mount; `start` tells it nothing, so the action runs. Once mounted, a restart
// of gitopper mounts nothing new and owes nothing.
TEST_F(ManagedServiceTest, AUnitRunningBeforeTheFirstMountGetsItsAction)
{
    isolated(Needs::mounts, [&] {
        m_systemd.running = true;
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(m_systemd.calls, (Calls{"start app", "reload app"}));
        EXPECT_FALSE(saved().owed);

        app.reset();
        m_systemd.calls.clear();
        app = instance(service(true));
        app->start();
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"})) << "the mount was there already";
    });
}

TEST_F(ManagedServiceTest, AUnitNotRunningBeforeTheFirstMountIsOnlyStarted)
{
    isolated(Needs::mounts, [&] {
        m_systemd.running = false;
        auto app = instance(service(true));
        app->start();
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));
    });
}

TEST(UnitFiles, MountsIntoOrAboveAUnitDirectory)
{
    EXPECT_TRUE(may_hold_unit_files("/etc/systemd/system"));
    EXPECT_TRUE(may_hold_unit_files("/etc/systemd/system/nginx.service.d"));
    EXPECT_TRUE(may_hold_unit_files("/etc/systemd"));
    EXPECT_TRUE(may_hold_unit_files("/usr/lib/systemd/system/x.service"));
    EXPECT_FALSE(may_hold_unit_files("/etc/systemd/systemx"));
    EXPECT_FALSE(may_hold_unit_files("/etc/nginx"));
    EXPECT_FALSE(may_hold_unit_files("/etc/systemd/journald.conf.d"));
}

TEST_F(ManagedServiceTest, ACommitOutsideItsPathsOnlyAdvancesTheHash)
{
    isolated(Needs::nothing, [&] {
        auto app = instance(service());
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        const auto before = stamp(state_file());
        const auto since = app->service.status().change;

        const auto second = commit({{"other/x", "2\n"}}, "elsewhere");
        app->poll();
        EXPECT_EQ(app->service.status().change, since) << "SINCE moved with no change";

        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), second);
        EXPECT_EQ(app->service.status().upstream, second);
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"})) << "no action";
        EXPECT_EQ(app->service.history().size(), 1u) << "no history entry";
        const auto after = stamp(state_file());
        EXPECT_EQ(after.inode, before.inode) << "state file rewritten";
        EXPECT_EQ(after.mtime.tv_sec, before.mtime.tv_sec);
        EXPECT_EQ(after.mtime.tv_nsec, before.mtime.tv_nsec);

        app->poll(); // at the same head again: nothing at all
        EXPECT_EQ(m_systemd.calls.size(), 1u);
        EXPECT_EQ(stamp(state_file()).inode, before.inode);
    });
}

// (3) A commit that changes its files: they show under the mount, systemd reloads and the
// unit gets its action, the deploy is in the history and saved as told.
TEST_F(ManagedServiceTest, ACommitToItsPathsReloadsAndRunsTheAction)
{
    isolated(Needs::mounts, [&] {
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(read_text(local() / "app.conf"), "v1\n");
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));

        const auto started = app->service.status().change;
        const auto second = commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        app->poll();

        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), second);
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n");
        const auto deployed = app->service.status().change;
        EXPECT_GT(deployed, started) << "SINCE is the time its files changed";
        // After the action, the default health: systemd says whether the unit is active.
        EXPECT_EQ(m_systemd.calls, (Calls{"start app", "reload app", "is-active app"}));
        const auto history = app->service.history();
        ASSERT_EQ(history.size(), 2u);
        EXPECT_EQ(history[1].from, m_first);
        EXPECT_EQ(history[1].to, second);
        EXPECT_EQ(history[1].trigger, "poll");
        EXPECT_EQ(history[1].result, "ok");
        EXPECT_EQ(saved().applied, second);

        // Then one elsewhere: the mount keeps showing the same files, nothing runs.
        const auto third = commit({{"other/x", "3\n"}}, "elsewhere");
        app->poll();
        EXPECT_EQ(app->hash(), third);
        EXPECT_EQ(app->service.status().change, deployed);
        EXPECT_EQ(m_systemd.calls.size(), 3u);
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n");
    });
}

// (4) BROKEN at start (systemctl start fails): a poll at the same head does not try again; a
// new upstream head does, and so does a pull at the same head.
TEST_F(ManagedServiceTest, ABrokenStartIsRetriedOnlyWhenUpstreamMovesOrOnAPull)
{
    isolated(Needs::nothing, [&] {
        const Calls start{"start app"};
        m_systemd.failing = {"start app"};
        auto app = instance(service());
        app->start();
        EXPECT_EQ(app->state_now(), State::broken);
        EXPECT_NE(app->service.status().info.find("start app"), std::string::npos)
            << app->service.status().info;
        EXPECT_EQ(new_calls(), start);

        app->poll();
        EXPECT_EQ(new_calls(), Calls{}) << "retried at the head it broke at";
        EXPECT_EQ(app->state_now(), State::broken);

        const auto second = commit({{"other/x", "2\n"}}, "elsewhere");
        app->poll();
        EXPECT_EQ(new_calls(), start) << "a new head";
        app->poll();
        EXPECT_EQ(new_calls(), Calls{}) << "the same head again";

        app->poll(Trigger::pull);
        EXPECT_EQ(new_calls(), start) << "a pull";
        EXPECT_EQ(app->state_now(), State::broken);

        m_systemd.failing.clear();
        app->poll(Trigger::pull);
        EXPECT_EQ(new_calls(), start);
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), second);
    });
}

// (4) BROKEN by its action on a deploy: a poll at the same head does not try again, a pull
// does; once the action succeeds it is owed no more, not even after a restart.
TEST_F(ManagedServiceTest, AFailedActionIsRetriedByAPullNotByAPollAtTheSameHead)
{
    isolated(Needs::mounts, [&] {
        const Calls action{"reload app"};
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(new_calls(), (Calls{"start app"}));

        m_systemd.failing = {"reload app"};
        const auto second = commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        app->poll();
        EXPECT_EQ(new_calls(), action);
        EXPECT_EQ(app->state_now(), State::broken);
        EXPECT_EQ(app->hash(), second);
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n") << "files not deployed while BROKEN";
        ASSERT_FALSE(app->service.history().empty());
        EXPECT_NE(app->service.history().back().result.find("reload app"), std::string::npos);
        EXPECT_EQ(saved().applied, m_first) << "the action failed: it is still owed";

        app->poll();
        EXPECT_EQ(new_calls(), Calls{}) << "retried at the head it broke at";

        app->poll(Trigger::pull);
        EXPECT_EQ(new_calls(), action) << "a pull";
        EXPECT_EQ(app->state_now(), State::broken);

        m_systemd.failing.clear();
        app->poll(Trigger::pull);
        EXPECT_EQ(new_calls(), action);
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(saved().applied, second);

        app.reset();
        auto again = instance(service(true));
        again->start();
        EXPECT_EQ(new_calls(), (Calls{"start app"}))
            << "the action that succeeded ran again after a restart";
    });
}

// (4) BROKEN by its action, then upstream moves on elsewhere in the repository: the deploy
// of the new head retries the action still owed, though none of its paths changed since.
TEST_F(ManagedServiceTest, AFailedActionIsRetriedAtANewHeadOutsideItsPaths)
{
    isolated(Needs::mounts, [&] {
        const Calls action{"reload app"};
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        new_calls();

        m_systemd.failing = {"reload app"};
        commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        app->poll();
        EXPECT_EQ(new_calls(), action);
        EXPECT_EQ(app->state_now(), State::broken);

        const auto third = commit({{"other/x", "2\n"}}, "elsewhere");
        app->poll();
        EXPECT_EQ(app->hash(), third);
        EXPECT_EQ(new_calls(), action) << "the owed action was not retried";
        EXPECT_EQ(app->state_now(), State::broken) << "OK without its action ever running";

        m_systemd.failing.clear();
        const auto fourth = commit({{"other/x", "3\n"}}, "elsewhere again");
        app->poll();
        EXPECT_EQ(new_calls(), (Calls{"reload app", "is-active app"}));
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), fourth);
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n");
        EXPECT_EQ(saved().applied, fourth);
    });
}

// (5) A freeze outlives a restart: the new instance starts frozen at the pin, does not follow
// upstream, and an unfreeze lets it go.
TEST_F(ManagedServiceTest, AFreezeHoldsAcrossARestart)
{
    isolated(Needs::nothing, [&] {
        auto app = instance(service());
        app->start();
        app->service.freeze({});
        EXPECT_EQ(app->state_now(), State::freeze);
        auto on_disk = saved();
        EXPECT_TRUE(on_disk.frozen);
        EXPECT_EQ(on_disk.pin, m_first);

        const auto second = commit({{"other/x", "2\n"}}, "elsewhere");
        app.reset();
        m_systemd.calls.clear();
        app = instance(service());
        EXPECT_EQ(app->state_now(), State::freeze) << "not frozen from the saved state";
        app->start();
        EXPECT_EQ(app->state_now(), State::freeze);
        EXPECT_EQ(app->hash(), m_first);
        app->poll();
        EXPECT_EQ(app->state_now(), State::freeze);
        EXPECT_EQ(app->hash(), m_first) << "a frozen service followed upstream";
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));

        app->service.unfreeze();
        app->poll();
        EXPECT_EQ(app->state_now(), State::ok);
        EXPECT_EQ(app->hash(), second);
        on_disk = saved();
        EXPECT_FALSE(on_disk.frozen);
        EXPECT_EQ(on_disk.pin, "");
    });
}

// (5) A rollback to an older commit of the branch checks it out, pins it, and the pin holds
// across a restart while upstream moves on.
TEST_F(ManagedServiceTest, ARollbackPinsAnOlderCommitAcrossARestart)
{
    isolated(Needs::nothing, [&] {
        const auto second = commit({{"other/x", "2\n"}}, "second");
        auto app = instance(service());
        app->start();
        ASSERT_EQ(app->hash(), second);

        const auto done = app->service.rollback(m_first.substr(0, 10), false);
        EXPECT_EQ(done.status, 0) << done.message;
        EXPECT_EQ(app->state_now(), State::freeze);
        EXPECT_EQ(app->service.status().info, "ROLLBACK: " + m_first);
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(live_head(), m_first);
        ASSERT_FALSE(app->service.history().empty());
        const auto last = app->service.history().back();
        EXPECT_EQ(last.from, second);
        EXPECT_EQ(last.to, m_first);
        EXPECT_EQ(last.trigger, "rollback");
        EXPECT_EQ(last.result, "ok");
        const auto on_disk = saved();
        EXPECT_TRUE(on_disk.frozen);
        EXPECT_EQ(on_disk.pin, m_first);

        commit({{"other/x", "3\n"}}, "third");
        app.reset();
        app = instance(service());
        app->start();
        app->poll();
        EXPECT_EQ(app->state_now(), State::freeze);
        EXPECT_EQ(app->service.status().info, "ROLLBACK: " + m_first);
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(live_head(), m_first);
    });
}

// (5) Only the tracked branch's history is a rollback target: a commit force-pushed away is
// refused (404, nothing changes) unless forced; a commit the store does not have is refused
// even then.
TEST_F(ManagedServiceTest, ARollbackOffTheBranchIsRefusedUnlessForced)
{
    isolated(Needs::nothing, [&] {
        auto app = instance(service());
        app->start();
        const auto gone = commit({{"other/x", "2\n"}}, "to be force-pushed away");
        app->poll();
        ASSERT_EQ(app->hash(), gone);
        upstream_git({"reset", "--quiet", "--hard", m_first});

        auto done = app->service.rollback(gone, false);
        EXPECT_EQ(done.status, 404);
        EXPECT_NE(done.message.find("not in the history"), std::string::npos) << done.message;
        EXPECT_EQ(app->state_now(), State::ok);
        EXPECT_EQ(app->hash(), gone);
        auto on_disk = saved();
        EXPECT_FALSE(on_disk.frozen);
        EXPECT_EQ(on_disk.pin, "");
        ASSERT_FALSE(on_disk.history.empty());
        EXPECT_EQ(on_disk.history.back().result.rfind("refused: ", 0), 0u)
            << on_disk.history.back().result;

        done = app->service.rollback("0123456789abcdef0123456789abcdef01234567", true);
        EXPECT_EQ(done.status, 404);
        EXPECT_EQ(done.message,
                  "commit \"0123456789abcdef0123456789abcdef01234567\" not found on \"main\"");
        EXPECT_EQ(app->state_now(), State::ok);

        done = app->service.rollback(gone, true);
        EXPECT_EQ(done.status, 0) << done.message;
        EXPECT_EQ(app->state_now(), State::freeze);
        EXPECT_EQ(live_head(), gone);
        on_disk = saved();
        EXPECT_TRUE(on_disk.frozen);
        EXPECT_EQ(on_disk.pin, gone);
    });
}

// (6) The daemon killed after a deploy switched the mounts but before the action ran: the
// next start runs the action once, the one after that does not.
TEST_F(ManagedServiceTest, AnActionACrashCutShortRunsOnceAtTheNextStart)
{
    isolated(Needs::mounts, [&] {
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        app.reset();

        const auto second = commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        const int status = in_child([&] {
            auto doomed = instance(service(true));
            doomed->start();
            m_systemd.crash_at = "reload app";
            doomed->poll();
        });
        ASSERT_EQ(status, kCrashed) << "the deploy never got to its action";
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n") << "not switched before the crash";
        EXPECT_EQ(saved().applied, m_first);

        m_systemd.calls.clear();
        app = instance(service(true));
        app->start();
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), second);
        // The owed action, then the health the deploy never got to (is-active by default).
        EXPECT_EQ(m_systemd.calls, (Calls{"start app", "reload app", "is-active app"}));
        EXPECT_EQ(saved().applied, second);

        app.reset();
        m_systemd.calls.clear();
        app = instance(service(true));
        app->start();
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"})) << "owed twice";
    });
}

// (6) An applied commit older than the tree's is owed an action only when the service's
// paths changed in between: with none, the start just records the new one as told.
TEST_F(ManagedServiceTest, AnOlderAppliedCommitOwesNothingWhenItsPathsDidNotChange)
{
    isolated(Needs::nothing, [&] {
        {
            StateStore store(state_dir());
            ASSERT_TRUE(store.save("app", SavedService{.applied = m_first}));
        }
        const auto second = commit({{"other/x", "2\n"}}, "elsewhere");
        auto app = instance(service());
        app->start();
        EXPECT_EQ(app->hash(), second);
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));
        EXPECT_EQ(saved().applied, second);
    });
}

// (7) A clone of its own at M/<service> (the layout before object stores) with a saved state:
// taken over at its commit, not the branch head; nothing but the usual start runs; the old
// clone is gone and the history is kept.
TEST_F(ManagedServiceTest, AnOldCheckoutIsTakenOverAtItsCommit)
{
    isolated(Needs::nothing, [&] {
        git_in(m_root, {"clone", "--quiet", "--filter=blob:none", "file://" + upstream().string(),
                        link().string()});
        const HistoryEntry old{1700000000, "", m_first, "start", "ok"};
        {
            StateStore store(state_dir());
            ASSERT_TRUE(store.save("app", SavedService{.applied = m_first, .history = {old}}));
        }
        const auto second = commit({{"other/x", "2\n"}}, "upstream moved on");

        auto app = instance(service());
        app->start();
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"}));
        EXPECT_TRUE(fs::is_symlink(link()));
        EXPECT_EQ(live_head(), m_first);
        EXPECT_FALSE(fs::exists(fs::symlink_status(mount_base() / ".gitopper/migrated-app")));
        for (const auto& entry : fs::directory_iterator(mount_base())) {
            const auto name = entry.path().filename().string();
            EXPECT_TRUE(name == "app" || name == ".gitopper") << "left behind: " << name;
        }
        const auto history = saved().history;
        ASSERT_EQ(history.size(), 2u);
        EXPECT_EQ(history[0].time, old.time);
        EXPECT_EQ(history[0].to, m_first);
        EXPECT_EQ(history[1].to, m_first);
        EXPECT_EQ(history[1].result, "moved to the object store");

        app->poll();
        EXPECT_EQ(app->hash(), second);
        EXPECT_EQ(m_systemd.calls.size(), 1u);
    });
}

// (7b) The layout before plain trees: M/<service> our symlink to a git worktree of the store at
// M/.gitopper/trees/<service>/0, mounted, with a local edit. Taken over at its commit: the
// edit saved and reverted (the service told once, even when a crash cut the first start short
// of telling it), the worktree and its records gone, one mount on the target, a plain tree
// behind the symlink.
TEST_F(ManagedServiceTest, AWorktreeOfTheStoreIsTakenOverAtItsCommit)
{
    isolated(Needs::mounts, [&] {
        const auto config = service(true);
        const auto store = fs::path(Layout(config.mount, config.name).stores()) /
                           Store::name_for(config.upstream, config.user, "test key");
        fs::create_directories(store.parent_path());
        git_in(m_root, {"clone", "--quiet", "--filter=blob:none", "--no-checkout", config.upstream,
                        store.string()});
        git_in(store, {"config", "extensions.worktreeConfig", "true"});
        const auto old = mount_base() / ".gitopper/trees/app/0";
        fs::create_directories(old.parent_path());
        git_in(store,
               {"worktree", "add", "--quiet", "--detach", "--no-checkout", old.string(), m_first});
        git_in(old, {"sparse-checkout", "set", "--no-cone", "/app/conf/"});
        git_in(old, {"reset", "--quiet", "--hard"});
        ASSERT_EQ(read_text(old / "app/conf/app.conf"), "v1\n");
        fs::create_directory_symlink(".gitopper/trees/app/0", link());
        fs::create_directories(local());
        ASSERT_EQ(::mount((old / "app/conf").c_str(), local().c_str(), nullptr, MS_BIND, nullptr),
                  0);
        ASSERT_TRUE(write_text((local() / "app.conf").c_str(), "edited by hand\n"));
        {
            StateStore state(state_dir());
            ASSERT_TRUE(state.save("app", SavedService{.applied = m_first}));
        }

        // Killed before the action the reverted edit owes: the next start still runs it, once.
        const int status = in_child([&] {
            m_systemd.crash_at = "reload app";
            instance(config)->start();
        });
        ASSERT_EQ(status, kCrashed) << "the takeover never got to its action";
        m_systemd.calls.clear();
        auto app = instance(config);
        app->start();
        EXPECT_EQ(app->state_now(), State::ok) << app->service.status().info;
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(live_head(), m_first);
        EXPECT_EQ(read_text(local() / "app.conf"), "v1\n");
        EXPECT_EQ(m_systemd.calls, (Calls{"start app", "reload app"}));
        EXPECT_FALSE(saved().owed);
        std::string patches;
        for (const auto& entry : fs::recursive_directory_iterator(state_dir())) {
            if (entry.path().extension() == ".patch") {
                patches += read_text(entry.path());
            }
        }
        EXPECT_NE(patches.find("+edited by hand"), std::string::npos) << patches;
        EXPECT_FALSE(fs::exists(fs::symlink_status(mount_base() / ".gitopper/trees/app")));
        EXPECT_FALSE(fs::exists(fs::symlink_status(mount_base() / ".gitopper/migrated-app")));
        EXPECT_EQ(git_in(store, {"worktree", "list", "--porcelain"}).find("trees/app"),
                  std::string::npos);
        EXPECT_FALSE(fs::exists(fs::symlink_status(link() / ".git")));
        std::ifstream mountinfo("/proc/self/mountinfo");
        int on_local = 0;
        for (std::string line; std::getline(mountinfo, line);) {
            on_local += line.find(" " + local().string() + " ") != std::string::npos ? 1 : 0;
        }
        EXPECT_EQ(on_local, 1);

        app.reset();
        m_systemd.calls.clear();
        instance(config)->start();
        EXPECT_EQ(m_systemd.calls, (Calls{"start app"})) << "owed twice";
    });
}

// (7c) A deploy whose action failed leaves the tree it replaced waiting to go; a rollback to
// that commit makes it live again: it must not be removed with the tree after it. A file the
// user wrote into the replaced tree meanwhile is saved before that tree goes.
TEST_F(ManagedServiceTest, ATreeLiveAgainIsNeverRemovedAndARetiredTreesEditsAreSaved)
{
    isolated(Needs::mounts, [&] {
        auto app = instance(service(true));
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        const auto first_tree = fs::canonical(link());
        const auto second = commit({{"app/conf/app.conf", "v2\n"}}, "new conf");
        m_systemd.failing = {"reload app"};
        app->poll();
        ASSERT_EQ(app->state_now(), State::broken) << app->service.status().info;
        EXPECT_EQ(read_text(local() / "app.conf"), "v2\n");
        ASSERT_TRUE(fs::exists(first_tree)) << "waits until an action ran";
        ASSERT_TRUE(write_text((first_tree / "app/conf/late.conf").c_str(), "written late\n"));

        m_systemd.failing.clear();
        const auto done = app->service.rollback(m_first, false);
        EXPECT_EQ(done.status, 0) << done.message;
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(read_text(local() / "app.conf"), "v1\n") << "the live tree was removed";
        EXPECT_FALSE(fs::exists(local() / "late.conf"));
        EXPECT_TRUE(fs::exists(fs::canonical(link()) / "app/conf/app.conf"));
        std::string patches;
        for (const auto& entry : fs::recursive_directory_iterator(state_dir())) {
            if (entry.path().extension() == ".patch") {
                patches += read_text(entry.path());
            }
        }
        EXPECT_NE(patches.find("+written late"), std::string::npos) << patches;
        std::size_t trees = 0;
        for (const auto& entry : fs::directory_iterator(mount_base() / ".gitopper/trees")) {
            trees += entry.path().filename().string().starts_with("app.") ? 1U : 0U;
        }
        EXPECT_EQ(trees, 1u);
        (void)second;
    });
}

// (8) The poll thread's last resort: an exception escaping one service's step (here from
// systemctl's stand-in, as a bug would) makes that service BROKEN with what it said; the other
// service of the group runs on, and so does the thread, which still carries out requests.
TEST_F(ManagedServiceTest, AnExceptionInOneServiceBreaksItAloneAndThePollThreadGoesOn)
{
    isolated(Needs::nothing, [&] {
        auto web_config = service();
        web_config.name = "web";
        const auto app_config = service();
        m_systemd.throw_at = "start web";
        StateStore state(state_dir());
        HostTools host{m_systemd, std::nullopt, state_dir(), state};
        Store store(Layout(app_config.mount, app_config.name).stores() + "/" +
                        Store::name_for(app_config.upstream, app_config.user, "test key"),
                    app_config.upstream, std::chrono::minutes(1));
        auto saved = state.load({"app", "web"});
        ManagedService app(app_config, host, store, saved["app"]);
        ManagedService web(web_config, host, store, saved["web"]);
        PollGroup group(store, {&app, &web}, Duration(std::chrono::hours(1)),
                        std::chrono::seconds(10));
        group.start();
        const auto settled = [](const ManagedService& s, State want) {
            for (int i = 0; i < 600 && s.status().state != want; ++i) {
                std::this_thread::sleep_for(50ms);
            }
            return s.status().state == want;
        };
        EXPECT_TRUE(settled(web, State::broken)) << web.status().info;
        // Started, then retried by the first poll: either step's words.
        EXPECT_TRUE(web.status().info.starts_with("internal error while ")) << web.status().info;
        EXPECT_TRUE(web.status().info.ends_with(": a bug in start web")) << web.status().info;
        group.request(Request{.kind = Request::Kind::freeze, .service = 0});
        EXPECT_TRUE(settled(app, State::freeze)) << "the thread ended: " << app.status().info;
        EXPECT_TRUE(app.ready());
        group.stop();
        EXPECT_NE(std::find(m_systemd.calls.begin(), m_systemd.calls.end(), "start app"),
                  m_systemd.calls.end());
    });
}

// (5) The health after the action fails every try: the commit before goes back live and is
// told again, the service is BROKEN, and the failed commit is quarantined (saved): polls
// leave it, a restart too, a pull tries it again, and the next commit is deployed as usual.
TEST_F(ManagedServiceTest, AFailedHealthRollsBackAndQuarantinesTheCommit)
{
    isolated(Needs::mounts, [&] {
        auto config = service(true);
        config.health_retries = 2;
        config.health_interval = Duration{0};
        auto app = instance(config);
        app->start();
        ASSERT_EQ(app->state_now(), State::ok) << app->service.status().info;
        new_calls();

        m_systemd.failing = {"is-active app"};
        const auto bad = commit({{"app/conf/app.conf", "v2\n"}}, "breaks the service");
        app->poll();
        EXPECT_EQ(new_calls(),
                  (Calls{"reload app", "is-active app", "is-active app", "reload app"}));
        EXPECT_EQ(app->state_now(), State::broken);
        const auto info = app->service.status().info;
        EXPECT_NE(info.find("health failed for " + bad.substr(0, 8)), std::string::npos) << info;
        EXPECT_NE(info.find("rolled back to " + m_first.substr(0, 8)), std::string::npos) << info;
        EXPECT_EQ(app->hash(), m_first);
        EXPECT_EQ(read_text(local() / "app.conf"), "v1\n");
        EXPECT_EQ(saved().quarantined, bad);
        EXPECT_EQ(saved().applied, m_first);
        const auto history = app->service.history();
        ASSERT_GE(history.size(), 2u);
        EXPECT_EQ(history[history.size() - 2].to, bad);
        EXPECT_NE(history[history.size() - 2].result.find("health failed"), std::string::npos);
        EXPECT_EQ(history.back().to, m_first);
        EXPECT_EQ(history.back().trigger, "health");
        EXPECT_EQ(history.back().result, "automatic rollback");

        m_systemd.failing.clear();
        app->poll();
        EXPECT_EQ(new_calls(), Calls{}) << "a poll deployed the quarantined commit";
        app.reset();
        auto again = instance(config);
        again->start();
        new_calls();
        again->poll();
        EXPECT_EQ(read_text(local() / "app.conf"), "v1\n") << "deployed after a restart";
        EXPECT_NE(again->service.status().info.find("quarantined"), std::string::npos)
            << again->service.status().info;

        const auto next = commit({{"app/conf/app.conf", "v3\n"}}, "fixed");
        again->poll();
        EXPECT_EQ(again->state_now(), State::ok) << again->service.status().info;
        EXPECT_EQ(again->hash(), next);
        EXPECT_EQ(read_text(local() / "app.conf"), "v3\n");
    });
}
