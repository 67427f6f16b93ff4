#include "server/keys.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace gitopper;

namespace {
const std::string kKey =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDui/CZxstre25f94bIT/SERZfMJaGWC0ahHXrxGWNF9";

KeyOptions options(const std::string& field)
{
    auto parsed = parse_key_options(field);
    EXPECT_TRUE(parsed) << field << ": " << parsed.error().message;
    return parsed ? *parsed : KeyOptions{};
}

std::string error_of(const std::string& field)
{
    auto parsed = parse_key_options(field);
    EXPECT_FALSE(parsed) << field;
    return parsed ? "" : parsed.error().message;
}

SourcePatterns from(const std::string& list)
{
    auto parsed = SourcePatterns::parse(list);
    EXPECT_TRUE(parsed) << list << ": " << parsed.error().message;
    return parsed ? *parsed : *SourcePatterns::parse("!*");
}

AuthorizedKey key_with(const std::string& field)
{
    return AuthorizedKey{.path = "k.pub", .line = 3, .options = options(field)};
}

class KeyFiles : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "keys.XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        m_dir = pattern;
        m_config.path = m_dir + "/config.toml";
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }
    void write(const std::string& name, const std::string& text)
    {
        std::ofstream(m_dir + "/" + name) << text;
        ::chmod((m_dir + "/" + name).c_str(), 0644); // whatever the umask: others must not write
        m_config.keys.push_back({name, false, {4, 9}});
    }
    std::string m_dir;
    Config m_config;
};
} // namespace

TEST(AuthorizedKeys, PlainLineWithComment)
{
    auto line = parse_authorized_key(kKey + " alice@example.org");
    ASSERT_TRUE(line) << line.error().message;
    ASSERT_TRUE(line->key);
    EXPECT_FALSE(line->options.command || line->options.from || line->options.expires);
}

TEST(AuthorizedKeys, OptionsBeforeTheTypeAreParsed)
{
    auto line =
        parse_authorized_key("from=\"10.0.0.1\",command=\"/list/service a\",no-pty " + kKey + " c");
    ASSERT_TRUE(line) << line.error().message;
    auto plain = parse_authorized_key(kKey);
    ASSERT_TRUE(plain && plain->key);
    EXPECT_EQ(ssh_key_cmp(line->key.get(), plain->key.get(), SSH_KEY_CMP_PUBLIC), 0);
    EXPECT_EQ(line->options.command, "/list/service a");
    ASSERT_TRUE(line->options.from);
    EXPECT_EQ(line->options.from->text(), "10.0.0.1");
}

TEST(AuthorizedKeys, BlankAndCommentLinesHoldNoKey)
{
    for (const auto* text : {"", "   ", "# a comment"}) {
        auto line = parse_authorized_key(text);
        ASSERT_TRUE(line);
        EXPECT_FALSE(line->key) << text;
    }
}

TEST(AuthorizedKeys, BadLinesAreClearErrors)
{
    auto bad = parse_authorized_key("ssh-ed25519 not-base64!!");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("ssh-ed25519"), std::string::npos);
    auto none = parse_authorized_key("just some words");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("no key type"), std::string::npos);
    // Options must be one field directly before the type; words in between are no options.
    auto stray = parse_authorized_key("no-pty stray " + kKey);
    ASSERT_FALSE(stray);
    EXPECT_NE(stray.error().message.find("no key type"), std::string::npos);
    auto open = parse_authorized_key("command=\"/list/service " + kKey);
    ASSERT_FALSE(open);
    EXPECT_NE(open.error().message.find("unterminated quote"), std::string::npos);
}

TEST(KeyOptions, QuotedValuesHoldCommasBlanksAndEscapedQuotes)
{
    const auto o = options(R"(command="/do/freeze app for=1h \"a, b\"",from="10.0.0.0/8,::1")");
    EXPECT_EQ(o.command, R"(/do/freeze app for=1h "a, b")");
    ASSERT_TRUE(o.from);
    EXPECT_EQ(o.from->text(), "10.0.0.0/8,::1");
    auto line = parse_authorized_key(R"(command="a \"b c\" d",no-pty )" + kKey + " comment");
    ASSERT_TRUE(line) << line.error().message;
    EXPECT_EQ(line->options.command, R"(a "b c" d)");
}

