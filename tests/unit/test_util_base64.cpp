#include "util/base64.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gitopper {
namespace {

TEST(Base64, RoundTripsWithPadding)
{
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("/g"), "L2c=");
    EXPECT_EQ(base64_encode("/gitopper/app/bad/ab"), "L2dpdG9wcGVyL2FwcC9iYWQvYWI=");
    for (const std::string& text :
         std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
        EXPECT_EQ(base64_decode(base64_encode(text)), text);
    }
}

TEST(Base64, RefusesWhatIsNotBase64)
{
    EXPECT_FALSE(base64_decode("L2c"));
    EXPECT_FALSE(base64_decode("L2c*"));
    EXPECT_EQ(base64_decode("L2c="), "/g");
}

} // namespace
} // namespace gitopper
