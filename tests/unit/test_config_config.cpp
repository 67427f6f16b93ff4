#include "config/config.hpp"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

using namespace gitopper;

namespace {

const std::string kGlobal = R"([global]
upstream = "https://example.org/ops/config"
mount = "/var/lib/gitopper"
)";

// A minimal valid service with one line replaced or added.
std::string service(const std::string& extra = "")
{
    return kGlobal + R"(
[[services]]
machine = "web1"
service = "nginx"
dirs = [ { local = "/etc/nginx", link = "nginx/etc" } ]
)" + extra;
}

Config parse_ok(const std::string& text)
{
    auto config = parse_config(text, "config.toml");
    EXPECT_TRUE(config) << config.error().message;
    return config ? *config : Config{};
}

std::string parse_error(const std::string& text)
{
    auto config = parse_config(text, "config.toml");
    EXPECT_FALSE(config) << "expected an error for:\n" << text;
    return config ? "" : config.error().message;
}

#define EXPECT_CONTAINS(haystack, needle)                                                          \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos)                               \
        << "missing: " << (needle) << "\nin: " << (haystack)

} // namespace

TEST(Config, SeedExampleParsesUnchanged)
{
    auto config = load_config(GITOPPER_SOURCE_DIR "/examples/seed.toml");
    ASSERT_TRUE(config) << config.error().message;
    ASSERT_EQ(config->services.size(), 1u);
    const auto& s = config->services[0];
    EXPECT_EQ(s.name, "grafana-server");
    EXPECT_EQ(s.machine, "grafana.atoom.net");
    EXPECT_EQ(s.upstream, "https://github.com/miekg/blah-origin");
    EXPECT_EQ(s.checkout_dir(), "/tmp/grafana1/grafana-server");
    EXPECT_EQ(s.user, "grafana");
    EXPECT_EQ(s.action, "reload");
    ASSERT_EQ(s.dirs.size(), 2u);
    EXPECT_EQ(s.dirs[1].local, "/var/lib/grafana/dashboards");
    EXPECT_EQ(s.dirs[1].path, "grafana/dashboards");
    EXPECT_FALSE(s.dirs[1].file);
}

TEST(Config, SpecExampleParsesUnchanged)
{
    auto config = load_config(GITOPPER_SOURCE_DIR "/examples/spec.toml");
    ASSERT_TRUE(config) << config.error().message;
    ASSERT_EQ(config->keys.size(), 2u);
    EXPECT_EQ(config->keys[0].path, "keys/alice.pub");
    EXPECT_FALSE(config->keys[0].ro);
    EXPECT_TRUE(config->keys[1].ro);
    ASSERT_EQ(config->services.size(), 1u);
    const auto& s = config->services[0];
    EXPECT_EQ(s.branch, "canary");
    EXPECT_EQ(s.checkout_dir(), "/srv/gitopper/grafana-server");
    ASSERT_EQ(s.dirs.size(), 2u);
    EXPECT_TRUE(s.dirs[1].file);
}

TEST(Config, GlobalDefaultsMergeAndServiceWins)
{
    auto config = parse_ok(R"([global]
upstream = "https://example.org/a"
mount = "/srv"
action = "reload"
user = "www"

[[services]]
machine = "web1"
service = "one"

[[services]]
machine = "web1"
service = "two"
upstream = "https://example.org/b"
action = ""
branch = "canary"
)");
    ASSERT_EQ(config.services.size(), 2u);
    EXPECT_EQ(config.services[0].upstream, "https://example.org/a");
    EXPECT_EQ(config.services[0].branch, "main");
    EXPECT_EQ(config.services[0].action, "reload");
    EXPECT_EQ(config.services[0].user, "www");
    EXPECT_EQ(config.services[1].upstream, "https://example.org/b");
    EXPECT_EQ(config.services[1].action, "") << "an explicit empty action overrides [global]";
    EXPECT_EQ(config.services[1].branch, "canary");
    EXPECT_EQ(config.services[1].index, 2u);
}

TEST(Config, UnknownKeyNamesPositionAndSuggests)
{
    const auto error = parse_error(kGlobal + R"(
[[services]]
machine = "web1"
brokenbranch = "main"
service = "nginx"
)");
    EXPECT_EQ(error, "config.toml:7:1: unknown key \"brokenbranch\" in [[services]] #1 "
                     "(did you mean \"branch\"?)");
}

TEST(Config, UnknownKeysEverywhere)
{
    EXPECT_CONTAINS(
        parse_error("[global]\nupstrem = \"x\"\n"),
        "config.toml:2:1: unknown key \"upstrem\" in [global] (did you mean \"upstream\"?)");
    EXPECT_CONTAINS(parse_error("[globl]\n"),
                    "config.toml:1:2: unknown key \"globl\" in the top level");
    EXPECT_CONTAINS(parse_error(service("").replace(service("").find("link ="), 4, "lnk")),
                    "unknown key \"lnk\" in dirs[0] of [[services]] #1 (did you mean \"link\"?)");
    EXPECT_CONTAINS(parse_error("[global]\nkeys = [ { path = \"a\", r = true } ]\n"),
                    "unknown key \"r\" in keys[0] of [global]");
    EXPECT_EQ(parse_error("[global]\nzzzzzz = 1\n"),
              "config.toml:2:1: unknown key \"zzzzzz\" in [global]");
}

