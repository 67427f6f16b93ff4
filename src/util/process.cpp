#include "util/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// glibc 2.36 leaves out the extern "C" that its other headers have.
extern "C" {
#include <sys/pidfd.h>
}

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "util/duration.hpp"
#include "util/fd.hpp"
#include "util/progress.hpp"
#include "util/strings.hpp"
#include "util/wake.hpp"

namespace gitopper {

namespace {

using Clock = std::chrono::steady_clock;

// Longer timeouts are treated as this, so that now() + timeout cannot overflow.
constexpr auto max_timeout = std::chrono::hours(24 * 365);

// Where execvp looks when PATH is unset.
constexpr std::string_view default_path = "/bin:/usr/bin";

// How much of a program's output describe() quotes.
constexpr std::size_t tail_lines = 3;
constexpr std::size_t tail_chars = 300;

// How long the output of a program that starts daemons is read after it exited.
constexpr auto daemon_drain = std::chrono::milliseconds(100);

// What the child was doing when it failed before exec; the parent turns it into a message.
enum class Step : int {
    setpgid,
    signals,
    stdio,
    setgroups,
    setresgid,
    setresuid,
    chdir,
    close_fds,
    file_size,
    exec,
};

// Sent by a child that could not exec, through a close-on-exec pipe that a successful exec
// closes without a word.
struct ChildFailure {
    Step step;
    int error;
};

// Everything the child touches between fork and exec, prepared by the parent: the process
// is multi-threaded, so the child may only make async-signal-safe calls (no allocation, no
// locks) until it execs.
struct ChildSetup {
    const char* program = nullptr;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    const char* cwd = nullptr;         // nullptr: stay in ours
    const Credentials* user = nullptr; // nullptr: stay who we are
    int stdin_fd = -1;
    int stdout_fd = -1;
    int stderr_fd = -1;
    int report_fd = -1;
    rlim_t max_file_size = RLIM_INFINITY;
    const int* passed_fds = nullptr; // kept open across exec
    std::size_t passed_count = 0;
};

// One pipe from the child. Keeps at most `limit` bytes but reads on to the end, so that the
// child never blocks on a full pipe.
class Capture {
public:
    Capture(Fd fd, std::size_t limit) : m_fd(std::move(fd)), m_limit(limit) {}

    int fd() const { return m_fd.get(); }
    bool open() const { return m_fd.valid(); }
    const std::string& text() const { return m_text; }
    std::string take() { return std::move(m_text); }
    bool truncated() const { return m_truncated; }

    // Called when poll() says the pipe is readable (or hung up); closes it at the end.
    void read_some();

private:
    Fd m_fd;
    std::size_t m_limit;
    std::string m_text;
    bool m_truncated = false; // more came than m_limit; the rest was read and dropped
};

void Capture::read_some()
{
    std::array<char, 65536> buffer; // one full pipe
    const ssize_t count = ::read(m_fd.get(), buffer.data(), buffer.size());
    if (count < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (count <= 0) {
        m_fd.reset();
        return;
    }
    const std::size_t room = m_limit - std::min(m_limit, m_text.size());
    m_truncated = m_truncated || static_cast<std::size_t>(count) > room;
    m_text.append(buffer.data(), std::min(room, static_cast<std::size_t>(count)));
}

// A started child, not yet reaped: while it is a zombie its pid, which is also its process
// group's id, cannot be reused, so signalling the group stays safe until waitpid().
struct Child {
    pid_t pid;
    Fd pidfd;
    Capture out;
    Capture err;
    Capture report;
};

struct Pipe {
    Fd read;
    Fd write;
};

// Moves a descriptor above 0-2, so that dup2() onto stdio in the child never finds its source
// already in place (which would keep close-on-exec set) or clobbers another source.
[[nodiscard]] Result<Fd> above_stdio(Fd fd)
{
    if (fd.get() > STDERR_FILENO) {
        return fd;
    }
    Fd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    if (!moved) {
        return fail("fcntl: {}", errno_message(errno));
    }
    return moved;
}

[[nodiscard]] Result<Pipe> make_pipe()
{
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        return fail("pipe: {}", errno_message(errno));
    }
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    auto read = above_stdio(std::move(read_end));
    auto write = above_stdio(std::move(write_end));
    if (!read || !write) {
        return std::unexpected(read ? write.error() : read.error());
    }
    return Pipe{std::move(*read), std::move(*write)};
}

[[nodiscard]] Result<Fd> open_dev_null()
{
    Fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return fail("/dev/null: {}", errno_message(errno));
    }
    return above_stdio(std::move(fd));
}

// ---- the child, between fork and exec: async-signal-safe calls only ----

[[noreturn]] void fail_child(int report_fd, Step step)
{
    const ChildFailure failure{step, errno};
    // A few bytes into a pipe are written whole; if even that fails, no one can be told.
    [[maybe_unused]] const auto written = ::write(report_fd, &failure, sizeof failure);
    ::_exit(127);
}

// Handlers are reset by exec anyway, but ignored signals and the signal mask are inherited:
// the parent may ignore SIGPIPE or block everything for its signal thread.
bool reset_signals()
{
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
        // SIGKILL, SIGSTOP and the signals glibc keeps for itself refuse, which is fine.
        ::sigaction(signal_number, &action, nullptr);
    }
    sigset_t empty;
    ::sigemptyset(&empty);
    return ::sigprocmask(SIG_SETMASK, &empty, nullptr) == 0;
}

