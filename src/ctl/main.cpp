// gitopperctl: the client of gitopper's SSH control API (SPEC §5). Parse the command line,
// ask every host at once, print one table (or the JSON) and one line per failed host.

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "ctl/cli.hpp"
#include "ctl/client.hpp"
#include "ctl/render.hpp"
#include "ctl/table.hpp"
#include "util/strings.hpp"

namespace gitopper::ctl {
namespace {

std::string home_directory()
{
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        return home;
    }
    const passwd* entry = getpwuid(getuid()); // single-threaded still: no _r needed
    return entry != nullptr ? entry->pw_dir : "/";
}

// The daemon ignores the user name; SSH needs one.
std::string user_name()
{
    const char* user = std::getenv("USER");
    return user != nullptr && *user != '\0' ? user : "gitopper";
}

std::string request_line(const Invocation& invocation)
{
    std::string line(invocation.command->request);
    for (const auto& arg : invocation.args) {
        line += ' ' + arg;
    }
    return line;
}

// Hosts are asked in parallel, so ten slow hosts take as long as one; at most kWorkers at a
// time, so a list of hundreds does not become hundreds of threads and sockets at once.
std::vector<Exchange> query_all(const std::vector<Target>& targets, const std::string& request,
                                const ClientOptions& options)
{
    constexpr std::size_t kWorkers = 32;
    if (targets.empty()) {
        return {};
    }
    std::vector<Exchange> exchanges(targets.size(), Exchange{Reply{}, {}});
    std::atomic<std::size_t> next = 0;
    const auto work = [&] {
        for (auto i = next++; i < targets.size(); i = next++) {
            exchanges[i] = query(targets[i], request, options);
        }
    };
    {
        std::vector<std::jthread> helpers(std::min(targets.size(), kWorkers) - 1);
        for (auto& helper : helpers) {
            helper = std::jthread(work);
        }
        work(); // this thread is a worker too: one host needs no extra thread
    }           // the helpers join here
    return exchanges;
}

// The daemon's own words when it answered with an error status.
std::string status_error(const Reply& reply)
{
    auto text = printable(std::string(trim(reply.body)));
    if (text.empty()) {
        text = fmt::format("the daemon answered {}", reply.status);
    }
    return reply.status == 401 ? "unauthorized: " + text : text;
}

// The body of a successful reply, or why there is none.
[[nodiscard]] Result<std::string> accepted(const Exchange& exchange)
{
    if (!exchange.reply) {
        return std::unexpected(exchange.reply.error());
    }
    if (exchange.reply->status != 0) {
        return fail("{}", status_error(*exchange.reply));
    }
    return exchange.reply->body;
}

// Collects what every host said and prints it: stdout for data, stderr for the rest.
class Report {
public:
    explicit Report(const Invocation& invocation) : m_invocation(invocation) {}

    void add(const Target& target, const Exchange& exchange)
    {
        for (const auto& notice : exchange.notices) {
            fmt::print(stderr, "gitopperctl: @{}: {}\n", target.label, notice);
        }
        auto body = accepted(exchange);
        auto used = body ? use(target, *body) : Result<>(std::unexpected(body.error()));
        if (!used) {
            fmt::print(stderr, "gitopperctl: @{}: {}\n", target.label, used.error().message);
            m_failed = true;
        }
    }

    int finish() const
    {
        print_output();
        return m_failed ? 1 : 0;
    }

private:
    bool several() const { return m_invocation.targets.size() > 1; }

    Result<> use(const Target& target, const std::string& body)
    {
        const auto& listing = m_invocation.command->listing;
        if (!listing) {
            return {}; // a /do/ request: "OK" needs no echo
        }
        if (m_invocation.raw_json && !several()) {
            m_json.push_back(std::string(trim(body)));
            return {};
        }
        if (m_invocation.raw_json) {
            return append(m_json, tagged_json(target.label, body));
        }
        if (*listing == Listing::diff) {
            auto text = render_diff(body, ::isatty(STDOUT_FILENO) == 1);
            if (!text) {
                return fail("unexpected reply: {}", text.error().message);
            }
            m_texts.push_back(several() ? fmt::format("@{}\n{}", target.label, *text) : *text);
            return {};
        }
        auto rows = rows_of(*listing, body);
        if (!rows) {
            return fail("unexpected reply: {}", rows.error().message);
        }
        m_answers.push_back({target.label, std::move(*rows)});
        return {};
    }

    static Result<> append(std::vector<std::string>& to, Result<std::string> json)
    {
        if (!json) {
            return fail("unexpected reply: {}", json.error().message);
        }
        to.push_back(std::move(*json));
        return {};
    }

    void print_output() const
    {
        const auto& listing = m_invocation.command->listing;
        if (!listing) {
            return;
        }
        if (m_invocation.raw_json) {
            print_json();
        } else if (*listing == Listing::diff) {
            fmt::print("{}", join(m_texts, "\n"));
        } else if (!m_answers.empty()) {
            fmt::print("{}", render_listing(*listing, m_answers, several()));
        }
    }

    // One host: its JSON unchanged. Several: an array of their objects, each with "host".
    void print_json() const
    {
        if (several()) {
            fmt::print("[{}]\n", join(m_json, ","));
        } else if (!m_json.empty()) {
            fmt::print("{}\n", m_json.front());
        }
    }

    const Invocation& m_invocation;
    std::vector<Answer> m_answers;
    std::vector<std::string> m_texts; // diff: one text per host
    std::vector<std::string> m_json;
    bool m_failed = false;
};

// Fails before any connection when there is no usable key: one message, not one per host.
[[nodiscard]] Result<> check_identity(Identity& identity, const std::string& home)
{
    if (identity.empty()) {
        return fail("no key to log in with: pass -i FILE, start an ssh-agent, or create "
                    "{}/.ssh/id_ed25519",
                    home);
    }
    return identity.check();
}

int run(const Invocation& invocation)
{
    ssh_init(); // before any thread: libssh's global state is set up once
    const auto home = home_directory();
    Identity identity(invocation.identity, home);
    if (auto usable = check_identity(identity, home); !usable) {
        fmt::print(stderr, "gitopperctl: {}\n", usable.error().message);
        return 1;
    }
    const ClientOptions options{
        invocation.known_hosts.value_or(home + "/.ssh/gitopper_known_hosts"), user_name(),
        &identity, invocation.insecure_host_key};
    if (options.insecure_host_key) {
        fmt::print(stderr, "gitopperctl: WARNING: --insecure-host-key: host keys are not "
                           "checked; anyone between us and the daemons can read and answer\n");
    }
    const auto exchanges = query_all(invocation.targets, request_line(invocation), options);
    Report report(invocation);
    for (std::size_t i = 0; i < exchanges.size(); ++i) {
        report.add(invocation.targets[i], exchanges[i]);
    }
    return report.finish();
}

} // namespace
} // namespace gitopper::ctl

int main(int argc, char** argv)
{
    auto parsed = gitopper::ctl::parse_command_line(argc, argv);
    if (const int* status = std::get_if<int>(&parsed)) {
        return *status;
    }
    return gitopper::ctl::run(std::get<gitopper::ctl::Invocation>(parsed));
}