TEST(Config, WrongTypesAreErrors)
{
    EXPECT_CONTAINS(
        parse_error(service("branch = 1\n")),
        "config.toml:9:10: \"branch\" in [[services]] #1 must be a string, not an integer");
    EXPECT_CONTAINS(parse_error(service("").replace(service("").find("link = \"nginx/etc\""), 18,
                                                    "link = \"x\", file = \"yes\"")),
                    "\"file\" in dirs[0] of [[services]] #1 must be a boolean, not a string");
    EXPECT_CONTAINS(
        parse_error(kGlobal + "[[services]]\nmachine = \"a\"\nservice = \"b\"\ndirs = \"x\"\n"),
        "\"dirs\" in [[services]] #1 must be an array, not a string");
    EXPECT_CONTAINS(parse_error(kGlobal + "[services]\nmachine = \"a\"\n"),
                    "\"services\" in the file must be an array, not a table");
    EXPECT_CONTAINS(parse_error("[global]\nkeys = [ \"alice.pub\" ]\n"),
                    "\"keys entry\" in keys[0] of [global] must be a table, not a string");
}

TEST(Config, DuplicateKeysAndSyntaxErrorsHavePositions)
{
    EXPECT_CONTAINS(parse_error(service("machine = \"web2\"\n")), "config.toml:9:");
    EXPECT_CONTAINS(parse_error(service("machine = \"web2\"\n")), "machine");
    EXPECT_CONTAINS(parse_error("[global]\nupstream = \n"), "config.toml:2:");
}

// Found by fuzz/fuzz_config: toml++ quoted the newline it saw, splitting the problem in two.
TEST(Config, SyntaxErrorsStayOnOneLine)
{
    const auto error = parse_error("[global]\nmount = t\n");
    EXPECT_CONTAINS(error, "config.toml:2:");
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(Config, MissingRequiredFields)
{
    for (const std::string field : {"machine", "service"}) {
        auto text = service();
        const auto at = text.find(field + " =");
        text.erase(at, text.find('\n', at) - at + 1);
        EXPECT_CONTAINS(parse_error(text),
                        "config.toml:5:1: missing \"" + field +
                            "\" (set it here or in [global]) in [[services]] #1");
    }
    EXPECT_CONTAINS(parse_error("[[services]]\nmachine = \"a\"\nservice = \"b\"\n"),
                    "missing \"upstream\"");
    EXPECT_CONTAINS(parse_error("[[services]]\nmachine = \"a\"\nservice = \"b\"\n"),
                    "missing \"mount\"");
    EXPECT_CONTAINS(parse_error(kGlobal + "[[services]]\nmachine = \"a\"\nservice = \"\"\n"),
                    "missing \"service\"");
}

TEST(Config, LinkRules)
{
    const auto with_dirs = [](const std::string& dirs) {
        return kGlobal + "[[services]]\nmachine = \"a\"\nservice = \"b\"\ndirs = [ " + dirs +
               " ]\n";
    };
    parse_ok(with_dirs(
        R"({ local = "/etc/a", link = "a/b" }, { local = "/etc/c", link = "c", file = true })"));
    parse_ok(with_dirs(R"({ local = "/etc/a", link = "a..b/c" })"));
    EXPECT_CONTAINS(
        parse_error(with_dirs(R"({ local = "etc/a", link = "a" })")),
        "config.toml:7:10: local \"etc/a\" must be an absolute path in [[services]] #1 (b)");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/", link = "a" })")),
                    "must not be the root");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/x", link = "/a" })")),
                    "link \"/a\" must be a relative path");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/x", link = "" })")),
                    "link \"\" must be a relative");
    // A required key of an entry that is absent is named as missing, from the field table.
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/x" })")),
                    "config.toml:7:10: missing \"link\" in dirs[0] of [[services]] #1");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ link = "a" })")), "missing \"local\"");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/x", link = "a/../../etc" })")),
                    "must not leave the repository");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/x", link = ".git/config" })")),
                    "must not point into .git");
}