bool redirect_stdio(const ChildSetup& setup)
{
    return ::dup2(setup.stdin_fd, STDIN_FILENO) >= 0 &&
           ::dup2(setup.stdout_fd, STDOUT_FILENO) >= 0 &&
           ::dup2(setup.stderr_fd, STDERR_FILENO) >= 0;
}

// Groups first and uid last: after setresuid we could no longer change the others.
void drop_privileges(const Credentials& user, int report_fd)
{
    if (::setgroups(user.groups.size(), user.groups.data()) != 0) {
        fail_child(report_fd, Step::setgroups);
    }
    if (::setresgid(user.gid, user.gid, user.gid) != 0) {
        fail_child(report_fd, Step::setresgid);
    }
    if (::setresuid(user.uid, user.uid, user.uid) != 0) {
        fail_child(report_fd, Step::setresuid);
    }
}

[[noreturn]] void exec_child(const ChildSetup& setup)
{
    const int report = setup.report_fd;
    if (::setpgid(0, 0) != 0) {
        fail_child(report, Step::setpgid);
    }
    if (!reset_signals()) {
        fail_child(report, Step::signals);
    }
    if (!redirect_stdio(setup)) {
        fail_child(report, Step::stdio);
    }
    // Before dropping privileges: the hard limit too, which the user can then not raise.
    const rlimit file_size{setup.max_file_size, setup.max_file_size};
    if (setup.max_file_size != RLIM_INFINITY && ::setrlimit(RLIMIT_FSIZE, &file_size) != 0) {
        fail_child(report, Step::file_size);
    }
    if (setup.user != nullptr) {
        drop_privileges(*setup.user, report);
    }
    // After dropping privileges, so that a directory the user cannot enter fails here, with
    // a clear message, rather than somewhere inside the program.
    if (setup.cwd != nullptr && ::chdir(setup.cwd) != 0) {
        fail_child(report, Step::chdir);
    }
    // Descriptors some other thread or library opened without O_CLOEXEC must not leak.
    if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        fail_child(report, Step::close_fds);
    }
    for (std::size_t i = 0; i < setup.passed_count; ++i) {
        if (::fcntl(setup.passed_fds[i], F_SETFD, 0) != 0) {
            fail_child(report, Step::close_fds);
        }
    }
    ::execve(setup.program, setup.argv, setup.envp);
    fail_child(report, Step::exec);
}

// ---- the parent ----

std::string search_path(const std::vector<std::string>& environment)
{
    for (const auto& entry : environment) {
        if (entry.starts_with("PATH=")) {
            return entry.substr(5);
        }
    }
    return std::string(default_path);
}

