#pragma once
// The service states of SPEC §3, their one name table and their one transition function.

#include <optional>
#include <string_view>

namespace gitopper {

enum class State { ok, freeze, rollback, broken, diff };

// What happened to a service; the transition function turns it into the next state.
enum class Event {
    freeze,      // an operator froze it
    unfreeze,    // an operator unfroze it
    rollback,    // an operator asked for an older commit
    succeeded,   // a reconcile (or the rollback) finished without error
    git_failed,  // git could not reconcile the checkout with upstream
    host_failed, // a mount, package or systemctl step failed
};

// "OK", "FREEZE", … as shown in logs, metrics, JSON and the state file.
std::string_view state_name(State state);
// The value of the gitopper_service_state metric: 0 OK … 4 DIFF.
int state_number(State state);

State transition(State from, Event event);

// Whether the reconcile loop follows upstream in this state.
inline bool tracks_upstream(State state)
{
    return state != State::freeze && state != State::rollback;
}

} // namespace gitopper