TEST(KeyOptions, HonouredFlagsNeedNothingAndIgnoreCase)
{
    const auto o = options("restrict,no-pty,No-Port-Forwarding,no-agent-forwarding,"
                           "no-x11-forwarding,NO-USER-RC");
    EXPECT_FALSE(o.command || o.from || o.expires);
    EXPECT_EQ(options("COMMAND=\"/list/machine\"").command, "/list/machine");
}

TEST(KeyOptions, UnsupportedOptionsAreRefusedWithAReason)
{
    for (const auto* field :
         {"cert-authority", "principals=\"alice\"", "environment=\"A=b\"", "tunnel=\"1\"",
          "permitopen=\"localhost:80\"", "permitlisten=\"8080\"", "pty", "port-forwarding",
          "agent-forwarding", "X11-forwarding", "user-rc", "no-touch-required",
          "verify-required"}) {
        const auto message = error_of(std::string("no-pty,") + field);
        const std::string name(field, std::string_view(field).find('=') == std::string_view::npos
                                          ? std::strlen(field)
                                          : std::string_view(field).find('='));
        EXPECT_TRUE(message.starts_with("option \"" + name + "\" is not supported by gitopper: "))
            << message;
        EXPECT_GT(message.size(), name.size() + 40) << "no reason given: " << message;
    }
}

TEST(KeyOptions, UnknownOptionsSuggestTheNearestName)
{
    EXPECT_EQ(error_of("no-ptty"), "option \"no-ptty\" is not supported by gitopper: unknown "
                                   "option (did you mean \"no-pty\"?)");
    EXPECT_EQ(error_of("frobnicate"),
              "option \"frobnicate\" is not supported by gitopper: unknown option");
}

TEST(KeyOptions, SyntaxErrors)
{
    EXPECT_NE(error_of("from").find("needs a value"), std::string::npos);
    EXPECT_NE(error_of("no-pty=\"x\"").find("takes no value"), std::string::npos);
    EXPECT_NE(error_of("command=/list/machine").find("double quotes"), std::string::npos);
    EXPECT_NE(error_of("no-pty,,restrict").find("empty option"), std::string::npos);
    EXPECT_NE(error_of("command=\"a\"x").find("expected a comma"), std::string::npos);
    EXPECT_NE(error_of("command=\"a\",command=\"b\"").find("twice"), std::string::npos);
    EXPECT_NE(error_of("from=\"1.2.3.4\",from=\"::1\"").find("twice"), std::string::npos);
    EXPECT_NE(error_of("command=\" \"").find("empty"), std::string::npos);
}

TEST(SourcePatterns, AddressesAndCidrBlocks)
{
    const auto p = from("10.0.0.0/8,192.168.1.7,2001:db8::/32,::1");
    EXPECT_TRUE(p.allows("10.1.2.3"));
    EXPECT_TRUE(p.allows("192.168.1.7"));
    EXPECT_FALSE(p.allows("192.168.1.8"));
    EXPECT_FALSE(p.allows("11.0.0.1"));
    EXPECT_TRUE(p.allows("2001:db8:1::5"));
    EXPECT_TRUE(p.allows("::1"));
    EXPECT_FALSE(p.allows("2001:db9::1"));
    EXPECT_FALSE(p.allows("not an address"));
    const auto odd = from("172.16.0.0/12,0.0.0.0/0");
    EXPECT_TRUE(odd.allows("8.8.8.8"));
    EXPECT_FALSE(from("172.16.0.0/12").allows("172.32.0.1"));
    EXPECT_TRUE(from("172.16.0.0/12").allows("172.31.255.255"));
    EXPECT_FALSE(from("0.0.0.0/0").allows("::1")) << "families never match each other";
}

TEST(SourcePatterns, MappedIpv4IsIpv4)
{
    EXPECT_TRUE(from("10.0.0.0/8").allows("::ffff:10.9.8.7"));
    EXPECT_TRUE(from("10.9.8.*").allows("::ffff:10.9.8.7"));
    EXPECT_FALSE(from("::ffff:0:0/96").allows("::ffff:10.9.8.7")) << "as in sshd";
}