bool is_executable_file(const std::string& path)
{
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// Like execvp, but before fork and with the child's PATH. Relative PATH entries are skipped:
// a daemon running as root must not pick up programs from whatever directory it is in.
[[nodiscard]] Result<std::string> resolve_program(const std::string& name,
                                                  const std::vector<std::string>& environment)
{
    if (name.find('/') != std::string::npos) {
        return name;
    }
    for (const auto& directory : split(search_path(environment), ':')) {
        if (directory.starts_with('/')) {
            auto candidate = directory + "/" + name;
            if (is_executable_file(candidate)) {
                return candidate;
            }
        }
    }
    return fail("{}: command not found", quote(name));
}

// Null-terminated pointers into `strings`, which must outlive them.
std::vector<char*> c_strings(std::vector<std::string>& strings)
{
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (auto& text : strings) {
        pointers.push_back(text.data());
    }
    pointers.push_back(nullptr);
    return pointers;
}

[[nodiscard]] Result<int> wait_for(pid_t pid)
{
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail("waitpid: {}", errno_message(errno));
        }
    }
    return status;
}

// For a child we cannot watch: it must not be left running, nor as a zombie.
void kill_and_reap(pid_t pid)
{
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    [[maybe_unused]] const auto status = wait_for(pid);
}

// What the child gets as stdin, stdout and stderr, and the pipe it reports failures through.
// An output going to the caller's file has no read end here: nothing to capture.
struct ChildPipes {
    Fd in;
    Pipe out;
    Pipe err;
    Pipe report;
};

// A copy of the caller's descriptor, above stdio, that we may close after the fork.
[[nodiscard]] Result<Fd> copy_of(int fd)
{
    Fd copy(::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    if (!copy) {
        return fail("descriptor {}: {}", fd, errno_message(errno));
    }
    return copy;
}

// A pipe to capture, or the caller's file as the write end with nothing to read.
[[nodiscard]] Result<Pipe> output_to(int caller_fd)
{
    if (caller_fd < 0) {
        return make_pipe();
    }
    auto copy = copy_of(caller_fd);
    if (!copy) {
        return std::unexpected(copy.error());
    }
    return Pipe{Fd(), std::move(*copy)};
}

[[nodiscard]] Result<ChildPipes> make_child_pipes(const Command& command)
{
    auto in = command.stdin_fd < 0 ? open_dev_null() : copy_of(command.stdin_fd);
    if (!in) {
        return std::unexpected(in.error());
    }
    auto out = output_to(command.stdout_fd);
    auto err = output_to(command.stderr_fd);
    auto report = make_pipe();
    if (!out || !err || !report) {
        return std::unexpected(!out ? out.error() : !err ? err.error() : report.error());
    }
    return ChildPipes{std::move(*in), std::move(*out), std::move(*err), std::move(*report)};
}

[[nodiscard]] Result<Child> start_child(ChildSetup setup, const Command& command)
{
    auto pipes = make_child_pipes(command);
    if (!pipes) {
        return std::unexpected(pipes.error());
    }
    const auto max_output = command.max_output;
    setup.stdin_fd = pipes->in.get();
    setup.stdout_fd = pipes->out.write.get();
    setup.stderr_fd = pipes->err.write.get();
    setup.report_fd = pipes->report.write.get();

    const pid_t pid = ::fork();
    if (pid < 0) {
        return fail("fork: {}", errno_message(errno));
    }
    if (pid == 0) {
        exec_child(setup);
    }
    // The child does this too; doing it here as well means that killing the group cannot race
    // with the child getting there. Fails harmlessly when the child has exec'd already.
    ::setpgid(pid, pid);
    Fd pidfd(::pidfd_open(pid, 0));
    if (!pidfd) {
        const int error = errno;
        kill_and_reap(pid);
        return fail("pidfd_open: {}", errno_message(error));
    }
    // Our copies of the write ends close on return, so the pipes end when the child's do.
    return Child{pid, std::move(pidfd), Capture(std::move(pipes->out.read), max_output),
                 Capture(std::move(pipes->err.read), max_output),
                 Capture(std::move(pipes->report.read), sizeof(ChildFailure))};
}

int milliseconds_until(Clock::time_point deadline)
{
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, INT_MAX));
}

