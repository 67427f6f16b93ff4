#include "util/log.hpp"

#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>

namespace gitopper::log {

void setup(bool debug)
{
    auto logger = spdlog::stderr_logger_mt("gitopper");
    // Under systemd the journal stamps every line; elsewhere we do.
    const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
    logger->set_pattern(journal ? "%l: %v" : "%Y-%m-%dT%H:%M:%S.%e %l: %v");
    logger->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    logger->flush_on(spdlog::level::debug);
    spdlog::set_default_logger(std::move(logger));
}

} // namespace gitopper::log