TEST(SourcePatterns, Wildcards)
{
    const auto p = from("192.168.1.?,10.*,fe80::*");
    EXPECT_TRUE(p.allows("192.168.1.5"));
    EXPECT_FALSE(p.allows("192.168.1.50"));
    EXPECT_TRUE(p.allows("10.200.3.4"));
    EXPECT_FALSE(p.allows("110.0.0.1"));
    EXPECT_TRUE(p.allows("fe80::1:2"));
    EXPECT_TRUE(from("FE80::*").allows("fe80::1")) << "hex digits in either case";
    EXPECT_TRUE(from("*").allows("203.0.113.9"));
    EXPECT_TRUE(from("*").allows("2001:db8::9"));
    // Matched against the address's canonical text (lowercase, zeros compressed).
    EXPECT_TRUE(from("2001:db8::*").allows("2001:0DB8:0:0::1"));
}

TEST(SourcePatterns, NegationWinsInAnyOrder)
{
    const auto p = from("!10.0.0.5,10.0.0.0/24");
    EXPECT_TRUE(p.allows("10.0.0.4"));
    EXPECT_FALSE(p.allows("10.0.0.5"));
    EXPECT_FALSE(from("10.0.0.0/24,!10.0.0.5").allows("10.0.0.5"));
    EXPECT_FALSE(from("*,!10.0.0.*").allows("10.0.0.9"));
    EXPECT_TRUE(from("*,!10.0.0.*").allows("10.0.1.9"));
    EXPECT_FALSE(from("!10.0.0.0/8,*").allows("10.1.1.1"));
    // Only negations: nothing matches positively, so nothing is allowed (as in sshd).
    EXPECT_FALSE(from("!10.0.0.5").allows("192.0.2.1"));
    EXPECT_FALSE(from("!2001:db8::/32,::/0").allows("2001:db8::1"));
    EXPECT_TRUE(from("!2001:db8::/32,::/0").allows("2001:db9::1"));
}

TEST(SourcePatterns, HostNamesAndBadPatternsAreRefused)
{
    const auto error = [](const std::string& list) {
        auto parsed = SourcePatterns::parse(list);
        EXPECT_FALSE(parsed) << list;
        return parsed ? "" : parsed.error().message;
    };
    EXPECT_NE(error("*.example.org").find("\"*.example.org\" is a host name"), std::string::npos);
    EXPECT_NE(error("10.0.0.1,bastion").find("\"bastion\" is a host name"), std::string::npos);
    EXPECT_NE(error("cafe*").find("host name"), std::string::npos);
    EXPECT_NE(error("!web?.corp").find("host name"), std::string::npos);
    EXPECT_EQ(error("10.0.0.1/8"), "from= pattern \"10.0.0.1/8\" has bits set beyond its /8 "
                                   "prefix (did you mean \"10.0.0.0/8\"?)");
    EXPECT_NE(error("fe80::1/10").find("did you mean \"fe80::/10\""), std::string::npos);
    EXPECT_NE(error("10.0.0.0/33").find("prefix length must be 0 to 32"), std::string::npos);
    EXPECT_NE(error("::/129").find("0 to 128"), std::string::npos);
    EXPECT_NE(error("10.0.0.0/").find("prefix length"), std::string::npos);
    EXPECT_NE(error("10.*/8").find("cannot hold wildcards"), std::string::npos);
    EXPECT_NE(error("10.0.0.1,,10.0.0.2").find("empty pattern"), std::string::npos);
    EXPECT_NE(error("!").find("empty pattern"), std::string::npos);
    EXPECT_NE(error("").find("empty"), std::string::npos);
}

TEST(KeyRefusal, FromAndExpiry)
{
    const auto now = std::time(nullptr);
    EXPECT_FALSE(refusal(key_with("no-pty"), "192.0.2.1", now));
    const auto limited = key_with("from=\"10.0.0.0/8\"");
    EXPECT_FALSE(refusal(limited, "10.2.3.4", now));
    EXPECT_EQ(refusal(limited, "192.0.2.1", now), "192.0.2.1 is not in from=\"10.0.0.0/8\"");
    const auto expired = key_with("expiry-time=\"20200101Z\"");
    EXPECT_EQ(refusal(expired, "10.2.3.4", now), "the key expired at 2020-01-01 00:00:00 UTC");
    EXPECT_FALSE(refusal(key_with("expiry-time=\"29991231\""), "10.2.3.4", now));
}