// Readable once cancel_running_processes() was called; never read, so it stays readable.
const Wake& cancel()
{
    static const Wake wake;
    return wake;
}

// The child's pipes, the cancel eventfd, then its pidfd. Closed pipes are -1, which poll()
// skips.
constexpr std::size_t kCancelled = 3;
constexpr std::size_t kExited = 4;
std::array<pollfd, 5> poll_set(const Child& child)
{
    return {{{child.out.fd(), POLLIN, 0},
             {child.err.fd(), POLLIN, 0},
             {child.report.fd(), POLLIN, 0},
             {cancel().fd(), POLLIN, 0},
             {child.pidfd.get(), POLLIN, 0}}};
}

void read_ready(Child& child, const std::array<pollfd, 5>& fds)
{
    const std::array captures{&child.out, &child.err, &child.report};
    for (std::size_t i = 0; i < captures.size(); ++i) {
        if (fds[i].revents != 0) {
            captures[i]->read_some();
        }
    }
}

enum class Ending { exited, timed_out, cancelled };

// Reads the pipes until the child exits, the deadline passes or we are shutting down.
Ending pump_until_exit(Child& child, Clock::time_point deadline)
{
    while (true) {
        const int timeout = milliseconds_until(deadline);
        if (timeout == 0) {
            return Ending::timed_out;
        }
        auto fds = poll_set(child);
        // EINTR, or ENOMEM which passes: just try again, the deadline bounds the loop.
        if (::poll(fds.data(), fds.size(), timeout) <= 0) {
            continue;
        }
        read_ready(child, fds);
        if (fds[kExited].revents != 0) {
            return Ending::exited;
        }
        if (fds[kCancelled].revents != 0) {
            return Ending::cancelled;
        }
    }
}

// Reads what is left in the pipes, until they end, the deadline passes or we are shutting
// down. Not the pidfd: the exited child's would make every poll() return at once.
void drain(Child& child, Clock::time_point deadline)
{
    while (child.out.open() || child.err.open() || child.report.open()) {
        auto fds = poll_set(child);
        const int ready = ::poll(fds.data(), kExited, milliseconds_until(deadline));
        if (ready == 0 || (ready < 0 && errno != EINTR) || fds[kCancelled].revents != 0) {
            return;
        }
        if (ready > 0) {
            read_ready(child, fds);
        }
    }
}

void set_status(Output& output, int status)
{
    if (WIFSIGNALED(status)) {
        output.signal_number = WTERMSIG(status);
        output.exit_code = 128 + output.signal_number;
    } else {
        output.exit_code = WEXITSTATUS(status);
    }
}

std::string describe_step(Step step, const Command& command, const std::string& program)
{
    switch (step) {
    case Step::setpgid:
        return "setpgid";
    case Step::signals:
        return "resetting signals";
    case Step::stdio:
        return "redirecting stdio";
    case Step::setgroups:
        return "setgroups";
    case Step::setresgid:
        return fmt::format("setresgid {}", command.as_user->gid);
    case Step::setresuid:
        return fmt::format("setresuid {}", command.as_user->uid);
    case Step::chdir:
        return "chdir " + command.cwd.value_or("");
    case Step::close_fds:
        return "close_range";
    case Step::file_size:
        return fmt::format("setrlimit RLIMIT_FSIZE {}", command.max_file_size);
    case Step::exec:
        return "execve " + program;
    }
    return "starting";
}

// The child's report if it failed before exec.
std::optional<ChildFailure> reported_failure(const Capture& report)
{
    if (report.text().size() != sizeof(ChildFailure)) {
        return std::nullopt;
    }
    ChildFailure failure{};
    std::memcpy(&failure, report.text().data(), sizeof failure);
    return failure;
}

