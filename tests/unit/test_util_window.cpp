#include "util/window.hpp"

#include <stdlib.h>
#include <time.h>

#include <vector>

#include <gtest/gtest.h>

using namespace gitopper;
using std::chrono::system_clock;

namespace {

// The host's time zone for one test; the clock is the test's: every moment is given.
class WindowTest : public ::testing::Test {
protected:
    void zone(const char* tz)
    {
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    void TearDown() override
    {
        if (m_old) {
            ::setenv("TZ", m_old->c_str(), 1);
        } else {
            ::unsetenv("TZ");
        }
        ::tzset();
    }
    // A moment given in UTC: "2026-03-29 00:59".
    static system_clock::time_point utc(const char* text)
    {
        std::tm tm{};
        ::strptime(text, "%Y-%m-%d %H:%M", &tm);
        return system_clock::from_time_t(::timegm(&tm));
    }
    static std::vector<Window> windows(std::initializer_list<const char*> texts)
    {
        std::vector<Window> out;
        for (const auto* text : texts) {
            auto window = parse_window(text);
            EXPECT_TRUE(window) << text << ": " << window.error().message;
            out.push_back(window ? *window : Window{});
        }
        return out;
    }

private:
    std::optional<std::string> m_old = [] {
        const char* tz = ::getenv("TZ");
        return tz ? std::optional<std::string>(tz) : std::nullopt;
    }();
};

} // namespace

TEST_F(WindowTest, ParsesDaysRangesListsAndSpans)
{
    auto w = parse_window("Mon-Fri 06:00-18:00");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->days, 0b0111110);
    EXPECT_EQ(w->start, 6 * 60);
    EXPECT_EQ(w->end, 18 * 60);
    EXPECT_EQ(parse_window("sat,SUN 10:00-12:00")->days, 0b1000001);
    EXPECT_EQ(parse_window("Fri-Mon 22:00-02:00")->days, 0b1100011);
    EXPECT_EQ(parse_window("daily 03:00-04:00")->days, 0x7f);
    EXPECT_EQ(parse_window("03:00-24:00")->end, 24 * 60);
    EXPECT_TRUE(parse_window("Sun 00:00-24:00")); // the whole day
    for (const auto* bad :
         {"", "Mon", "Mon-Fri 6:00-18:00", "Funday 06:00-18:00", "Mon-Fri 06:00", "Mon 25:00-26:00",
          "Mon 06:00-06:00", "Mon 24:00-06:00", "Mon 06:00-18:00 extra", "Mon-Fri 06.00-18.00"}) {
        EXPECT_FALSE(parse_window(bad)) << bad;
    }
    EXPECT_NE(parse_window("Funday 06:00-18:00").error().message.find("\"Funday\" is not a day"),
              std::string::npos);
}

TEST_F(WindowTest, InsideByTheLocalClock)
{
    zone("Europe/Amsterdam"); // UTC+1 in winter
    const auto office = windows({"Mon-Fri 06:00-18:00"});
    EXPECT_FALSE(inside(office, utc("2026-12-07 04:59"))); // Mon 05:59 local
    EXPECT_TRUE(inside(office, utc("2026-12-07 05:00")));  // Mon 06:00
    EXPECT_TRUE(inside(office, utc("2026-12-07 16:59")));  // Mon 17:59
    EXPECT_FALSE(inside(office, utc("2026-12-07 17:00"))); // Mon 18:00: closed
    EXPECT_FALSE(inside(office, utc("2026-12-05 10:00"))); // Saturday
}

TEST_F(WindowTest, AWindowPastMidnightBelongsToTheDayItOpened)
{
    zone("UTC");
    const auto night = windows({"Fri 22:00-02:00"});
    EXPECT_TRUE(inside(night, utc("2026-12-04 23:00")));  // Fri
    EXPECT_TRUE(inside(night, utc("2026-12-05 01:59")));  // Sat, opened Friday
    EXPECT_FALSE(inside(night, utc("2026-12-05 02:00"))); // closed
    EXPECT_FALSE(inside(night, utc("2026-12-05 23:00"))); // Saturday night is not Friday's
    EXPECT_FALSE(inside(night, utc("2026-12-04 01:00"))); // Fri early: Thursday's, none
}

TEST_F(WindowTest, NextOpeningIsTheFirstMinuteInside)
{
    zone("UTC");
    const auto ws = windows({"Mon-Fri 06:00-18:00", "Sat 10:00-12:00"});
    const auto friday_evening = utc("2026-12-04 19:30");
    EXPECT_EQ(next_opening(ws, friday_evening), utc("2026-12-05 10:00")); // Sat 10:00
    EXPECT_EQ(local_weekday_time(*next_opening(ws, friday_evening)), "Sat 10:00");
    EXPECT_EQ(next_opening(ws, utc("2026-12-05 12:00")), utc("2026-12-07 06:00")); // Mon
    const auto inside_now = utc("2026-12-07 07:13");
    EXPECT_EQ(next_opening(ws, inside_now), inside_now);
    EXPECT_FALSE(next_opening({}, inside_now));
}

TEST_F(WindowTest, DaylightSavingMovesTheWindowWithTheClock)
{
    zone("Europe/Amsterdam");
    // 29 March 2026: 02:00 local jumps to 03:00 (01:00 UTC). A window opening at 02:30, in
    // the skipped hour, opens as the clock comes out of it: 03:00 CEST, 01:00 UTC.
    const auto gap = windows({"Sun 02:30-04:00"});
    EXPECT_EQ(next_opening(gap, utc("2026-03-29 00:00")), utc("2026-03-29 01:00"));
    // One wholly inside the skipped hour does not open that day (the clock never shows it):
    // the next is a week later, 02:00 CEST.
    const auto lost = windows({"Sun 02:00-03:00"});
    EXPECT_EQ(next_opening(lost, utc("2026-03-29 00:00")), utc("2026-04-05 00:00"));
    // 06:00-18:00 is 05:00 UTC the day before the change and 04:00 UTC after it.
    const auto office = windows({"daily 06:00-18:00"});
    EXPECT_EQ(next_opening(office, utc("2026-03-28 00:00")), utc("2026-03-28 05:00"));
    EXPECT_EQ(next_opening(office, utc("2026-03-28 18:00")), utc("2026-03-29 04:00"));
    // 25 October 2026: 03:00 CEST falls back to 02:00 CET. The 02:xx hour comes twice; a
    // window inside it is open both times, and 18:00 is 17:00 UTC again.
    const auto repeated = windows({"Sun 02:15-02:45"});
    EXPECT_TRUE(inside(repeated, utc("2026-10-25 00:20"))); // 02:20 CEST
    EXPECT_TRUE(inside(repeated, utc("2026-10-25 01:20"))); // 02:20 CET
    EXPECT_EQ(next_opening(office, utc("2026-10-25 16:59")), utc("2026-10-25 16:59"));
    EXPECT_FALSE(inside(office, utc("2026-10-25 17:00"))); // 18:00 CET
}
