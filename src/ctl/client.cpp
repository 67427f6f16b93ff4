#include "ctl/client.hpp"

#include <array>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ctl/connect.hpp"
#include "ctl/known_hosts.hpp"
#include "ctl/libssh.hpp"
#include "ctl/messages.hpp"
#include "util/strings.hpp"

namespace gitopper::ctl {
namespace {

constexpr long kTimeoutSeconds = 10;
constexpr std::size_t kMaxReply = 16 << 20; // a daemon's reply is kilobytes; bound a rogue one

// Writers to the known-hosts file take turns: hosts are queried in parallel.
std::mutex g_known_hosts_mutex;

SessionPtr new_session(const Target& target, const ClientOptions& options)
{
    SessionPtr session(ssh_new());
    if (!session) {
        return session;
    }
    const int port = target.port;
    const long timeout = kTimeoutSeconds;
    const bool process_config = false;
    ssh_options_set(session.get(), SSH_OPTIONS_HOST, target.host.c_str());
    ssh_options_set(session.get(), SSH_OPTIONS_PORT, &port);
    ssh_options_set(session.get(), SSH_OPTIONS_USER, options.user.c_str());
    ssh_options_set(session.get(), SSH_OPTIONS_TIMEOUT, &timeout);
    ssh_options_set(session.get(), SSH_OPTIONS_KNOWNHOSTS, options.known_hosts.c_str());
    // Our file alone decides which host keys are trusted; /etc/ssh/ssh_known_hosts and
    // ~/.ssh/config (HostName, Port, ProxyCommand...) would make a result depend on the machine.
    ssh_options_set(session.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(session.get(), SSH_OPTIONS_PROCESS_CONFIG, &process_config);
    return session;
}

// After the TCP connection: key exchange failures, a peer that is not an SSH server, a stall.
std::string handshake_error(ssh_session session)
{
    const std::string message = ssh_get_error(session);
    if (message.find("Timeout") != std::string::npos ||
        message.find("timeout") != std::string::npos) {
        return fmt::format("no SSH handshake within {} s", kTimeoutSeconds);
    }
    return "SSH handshake failed: " + lowercase_first(message);
}

// libssh owns the socket once it is handed over: ssh_free() closes it.
[[nodiscard]] Result<> connect(ssh_session session, const Target& target)
{
    auto fd = connect_tcp(target.host, target.port, std::chrono::seconds(kTimeoutSeconds));
    if (!fd) {
        return std::unexpected(fd.error());
    }
    const socket_t raw = fd->get();
    if (ssh_options_set(session, SSH_OPTIONS_FD, &raw) != SSH_OK) {
        return fail("cannot use the connection: {}", ssh_get_error(session));
    }
    fd->release();
    if (ssh_connect(session) != SSH_OK) {
        return fail("{}", handshake_error(session));
    }
    return {};
}

struct ServerKey {
    std::string type;        // "ssh-ed25519"
    std::string fingerprint; // "SHA256:..."
};

[[nodiscard]] Result<ServerKey> server_key(ssh_session session)
{
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(session, &raw) != SSH_OK) {
        return fail("the daemon sent no host key");
    }
    const KeyPtr key(raw);
    unsigned char* hash = nullptr;
    std::size_t length = 0;
    if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hash, &length) != 0) {
        return fail("cannot hash the daemon's host key");
    }
    const StringPtr text(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length));
    ssh_clean_pubkey_hash(&hash);
    return ServerKey{ssh_key_type_to_char(ssh_key_type(key.get())), text.get()};
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Names the line(s) to delete, so the person can act on the refusal.
std::string where_stale(const Target& target, const std::string& file, const ServerKey& key,
                        bool same_type)
{
    const auto name = known_hosts_name(target.host, target.port);
    const auto lines = known_hosts_lines(read_file(file), name, same_type ? key.type : "");
    if (lines.empty()) { // hashed names: only ssh-keygen can find them
        return fmt::format("the {} entries of {} (ssh-keygen -R '{}' -f {})", name, file, name,
                           file);
    }
    return fmt::format("line{} {} of {}", lines.size() == 1 ? "" : "s", fmt::join(lines, ", "),
                       file);
}

[[nodiscard]] Result<> refuse_changed(const Target& target, const std::string& file,
                                      const ServerKey& key, bool same_type)
{
    return fail("host key changed: the daemon now shows {} key {}; refusing to connect. If the "
                "change is expected, remove {}. A daemon that makes a new key at every start "
                "(the Go gitopper) needs a known-hosts file of its own (-k FILE) or "
                "--insecure-host-key",
                key.type, key.fingerprint, where_stale(target, file, key, same_type));
}

// Trust on first use: store the key and tell the person, who can compare the fingerprint.
[[nodiscard]] Result<> remember(ssh_session session, const std::string& file, const ServerKey& key,
                                std::vector<std::string>& notices)
{
    const std::lock_guard lock(g_known_hosts_mutex);
    // libssh creates a missing ~/.ssh (0700) itself.
    if (ssh_session_update_known_hosts(session) != SSH_OK) {
        return fail("cannot store the host key in {}: {}", file, ssh_get_error(session));
    }
    notices.push_back(fmt::format("new host key {} stored in {}", key.fingerprint, file));
    return {};
}

