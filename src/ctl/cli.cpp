// The command line, with CLI11 (slow to compile: it lives in this file only). Subcommands
// are built from the table in commands.hpp.

#include "ctl/cli.hpp"

#include <algorithm>
#include <array>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ctl/messages.hpp"
#include "util/strings.hpp"

namespace gitopper::ctl {
namespace {

constexpr int kDefaultPort = 2222;

constexpr std::string_view kFooter = R"(
Several hosts are queried in parallel: @web1 @web2, or @web1,web2; a host may carry a port
(@web1:2223, @[::1]:2223). Keys: -i FILE, else the ssh-agent, else ~/.ssh/id_ed25519. A host
key seen for the first time is stored in the known-hosts file; a changed one is refused.

Examples:
  gitopperctl list service @web1
  gitopperctl -i ~/.ssh/ops l s @web1,web2 grafana-server
  gitopperctl do rollback @web1 grafana-server 606eb576
)";

// Everything CLI11 fills in, before it is checked and turned into an Invocation.
struct Parsed {
    std::string identity;
    std::string known_hosts;
    bool insecure_host_key = false;
    int port = kDefaultPort;
    bool raw_json = false;
    bool version = false;
    std::string freeze_for;                                       // do freeze --for
    std::string freeze_reason;                                    // do freeze --reason
    std::array<std::vector<std::string>, kCommands.size()> words; // per command
    std::array<CLI::App*, kCommands.size()> apps{};
};

int usage_error(std::string_view message)
{
    fmt::print(stderr, "gitopperctl: {} (see gitopperctl --help)\n", message);
    return 1;
}

void add_options(CLI::App& app, Parsed& p)
{
    app.add_option("-i,--identity", p.identity, "private key to authenticate with")
        ->type_name("FILE");
    app.add_option("-p,--port", p.port, "the daemons' SSH port unless @HOST:PORT says otherwise")
        ->type_name("PORT")
        ->check(CLI::Range(1, 65535).description(""))
        ->capture_default_str();
    app.add_option("-k,--known-hosts", p.known_hosts,
                   "trusted host keys [default ~/.ssh/gitopper_known_hosts]")
        ->type_name("FILE");
    app.add_flag("--insecure-host-key", p.insecure_host_key,
                 "take any host key, unchecked and unstored (a daemon that makes a new one at "
                 "every start, as the Go gitopper does); a man in the middle goes unnoticed");
    app.add_flag("-m,--machine-readable", p.raw_json, "print the daemon's JSON, not a table");
    app.add_flag("--version", p.version, "print the version and exit");
}

CLI::App* add_group(CLI::App& app, const Group& group)
{
    auto* sub = app.add_subcommand(std::string(group.name), std::string(group.help));
    for (const auto alias : group.aliases) {
        if (!alias.empty()) {
            sub->alias(std::string(alias));
        }
    }
    sub->require_subcommand(1);
    sub->fallthrough(); // -i, -p, -k, -m may also come after the subcommand
    return sub;
}

void add_command(CLI::App& group, const Command& command, Parsed& p, std::size_t index)
{
    auto& words = p.words[index];
    auto*& slot = p.apps[index];
    slot = group.add_subcommand(std::string(command.name), std::string(command.help));
    if (!command.alias.empty()) {
        slot->alias(std::string(command.alias));
    }
    slot->fallthrough();
    if (command.request == "/do/freeze") {
        slot->add_option("--for", p.freeze_for, "end the freeze by itself after this long (2h, 1d)")
            ->type_name("DURATION");
        slot->add_option("--reason", p.freeze_reason, "why, kept with who froze it and when")
            ->type_name("TEXT");
    }
    slot->add_option("args", words, fmt::format("@HOST... {}", command.args))->type_name("");
    const auto usage = command.group.empty() ? std::string(command.name)
                                             : fmt::format("{} {}", command.group, command.name);
    slot->footer(fmt::format("\nUsage: gitopperctl [-i FILE] [-p PORT] [-k FILE] [-m] {} "
                             "@HOST... {}\n(see gitopperctl --help for the options)",
                             usage, command.args));
}

void build(CLI::App& app, Parsed& p)
{
    app.set_help_flag("-h,--help", "print this help and exit");
    add_options(app, p);
    app.require_subcommand(1);
    for (std::size_t i = 0; i < kCommands.size(); ++i) {
        if (kCommands[i].group.empty()) {
            add_command(app, kCommands[i], p, i);
        }
    }
    for (const auto& group : kGroups) {
        auto* sub = add_group(app, group);
        for (std::size_t i = 0; i < kCommands.size(); ++i) {
            if (kCommands[i].group == group.name) {
                add_command(*sub, kCommands[i], p, i);
            }
        }
    }
    app.footer(std::string(kFooter)); // last: subcommands would inherit it
}

// The daemon splits its request on blanks: an argument must be one printable word.
bool one_word(const std::string& arg)
{
    return !arg.empty() && std::none_of(arg.begin(), arg.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
    });
}

