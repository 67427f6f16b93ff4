// The command line, with CLI11 (slow to compile: it lives in this file only). Flags and
// defaults are the Go tool's, so existing unit files keep working.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "daemon/options.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// pflag, which the Go tool uses, accepts "-o=false"; CLI11 does not. Rewrite "-x=value" to
// "--long=value" before parsing.
std::vector<std::string> normalise_short_equals(int argc, char** argv, const CLI::App& app)
{
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.size() > 3 && arg[0] == '-' && arg[1] != '-' && arg[2] == '=') {
            const auto* option = app.get_option_no_throw(std::string("-") + arg[1]);
            if (option != nullptr && !option->get_lnames().empty()) {
                arg = "--" + option->get_lnames().front() + arg.substr(2);
            }
        }
        args.push_back(std::move(arg));
    }
    std::reverse(args.begin(), args.end()); // CLI11 takes a reversed vector
    return args;
}

std::vector<std::string> host_list(const std::vector<std::string>& flags)
{
    std::vector<std::string> hosts;
    const auto add = [&](std::string_view host) {
        if (!host.empty() && std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
            hosts.emplace_back(host);
        }
    };
    for (const auto& flag : flags) {
        for (const auto& host : split(flag, ',')) {
            add(trim(host));
        }
    }
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) == 0) {
        add(name);
    }
    return hosts;
}

// Written out rather than generated: the same text as SPEC §2 and the man page.
constexpr std::string_view kUsage = R"(Usage: gitopper [OPTION]... -c CONFIG
GitOps for machines that do not run Kubernetes: keep services' files in sync with git.

  -h, --hosts LIST      host names to act as (comma separated, repeatable);
                        the real host name is always added
  -c, --config FILE     config file (mandatory)
  -s, --ssh ADDR        control API (SSH) listen address        [default :2222]
  -m, --metric ADDR     HTTP listen address for /metrics etc.   [default :9222]
  -d, --debug           debug logging
  -r, --restart         exit with status 2 when the config file changes
  -o, --root BOOL       require running as root [default true; -o=false to debug]
  -t, --duration DUR    time between polls, Go-style (30s, 5m, 1h) [default 5m]
  -U, --upstream URL    bootstrap: repository holding gitopper's own config
  -D, --directory DIR   bootstrap: directory of that repo to check out [default gitopper]
  -B, --branch BRANCH   bootstrap: branch                        [default main]
  -M, --mount DIR       bootstrap: check it out into DIR/gitopper; -c is then
                        DIR/gitopper/<-D>/<-c>
  -P, --pull            bootstrap: pull the bootstrap repo before starting
      --ssh-key FILE    bootstrap: deploy key for an ssh bootstrap repo
      --token-file FILE bootstrap: token for an https bootstrap repo
      --state DIR       where persistent state lives  [default /var/lib/gitopper]
      --check           validate the config, print what this host would run, exit 0/1
      --version         print the version and exit
      --help            print this help and exit

-h is hosts, not help (as in the Go tool). Exit status: 0 after SIGTERM/SIGINT, 1 on a
start-up error, 2 after SIGHUP or (with -r) a changed config.
)";

int usage_error(const std::string& message)
{
    fmt::print(stderr, "gitopper: error: {}\nTry 'gitopper --help' for more information.\n",
               message);
    return 1;
}

} // namespace

std::variant<Options, int> parse_command_line(int argc, char** argv)
{
    Options options;
    std::vector<std::string> hosts;
    std::string interval = "5m";
    bool version = false;

    CLI::App app{"gitopper: GitOps for machines that do not run Kubernetes.", "gitopper"};
    app.set_help_flag("--help", "print this help and exit");
    app.add_option(
           "-h,--hosts", hosts,
           "host names to act as (comma separated, repeatable); the real host name is always added")
        ->type_name("LIST");
    app.add_option("-c,--config", options.config, "config file (mandatory)")->type_name("FILE");
    app.add_option("-s,--ssh", options.ssh_address, "control API (SSH) listen address")
        ->type_name("ADDR")
        ->capture_default_str();
    app.add_option("-m,--metric", options.metric_address, "HTTP listen address for /metrics etc.")
        ->type_name("ADDR")
        ->capture_default_str();
    app.add_flag("-d,--debug", options.debug, "debug logging");
    app.add_flag("-r,--restart", options.restart,
                 "exit with status 2 when the config file changes (systemd restarts us)");
    app.add_flag("-o{true},--root{true}", options.require_root,
                 "require running as root; -o=false to debug as another user")
        ->default_str("true");
    app.add_option("-t,--duration", interval, "time between polls, Go-style (30s, 5m, 1h)")
        ->type_name("DUR")
        ->capture_default_str();
    app.add_option("-U,--upstream", options.bootstrap_upstream,
                   "bootstrap: repository holding gitopper's own config")
        ->type_name("URL");
    app.add_option("-D,--directory", options.bootstrap_directory,
                   "bootstrap: directory of that repository to check out")
        ->type_name("DIR")
        ->capture_default_str();
    app.add_option("-B,--branch", options.bootstrap_branch, "bootstrap: branch")
        ->type_name("BRANCH")
        ->capture_default_str();
    app.add_option("-M,--mount", options.bootstrap_mount,
                   "bootstrap: where to check it out; -c is then relative to the checked-out DIR")
        ->type_name("DIR");
    app.add_flag("-P,--pull", options.bootstrap_pull,
                 "bootstrap: pull the bootstrap repository first");
    app.add_option("--ssh-key", options.bootstrap_ssh_key,
                   "bootstrap: deploy key for an ssh bootstrap repository")
        ->type_name("FILE");
    app.add_option("--token-file", options.bootstrap_token_file,
                   "bootstrap: token for an https bootstrap repository")
        ->type_name("FILE");
    app.add_option("--state", options.state_dir, "where persistent state lives")
        ->type_name("DIR")
        ->capture_default_str();
    app.add_flag("--check", options.check,
                 "validate the config, print what this host would run, exit 0 or 1");
    app.add_flag("--version", version, "print the version and exit");

    // pflag lets a later flag override an earlier one; so do we.
    for (auto* option : app.get_options()) {
        if (option->get_expected_max() == 1 && option->get_type_size() == 1) {
            option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        }
    }
    try {
        auto args = normalise_short_equals(argc, argv, app);
        app.parse(args);
    } catch (const CLI::CallForHelp&) {
        fmt::print("{}", kUsage);
        return 0;
    } catch (const CLI::ParseError& e) {
        return usage_error(e.what());
    }
    if (version) {
        fmt::print("gitopper {}\n", GITOPPER_VERSION);
        return 0;
    }
    if (options.config.empty()) {
        return usage_error("missing -c CONFIG");
    }
    if (!options.bootstrap_upstream.empty() && options.bootstrap_mount.empty()) {
        return usage_error("-U needs -M, the directory to check the bootstrap repository out "
                           "into");
    }
    if (!options.bootstrap_upstream.empty() && options.config.starts_with('/')) {
        return usage_error("with -U, -c names the config inside the checkout (relative to -D), "
                           "not an absolute path");
    }
    auto parsed = parse_duration(interval);
    if (!parsed) {
        return usage_error("-t: " + parsed.error().message);
    }
    if (*parsed < std::chrono::seconds(1)) {
        return usage_error(fmt::format("-t: {} is too short; the shortest poll interval is 1s",
                                       format_duration(*parsed)));
    }
    options.interval = *parsed;
    options.hosts = host_list(hosts);
    return options;
}

} // namespace gitopper
