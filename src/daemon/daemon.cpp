// The daemon's life: load, start every poll group, wait for a signal (or a changed config
// with -r), shut down in order.

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "config/config.hpp"
#include "daemon/options.hpp"
#include "daemon/watchdog.hpp"
#include "fleet/rollout.hpp"
#include "host/systemd.hpp"
#include "notify/notifier.hpp"
#include "server/exposition.hpp"
#include "server/http.hpp"
#include "server/keys.hpp"
#include "server/ssh.hpp"
#include "service/engine.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/process.hpp"
#include "util/safe_path.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

constexpr int kExitRestart = 2;

sigset_t blocked_signals()
{
    sigset_t set;
    sigemptyset(&set);
    for (const int signal : {SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&set, signal);
    }
    return set;
}

// Watches the config file's content for -r: cheap stat first, read only when it moved.
class ConfigWatch {
public:
    explicit ConfigWatch(std::string path) : m_path(std::move(path)), m_content(read_file(m_path))
    {
        m_stat = stat_of();
    }

    bool changed()
    {
        const auto now = stat_of();
        if (now == m_stat) {
            return false;
        }
        m_stat = now;
        if (read_file(m_path) != m_content) {
            return true;
        }
        log::info("{} was touched but its content is the same: not restarting", m_path);
        return false;
    }

private:
    std::tuple<long, long, long, ino_t> stat_of() const
    {
        struct stat st {};
        if (::stat(m_path.c_str(), &st) != 0) {
            return {};
        }
        return {st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino};
    }

    std::string m_path;
    Result<std::string> m_content;
    std::tuple<long, long, long, ino_t> m_stat;
};

// Blocks until SIGTERM/SIGINT (0), SIGHUP (2) or, with -r, a changed config (2); without
// -r a change is logged once.
struct Exit {
    int status = 0;
    pid_t sender = 0; // of the SIGHUP
};

// The parent of a process, from /proc; 0 when it is gone.
pid_t parent_of(pid_t pid)
{
    const auto stat = read_file(fmt::format("/proc/{}/stat", pid));
    const auto end = stat ? stat->rfind(')') : std::string::npos;
    if (end == std::string::npos) {
        return 0;
    }
    int parent = 0; // "pid (comm) state ppid ..."; comm may hold anything but ')' ends it
    return std::sscanf(stat->c_str() + end + 1, " %*c %d", &parent) == 1 ? parent : 0;
}