std::variant<Invocation, int> to_invocation(const Parsed& p, std::size_t index)
{
    const auto& command = kCommands[index];
    auto split = split_positionals(p.words[index], p.port);
    if (!split) {
        return usage_error(
            fmt::format("{} {}: {}", command.group, command.name, split.error().message));
    }
    if (split->args.size() < command.min_args || split->args.size() > command.max_args) {
        return usage_error(fmt::format("usage: gitopperctl {}{}{} @HOST... {}", command.group,
                                       command.group.empty() ? "" : " ", command.name,
                                       command.args));
    }
    for (const auto& arg : split->args) {
        if (!one_word(arg)) {
            return usage_error(fmt::format("invalid argument {}", quote(arg)));
        }
    }
    // A freeze's end and reason go as words of the request: for=DURATION, then the reason.
    if (!p.freeze_for.empty()) {
        if (!one_word(p.freeze_for)) {
            return usage_error(fmt::format("invalid --for {}", quote(p.freeze_for)));
        }
        split->args.push_back("for=" + p.freeze_for);
    }
    for (const auto word : split_blanks(p.freeze_reason)) {
        if (!one_word(std::string(word))) {
            return usage_error(fmt::format("invalid --reason {}", quote(p.freeze_reason)));
        }
        split->args.emplace_back(word);
    }
    Invocation invocation{&command, std::move(split->targets), std::move(split->args)};
    if (!p.identity.empty()) {
        invocation.identity = p.identity;
    }
    if (!p.known_hosts.empty()) {
        invocation.known_hosts = p.known_hosts;
    }
    invocation.insecure_host_key = p.insecure_host_key;
    invocation.raw_json = p.raw_json;
    return invocation;
}

// CLI11 says "A subcommand is required"; say which ones would do, at the level that lacks one.
std::string missing_subcommand(const CLI::App& app)
{
    const CLI::App* at = &app;
    while (!at->get_subcommands().empty()) {
        at = at->get_subcommands().front();
    }
    std::vector<std::string> names;
    for (const auto* sub : at->get_subcommands([](const CLI::App*) { return true; })) {
        names.push_back(sub->get_name());
    }
    const auto prefix = at == &app ? std::string() : at->get_name() + ": ";
    return fmt::format("{}expected one of {}", prefix, join(names, ", "));
}

} // namespace

std::variant<Invocation, int> parse_command_line(int argc, char** argv)
{
    CLI::App app{"gitopperctl: inspect and steer gitopper daemons over their SSH control API.",
                 "gitopperctl"};
    Parsed p;
    build(app, p);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // --version needs no subcommand; CLI11 has just complained about the missing one.
        if (p.version) {
            fmt::print("gitopperctl {}\n", GITOPPER_VERSION);
            return 0;
        }
        const bool no_subcommand = std::string_view(e.what()) == "A subcommand is required";
        return usage_error(no_subcommand ? missing_subcommand(app) : lowercase_first(e.what()));
    }
    const auto chosen = std::find_if(p.apps.begin(), p.apps.end(),
                                     [](const CLI::App* sub) { return sub->parsed(); });
    return to_invocation(p, static_cast<std::size_t>(chosen - p.apps.begin()));
}

} // namespace gitopper::ctl