TEST(KeyOptions, ExpiryTimeFormats)
{
    EXPECT_EQ(options("expiry-time=\"20240229Z\"").expires, 1709164800);
    EXPECT_EQ(options("expiry-time=\"202402291230Z\"").expires, 1709164800 + 12 * 3600 + 30 * 60);
    EXPECT_EQ(options("expiry-time=\"20240229123005z\"").expires,
              1709164800 + 12 * 3600 + 30 * 60 + 5);
    // Without Z the host's time zone counts, as in sshd.
    ::setenv("TZ", "UTC-2", 1);
    ::tzset();
    EXPECT_EQ(options("expiry-time=\"20240229\"").expires, 1709164800 - 2 * 3600);
    ::unsetenv("TZ");
    ::tzset();
    // The earliest of several counts.
    EXPECT_EQ(options("expiry-time=\"20250101Z\",expiry-time=\"20240229Z\"").expires, 1709164800);
    EXPECT_NE(error_of("expiry-time=\"20230229\"").find("not a valid time"), std::string::npos);
    EXPECT_NE(error_of("expiry-time=\"2024022\"").find("expected YYYYMMDD"), std::string::npos);
    EXPECT_NE(error_of("expiry-time=\"2024-02-29\"").find("expected YYYYMMDD"), std::string::npos);
    EXPECT_NE(error_of("expiry-time=\"202402291261Z\"").find("not a valid"), std::string::npos);
}

TEST_F(KeyFiles, ErrorsNameFileAndLine)
{
    write("a.keys", "# ok\n" + kKey + " one\n\nfrom=\"10.0.0.0/8\",permitopen=\"x:1\" " + kKey);
    auto keys = load_authorized_keys(m_config);
    ASSERT_FALSE(keys);
    EXPECT_EQ(keys.error().message,
              m_dir + "/a.keys:4: option \"permitopen\" is not supported by gitopper: gitopper "
                      "offers no port forwarding to restrict");
}

TEST_F(KeyFiles, HostNamePatternsNameFileAndLine)
{
    write("a.keys", "from=\"bastion.example.org\" " + kKey);
    auto keys = load_authorized_keys(m_config);
    ASSERT_FALSE(keys);
    EXPECT_TRUE(keys.error().message.starts_with(
        m_dir + "/a.keys:1: from= pattern \"bastion.example.org\" is a host name"))
        << keys.error().message;
}

TEST_F(KeyFiles, KeysKeepTheirFileLineAndOptions)
{
    write("a.keys", "\n" + kKey + "\ncommand=\"/list/machine\" " + kKey + " forced\n");
    m_config.keys.back().ro = true;
    auto keys = load_authorized_keys(m_config);
    ASSERT_TRUE(keys) << keys.error().message;
    ASSERT_EQ(keys->size(), 2u);
    EXPECT_EQ((*keys)[0].where(), m_dir + "/a.keys:2");
    EXPECT_FALSE((*keys)[0].options.command);
    EXPECT_EQ((*keys)[1].where(), m_dir + "/a.keys:3");
    EXPECT_EQ((*keys)[1].options.command, "/list/machine");
    EXPECT_TRUE((*keys)[1].read_only);
}

// Whoever can write a key file can give themselves the daemon: refused as sshd's StrictModes do.
TEST_F(KeyFiles, AKeyFileOthersCanWriteIsRefused)
{
    write("a.keys", kKey + "\n");
    ::chmod((m_dir + "/a.keys").c_str(), 0666);
    auto keys = load_authorized_keys(m_config);
    ASSERT_FALSE(keys);
    EXPECT_NE(keys.error().message.find(fmt::format("a.keys must be root's and writable by root "
                                                    "alone (it is uid {}, mode 0666)",
                                                    ::geteuid())),
              std::string::npos)
        << keys.error().message;
}