TEST(Config, FieldRules)
{
    struct Case {
        std::string line;
        std::string expected; // empty: valid
    };
    const std::vector<Case> cases{
        {"service = \"getty@tty1\"", ""},
        {"service = \"../etc\"", "service \"../etc\" is not a valid name"},
        {"service = \"a/b\"", "is not a valid name"},
        {"service = \"-x\"", "is not a valid name"},
        {"branch = \"release/1.2\"", ""},
        {"branch = \"-f\"", "branch \"-f\" is not a valid git branch name"},
        {"branch = \"a..b\"", "not a valid git branch name"},
        {"branch = \"a b\"", "not a valid git branch name"},
        {"action = \"restart\"", ""},
        {"action = \"\"", ""},
        {"action = \"relaod\"", "action \"relaod\" is not a systemctl action gitopper runs"},
        {"action = \"relaod\"", "did you mean \"reload\"?"},
        {"mount = \"srv\"", "mount \"srv\" must be an absolute path"},
        {"upstream = \"git@github.com:ops/config.git\"", ""},
        {"upstream = \"file:///srv/git/config\"", ""},
        {"upstream = \"ext::sh -c touch% /tmp/pwned\"", "is not a git URL"},
        {"upstream = \"fd::17\"", "is not a git URL"},
        {"upstream = \"-uhttps://x\"", "is not a git URL"},
        {"user = \"grafana\"", ""},
        {"user = \"-x\"", "user \"-x\" is not a valid user name"},
        {"user = \"a b\"", "is not a valid user name"},
        {"package = \"libfoo2.0+dfsg\"", ""},
        {"package = \"-y\"", "package \"-y\" is not a valid package name"},
        {"machine = \"a b\"", "machine \"a b\" must not contain spaces"},
    };
    for (const auto& c : cases) {
        const auto key = c.line.substr(0, c.line.find(' '));
        auto text = kGlobal + "[[services]]\nmachine = \"web1\"\nservice = \"nginx\"\n";
        if (key == "machine" || key == "service") {
            const auto at = text.find(key + " =");
            text.replace(at, text.find('\n', at) - at, c.line);
        } else {
            text += c.line + "\n";
        }
        auto config = parse_config(text, "config.toml");
        if (c.expected.empty()) {
            EXPECT_TRUE(config) << c.line << ": " << config.error().message;
        } else {
            ASSERT_FALSE(config) << c.line;
            EXPECT_CONTAINS(config.error().message, c.expected);
            EXPECT_CONTAINS(config.error().message, "config.toml:");
        }
    }
}

TEST(Config, DuplicateServiceOnOneMachine)
{
    const auto text = kGlobal + R"(
[[services]]
machine = "web1"
service = "nginx"

[[services]]
machine = "web1"
service = "nginx"
)";
    EXPECT_CONTAINS(parse_error(text), "config.toml:9:1: service \"nginx\" for machine \"web1\" is "
                                       "defined twice (first at config.toml:5:1)");
}

TEST(Config, SameServiceOnTwoMachinesIsCanarying)
{
    auto config = parse_ok(kGlobal + R"(
[[services]]
machine = "web1"
service = "nginx"
branch = "canary"

[[services]]
machine = "web2"
service = "nginx"
)");
    EXPECT_EQ(config.services.size(), 2u);
}

TEST(Config, EveryProblemIsReported)
{
    const auto error = parse_error(kGlobal + R"(
[[services]]
machine = "web1"
service = "a"
mount = "rel"

[[services]]
machine = "web1"
service = "b"
action = "bogus"
)");
    EXPECT_CONTAINS(error, "config.toml:8:9: mount \"rel\"");
    EXPECT_CONTAINS(error, "\nconfig.toml:13:10: action \"bogus\"");
}

TEST(Config, GitTimeoutIsAGoDurationInRange)
{
    EXPECT_EQ(parse_ok(service()).git_timeout, std::chrono::minutes(2));
    const auto text = [](const std::string& value) {
        return kGlobal + "git_timeout = " + value + "\n" + service().substr(kGlobal.size());
    };
    EXPECT_EQ(parse_ok(text("\"90s\"")).git_timeout, std::chrono::seconds(90));
    EXPECT_EQ(parse_ok(text("\"1s\"")).git_timeout, std::chrono::seconds(1));
    EXPECT_CONTAINS(parse_error(text("\"500ms\"")),
                    "config.toml:4:15: git_timeout \"500ms\" is out of range (1s to 1h)");
    EXPECT_CONTAINS(parse_error(text("\"2h\"")), "out of range (1s to 1h)");
    EXPECT_CONTAINS(parse_error(text("\"soon\"")), "config.toml:4:15: git_timeout: ");
    EXPECT_CONTAINS(parse_error(text("30")), "config.toml:4:15: ");
    EXPECT_CONTAINS(parse_error(text("30")), "git_timeout");
}

TEST(Config, MissingFileNamesThePath)
{
    auto config = load_config("/nonexistent/gitopper.toml");
    ASSERT_FALSE(config);
    EXPECT_CONTAINS(config.error().message, "/nonexistent/gitopper.toml");
}

TEST(ConfigSelect, PicksThisHostsServicesCaseInsensitively)
{
    auto config = parse_ok(kGlobal + R"(
[[services]]
machine = "Web1.example.org"
service = "a"

[[services]]
machine = "db1"
service = "b"
)");
    const std::vector<std::string> hosts{"web1.example.org", "other"};
    auto selected = services_for_host(config, hosts, "");
    ASSERT_TRUE(selected) << selected.error().message;
    ASSERT_EQ(selected->size(), 1u);
    EXPECT_EQ((*selected)[0].name, "a");
}