[[nodiscard]] Result<Output> finish(Child& child, const Command& command,
                                    const std::string& program, Clock::time_point deadline)
{
    Output output;
    output.timeout = command.timeout;
    const auto ending = pump_until_exit(child, deadline);
    output.timed_out = ending == Ending::timed_out;
    output.cancelled = ending == Ending::cancelled;
    if (ending == Ending::exited && command.starts_daemons) {
        // What it wrote before exiting is in the pipes already; a daemon may hold them open.
        drain(child, std::min(deadline, Clock::now() + daemon_drain));
    } else {
        // On timeout this ends the command; after an exit it ends what the command left
        // running in its group, which must not outlive it. Also the child itself, should it
        // have left its group.
        ::kill(-child.pid, SIGKILL);
        ::pidfd_send_signal(child.pidfd.get(), SIGKILL, nullptr, 0);
        drain(child, deadline);
    }
    const auto status = wait_for(child.pid);
    if (!status) {
        return fail("cannot wait for {}: {}", command.argv[0], status.error().message);
    }
    if (const auto failure = reported_failure(child.report)) {
        return fail("cannot start {}: {}: {}", command.argv[0],
                    describe_step(failure->step, command, program), errno_message(failure->error));
    }
    set_status(output, *status);
    output.truncated = child.out.truncated();
    output.out = child.out.take();
    output.err = child.err.take();
    return output;
}

// The last non-empty lines of a program's output, which is where git and most tools say why
// they failed, as one line.
bool is_error_line(std::string_view line)
{
    return line.starts_with("fatal:") || line.starts_with("error:");
}

