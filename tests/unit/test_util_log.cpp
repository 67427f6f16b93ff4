#include "util/log.hpp"

#include <cstdlib>

#include <gtest/gtest.h>

using namespace gitopper;

namespace {

std::string logged(bool debug, bool journal)
{
    if (journal) {
        setenv("JOURNAL_STREAM", "8:1234", 1);
    } else {
        unsetenv("JOURNAL_STREAM");
    }
    spdlog::drop_all();
    testing::internal::CaptureStderr();
    log::setup(debug);
    log::debug("a debug line");
    log::info("[svc] an info line");
    spdlog::default_logger()->flush();
    unsetenv("JOURNAL_STREAM");
    return testing::internal::GetCapturedStderr();
}

} // namespace

TEST(Log, OneLinePerEventWithLevel)
{
    const auto text = logged(false, false);
    EXPECT_EQ(text.find("a debug line"), std::string::npos) << "debug shown without -d";
    EXPECT_NE(text.find("info: [svc] an info line\n"), std::string::npos) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(text[0]))) << "timestamp first: " << text;
}

TEST(Log, DebugWithDashD)
{
    const auto text = logged(true, false);
    EXPECT_NE(text.find("debug: a debug line"), std::string::npos) << text;
}

TEST(Log, NoTimestampUnderTheJournal)
{
    const auto text = logged(false, true);
    EXPECT_EQ(text, "info: [svc] an info line\n");
}