TEST(ConfigSelect, AliasesCanCollide)
{
    auto config = parse_ok(kGlobal + R"(
[[services]]
machine = "web1"
service = "nginx"
dirs = [ { local = "/etc/nginx", link = "a" } ]

[[services]]
machine = "web2"
service = "nginx"
branch = "canary"
dirs = [ { local = "/etc/nginx", link = "b" } ]

[[services]]
machine = "web2"
service = "other"
dirs = [ { local = "/etc/nginx/", link = "c" } ]
)");
    const std::vector<std::string> one{"web1"};
    EXPECT_TRUE(services_for_host(config, one, ""));
    const std::vector<std::string> both{"web1", "web2"};
    auto selected = services_for_host(config, both, "");
    ASSERT_FALSE(selected);
    EXPECT_CONTAINS(selected.error().message,
                    "config.toml:10:1: service \"nginx\" is defined twice for this host");
    EXPECT_CONTAINS(selected.error().message, "checkout directory \"/var/lib/gitopper/nginx\" is "
                                              "shared");
    EXPECT_CONTAINS(selected.error().message, "local \"/etc/nginx/\" is already a mount target");
}

// ---- SPEC §11: where targets may lie -----------------------------------------------------

namespace {

std::string host_error(const std::string& text, const std::string& state_dir = "/var/lib/gs")
{
    auto config = parse_config(text, "config.toml");
    EXPECT_TRUE(config) << config.error().message;
    if (!config) {
        return "";
    }
    const std::vector<std::string> hosts{"web1"};
    auto selected = services_for_host(*config, hosts, state_dir);
    EXPECT_FALSE(selected) << "expected a target error for:\n" << text;
    return selected ? "" : selected.error().message;
}

std::string with_dirs(const std::string& dirs)
{
    return kGlobal + "[[services]]\nmachine = \"a\"\nservice = \"b\"\ndirs = [ " + dirs + " ]\n";
}

std::string two_dirs(const std::string& a, const std::string& b)
{
    return kGlobal + "[[services]]\nmachine = \"web1\"\nservice = \"s\"\ndirs = [ { local = \"" +
           a + "\", link = \"a\" }, { local = \"" + b + "\", link = \"b\" } ]\n";
}

} // namespace

TEST(ConfigTargets, SystemDirectoriesAndTheRootAreRefusedWithTheirPosition)
{
    for (const auto* local :
         {"/", "/etc", "/etc/", "/usr", "/lib64", "/lib", "/proc", "/sys", "/dev", "/boot", "/run",
          "/root", "/var", "/home", "/bin", "/sbin", "//etc", "/etc/."}) {
        const auto error =
            parse_error(with_dirs(fmt::format(R"({{ local = "{}", link = "a" }})", local)));
        EXPECT_CONTAINS(error, "config.toml:7:");
        EXPECT_TRUE(error.find("top-level system directory") != std::string::npos ||
                    error.find("root directory") != std::string::npos)
            << local << ": " << error;
    }
    EXPECT_TRUE(parse_config(with_dirs(R"({ local = "/etc/grafana", link = "a" })"), "c.toml"));
    // "/lib*": anything at the top that starts with "lib".
    EXPECT_FALSE(parse_config(with_dirs(R"({ local = "/libexec", link = "a" })"), "c.toml"));
}

TEST(ConfigTargets, MountBaseMayNotBeASystemDirectory)
{
    auto text = service();
    text.replace(text.find("mount = \"/var/lib/gitopper\""), 27, "mount = \"/etc\"");
    EXPECT_CONTAINS(parse_error(text), "mount \"/etc\" must not be / or a top-level system");
}

TEST(ConfigTargets, ATargetInsideAnotherIsRefusedWhicheverComesFirst)
{
    EXPECT_CONTAINS(host_error(two_dirs("/etc/app", "/etc/app/conf.d")),
                    "local \"/etc/app/conf.d\" lies inside local \"/etc/app\"");
    EXPECT_CONTAINS(host_error(two_dirs("/etc/app/conf.d", "/etc/app")),
                    "local \"/etc/app/conf.d\" lies inside local \"/etc/app\"");
    // Across services too.
    auto config = parse_ok(kGlobal + R"(
[[services]]
machine = "web1"
service = "one"
dirs = [ { local = "/etc/systemd", link = "a" } ]
[[services]]
machine = "web1"
service = "two"
dirs = [ { local = "/etc/systemd/system", link = "b" } ]
)");
    const std::vector<std::string> hosts{"web1"};
    auto selected = services_for_host(config, hosts, "");
    ASSERT_FALSE(selected);
    EXPECT_CONTAINS(selected.error().message, "config.toml:12:10: local \"/etc/systemd/system\" "
                                              "lies inside local \"/etc/systemd\" (at "
                                              "config.toml:8:10)");
    // A prefix of the name is not "inside".
    auto apart = parse_ok(two_dirs("/etc/app", "/etc/apparmor"));
    EXPECT_TRUE(services_for_host(apart, hosts, ""));
}

