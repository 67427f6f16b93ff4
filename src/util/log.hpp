#pragma once
// Logging to stderr, one line per event. Timestamps are left out under systemd, whose journal
// adds its own. Lines about a service start with "[service]" by convention of the callers.

#include <spdlog/spdlog.h>

namespace gitopper::log {

// Configures the default logger: stderr, "info" or "debug".
void setup(bool debug);

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

} // namespace gitopper::log
