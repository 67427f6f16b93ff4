#pragma once
// gitopperctl's commands in one flat table (SPEC §5): the command line, the help text and the
// request sent to the daemon all come from here.

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "ctl/render.hpp"

namespace gitopper::ctl {

struct Command {
    std::string_view group;   // "list" or "do"; "" for a command of its own (diff)
    std::string_view name;    // "service"
    std::string_view alias;   // "s"
    std::string_view request; // "/list/service": what the daemon is asked
    std::string_view args;    // usage after @HOST..., e.g. "[SERVICE]"
    std::size_t min_args;
    std::size_t max_args;
    std::optional<Listing> listing; // printed as this table; none: silent on success
    std::string_view help;
};

struct Group {
    std::string_view name;
    std::array<std::string_view, 2> aliases; // empty entries unused
    std::string_view help;
};

inline constexpr std::array kGroups{
    Group{"list", {"ls", "l"}, "show machines, services or a service's deploy history"},
    Group{"do", {"d", ""}, "freeze, unfreeze, pull, roll back a service, or release a commit"},
};

inline constexpr std::array kCommands{
    Command{"list", "machines", "m", "/list/machine", "", 0, 0, Listing::machines,
            "every machine in the daemon's config and the host it runs on"},
    Command{"list", "service", "s", "/list/service", "[SERVICE]", 0, 1, Listing::services,
            "the host's services (or one): hash, state and since when"},
    Command{"list", "history", "h", "/list/history", "SERVICE", 1, 1, Listing::history,
            "a service's deploy history: time, from and to hash, trigger, result"},
    Command{"", "diff", "", "/list/diff", "SERVICE", 1, 1, Listing::diff,
            "what the next deploy would bring: commits, files, the diff, the action"},
    Command{"do", "freeze", "f", "/do/freeze", "SERVICE [--for DURATION] [--reason TEXT]", 1, 1,
            std::nullopt,
            "stop following upstream; stay on the current commit (until unfrozen, or for "
            "DURATION)"},
    Command{"do", "unfreeze", "u", "/do/unfreeze", "SERVICE", 1, 1, std::nullopt,
            "follow upstream again, pulling at once"},
    Command{"do", "pull", "p", "/do/pull", "SERVICE", 1, 1, std::nullopt,
            "reconcile with upstream now instead of at the next poll"},
    Command{"do", "rollback", "r", "/do/rollback", "SERVICE HASH [force]", 2, 3, std::nullopt,
            "move to an older commit of the branch and freeze there (force: any fetched commit)"},
    Command{"do", "release", "", "/do/release", "SERVICE HASH", 2, 2, std::nullopt,
            "clear the fleet rollout's mark on a commit whose health check failed, so that "
            "every host may apply it"},
};

} // namespace gitopper::ctl