TEST(ConfigTargets, TheSameTargetSpelledTwiceIsOneTarget)
{
    EXPECT_CONTAINS(host_error(two_dirs("/etc/app", "/etc//app/./")), "is already a mount target");
    // Existing parents are resolved: /tmp/... through a symlinked parent is the same place.
    const auto dir = std::filesystem::temp_directory_path() / "gitopper-target-test";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "real");
    std::filesystem::create_directory_symlink(dir / "real", dir / "alias");
    EXPECT_CONTAINS(host_error(two_dirs((dir / "real/app").string(), (dir / "alias/app").string())),
                    "is already a mount target");
    std::filesystem::remove_all(dir);
}

TEST(ConfigTargets, NotInsideACheckoutTheMountBaseOrTheStateDir)
{
    EXPECT_CONTAINS(host_error(service("").replace(service("").find("/etc/nginx"), 10,
                                                   "/var/lib/gitopper/other/x")),
                    "lies inside the mount base /var/lib/gitopper");
    EXPECT_CONTAINS(
        host_error(service("").replace(service("").find("/etc/nginx"), 10, "/var/lib/gitopper")),
        "lies inside the mount base");
    EXPECT_CONTAINS(
        host_error(service("").replace(service("").find("/etc/nginx"), 10, "/var/lib/gs/keys"),
                   "/var/lib/gs"),
        "must not be, hold or lie inside the state directory /var/lib/gs");
    EXPECT_CONTAINS(host_error(service("").replace(service("").find("/etc/nginx"), 10, "/var/lib"),
                               "/var/lib/gs"),
                    "the state directory");
}

TEST(ConfigTargets, AMountBaseInsideATargetIsRefused)
{
    auto text = service();
    text.replace(text.find("mount = \"/var/lib/gitopper\""), 27, "mount = \"/etc/nginx/co\"");
    EXPECT_CONTAINS(host_error(text), "mount \"/etc/nginx/co\" of [[services]] #1 (nginx) lies "
                                      "inside local \"/etc/nginx\"");
}

TEST(ConfigTargets, ServicesCannotTakeTheStateDirsOwnNames)
{
    auto text = service();
    text.replace(text.find("service = \"nginx\""), 17, "service = \"gitopper-drift\"");
    EXPECT_CONTAINS(host_error(text, "/var/lib/gitopper"),
                    "service \"gitopper-drift\" collides with the state directory's own entries");
    // With checkouts elsewhere the name is harmless.
    auto config = parse_ok(text);
    const std::vector<std::string> hosts{"web1"};
    EXPECT_TRUE(services_for_host(config, hosts, "/var/lib/other-state"));
    // Our own directories next to a checkout are never a service's.
    for (const auto* name :
         {"nginx.gitopper-link", "nginx.gitopper-clone", "nginx.broken-1700000000"}) {
        auto reserved = service();
        reserved.replace(reserved.find("service = \"nginx\""), 17,
                         fmt::format("service = \"{}\"", name));
        EXPECT_CONTAINS(parse_error(reserved), "is reserved");
    }
}

TEST(ConfigTargets, LinksNameAPathInsideTheTreeNotGitsOwn)
{
    for (const auto* link :
         {".", "./", "a/..", ".git", "./.git", ".git/config", "a/.git", ".GIT/hooks"}) {
        const auto error =
            parse_error(with_dirs(fmt::format(R"({{ local = "/etc/x", link = "{}" }})", link)));
        EXPECT_TRUE(error.find(".git") != std::string::npos ||
                    error.find("not its root") != std::string::npos ||
                    error.find("..") != std::string::npos)
            << link << ": " << error;
    }
}

TEST(ConfigTargets, ModeIsOctalPermissionBitsOfADirectory)
{
    EXPECT_EQ(parse_ok(with_dirs(R"({ local = "/etc/x", link = "a", mode = "0750" })"))
                  .services[0]
                  .dirs[0]
                  .mode_bits(),
              0750u);
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/etc/x", link = "a", mode = "4755" })")),
                    "no setuid");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/etc/x", link = "a", mode = "rwx" })")),
                    "octal");
    EXPECT_CONTAINS(parse_error(with_dirs(R"({ local = "/etc/x", link = "a", mode = "0550" })")),
                    "owner rwx");
    EXPECT_CONTAINS(
        parse_error(with_dirs(R"({ local = "/etc/x", link = "a", file = true, mode = "0700" })")),
        "directories only");
}

TEST(ConfigTargets, MaxFileSizeTakesUnits)
{
    auto text = service("max_file_size = \"2MiB\"\n");
    EXPECT_EQ(parse_ok(text).services[0].file_size_limit(), 2u << 20);
    EXPECT_EQ(parse_ok(service()).services[0].file_size_limit(), 100u << 20);
    EXPECT_CONTAINS(parse_error(service("max_file_size = \"lots\"\n")),
                    "max_file_size \"lots\" is not a size");
}

