#pragma once
// Where gitopperctl sends a request, from the "@web1", "@web1:2223", "@web1,web2" and
// "@[::1]:2222" words of its command line. Pure parsing: no DNS, no sockets.

#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gitopper::ctl {

struct Target {
    std::string label; // as written, without '@': names the host in messages and tables
    std::string host;  // what to connect to (IPv6 without brackets)
    int port = 0;

    bool operator==(const Target&) const = default;
};

// One '@' word: one or more comma-separated hosts, each with an optional ":port".
[[nodiscard]] Result<std::vector<Target>> parse_targets(std::string_view word, int default_port);

struct Positionals {
    std::vector<Target> targets;   // every leading '@' word, duplicates dropped
    std::vector<std::string> args; // the words after them (service, hash)
};

// Splits a subcommand's words into the leading @HOST words and the arguments after them.
[[nodiscard]] Result<Positionals> split_positionals(const std::vector<std::string>& words,
                                                    int default_port);

} // namespace gitopper::ctl
