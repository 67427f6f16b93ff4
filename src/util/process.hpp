#pragma once
// The one way gitopper starts another program. argv only (never a shell), stdin from
// /dev/null, stdout and stderr captured, its own process group, a timeout that kills the
// whole group, optional drop to another uid/gid, and full control of the environment.
// stdin and stdout may instead be files the caller opened (a child dropped to another user
// then reads and writes them through the descriptor alone).
// Safe to call from several threads at once; blocks the calling thread until the child ends.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gitopper {

// Who a child runs as. Resolved before fork (lookups are not async-signal-safe).
struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups
    std::string name;          // for logs
    std::string home;
};

struct Command {
    std::vector<std::string> argv; // argv[0] is looked up on PATH when it has no '/'
    std::chrono::milliseconds timeout{std::chrono::minutes(2)};
    std::optional<Credentials> as_user;          // drop to this uid/gid before exec
    std::optional<std::vector<std::string>> env; // "KEY=VALUE"; nullopt inherits ours
    std::optional<std::string> cwd;
    std::size_t max_output = 1 << 20; // bytes kept of each of stdout and stderr
    // Descriptors of the caller's, which run() neither closes nor moves: -1 for the defaults.
    int stdin_fd = -1;  // what the child reads instead of /dev/null
    int stdout_fd = -1; // where its stdout goes whole, not captured: `out` stays empty
    int stderr_fd = -1; // where its stderr goes whole (may be stdout_fd): `err` stays empty
    // The largest file the child may write (RLIMIT_FSIZE, soft and hard, so a child dropped to
    // another user cannot raise it): past it the kernel ends it with SIGXFSZ. 0: no limit.
    std::uint64_t max_file_size = 0;
    // Descriptors of the caller's that the child keeps, at the same numbers (the caller says
    // which in the environment, e.g. /proc/self/fd/N); every other one is closed at exec.
    std::vector<int> passed_fds;
    // For a program whose job is to start daemons (`exec` on a host without systemd): what it
    // leaves running once it exits is not killed, and its output is read only until it exits
    // (a daemon keeps pipes open, and dies of SIGPIPE writing to them later: give it files as
    // stdout_fd and stderr_fd). A timeout still kills its whole group.
    bool starts_daemons = false;
};

struct Output {
    int exit_code = -1;    // exit status, or 128+signal when killed by a signal
    int signal_number = 0; // the signal that killed it, 0 when it exited by itself
    bool timed_out = false;
    bool cancelled = false;               // killed by cancel_running_processes()
    std::chrono::milliseconds timeout{0}; // the limit it ran under, for describe()
    std::string out;
    std::string err;
    bool truncated = false; // stdout was longer than max_output: `out` holds only its start
                            // (never with Command::stdout_fd, which takes everything)

    bool ok() const { return exit_code == 0 && !timed_out && !cancelled; }
    // A one-line description for errors: "exited 128: fatal: ..." (stderr's last lines).
    std::string describe() const;
};

// Runs the command to completion. An Error means it could not be started at all (no such
// program, fork failed); a program that ran and failed is an Output with !ok().
[[nodiscard]] Result<Output> run(const Command& command);

// run(), and a program that ran and failed is an Error too: "systemctl reload x: exited 1: ...".
[[nodiscard]] Result<Output> run_checked(const Command& command);

// Kills every running and future child of run() (at shutdown): they end as cancelled.
void cancel_running_processes();
// Whether cancel_running_processes() was called: what failed since may have been cut short.
bool processes_cancelled();
// Sleeps for `duration`, or less once processes are cancelled; false then.
bool sleep_unless_cancelled(std::chrono::milliseconds duration);

// Our environment with `overrides` ("KEY=VALUE" sets, "KEY" alone removes) applied.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// Only the variables `names` of our environment, with `overrides` applied: for children that
// run as someone else, who has no business with the rest of root's environment.
std::vector<std::string> environment_of(std::span<const std::string_view> names,
                                        const std::vector<std::string>& overrides);

// The command line as one string for logs, each argument quoted when needed.
std::string printable(const std::vector<std::string>& argv);

} // namespace gitopper