TEST(ConfigTargets, ACheckoutIsNeverTheStateDirNorInsideOneOrAnotherCheckout)
{
    auto named_state = service();
    named_state.replace(named_state.find("service = \"nginx\""), 17, "service = \"gs\"");
    named_state.replace(named_state.find("mount = \"/var/lib/gitopper\""), 27,
                        "mount = \"/var/lib\"");
    EXPECT_CONTAINS(host_error(named_state, "/var/lib/gs"),
                    "checkout \"/var/lib/gs\" of [[services]] #1 (gs) must not be, hold or lie "
                    "inside the state directory");
    auto under_state = service();
    under_state.replace(under_state.find("mount = \"/var/lib/gitopper\""), 27,
                        "mount = \"/var/lib/gs/gitopper-drift\"");
    EXPECT_CONTAINS(host_error(under_state, "/var/lib/gs"), "inside the state directory");
    auto nested = parse_ok(kGlobal + R"(
[[services]]
machine = "web1"
service = "x"
mount = "/srv"
[[services]]
machine = "web1"
service = "y"
mount = "/srv/x"
)");
    const std::vector<std::string> hosts{"web1"};
    auto selected = services_for_host(nested, hosts, "");
    ASSERT_FALSE(selected);
    EXPECT_CONTAINS(selected.error().message,
                    "mount \"/srv/x\" of [[services]] #2 (y) lies inside the checkout \"/srv/x\"");
    // The default layout, checkouts in the state dir, stays allowed.
    auto usual = parse_ok(service());
    EXPECT_TRUE(services_for_host(usual, hosts, "/var/lib/gitopper"));
}

TEST(Config, CheckIsACommandAsAnArrayOrAString)
{
    const auto as_string = parse_ok(service(R"(check = "nginx -t -c '{dir}/nginx conf'")"));
    EXPECT_EQ(as_string.services[0].check, (Argv{"nginx", "-t", "-c", "{dir}/nginx conf"}));
    const auto as_array = parse_ok(service(R"(check = ["nginx", "-t", "-c", "{dir}/a b"])"));
    EXPECT_EQ(as_array.services[0].check, (Argv{"nginx", "-t", "-c", "{dir}/a b"}));
    EXPECT_EQ(as_array.services[0].check_timeout, std::chrono::seconds(60));
    // From [global], like every service field; a service's own wins.
    const auto shared = parse_ok(kGlobal + "check = \"true\"\ncheck_timeout = \"5s\"\n" +
                                 service().substr(kGlobal.size()));
    EXPECT_EQ(shared.services[0].check, (Argv{"true"}));
    EXPECT_EQ(shared.services[0].check_timeout, std::chrono::seconds(5));
}

TEST(Config, ABadCheckIsAnErrorWhereItIsWritten)
{
    EXPECT_CONTAINS(parse_error(service(R"(check = "nginx -t && reload")")),
                    "config.toml:9:9: check in [[services]] #1: column 10: \"&\" would be a "
                    "command list in a shell");
    EXPECT_CONTAINS(parse_error(service(R"(check = ["a", 1])")),
                    "\"check\" in [[services]] #1 must be a non-empty array of strings or a "
                    "string, not an array");
    EXPECT_CONTAINS(parse_error(service(R"(check = [])")), "must be a non-empty array");
    EXPECT_CONTAINS(parse_error(service(R"(check = "./check.sh {dir}")")),
                    "the program \"./check.sh\" must be an absolute path or a name found on PATH");
    parse_ok(service(R"(check = ["{dir}/bin/check", "x"])"));
    EXPECT_CONTAINS(parse_error(service(R"(check = "")")), "the command is empty");
    EXPECT_CONTAINS(parse_error(service(R"(check = ["test", "-f", "{comit}"])")),
                    "unknown placeholder {comit} (did you mean {commit}?)");
    EXPECT_CONTAINS(parse_error(service(R"(check_timeout = "0s")")),
                    "config.toml:9:17: check_timeout \"0s\" is out of range (1s to 1h)");
    EXPECT_CONTAINS(parse_error(service(R"(check_timeout = "soon")")), "check_timeout: ");
}

TEST(ConfigNotify, GlobalTargetsAreEveryServicesUnlessItHasItsOwn)
{
    auto config = parse_ok(kGlobal + R"(notify = [
  { url = "https://hooks.example.org/services/T0/B0/XXXX", format = "slack" },
  { exec = "/usr/local/bin/page {service}", timeout = "30s", name = "pager" },
]

[[services]]
machine = "web1"
service = "nginx"
dirs = [ { local = "/etc/nginx", link = "nginx/etc" } ]

[[services]]
machine = "web1"
service = "caddy"
dirs = [ { local = "/etc/caddy", link = "caddy" } ]
notify = [ { url = "http://127.0.0.1:9000/hook" } ]
)");
    ASSERT_EQ(config.services.size(), 2u);
    const auto& shared = config.services[0].notify;
    ASSERT_EQ(shared.size(), 2u);
    EXPECT_EQ(shared[0].format, "slack");
    EXPECT_EQ(shared[0].label(), "https://hooks.example.org");
    EXPECT_EQ(shared[0].timeout, std::chrono::seconds(10));
    EXPECT_EQ(shared[1].exec, (Argv{"/usr/local/bin/page", "{service}"}));
    EXPECT_EQ(shared[1].label(), "pager");
    EXPECT_EQ(shared[1].timeout, std::chrono::seconds(30));
    ASSERT_EQ(config.services[1].notify.size(), 1u);
    EXPECT_EQ(config.services[1].notify[0].label(), "http://127.0.0.1:9000");
    EXPECT_NE(shared[0].identity(), shared[1].identity());
}

