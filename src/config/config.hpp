#pragma once
// The configuration file as plain structs: [global] defaults merged into every [[services]].
// Loading parses, merges and validates; nothing else in gitopper reads TOML.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/duration.hpp"
#include "util/error.hpp"
#include "util/link.hpp"

namespace gitopper {

// A command from the config: argv, never run by a shell (util/command_line).
using Argv = std::vector<std::string>;
// A list of strings that is no command (`windows`): a type of its own for the field table.
struct Strings : std::vector<std::string> {
    using std::vector<std::string>::vector;
};
// What a command's words may hold, filled in when it runs: the root of the tree it is about
// (for `check` the staged new tree), the commit, the service's name.
inline constexpr std::array<std::string_view, 3> kCommandPlaceholders{"dir", "commit", "service"};

// An SSH public key file allowed on the control API.
struct Key {
    std::string path; // as written; relative paths are relative to the config file
    bool ro = false;
    Position position;
};

// Where a service's events go (SPEC §6, notify/): an HTTP(S) POST to `url`, or `exec`.
struct NotifyTarget {
    std::string url;         // http:// or https://
    std::string format;      // "json" (the default) or "slack"
    std::string secret_file; // signs a POST (X-Gitopper-Signature-256); absolute once loaded
    std::string ca_file;     // for an https:// URL with a private CA; absolute once loaded
    Argv exec;               // a command run with GITOPPER_* in its environment
    Duration timeout = std::chrono::seconds(10);
    std::string name; // in logs and the metrics' `target` label; "" derives one
    Position position;

    // The metrics' label and what logs call it: `name`, else the URL's scheme, host and port
    // (its path and query may be the secret, as a Slack webhook's is), else exec's program.
    std::string label() const;
    // For --check: the label, what it sends and whether it signs; never a secret.
    std::string describe() const;
    // The same for the same target whichever services name it: one queue each.
    std::string identity() const;
};

struct Service {
    std::string machine;
    std::string name; // the TOML key `service`
    std::string branch;
    std::string user;
    std::string package;
    std::string action;
    std::string mount;
    std::string upstream;
    std::vector<Link> dirs;
    std::string max_file_size; // "100MiB" (the default when empty): larger files are refused

    // The gates around a deploy and how it is carried out (SPEC §1 "beyond", §6); the
    // defaults are the field table's (config/fields.cpp).
    Argv check; // run on the staged new tree before it goes live; empty: none
    Duration check_timeout = std::chrono::seconds(60);
    Argv health; // after the action; empty: `systemctl is-active --quiet SERVICE` with an action
    Duration health_timeout = std::chrono::seconds(10);
    std::int64_t health_retries = 3;
    Duration health_interval = std::chrono::seconds(2);
    Argv exec; // run instead of `systemctl ACTION SERVICE`; with it no systemctl runs at all
    std::string allowed_signers; // deploy only commits signed by its keys; absolute once loaded
    Duration interval{0};        // this service's poll interval; 0: the daemon's -t

    // How git reaches a private upstream (git/transport.hpp); absolute once loaded.
    std::string ssh_key;     // deploy key for an ssh upstream
    std::string known_hosts; // its pinned host keys; empty: trusted on first use
    std::string token_file;  // password or token for an https upstream
    std::string ca_file;     // CA bundle for an https upstream

    std::vector<NotifyTarget> notify; // where its events go (notify/); empty: nowhere
    Strings windows;               // when new commits may go live (util/window); empty: at any time
    std::int64_t max_parallel = 0; // hosts applying one new commit at once; 0: the rollout's

    bool self = false;     // the bootstrap checkout (SPEC §9): no unit to start or tell
    std::size_t index = 0; // 1-based, as in "[[services]] #1"
    Position position;     // of the [[services]] header
    std::map<std::string, Position, std::less<>> where; // field -> position of its value

    std::string checkout_dir() const { return mount + "/" + name; }
    std::uint64_t file_size_limit() const; // max_file_size in bytes
    // "[[services]] #1 (grafana-server)", for messages.
    std::string label() const;
    Position position_of(std::string_view field) const;
};

// Where deploy results are reported as commit statuses (SPEC §6, `[global] status`).
struct StatusTarget {
    std::string forge;      // "github", "gitea" (Forgejo too) or "gitlab"
    std::string api;        // the API's base URL; GitHub's by default for "github"
    std::string token_file; // absolute once loaded
    std::string repository; // "owner/repo" at the forge; "" takes it from each upstream's URL
    std::string ca_file;    // for an API behind a private CA; absolute once loaded
    Position position;
};

// Fleet rollouts (SPEC §6, `[global] rollout`, fleet/): the etcd cluster whose semaphores let
// at most max_parallel hosts apply a service's new commit at once.
struct RolloutConfig {
    Strings etcd; // its client URLs, tried in turn
    std::int64_t max_parallel = 1;
    std::string prefix = "/gitopper";              // of every key gitopper writes
    Duration lease_ttl = std::chrono::seconds(15); // a dead host's slot is free after this
    Duration timeout = std::chrono::seconds(5);    // one request to one member
    std::string ca_file;       // for https:// members with a private CA; absolute once loaded
    std::string cert_file;     // a client certificate, for etcd's --client-cert-auth
    std::string key_file;      // its key; absolute once loaded
    std::string user;          // etcd's authentication, with password_file
    std::string password_file; // absolute once loaded
    Position position;

    // The slots of `service`: its own max_parallel, else this one's.
    std::int64_t slots(const Service& service) const
    {
        return service.max_parallel > 0 ? service.max_parallel : max_parallel;
    }
};

struct Config {
    std::string path; // as given, used in messages
    std::vector<Key> keys;
    std::optional<StatusTarget> status;   // [global]
    std::optional<RolloutConfig> rollout; // [global]
    std::string webhook_secret_file;      // [global]; relative to the config file; "" = no webhooks
    Duration git_timeout = std::chrono::minutes(2); // [global]; per git command
    std::vector<Service> services;

    // "config.toml:12:1"
    std::string at(Position position) const;
    // A path from the config, relative to the config file's directory unless absolute.
    std::string resolve(const std::string& path) const;
};

// Parses and validates the file. Every problem found is reported, one per line, each starting
// with "file:line:column: ".
[[nodiscard]] Result<Config> load_config(const std::string& path);
[[nodiscard]] Result<Config> parse_config(std::string_view text, const std::string& path);

// The services that apply to this host (machine equals one of `hosts`), checked for conflicts
// that only show on one host: the same service twice, and the mount targets of SPEC §11 (not
// /, a top-level system directory, the state dir `state_dir` or a mount base, nor inside
// another target or a checkout; the same target spelled twice).
[[nodiscard]] Result<std::vector<Service>> services_for_host(const Config& config,
                                                             std::span<const std::string> hosts,
                                                             const std::string& state_dir);

// Files holding a secret that others may read: the config file when an upstream URL carries a
// credential, and the webhook secret file. One warning each, naming the file and its mode.
std::vector<std::string> secret_file_warnings(const Config& config);

// Checks the merged services; returns the problems found (empty when all is well).
std::vector<std::string> validate(const Config& config);

} // namespace gitopper