[[nodiscard]] Result<> check_host_key(ssh_session session, const Target& target,
                                      const ClientOptions& options,
                                      std::vector<std::string>& notices)
{
    auto key = server_key(session);
    if (!key) {
        return std::unexpected(key.error());
    }
    if (options.insecure_host_key) {
        notices.push_back(
            fmt::format("host key {} {} taken unchecked", key->type, key->fingerprint));
        return {};
    }
    const auto& file = options.known_hosts;
    switch (ssh_session_is_known_server(session)) {
    case SSH_KNOWN_HOSTS_OK:
        return {};
    case SSH_KNOWN_HOSTS_CHANGED:
        return refuse_changed(target, file, *key, true);
    case SSH_KNOWN_HOSTS_OTHER: // known with a key of another type: as suspicious as a change
        return refuse_changed(target, file, *key, false);
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
        return remember(session, file, *key, notices);
    case SSH_KNOWN_HOSTS_ERROR:
        break;
    }
    return fail("cannot check the host key against {}: {}", file, ssh_get_error(session));
}

bool is_rsa(ssh_key key)
{
    const auto type = ssh_key_type(key);
    return type == SSH_KEYTYPE_RSA || type == SSH_KEYTYPE_RSA_CERT01;
}

[[nodiscard]] Result<> authenticate_with_file(ssh_session session, Identity& identity,
                                              bool asked_none)
{
    auto key = identity.key();
    if (!key) {
        return std::unexpected(key.error());
    }
    // The daemon announces which RSA signatures it takes (ext-info) right after the key
    // exchange; a first "none" request makes libssh read that, or it would sign with SHA-1.
    if (!asked_none && is_rsa(key->get()) &&
        ssh_userauth_none(session, nullptr) == SSH_AUTH_ERROR) {
        return fail("authentication: {}", ssh_get_error(session));
    }
    switch (ssh_userauth_publickey(session, nullptr, key->get())) {
    case SSH_AUTH_SUCCESS:
        return {};
    case SSH_AUTH_ERROR:
        return fail("authentication: {}", ssh_get_error(session));
    default:
        return fail("permission denied: the daemon accepts none of {}", identity.describe());
    }
}

[[nodiscard]] Result<> authenticate(ssh_session session, Identity& identity)
{
    if (identity.use_agent()) {
        // The agent may hold RSA keys: see authenticate_with_file.
        if (ssh_userauth_none(session, nullptr) == SSH_AUTH_ERROR) {
            return fail("authentication: {}", ssh_get_error(session));
        }
        const int result = ssh_userauth_agent(session, nullptr);
        if (result == SSH_AUTH_SUCCESS) {
            return {};
        }
        if (!identity.has_file() && result == SSH_AUTH_ERROR) {
            return fail("ssh-agent: {}", ssh_get_error(session));
        }
        if (!identity.has_file()) {
            return fail("permission denied: the daemon accepts none of {}", identity.describe());
        }
    }
    return authenticate_with_file(session, identity, identity.use_agent());
}

[[nodiscard]] Result<std::string> read_stdout(ssh_session session, ssh_channel channel)
{
    std::string out;
    std::array<char, 16384> buffer{};
    while (true) {
        const int n = ssh_channel_read_timeout(channel, buffer.data(), buffer.size(), 0,
                                               kTimeoutSeconds * 1000);
        if (n == SSH_ERROR) {
            return fail("reading the reply: {}", ssh_get_error(session));
        }
        if (n > 0) {
            out.append(buffer.data(), static_cast<std::size_t>(n));
            if (out.size() > kMaxReply) {
                return fail("the reply is larger than {} MiB", kMaxReply >> 20);
            }
            continue;
        }
        if (ssh_channel_is_eof(channel) != 0 || ssh_channel_is_closed(channel) != 0) {
            return out;
        }
        return fail("no reply within {} s", kTimeoutSeconds);
    }
}

[[nodiscard]] Result<Reply> run(ssh_session session, const std::string& request)
{
    const ChannelPtr channel(ssh_channel_new(session));
    if (!channel || ssh_channel_open_session(channel.get()) != SSH_OK ||
        ssh_channel_request_exec(channel.get(), request.c_str()) != SSH_OK) {
        return fail("cannot run the request: {}", ssh_get_error(session));
    }
    auto body = read_stdout(session, channel.get());
    if (!body) {
        return std::unexpected(body.error());
    }
    // The daemon sends the status before its EOF; after EOF this no longer blocks.
    const int status = ssh_channel_get_exit_status(channel.get());
    if (status < 0) {
        return fail("the daemon sent no exit status");
    }
    ssh_channel_close(channel.get());
    return Reply{status, std::move(*body)};
}

// The whole conversation, in the order SSH requires.
[[nodiscard]] Result<Reply> converse(ssh_session session, const Target& target,
                                     const std::string& request, const ClientOptions& options,
                                     std::vector<std::string>& notices)
{
    if (auto connected = connect(session, target); !connected) {
        return std::unexpected(connected.error());
    }
    if (auto known = check_host_key(session, target, options, notices); !known) {
        return std::unexpected(known.error());
    }
    if (auto in = authenticate(session, *options.identity); !in) {
        return std::unexpected(in.error());
    }
    return run(session, request);
}

} // namespace

Exchange query(const Target& target, const std::string& request, const ClientOptions& options)
{
    Exchange exchange{Reply{}, {}};
    const auto session = new_session(target, options);
    exchange.reply = session ? converse(session.get(), target, request, options, exchange.notices)
                             : fail("cannot create an SSH session");
    return exchange;
}

} // namespace gitopper::ctl
