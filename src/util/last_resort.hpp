#pragma once
// The last resort at the top of a thread: an exception that escapes there would end the whole
// daemon (std::terminate), so each thread's loop runs its steps through this and turns what
// escaped into that step's failure.

#include <functional>
#include <optional>
#include <string>

namespace gitopper {

// Runs `step`; what escaped it as an exception (its what(), or "an unknown exception"), or
// nullopt when it returned.
std::optional<std::string> escaped_exception(const std::function<void()>& step);

} // namespace gitopper
