#pragma once
// gitopperctl's command line (SPEC §5).

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ctl/commands.hpp"
#include "ctl/target.hpp"

namespace gitopper::ctl {

struct Invocation {
    const Command* command = nullptr;
    std::vector<Target> targets;
    std::vector<std::string> args; // after the @HOST words: service, hash
    std::optional<std::string> identity;
    std::optional<std::string> known_hosts;
    bool insecure_host_key = false; // any host key is taken, none is stored
    bool raw_json = false;
};

// What to do, or the exit status when there is nothing to run (--help, --version, a usage
// error: already printed).
std::variant<Invocation, int> parse_command_line(int argc, char** argv);

} // namespace gitopper::ctl