// The last lines, unless the error line comes earlier and is followed by advice (git's lock
// message ends in five lines of it): then from the error line on.
std::string tail_of(std::string_view text)
{
    auto lines = split(text, '\n');
    std::erase_if(lines, [](const std::string& line) { return trim(line).empty(); });
    const auto error = std::find_if(lines.rbegin(), lines.rend(), [](const std::string& line) {
        return is_error_line(trim(line));
    });
    constexpr auto kept = static_cast<std::ptrdiff_t>(tail_lines);
    if (error != lines.rend() && error - lines.rbegin() >= kept) {
        lines.erase(error.base() - 1 + kept, lines.end());
    }
    std::vector<std::string> picked;
    std::size_t length = 0;
    for (auto line = lines.rbegin(); line != lines.rend() && picked.size() < tail_lines; ++line) {
        const auto trimmed = trim(*line);
        if (trimmed.empty()) {
            continue;
        }
        if (!picked.empty() && length + trimmed.size() > tail_chars) {
            break;
        }
        picked.emplace(picked.begin(), trimmed);
        length += trimmed.size() + 2;
    }
    auto tail = join(picked, "; ");
    if (tail.size() > tail_chars) {
        auto cut = tail_chars; // not inside a UTF-8 character: back off its continuation bytes
        while (cut > 0 && (static_cast<unsigned char>(tail[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        tail = tail.substr(0, cut) + "...";
    }
    return tail;
}

bool is_shell_safe(char c)
{
    constexpr std::string_view safe_punctuation = "_./:=@%+,-";
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           safe_punctuation.find(c) != std::string_view::npos;
}

std::string shell_quoted(std::string_view text)
{
    if (!text.empty() && std::ranges::all_of(text, is_shell_safe)) {
        return std::string(text);
    }
    std::string quoted_text = "'";
    for (const char c : text) {
        quoted_text += c == '\'' ? std::string_view("'\\''") : std::string_view(&c, 1);
    }
    return quoted_text + "'";
}

void apply_setting(std::vector<std::string>& environment, const std::string& setting)
{
    const auto equals = setting.find('=');
    const auto key = std::string_view(setting).substr(0, equals);
    std::erase_if(environment, [&](const std::string& entry) {
        return entry.size() > key.size() && entry[key.size()] == '=' && entry.starts_with(key);
    });
    if (equals != std::string::npos) {
        environment.push_back(setting);
    }
}

// What systemd hands to gitopper alone: a child that inherited NOTIFY_SOCKET could report on
// our notify socket (a failing `systemctl reload` does), and under NotifyAccess=all be taken
// for us; LISTEN_* and WATCHDOG_* describe our sockets and our watchdog, not the child's.
void drop_service_manager_variables(std::vector<std::string>& environment)
{
    static constexpr std::array<std::string_view, 6> kOurs{"NOTIFY_SOCKET", "WATCHDOG_PID",
                                                           "WATCHDOG_USEC", "LISTEN_PID",
                                                           "LISTEN_FDS",    "LISTEN_FDNAMES"};
    for (const auto name : kOurs) {
        apply_setting(environment, std::string(name));
    }
}

} // namespace

std::string Output::describe() const
{
    std::string what;
    if (cancelled) {
        what = "stopped: gitopper is shutting down";
    } else if (timed_out) {
        what = "timed out after " + format_duration(timeout);
    } else if (signal_number != 0) {
        what = fmt::format("killed by signal {}", signal_number);
    } else {
        what = fmt::format("exited {}", exit_code);
    }
    auto tail = tail_of(err);
    if (tail.empty()) {
        tail = tail_of(out);
    }
    return tail.empty() ? what : what + ": " + tail;
}

[[nodiscard]] Result<Output> run(const Command& command)
{
    if (command.argv.empty()) {
        return fail("cannot run an empty command");
    }
    const auto deadline =
        Clock::now() + std::min<std::chrono::milliseconds>(command.timeout, max_timeout);
    auto args = command.argv;
    auto environment = command.env ? *command.env : environment_with({});
    drop_service_manager_variables(environment);
    const auto program = resolve_program(args[0], environment);
    if (!program) {
        return std::unexpected(program.error());
    }
    const auto argv = c_strings(args);
    const auto envp = c_strings(environment);
    ChildSetup setup;
    setup.program = program->c_str();
    setup.argv = argv.data();
    setup.envp = envp.data();
    setup.cwd = command.cwd ? command.cwd->c_str() : nullptr;
    setup.user = command.as_user ? &*command.as_user : nullptr;
    if (command.max_file_size != 0) {
        setup.max_file_size = command.max_file_size;
    }
    setup.passed_fds = command.passed_fds.data();
    setup.passed_count = command.passed_fds.size();
    auto child = start_child(setup, command);
    if (!child) {
        return fail("cannot start {}: {}", command.argv[0], child.error().message);
    }
    auto* progress = thread_progress(); // the watchdog's: waiting for a child is progress
    if (progress != nullptr) {
        progress->bounded_wait(command.timeout);
    }
    auto output = finish(*child, command, *program, deadline);
    if (progress != nullptr) {
        progress->step();
    }
    return output;
}

Result<Output> run_checked(const Command& command)
{
    auto output = run(command);
    if (output && !output->ok()) {
        return fail("{}: {}", printable(command.argv), output->describe());
    }
    return output;
}

void cancel_running_processes()
{
    cancel().signal();
}

bool processes_cancelled()
{
    pollfd fd{cancel().fd(), POLLIN, 0};
    return ::poll(&fd, 1, 0) > 0;
}

bool sleep_unless_cancelled(std::chrono::milliseconds duration)
{
    pollfd fd{cancel().fd(), POLLIN, 0};
    const auto until = Clock::now() + duration;
    if (auto* progress = thread_progress()) {
        progress->bounded_wait(duration);
    }
    while (true) {
        const int ready = ::poll(&fd, 1, milliseconds_until(until));
        if (ready > 0) {
            return false;
        }
        if (ready == 0 || (errno != EINTR) || Clock::now() >= until) {
            return true;
        }
    }
}

std::vector<std::string> environment_with(const std::vector<std::string>& overrides)
{
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        environment.emplace_back(*entry);
    }
    for (const auto& setting : overrides) {
        apply_setting(environment, setting);
    }
    return environment;
}

std::vector<std::string> environment_of(std::span<const std::string_view> names,
                                        const std::vector<std::string>& overrides)
{
    std::vector<std::string> environment;
    for (const auto name : names) {
        if (const char* value = std::getenv(std::string(name).c_str())) {
            environment.push_back(fmt::format("{}={}", name, value));
        }
    }
    for (const auto& setting : overrides) {
        apply_setting(environment, setting);
    }
    return environment;
}

std::string printable(const std::vector<std::string>& argv)
{
    std::vector<std::string> quoted_args;
    quoted_args.reserve(argv.size());
    for (const auto& arg : argv) {
        quoted_args.push_back(shell_quoted(arg));
    }
    return join(quoted_args, " ");
}

} // namespace gitopper
