#include "util/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include "util/strings.hpp"

namespace gitopper::log {
namespace {

// stderr, with every URL password replaced by "***" (SPEC §11): whatever a caller or git's
// own message quotes, a token never reaches the journal.
class RedactingSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        const auto line = redact_credentials(std::string_view(formatted.data(), formatted.size()));
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
    void flush_() override { std::fflush(stderr); }
};

} // namespace

void setup(bool debug)
{
    auto logger = std::make_shared<spdlog::logger>("gitopper", std::make_shared<RedactingSink>());
    // Under systemd the journal stamps every line; elsewhere we do.
    const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
    logger->set_pattern(journal ? "%l: %v" : "%Y-%m-%dT%H:%M:%S.%e %l: %v");
    logger->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    logger->flush_on(spdlog::level::debug);
    spdlog::set_default_logger(std::move(logger));
}

} // namespace gitopper::log