TEST(ConfigNotify, DescribeNeverShowsTheUrlsPath)
{
    auto config = parse_ok(
        service(R"(notify = [ { url = "https://hooks.example.org/services/T0/B0/s3cret" } ])"));
    const auto text = config.services[0].notify[0].describe();
    EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
    EXPECT_CONTAINS(text, "POST https://hooks.example.org/… (json)");
}

TEST(ConfigNotify, BadEntriesAreNamedWithTheirPosition)
{
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { name = "x" } ])")),
                    "config.toml:9:12: a notify entry needs either url or exec");
    EXPECT_CONTAINS(
        parse_error(service(R"(notify = [ { url = "http://a/", exec = "/bin/true" } ])")),
        "a notify entry needs either url or exec");
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { url = "ftp://a/s3cret" } ])")),
                    "notify: url is not an http:// or https:// URL");
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { url = "http://a/", format = "xml" } ])")),
                    "format \"xml\" is not \"json\" or \"slack\"");
    EXPECT_CONTAINS(
        parse_error(service(R"(notify = [ { exec = "/bin/true", format = "slack" } ])")),
        "format, secret_file and ca_file go with url, not exec");
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { exec = "/bin/echo {dir}" } ])")),
                    "must not use {dir}");
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { url = "http://a/", timeout = "0s" } ])")),
                    "timeout \"0s\" is out of range (1s to 5m)");
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { url = "http://a/", secret = "x" } ])")),
                    "unknown key \"secret\" in notify[0] of [[services]] #1 (did you mean "
                    "\"secret_file\"?)");
    EXPECT_CONTAINS(
        parse_error(
            service(R"(notify = [ { url = "http://a/", ca_file = "/etc/ssl/certs/ca.pem" } ])")),
        "ca_file is for an https:// url");
}

TEST(ConfigStatus, AForgeWithItsApiAndToken)
{
    const auto token = std::filesystem::temp_directory_path() / "gitopper-status-token";
    {
        std::ofstream(token) << "t0ken\n";
    }
    std::filesystem::permissions(token, std::filesystem::perms::owner_read |
                                            std::filesystem::perms::owner_write);
    auto config = parse_ok(kGlobal +
                           fmt::format(R"(status = {{ forge = "github", token_file = "{}" }}
)",
                                       token.string()) +
                           service().substr(kGlobal.size()));
    ASSERT_TRUE(config.status);
    EXPECT_EQ(config.status->forge, "github");
    EXPECT_EQ(config.status->api, "https://api.github.com");
    EXPECT_EQ(config.status->token_file, token.string());

    EXPECT_CONTAINS(parse_error(kGlobal +
                                fmt::format(R"(status = {{ forge = "gitea", token_file = "{}" }}
)",
                                            token.string()) +
                                service().substr(kGlobal.size())),
                    "status: api is required for forge \"gitea\"");
    EXPECT_CONTAINS(
        parse_error(
            kGlobal +
            fmt::format(
                R"(status = {{ forge = "gitlap", api = "https://g/api/v4", token_file = "{}" }}
)",
                token.string()) +
            service().substr(kGlobal.size())),
        "did you mean \"gitlab\"?");
    EXPECT_CONTAINS(parse_error(kGlobal + R"(status = { forge = "github" }
)" + service().substr(kGlobal.size())),
                    "missing \"token_file\" in status of [global]");
    std::filesystem::permissions(token, std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    EXPECT_CONTAINS(parse_error(kGlobal +
                                fmt::format(R"(status = {{ forge = "github", token_file = "{}" }}
)",
                                            token.string()) +
                                service().substr(kGlobal.size())),
                    "status: token_file: ");
    std::filesystem::remove(token);
}

TEST(ConfigWindows, EachWindowIsCheckedWhereItStands)
{
    auto config = parse_ok(service(R"(windows = ["Mon-Fri 06:00-18:00", "Sat 10:00-12:00"])"));
    EXPECT_EQ(config.services[0].windows, (Strings{"Mon-Fri 06:00-18:00", "Sat 10:00-12:00"}));
    EXPECT_CONTAINS(
        parse_error(service(R"(windows = ["Mon-Fri 06:00-18:00", "Caturday 10:00-12:00"])")),
        "config.toml:9:35: window \"Caturday 10:00-12:00\": \"Caturday\" is not a day");
    EXPECT_CONTAINS(parse_error(service(R"(windows = "Mon-Fri 06:00-18:00")")),
                    "\"windows\" in [[services]] #1 must be an array of strings, not a string");
}

