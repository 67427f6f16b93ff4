#include "api/state.hpp"

#include <array>
#include <utility>

#include "util/names.hpp"

namespace gitopper {
namespace {

constexpr std::array<std::pair<State, std::string_view>, 5> kNames{{
    {State::ok, "OK"},
    {State::freeze, "FREEZE"},
    {State::rollback, "ROLLBACK"},
    {State::broken, "BROKEN"},
    {State::diff, "DIFF"},
}};

// Rows are tried in order; `from` empty matches any state. No row: the state stays.
struct Rule {
    std::optional<State> from;
    Event event;
    State to;
};

constexpr std::array kRules{
    Rule{std::nullopt, Event::freeze, State::freeze},
    Rule{State::freeze, Event::unfreeze, State::ok},
    Rule{std::nullopt, Event::rollback, State::rollback},
    Rule{State::rollback, Event::succeeded, State::freeze},
    Rule{State::rollback, Event::git_failed, State::diff},
    Rule{State::rollback, Event::host_failed, State::broken},
    // A frozen service keeps its pin: errors while frozen go to the info, not the state.
    Rule{State::freeze, Event::succeeded, State::freeze},
    Rule{State::freeze, Event::git_failed, State::freeze},
    Rule{State::freeze, Event::host_failed, State::freeze},
    Rule{std::nullopt, Event::succeeded, State::ok},
    Rule{std::nullopt, Event::git_failed, State::diff},
    Rule{std::nullopt, Event::host_failed, State::broken},
};

} // namespace

std::string_view state_name(State state)
{
    return name_of(kNames, state, "UNKNOWN");
}

int state_number(State state)
{
    return static_cast<int>(state);
}

State transition(State from, Event event)
{
    for (const auto& rule : kRules) {
        if (rule.event == event && (!rule.from || *rule.from == from)) {
            return rule.to;
        }
    }
    return from;
}

} // namespace gitopper
