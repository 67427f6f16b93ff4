#include "util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "util/fd.hpp"
#include "util/wake.hpp"

using namespace gitopper;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Each test gets its own temp dir. We also become a child subreaper, so that grandchildren a
// test leaves behind are reparented to us and we can reap them: an init that does not reap
// would keep them as zombies, and kill(pid, 0) would then never say they are gone.
class ProcessTest : public testing::Test {
protected:
    static void SetUpTestSuite() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "process-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = std::filesystem::canonical(pattern);
    }

    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::filesystem::path m_dir;
};

Output run_ok(const Command& command)
{
    auto output = run(command);
    EXPECT_TRUE(output.has_value()) << (output ? "" : output.error().message);
    return output ? *output : Output{};
}

Command command_of(std::vector<std::string> argv)
{
    Command command;
    command.argv = std::move(argv);
    command.timeout = 10s;
    return command;
}

// Whether `pid` is gone within a second, reaping it if it became our child.
bool gone(pid_t pid)
{
    const auto deadline = Clock::now() + 1s;
    while (Clock::now() < deadline) {
        ::waitpid(pid, nullptr, WNOHANG);
        if (::kill(pid, 0) == -1 && errno == ESRCH) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

pid_t read_pid(const std::string& text)
{
    return static_cast<pid_t>(std::stol(text));
}

} // namespace

TEST_F(ProcessTest, CapturesExitCodeAndBothStreams)
{
    const auto output = run_ok(command_of({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
    EXPECT_EQ(output.exit_code, 3);
    EXPECT_EQ(output.signal_number, 0);
    EXPECT_FALSE(output.timed_out);
    EXPECT_FALSE(output.ok());
    EXPECT_EQ(output.out, "out\n");
    EXPECT_EQ(output.err, "err\n");
}

TEST_F(ProcessTest, SuccessIsOk)
{
    const auto output = run_ok(command_of({"true"}));
    EXPECT_EQ(output.exit_code, 0);
    EXPECT_TRUE(output.ok());
}

TEST_F(ProcessTest, StdinIsDevNull)
{
    auto command = command_of({"cat"});
    command.timeout = 5s;
    const auto start = Clock::now();
    const auto output = run_ok(command);
    EXPECT_LT(Clock::now() - start, 2s);
    EXPECT_FALSE(output.timed_out);
    EXPECT_EQ(output.exit_code, 0);
    EXPECT_EQ(output.out, "");
}

TEST_F(ProcessTest, ArgumentsAreNotInterpretedByAShell)
{
    const std::string argument = "$(echo hi); rm -rf / `id` *";
    const auto output = run_ok(command_of({"/bin/echo", argument}));
    EXPECT_EQ(output.out, argument + "\n");
}

TEST_F(ProcessTest, ReplacesTheEnvironment)
{
    auto command = command_of({"/usr/bin/env"});
    command.env = std::vector<std::string>{"FOO=bar"};
    EXPECT_EQ(run_ok(command).out, "FOO=bar\n");
}

TEST_F(ProcessTest, InheritsOurEnvironmentByDefault)
{
    ::setenv("GITOPPER_TEST_INHERITED", "yes", 1);
    const auto output = run_ok(command_of({"/bin/sh", "-c", "echo $GITOPPER_TEST_INHERITED"}));
    ::unsetenv("GITOPPER_TEST_INHERITED");
    EXPECT_EQ(output.out, "yes\n");
}

// systemd's hand-over to gitopper itself: a child that saw NOTIFY_SOCKET could speak on our
// notify socket (a failing `systemctl reload` does), and LISTEN_*/WATCHDOG_* are ours too.
TEST_F(ProcessTest, ChildrenNeverSeeTheServiceManagersVariables)
{
    const std::vector<std::string> ours{"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
                                        "LISTEN_PID",    "LISTEN_FDS",   "LISTEN_FDNAMES"};
    for (const auto& name : ours) {
        ::setenv(name.c_str(), "1", 1);
    }
    const auto inherited = run_ok(command_of({"/usr/bin/env"}));
    auto command = command_of({"/usr/bin/env"});
    command.env = std::vector<std::string>{"NOTIFY_SOCKET=/run/x", "LISTEN_FDS=3", "FOO=bar"};
    const auto given = run_ok(command);
    for (const auto& name : ours) {
        ::unsetenv(name.c_str());
    }
    for (const auto& name : ours) {
        EXPECT_EQ(inherited.out.find(name + "="), std::string::npos) << name;
        EXPECT_EQ(given.out.find(name + "="), std::string::npos) << name;
    }
    EXPECT_NE(inherited.out.find("PATH="), std::string::npos);
    EXPECT_EQ(given.out, "FOO=bar\n");
}

TEST_F(ProcessTest, LooksUpProgramsOnTheChildsPath)
{
    auto command = command_of({"env"});
    command.env = std::vector<std::string>{"PATH=/nonexistent:/usr/bin:/bin"};
    EXPECT_EQ(run_ok(command).out, "PATH=/nonexistent:/usr/bin:/bin\n");

    command.env = std::vector<std::string>{"PATH=/nonexistent"};
    const auto output = run(command);
    ASSERT_FALSE(output.has_value());
    EXPECT_EQ(output.error().message, "\"env\": command not found");
}

TEST_F(ProcessTest, EnvironmentWithSetsReplacesAndRemoves)
{
    ::setenv("GITOPPER_TEST_A", "1", 1);
    ::setenv("GITOPPER_TEST_B", "2", 1);
    ::unsetenv("GITOPPER_TEST_C");
    const auto environment =
        environment_with({"GITOPPER_TEST_A=changed", "GITOPPER_TEST_B", "GITOPPER_TEST_C=new"});
    ::unsetenv("GITOPPER_TEST_A");
    ::unsetenv("GITOPPER_TEST_B");

    const auto count_prefix = [&](std::string_view prefix) {
        return std::ranges::count_if(environment,
                                     [&](const auto& e) { return e.starts_with(prefix); });
    };
    EXPECT_EQ(count_prefix("GITOPPER_TEST_A="), 1);
    EXPECT_EQ(std::ranges::count(environment, "GITOPPER_TEST_A=changed"), 1);
    EXPECT_EQ(count_prefix("GITOPPER_TEST_B"), 0);
    EXPECT_EQ(std::ranges::count(environment, "GITOPPER_TEST_C=new"), 1);
    // The rest of ours is kept.
    const std::string path = std::string("PATH=") + std::getenv("PATH");
    EXPECT_EQ(std::ranges::count(environment, path), 1);
}

TEST_F(ProcessTest, TimeoutKillsTheWholeGroup)
{
    const auto pid_file = (m_dir / "pid").string();
    auto command =
        command_of({"/bin/sh", "-c", "sleep 7 & echo $! > \"$1\"; sleep 100", "sh", pid_file});
    command.timeout = 300ms;
    const auto start = Clock::now();
    const auto output = run_ok(command);
    const auto elapsed = Clock::now() - start;

    EXPECT_TRUE(output.timed_out);
    EXPECT_FALSE(output.ok());
    EXPECT_EQ(output.signal_number, SIGKILL);
    EXPECT_LT(elapsed, 2s);
    EXPECT_GE(elapsed, 300ms);
    EXPECT_EQ(output.describe(), "timed out after 300ms");

    std::ifstream file(pid_file);
    std::string grandchild;
    ASSERT_TRUE(std::getline(file, grandchild));
    EXPECT_TRUE(gone(read_pid(grandchild))) << "grandchild " << grandchild << " survived";
}

TEST_F(ProcessTest, KillsWhatTheCommandLeftRunning)
{
    // Without the group kill, the sleep would hold stdout open until the timeout.
    const auto start = Clock::now();
    const auto output = run_ok(command_of({"/bin/sh", "-c", "sleep 7 & echo $!"}));
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_FALSE(output.timed_out);
    EXPECT_EQ(output.exit_code, 0);
    ASSERT_FALSE(output.out.empty());
    EXPECT_TRUE(gone(read_pid(output.out))) << "grandchild " << output.out << " survived";
}

// `exec` may start a daemon: it outlives the command, and a daemon holding the pipes (its
// stderr here) does not keep run() waiting for it.
TEST_F(ProcessTest, AProgramThatStartsDaemonsLeavesThemRunning)
{
    auto command = command_of({"/bin/sh", "-c", "sleep 7 & echo $!"});
    command.starts_daemons = true;
    command.timeout = 20s;
    const auto start = Clock::now();
    const auto output = run_ok(command);
    EXPECT_LT(Clock::now() - start, 10s) << "waited for the daemon";
    EXPECT_FALSE(output.timed_out);
    EXPECT_EQ(output.exit_code, 0);
    ASSERT_FALSE(output.out.empty());
    const pid_t daemon = read_pid(output.out);
    EXPECT_EQ(::kill(daemon, 0), 0) << "daemon " << daemon << " was killed";
    ::kill(daemon, SIGKILL);
    EXPECT_TRUE(gone(daemon));
}

TEST_F(ProcessTest, StderrToADescriptorIsNotCaptured)
{
    const auto path = m_dir / "both";
    Fd file(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
    ASSERT_TRUE(file.valid());
    auto command = command_of({"/bin/sh", "-c", "echo out; echo err >&2"});
    command.stdout_fd = command.stderr_fd = file.get();
    const auto output = run_ok(command);
    EXPECT_EQ(output.out, "");
    EXPECT_EQ(output.err, "");
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "out\nerr\n");
}

// A grandchild that left the group (setsid) escapes the kill and holds stdout: run() waits for
// the pipe to end, asleep in poll(), not spinning on the exited child's pidfd.
TEST_F(ProcessTest, WaitingForAnEscapedGrandchildCostsNoCpu)
{
    const auto cpu = [] {
        rusage usage{};
        ::getrusage(RUSAGE_THREAD, &usage);
        return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    };
    const auto before = cpu();
    auto command = command_of({"/bin/sh", "-c",
                               "setsid sh -c 'echo left >ready; exec sleep 2' & until [ -s ready "
                               "]; do sleep 0.01; done"});
    command.cwd = m_dir.string();
    const auto start = Clock::now();
    const auto output = run_ok(command);
    EXPECT_TRUE(output.ok()) << output.describe();
    EXPECT_GT(Clock::now() - start, 1s) << "the grandchild did not hold the pipe";
    EXPECT_LT(cpu() - before, 500ms);
}

TEST_F(ProcessTest, CommandNotFoundIsAnError)
{
    const auto output = run(command_of({"no-such-command-xyz", "arg"}));
    ASSERT_FALSE(output.has_value());
    EXPECT_EQ(output.error().message, "\"no-such-command-xyz\": command not found");
}

TEST_F(ProcessTest, MissingProgramPathIsAnError)
{
    const auto output = run(command_of({"/nonexistent/prog"}));
    ASSERT_FALSE(output.has_value());
    EXPECT_EQ(
        output.error().message,
        "cannot start /nonexistent/prog: execve /nonexistent/prog: No such file or directory");
}

TEST_F(ProcessTest, EmptyCommandIsAnError)
{
    EXPECT_FALSE(run(command_of({})).has_value());
}

TEST_F(ProcessTest, RunsInTheGivenDirectory)
{
    auto command = command_of({"/bin/pwd"});
    command.cwd = m_dir.string();
    EXPECT_EQ(run_ok(command).out, m_dir.string() + "\n");
}

TEST_F(ProcessTest, MissingDirectoryIsAnError)
{
    auto command = command_of({"git", "status"});
    command.cwd = "/nonexistent-dir-xyz";
    const auto output = run(command);
    ASSERT_FALSE(output.has_value());
    EXPECT_EQ(output.error().message,
              "cannot start git: chdir /nonexistent-dir-xyz: No such file or directory");
}

TEST_F(ProcessTest, KeepsAtMostMaxOutputAndReadsOn)
{
    auto command = command_of({"/bin/sh", "-c", "yes | head -c 5000000; yes | head -c 300000 >&2"});
    command.max_output = 1000;
    const auto output = run_ok(command);
    EXPECT_EQ(output.exit_code, 0);
    EXPECT_FALSE(output.timed_out);
    EXPECT_EQ(output.out.size(), 1000u);
    EXPECT_EQ(output.err.size(), 1000u);
    EXPECT_EQ(output.out.substr(0, 4), "y\ny\n");
}

TEST_F(ProcessTest, StdoutToADescriptorIsWrittenWholeAndNotCaptured)
{
    const auto path = m_dir / "out";
    Fd file(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(file.valid());
    auto command = command_of({"/bin/sh", "-c", "yes | head -c 5000000; echo said >&2"});
    command.max_output = 1000; // applies to what is captured, not to the descriptor
    command.stdout_fd = file.get();
    const auto output = run_ok(command);
    EXPECT_TRUE(output.ok()) << output.describe();
    EXPECT_EQ(output.out, "");
    EXPECT_FALSE(output.truncated);
    EXPECT_EQ(output.err, "said\n");
    EXPECT_EQ(std::filesystem::file_size(path), 5000000u);
    // Still ours, open, and where the child left it.
    EXPECT_EQ(::lseek(file.get(), 0, SEEK_CUR), 5000000);
}

// A child writing a file past max_file_size is stopped there, not when the disk is full.
TEST_F(ProcessTest, MaxFileSizeStopsTheChildAtTheLimit)
{
    const auto path = m_dir / "out";
    Fd file(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(file.valid());
    auto command = command_of({"/bin/sh", "-c", "yes | head -c 5000000"});
    command.stdout_fd = file.get();
    command.max_file_size = 100000;
    const auto output = run_ok(command);
    EXPECT_FALSE(output.ok());
    EXPECT_EQ(std::filesystem::file_size(path), 100000u);

    // The limit is the child's alone: the next one writes on.
    command.max_file_size = 0;
    EXPECT_TRUE(run_ok(command).ok());
}

TEST_F(ProcessTest, StdoutDescriptorWorksForAnotherUser)
{
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root";
    }
    // Root's file, in a directory only root may enter: the child writes through what it got.
    const auto closed = m_dir / "closed";
    std::filesystem::create_directory(closed);
    std::filesystem::permissions(closed, std::filesystem::perms::owner_all);
    Fd file(::open((closed / "out").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(file.valid());
    auto command = command_of({"/bin/sh", "-c", "id -u"});
    command.as_user = Credentials{65534, 65534, {65534}, "nobody", "/nonexistent"};
    command.stdout_fd = file.get();
    const auto output = run_ok(command);
    EXPECT_TRUE(output.ok()) << output.describe();
    std::ifstream written(closed / "out");
    std::string text;
    std::getline(written, text);
    EXPECT_EQ(text, "65534");
}

TEST_F(ProcessTest, StdinFromADescriptor)
{
    const auto path = m_dir / "in";
    std::ofstream(path) << "line one\nline two\n";
    Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file.valid());
    auto command = command_of({"cat"});
    command.stdin_fd = file.get();
    const auto output = run_ok(command);
    EXPECT_EQ(output.exit_code, 0);
    EXPECT_EQ(output.out, "line one\nline two\n");
}

TEST_F(ProcessTest, AStdoutWriteErrorIsTheChildsToReport)
{
    // /dev/full fails every write with ENOSPC, as a full disk does.
    Fd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(full.valid());
    auto command = command_of({"/bin/sh", "-c", "printf x || exit 3"});
    command.stdout_fd = full.get();
    const auto output = run_ok(command);
    EXPECT_FALSE(output.ok());
    EXPECT_EQ(output.exit_code, 3);
}

TEST_F(ProcessTest, ReportsDeathBySignal)
{
    const auto output = run_ok(command_of({"/bin/sh", "-c", "echo dying >&2; kill -9 $$"}));
    EXPECT_EQ(output.signal_number, SIGKILL);
    EXPECT_EQ(output.exit_code, 128 + SIGKILL);
    EXPECT_FALSE(output.timed_out);
    EXPECT_EQ(output.describe(), "killed by signal 9: dying");
}

TEST_F(ProcessTest, ResetsIgnoredSignals)
{
    // An ignored SIGTERM would survive exec; the child must get the default action back.
    struct sigaction ignore {};
    struct sigaction saved {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGTERM, &ignore, &saved);
    const auto output = run_ok(command_of({"/bin/sh", "-c", "kill -TERM $$; sleep 5"}));
    ::sigaction(SIGTERM, &saved, nullptr);
    EXPECT_EQ(output.signal_number, SIGTERM);
}

TEST_F(ProcessTest, DropsToAnotherUser)
{
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root";
    }
    auto command = command_of({"/bin/sh", "-c", "id -u; id -g; id -G"});
    command.as_user = Credentials{65534, 65534, {65534}, "nobody", "/nonexistent"};
    const auto output = run_ok(command);
    EXPECT_EQ(output.exit_code, 0) << output.describe();
    EXPECT_EQ(output.out, "65534\n65534\n65534\n");
}

TEST_F(ProcessTest, DirectoryTheUserCannotEnterIsAnError)
{
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root";
    }
    const auto closed = m_dir / "closed";
    std::filesystem::create_directory(closed);
    std::filesystem::permissions(closed, std::filesystem::perms::owner_all);
    auto command = command_of({"/bin/pwd"});
    command.cwd = closed.string();
    command.as_user = Credentials{65534, 65534, {65534}, "nobody", "/nonexistent"};
    const auto output = run(command);
    ASSERT_FALSE(output.has_value());
    EXPECT_EQ(output.error().message,
              "cannot start /bin/pwd: chdir " + closed.string() + ": Permission denied");
}

TEST_F(ProcessTest, SafeFromSeveralThreads)
{
    std::vector<std::thread> threads;
    std::array<int, 4> failures{};
    for (std::size_t t = 0; t < failures.size(); ++t) {
        threads.emplace_back([t, &failures] {
            for (int i = 0; i < 20; ++i) {
                const auto expected = std::to_string(t) + "-" + std::to_string(i);
                const auto output = run(command_of({"/bin/echo", expected}));
                if (!output || output->out != expected + "\n" || !output->ok()) {
                    ++failures[t];
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(failures, (std::array<int, 4>{}));
}

TEST(ProcessDescribe, ExitWithTheLastLinesOfStderr)
{
    Output output;
    output.exit_code = 128;
    output.err = "Cloning into 'x'...\n\n  fatal: repository 'x' not found  \n\n";
    output.out = "ignored\n";
    EXPECT_EQ(output.describe(),
              "exited 128: Cloning into 'x'...; fatal: repository 'x' not found");
}

TEST(ProcessDescribe, StdoutWhenStderrIsEmpty)
{
    Output output;
    output.exit_code = 1;
    output.out = "first\nsecond\nthird\nfourth\n";
    EXPECT_EQ(output.describe(), "exited 1: second; third; fourth");
}

TEST(ProcessDescribe, NoOutputAtAll)
{
    Output output;
    output.exit_code = 2;
    EXPECT_EQ(output.describe(), "exited 2");
}

TEST(ProcessDescribe, TimeoutAndSignal)
{
    Output output;
    output.exit_code = 137;
    output.signal_number = 9;
    output.timed_out = true;
    output.timeout = 2s;
    EXPECT_EQ(output.describe(), "timed out after 2s");
    output.timed_out = false;
    EXPECT_EQ(output.describe(), "killed by signal 9");
}

TEST(ProcessDescribe, LongOutputIsShortened)
{
    Output output;
    output.exit_code = 1;
    output.err = "old line\n" + std::string(1000, 'x') + "\n";
    const auto description = output.describe();
    EXPECT_LE(description.size(), 320u);
    EXPECT_TRUE(description.starts_with("exited 1: xxx")) << description;
    EXPECT_TRUE(description.ends_with("x...")) << description;
}

TEST(ProcessPrintable, QuotesOnlyWhenNeeded)
{
    EXPECT_EQ(
        printable({"git", "-C", "/srv/a-b_c.d", "fetch", "origin", "+refs/x:refs/y", "a=b@c%d,e"}),
        "git -C /srv/a-b_c.d fetch origin +refs/x:refs/y a=b@c%d,e");
    EXPECT_EQ(printable({"echo", "a b", "", "it's", "$HOME"}), "echo 'a b' '' 'it'\\''s' '$HOME'");
}

TEST(ProcessDescribe, ShorteningNeverCutsACharacter)
{
    Output output;
    output.exit_code = 1;
    output.err = std::string(299, 'x') + "\xc3\xa9" + std::string(50, 'y'); // é at bytes 299-300
    EXPECT_EQ(output.describe(), "exited 1: " + std::string(299, 'x') + "...");
}

TEST(ProcessDescribe, TheErrorLineWinsOverTheAdviceAfterIt)
{
    Output output;
    output.exit_code = 128;
    output.err = "fatal: Unable to create '/x/.git/index.lock': File exists.\n\n"
                 "Another git process seems to be running in this repository, e.g.\n"
                 "an editor opened by 'git commit'. Please make sure all processes\n"
                 "are terminated then try again. If it still fails, a git process\n"
                 "may have crashed in this repository earlier:\n"
                 "remove the file manually to continue.\n";
    EXPECT_EQ(output.describe(),
              "exited 128: fatal: Unable to create '/x/.git/index.lock': File exists.; "
              "Another git process seems to be running in this repository, e.g.; "
              "an editor opened by 'git commit'. Please make sure all processes");
}

TEST_F(ProcessTest, RunCheckedTurnsAFailedProgramIntoAnError)
{
    auto failed = run_checked(Command{.argv = {"sh", "-c", "echo broken >&2; exit 3"}});
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find("sh -c"), std::string::npos) << failed.error().message;
    EXPECT_NE(failed.error().message.find("exited 3"), std::string::npos) << failed.error().message;
    EXPECT_NE(failed.error().message.find("broken"), std::string::npos) << failed.error().message;
    auto ok = run_checked(Command{.argv = {"sh", "-c", "echo fine"}});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->out, "fine\n");
}

TEST(Wake, ASignalStaysUntilDrained)
{
    const Wake wake;
    pollfd fd{wake.fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&fd, 1, 0), 0);
    wake.signal();
    wake.signal();
    EXPECT_EQ(::poll(&fd, 1, 0), 1);
    EXPECT_EQ(::poll(&fd, 1, 0), 1); // poll alone does not take it
    wake.drain();
    EXPECT_EQ(::poll(&fd, 1, 0), 0);
    wake.drain(); // nothing there: no block, no error
}