// systemd's `reload` runs `kill -HUP $MAINPID` and succeeds when that process ends while the
// unit is still running: had STOPPING=1 come first, the reload would fail, though the restart
// that follows does what it asked. So the shutdown for a SIGHUP sent by a sibling (a child of
// our service manager) waits, at most 2 s, until the sender is gone: reaped, so systemd has
// seen it end. A shell's `kill` costs no wait.
void await_sender(pid_t sender)
{
    if (sender <= 0 || sender == ::getppid() || parent_of(sender) != ::getppid()) {
        return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (::kill(sender, 0) == 0 || errno == EPERM) {
        if (std::chrono::steady_clock::now() > until) {
            return;
        }
        ::usleep(5000);
    }
}

Exit wait_for_exit(const Options& options, const std::string& config_path, Watchdog& watchdog)
{
    const auto set = blocked_signals();
    ConfigWatch config(config_path);
    bool told = false;
    const auto period = std::chrono::duration_cast<std::chrono::nanoseconds>(watchdog.period());
    const timespec tick{static_cast<time_t>(period.count() / 1'000'000'000),
                        static_cast<long>(period.count() % 1'000'000'000)};
    while (true) {
        watchdog.tick();
        siginfo_t info{};
        const int signal = ::sigtimedwait(&set, &info, &tick);
        if (signal == SIGTERM || signal == SIGINT) {
            log::info("received {}, shutting down", strsignal(signal));
            return {};
        }
        if (signal == SIGHUP) {
            log::info("received SIGHUP, exiting with status 2 to be restarted");
            return {kExitRestart, info.si_pid};
        }
        if (!told && config.changed()) {
            if (options.restart) {
                log::info("{} changed, exiting with status 2 to be restarted", config_path);
                return {kExitRestart};
            }
            log::warn("{} changed; the daemon goes on with the config it started with (restart "
                      "it, or run it with -r)",
                      config_path);
            told = true;
        }
    }
}

std::string real_hostname()
{
    char name[256] = {};
    return gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
}

void log_lines(const std::string& text)
{
    for (const auto& line : split(text, '\n')) {
        log::error("{}", line);
    }
}

// Starts the SSH control API unless no keys are configured.
[[nodiscard]] Result<std::unique_ptr<SshServer>>
start_ssh(const Config& config, const Options& options, const Router& router)
{
    auto keys = load_authorized_keys(config);
    if (!keys) {
        return std::unexpected(keys.error());
    }
    if (keys->empty()) {
        log::warn("no keys in the config: the SSH control API is not started");
        return nullptr;
    }
    auto server = std::make_unique<SshServer>(router, std::move(*keys));
    if (auto r = server->start(options.ssh_address,
                               options.state_dir + "/gitopper-ssh-host-ed25519-key");
        !r) {
        return std::unexpected(r.error());
    }
    return server;
}

// The secret never reaches a log line: only the file's name does.
[[nodiscard]] Result<std::string> read_webhook_secret(const Config& config)
{
    if (config.webhook_secret_file.empty()) {
        return std::string();
    }
    const auto path = config.resolve(config.webhook_secret_file);
    auto text = read_file(path);
    if (!text) {
        return fail("webhook_secret_file: {}", text.error().message);
    }
    auto secret = std::string(trim(*text));
    if (secret.empty()) {
        return fail("webhook_secret_file {} is empty", path);
    }
    return secret;
}

// The fleet rollout of `[global] rollout`, under this host's first name; nullptr without one.
[[nodiscard]] Result<std::unique_ptr<Rollout>> make_rollout(const Config& config,
                                                            const std::string& host)
{
    if (!config.rollout) {
        return nullptr;
    }
    std::string password;
    if (!config.rollout->password_file.empty()) {
        auto text = read_trusted_file(config.rollout->password_file, Trust::secret);
        if (!text) {
            return fail("rollout: password_file: {}", text.error().message);
        }
        password = std::string(trim(*text));
    }
    log::info(
        "rollout: through etcd at {}, at most {} host{} at once",
        join(std::vector<std::string>(config.rollout->etcd.begin(), config.rollout->etcd.end()),
             ", "),
        config.rollout->max_parallel, config.rollout->max_parallel == 1 ? "" : "s");
    return std::make_unique<Rollout>(*config.rollout, host, std::move(password));
}

// SPEC §11: the state dir holds the host key, pins and drift patches. It must be ours and
// closed to others; a new one is made 0700.
[[nodiscard]] Result<> prepare_state_dir(const std::string& dir)
{
    const bool existed = open_no_symlinks(dir, O_PATH | O_DIRECTORY).has_value();
    if (auto made = make_dirs_no_symlinks(dir); !made) {
        return fail("state directory {}: {}", dir, made.error().message);
    }
    auto fd = open_no_symlinks(dir, O_RDONLY | O_DIRECTORY);
    if (!fd) {
        return fail("state directory {}: {}", dir, fd.error().message);
    }
    if (!existed && ::fchmod(fd->get(), 0700) != 0) {
        return fail("state directory {}: chmod: {}", dir, errno_message(errno));
    }
    auto trust = check_trusted_path(dir, "state directory " + dir);
    if (trust && *trust == DirTrust::sticky) {
        return fail("state directory {} is writable by others (sticky, like /tmp); use a "
                    "directory of its own",
                    dir);
    }
    return trust ? Result<>{} : std::unexpected(trust.error());
}

// Each mount base (where checkouts live) must be ours and closed to others, or sticky like
// /tmp (then every checkout's owner is checked when it is used). Made when missing.
[[nodiscard]] Result<> check_mount_bases(const std::vector<Service>& services)
{
    for (const auto& service : services) {
        auto base = make_dirs_no_symlinks(service.mount);
        if (!base) {
            return fail("mount {} of {}: {}", service.mount, service.name, base.error().message);
        }
        if (auto trust = check_trusted_path(service.mount, "mount " + service.mount); !trust) {
            return std::unexpected(trust.error());
        }
    }
    return {};
}

} // namespace

// SPEC §9: with -U, DIR (-D) of the bootstrap repository, checked out into M/gitopper and
// then managed like any service, named "gitopper", that starts and tells no unit.
Service bootstrap_service(const Options& options)
{
    Service service;
    service.name = "gitopper";
    service.machine = options.hosts.front();
    service.upstream = options.bootstrap_upstream;
    service.branch = options.bootstrap_branch;
    service.mount = std::filesystem::absolute(options.bootstrap_mount).lexically_normal();
    service.dirs = {Link{.local = "", .path = options.bootstrap_directory}};
    for (auto [from, to] : {std::pair{&options.bootstrap_ssh_key, &service.ssh_key},
                            std::pair{&options.bootstrap_token_file, &service.token_file}}) {
        *to = from->empty() ? "" : std::filesystem::absolute(*from).lexically_normal().string();
    }
    service.self = true;
    return service;
}

std::string config_file(const Options& options)
{
    if (options.bootstrap_upstream.empty()) {
        return options.config;
    }
    return fmt::format("{}/gitopper/{}/{}", bootstrap_service(options).mount,
                       options.bootstrap_directory, options.config);
}

// The config's path: -c itself, or inside the bootstrap checkout, which is made (or, with
// -P, brought up to date) first. Unreachable with a checkout there: it is used, with a warning.
[[nodiscard]] Result<std::string> config_path(const Options& options, ServiceManager& systemd)
{
    if (options.bootstrap_upstream.empty()) {
        return options.config;
    }
    const auto service = bootstrap_service(options);
    const auto path = config_file(options);
    if (auto r = prepare_state_dir(options.state_dir); !r) {
        return std::unexpected(r.error());
    }
    if (auto r = check_mount_bases({service}); !r) {
        return std::unexpected(r.error());
    }
    Engine boot({service},
                EngineOptions{.interval = options.interval,
                              .state_dir = options.state_dir,
                              .all_services = false},
                systemd);
    if (auto r = boot.bring_up_now(options.bootstrap_pull); !r) {
        return fail("bootstrap: {}", r.error().message);
    }
    log::info("bootstrap: reading the config from {}", path);
    return path;
}

int run_daemon(const Options& options)
{
    Systemctl systemd;
    const auto path = config_path(options, systemd);
    if (!path) {
        log_lines(path.error().message);
        return 1;
    }
    auto config = load_config(*path);
    if (!config) {
        log_lines(config.error().message);
        return 1;
    }
    auto services = services_for_host(*config, options.hosts, options.state_dir);
    if (!services) {
        log_lines(services.error().message);
        return 1;
    }
    if (!options.bootstrap_upstream.empty()) {
        services->push_back(bootstrap_service(options));
    }
    for (const auto& warning : secret_file_warnings(*config)) {
        log::warn("{}", warning);
    }
    if (auto r = prepare_state_dir(options.state_dir); !r) {
        log::error("{}", r.error().message);
        return 1;
    }
    if (auto r = check_mount_bases(*services); !r) {
        log::error("{}", r.error().message);
        return 1;
    }
    // Signals are taken by the main thread alone; the threads started below inherit the mask.
    const auto set = blocked_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    // Buffers of 256 KiB and more (a webhook body, git's output) go back to the system when
    // freed. glibc's default threshold rises to the largest buffer freed so far, after which
    // such buffers stay in the arena of the thread that used them: with a thread per HTTP
    // connection, a burst of large requests would leave several arenas holding that much.
    ::mallopt(M_MMAP_THRESHOLD, 256 << 10);

    log::info("gitopper {} starting as {} with {} of {} services{}", GITOPPER_VERSION,
              join(options.hosts, ", "), services->size(),
              config->services.size() + (options.bootstrap_upstream.empty() ? 0 : 1),
              options.bootstrap_upstream.empty() ? "" : " (one the bootstrap checkout)");
    auto notifier =
        Notifier::make(*services, config->status,
                       NotifierOptions{.host = real_hostname(), .state_dir = options.state_dir});
    if (!notifier) {
        log_lines(notifier.error().message);
        return 1;
    }
    auto rollout = make_rollout(*config, options.hosts.front());
    if (!rollout) {
        log_lines(rollout.error().message);
        return 1;
    }
    Engine engine(std::move(*services),
                  EngineOptions{.interval = options.interval,
                                .git_timeout = config->git_timeout,
                                .state_dir = options.state_dir,
                                .notifier = notifier->get(),
                                .rollout = rollout->get()},
                  systemd);
    std::vector<std::string> machines;
    for (const auto& service : config->services) {
        machines.push_back(service.machine);
    }
    const Router router(engine, machines, real_hostname());
    auto ssh = start_ssh(*config, options, router);
    if (!ssh) {
        log_lines(ssh.error().message);
        return 1;
    }
    auto secret = read_webhook_secret(*config);
    if (!secret) {
        log_lines(secret.error().message);
        return 1;
    }
    HttpServer* serving = nullptr; // for the metrics page, which counts webhook requests
    HttpServer http(
        router,
        [&] {
            const auto fleet = *rollout ? (*rollout)->counts() : RolloutCounts{};
            return render_metrics(engine, router, serving->webhook_results(), (*notifier)->counts(),
                                  *rollout ? &fleet : nullptr);
        },
        {*secret, [&](const std::vector<std::string>& repositories, const std::string& branch) {
             return engine.wake(repositories, branch);
         }});
    serving = &http;
    if (auto r = http.start(options.metric_address); !r) {
        log_lines(r.error().message);
        return 1;
    }
    (*notifier)->start();
    if (*rollout) {
        (*rollout)->start(
            [&engine](const std::string& service) { engine.rollout_changed(service); });
    }
    engine.start();
    sd_notify(0, "READY=1");
    Watchdog watchdog(engine);
    const auto exit = wait_for_exit(options, *path, watchdog);
    await_sender(exit.sender); // before STOPPING=1, which systemd would take for the reload's end
    sd_notify(0, "STOPPING=1");
    http.stop();
    if (*ssh) {
        (*ssh)->stop();
    }
    cancel_running_processes();
    engine.stop();
    if (*rollout) {
        (*rollout)->stop(); // after the engine: its last slot left, then the lease revoked
    }
    (*notifier)->stop(); // after the engine: the events of its last steps are kept too
    log::info("stopped");
    return exit.status;
}

} // namespace gitopper