TEST(ConfigNotify, PlainHttpOnlyToThisHost)
{
    EXPECT_CONTAINS(parse_error(service(R"(notify = [ { url = "http://hooks.example.org/x" } ])")),
                    "url must be https:// (http:// only to this host)");
    parse_ok(service(R"(notify = [ { url = "http://127.0.0.1:9000/x" } ])"));
    parse_ok(service(R"(notify = [ { url = "http://localhost/x" } ])"));
}

// [global] rollout followed by the service (`extra` in it).
std::string with_rollout(const std::string& rollout, const std::string& extra = "")
{
    return kGlobal + "rollout = " + rollout + "\n" + service(extra).substr(kGlobal.size());
}

TEST(ConfigRollout, EtcdMembersAndTheDefaults)
{
    auto config = parse_ok(with_rollout(R"({ etcd = ["http://10.0.0.5:2379", "https://e2:2379"] })",
                                        "max_parallel = 3"));
    ASSERT_TRUE(config.rollout);
    EXPECT_EQ(config.rollout->etcd, (Strings{"http://10.0.0.5:2379", "https://e2:2379"}));
    EXPECT_EQ(config.rollout->max_parallel, 1);
    EXPECT_EQ(config.rollout->prefix, "/gitopper");
    EXPECT_EQ(config.rollout->lease_ttl, std::chrono::seconds(15));
    EXPECT_EQ(config.rollout->slots(config.services[0]), 3);
    config = parse_ok(with_rollout(
        R"({ etcd = ["http://e:2379"], max_parallel = 2, prefix = "/fleet/web", lease_ttl = "3s", timeout = "1s" })"));
    EXPECT_EQ(config.rollout->slots(config.services[0]), 2);
    EXPECT_EQ(config.rollout->prefix, "/fleet/web");
    EXPECT_EQ(config.rollout->lease_ttl, std::chrono::seconds(3));
    EXPECT_FALSE(parse_ok(service()).rollout);
}

TEST(ConfigRollout, BadValuesAreNamedWhereTheyStand)
{
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e:2379", "ftp://e"] })")),
                    "config.toml:4:38: etcd is not an http:// or https:// URL");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e:2379"], max_parallel = 0 })")),
                    "max_parallel 0 is out of range (1 to 10000)");
    EXPECT_CONTAINS(
        parse_error(with_rollout(R"({ etcd = ["http://e:2379"] })", "max_parallel = -1")),
        "max_parallel -1 is out of range");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e:2379"], lease_ttl = "1s" })")),
                    "lease_ttl \"1s\" is out of range (2s to 5m)");
    EXPECT_CONTAINS(
        parse_error(with_rollout(R"({ etcd = ["http://e:2379"], prefix = "gitopper/" })")),
        "prefix \"gitopper/\" must be a key path");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = [] })")), "rollout: etcd lists no member");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e"] })")),
                    "etcd member http://e needs its port (etcd's is 2379)");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://[::1]"] })")), "needs its port");
    EXPECT_TRUE(parse_ok(with_rollout(R"({ etcd = ["http://[::1]:2379/"] })")).rollout);
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e:2379/v3"] })")),
                    "etcd member http://e:2379: no path");
    EXPECT_CONTAINS(parse_error(with_rollout(
                        R"({ etcd = ["http://e:2379"], lease_ttl = "6s", timeout = "3s" })")),
                    "timeout 3s is more than a third of lease_ttl 6s");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ max_parallel = 2 })")),
                    "missing \"etcd\" in rollout of [global]");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["http://e:2379"], max_paralel = 2 })")),
                    "did you mean \"max_parallel\"?");
    EXPECT_CONTAINS(parse_error(service("max_parallel = 2")),
                    "max_parallel of [[services]] #1 (nginx) needs [global] rollout");
    EXPECT_CONTAINS(
        parse_error(with_rollout(R"({ etcd = ["http://e:2379"], cert_file = "/etc/c.pem" })")),
        "rollout: cert_file and key_file go together");
}

TEST(ConfigRollout, APasswordGoesOnlyOverTlsOrToThisHost)
{
    const auto password = std::filesystem::temp_directory_path() / "gitopper-etcd-password";
    {
        std::ofstream(password) << "s3cret\n";
    }
    std::filesystem::permissions(password, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write);
    const auto table = [&](const std::string& url) {
        return fmt::format(R"({{ etcd = ["{}"], user = "gitopper", password_file = "{}" }})", url,
                           password.string());
    };
    EXPECT_TRUE(parse_ok(with_rollout(table("https://e:2379"))).rollout);
    EXPECT_TRUE(parse_ok(with_rollout(table("http://127.0.0.1:2379"))).rollout);
    EXPECT_CONTAINS(parse_error(with_rollout(table("http://e:2379"))),
                    "etcd member http://e:2379 must be https:// to be sent a password");
    EXPECT_CONTAINS(parse_error(with_rollout(R"({ etcd = ["https://e:2379"], user = "u" })")),
                    "rollout: user and password_file go together");
    std::filesystem::permissions(password, std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    EXPECT_CONTAINS(parse_error(with_rollout(table("https://e:2379"))), "rollout: password_file: ");
    std::filesystem::remove(password);
}
