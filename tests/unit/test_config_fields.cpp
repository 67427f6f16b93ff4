#include "config/fields.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "util/duration.hpp"

using namespace gitopper;

namespace {

// The text between two marker lines of the README.
std::string readme_section(const std::string& begin, const std::string& end)
{
    std::ifstream file(GITOPPER_SOURCE_DIR "/README.md");
    std::stringstream text;
    text << file.rdbuf();
    const auto all = text.str();
    const auto from = all.find(begin + "\n");
    const auto to = all.find(end + "\n");
    if (from == std::string::npos || to == std::string::npos || to < from) {
        return "(markers " + begin + " and " + end + " not found)";
    }
    return all.substr(from + begin.size() + 1, to - from - begin.size() - 1);
}

} // namespace

TEST(ConfigFields, TheReadmesReferenceIsTheTable)
{
    const auto expected = field_reference();
    if (readme_section("<!-- config-fields -->", "<!-- /config-fields -->") != expected) {
        std::ofstream("config-fields.md") << expected;
        ADD_FAILURE() << "README.md's field reference is not the table's: paste "
                         "config-fields.md (written in the current directory) between the "
                         "config-fields markers";
    }
}

TEST(ConfigFields, GlobalHoldsEveryServiceFieldAndItsOwn)
{
    ASSERT_NE(find_field(Scope::global, "branch"), nullptr);
    EXPECT_EQ(find_field(Scope::global, "branch")->scope, Scope::service);
    ASSERT_NE(find_field(Scope::global, "git_timeout"), nullptr);
    EXPECT_EQ(find_field(Scope::service, "git_timeout"), nullptr);
    EXPECT_EQ(find_field(Scope::link, "branch"), nullptr);
    EXPECT_EQ(find_field(Scope::key, "local"), nullptr);
    // "link" is a key of a dirs entry; the same word elsewhere is unknown.
    EXPECT_NE(find_field(Scope::link, "link"), nullptr);
    EXPECT_EQ(find_field(Scope::service, "link"), nullptr);
}

TEST(ConfigFields, NamesAreUniqueWithinATable)
{
    for (const auto scope : {Scope::top, Scope::service, Scope::global, Scope::link, Scope::key}) {
        auto names = field_names(scope);
        EXPECT_FALSE(names.empty());
        std::sort(names.begin(), names.end());
        EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
    }
}

TEST(ConfigFields, FallbacksPassTheirOwnRuleAndMatchTheStructs)
{
    for (const auto& field : config_fields()) {
        if (!field.fallback.empty() && field.rule != nullptr) {
            EXPECT_EQ(field.rule(field.fallback), std::nullopt) << field.name;
        }
        EXPECT_FALSE(field.required && !field.fallback.empty()) << field.name;
        EXPECT_FALSE(field.meaning.empty()) << field.name;
    }
    const auto* timeout = find_field(Scope::global, "git_timeout");
    ASSERT_NE(timeout, nullptr);
    EXPECT_EQ(parse_duration(timeout->fallback).value(), Config{}.git_timeout);
    const auto* size = find_field(Scope::service, "max_file_size");
    ASSERT_NE(size, nullptr);
    EXPECT_EQ(Service{.max_file_size = std::string(size->fallback)}.file_size_limit(),
              Service{}.file_size_limit());
}

// An unset interval falls back to -t: --check shows that, not "0s".
TEST(ConfigFields, AnUnsetIntervalIsShownAsUnset)
{
    const auto& fields = config_fields();
    const auto interval = std::find_if(fields.begin(), fields.end(),
                                       [](const Field& f) { return f.name == "interval"; });
    ASSERT_NE(interval, fields.end());
    Service service;
    EXPECT_EQ(field_text(service, *interval), "");
    service.interval = std::chrono::minutes(5);
    EXPECT_EQ(field_text(service, *interval), "5m");
}

TEST(ConfigFields, AServiceThatSetsNothingHasTheTablesFallbacks)
{
    auto config = parse_config(R"([[services]]
machine = "m"
service = "s"
upstream = "https://example.org/x"
mount = "/srv/x"
)",
                               "config.toml");
    ASSERT_TRUE(config) << config.error().message;
    const auto& parsed = config->services.at(0);
    const Service blank;
    for (const auto& field : config_fields()) {
        const auto text = field_text(parsed, field);
        if (field.scope != Scope::service || field.required || !text) {
            continue;
        }
        // A hand-made Service{} (the tests make them) agrees with the table, but for the two
        // strings whose fallback is applied by the parser alone.
        const bool parser_only = field.name == "branch" || field.name == "max_file_size";
        EXPECT_EQ(*text, parser_only ? std::string(field.fallback) : *field_text(blank, field))
            << field.name;
    }
    EXPECT_EQ(parsed.branch, "main");
    EXPECT_EQ(parsed.check_timeout, std::chrono::seconds(60));
}
