#pragma once
// The daemon's command line (SPEC §2), parsed in cli.cpp.

#include <string>
#include <variant>
#include <vector>

#include "util/duration.hpp"

namespace gitopper {

struct Options {
    std::vector<std::string> hosts; // -h aliases plus the real host name, no duplicates
    std::string config;
    std::string ssh_address = ":2222";
    std::string metric_address = ":9222";
    bool debug = false;
    bool restart = false;
    bool require_root = true;
    Duration interval = std::chrono::minutes(5);
    std::string bootstrap_upstream;
    std::string bootstrap_directory = "gitopper";
    std::string bootstrap_branch = "main";
    std::string bootstrap_mount;
    bool bootstrap_pull = false;
    std::string bootstrap_ssh_key;    // --ssh-key: for the bootstrap repository
    std::string bootstrap_token_file; // --token-file
    std::string state_dir = "/var/lib/gitopper";
    bool check = false;
};

// Options to run with, or the exit status when there is nothing to run (--help, --version: 0;
// a usage error, already printed: 1).
std::variant<Options, int> parse_command_line(int argc, char** argv);

// The config file: -c, or with -U the one inside the bootstrap checkout (SPEC §9).
std::string config_file(const Options& options);

// --check: validates the config, prints what this host would run; returns the exit status.
int run_check(const Options& options);

// Runs the daemon until a signal; returns the exit status (SPEC §2).
int run_daemon(const Options& options);

} // namespace gitopper
