#include "server/ssh.hpp"

#include <arpa/inet.h>
#include <libssh/callbacks.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>

#include "server/address.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kSessionLimit = 30s; // a whole connection, key exchange to goodbye
constexpr auto kLinger = 2s;        // after the reply, for the client to close first
constexpr int kMaxAuthAttempts = 8;

// One connection's state, reached from libssh's callbacks through `userdata`.
struct Connection {
    const std::vector<AuthorizedKey>* keys = nullptr;
    std::string address; // the client's, for from=
    const AuthorizedKey* authorized = nullptr;
    const AuthorizedKey* refused = nullptr; // last key refused by its options, logged once
    int attempts = 0;
    ssh_channel channel = nullptr;
    std::optional<std::string> requested; // the exec command; "" for a shell or subsystem
    ssh_channel_callbacks_struct channel_callbacks{};
};

// A key that matches but whose from= or expiry-time= refuses it: logged, and the next
// entry with the same key (another file, other options) may still let the client in.
bool permitted(Connection& c, const AuthorizedKey& key)
{
    const auto why = refusal(key, c.address, std::time(nullptr));
    if (why && c.refused != &key) {
        c.refused = &key;
        log::warn("ssh: key {} refused from {}: {}", key.where(), c.address, *why);
    }
    return !why;
}

int on_auth_pubkey(ssh_session, const char* user, ssh_key_struct* offered, char state,
                   void* userdata)
{
    auto& c = *static_cast<Connection*>(userdata);
    if (++c.attempts > kMaxAuthAttempts) {
        return SSH_AUTH_DENIED;
    }
    for (const auto& key : *c.keys) {
        if (ssh_key_cmp(offered, key.key.get(), SSH_KEY_CMP_PUBLIC) != 0 || !permitted(c, key)) {
            continue;
        }
        if (state == SSH_PUBLICKEY_STATE_NONE) {
            return SSH_AUTH_SUCCESS; // a probe: this key would do; the signature comes next
        }
        if (state == SSH_PUBLICKEY_STATE_VALID) {
            c.authorized = &key;
            log::debug("ssh: user {} from {} authenticated with key {}", quote(user), c.address,
                       key.where());
            return SSH_AUTH_SUCCESS;
        }
    }
    return SSH_AUTH_DENIED;
}

int on_exec(ssh_session, ssh_channel, const char* command, void* userdata)
{
    static_cast<Connection*>(userdata)->requested = command;
    return SSH_OK;
}

// `ssh -t` asks for a terminal; accepting and ignoring it keeps such clients working. No
// terminal is ever allocated, which is why no-pty and restrict need nothing more.
int on_pty(ssh_session, ssh_channel, const char*, int, int, int, int, void*)
{
    return SSH_OK;
}

// A shell or a subsystem has no request to route, unless the key forces one (command="…"
// replaces whatever the client asked for, as in sshd).
int on_shell(ssh_session, ssh_channel, void* userdata)
{
    auto& c = *static_cast<Connection*>(userdata);
    if (!c.authorized->options.command) {
        return SSH_ERROR;
    }
    c.requested = "";
    return SSH_OK;
}

int on_subsystem(ssh_session session, ssh_channel channel, const char*, void* userdata)
{
    return on_shell(session, channel, userdata);
}

ssh_channel on_channel_open(ssh_session session, void* userdata)
{
    auto& c = *static_cast<Connection*>(userdata);
    if (c.authorized == nullptr || c.channel != nullptr) {
        return nullptr;
    }
    c.channel = ssh_channel_new(session);
    c.channel_callbacks.userdata = &c;
    c.channel_callbacks.channel_exec_request_function = on_exec;
    c.channel_callbacks.channel_pty_request_function = on_pty;
    c.channel_callbacks.channel_shell_request_function = on_shell;
    c.channel_callbacks.channel_subsystem_request_function = on_subsystem;
    ssh_callbacks_init(&c.channel_callbacks);
    ssh_set_channel_callbacks(c.channel, &c.channel_callbacks);
    return c.channel;
}

std::string request_log_line(const Connection& c, const std::string& request, int status)
{
    const auto& key = *c.authorized;
    std::string forced;
    if (key.options.command) {
        forced = c.requested->empty() ? ", forced; asked for a shell"
                                      : ", forced; asked " + quote(*c.requested);
    }
    return fmt::format("ssh: {} (key {}{}{}): {}", quote(request), key.where(),
                       key.read_only ? ", read-only" : "", forced, status);
}

void reply(const Router& router, Connection& c)
{
    const auto& key = *c.authorized;
    const auto& request = key.options.command ? *key.options.command : *c.requested;
    const auto role = key.read_only ? Role::read_only : Role::read_write;
    const auto answer = router.handle(request, role);
    const auto body = answer.body + "\n";
    ssh_channel_write(c.channel, body.data(), static_cast<uint32_t>(body.size()));
    ssh_channel_request_send_exit_status(c.channel, answer.status);
    ssh_channel_send_eof(c.channel);
    ssh_channel_close(c.channel);
    const auto line = request_log_line(c, request, answer.status);
    if (answer.status == 401) {
        log::warn("{} refused: read-only key", line);
    } else {
        log::info("{}", line);
    }
}

bool closed(ssh_session session)
{
    return (ssh_get_status(session) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
}

// The client's address as sshd shows it: numeric, IPv4-mapped IPv6 as IPv4.
std::string peer_address(int fd)
{
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length);
    char text[INET6_ADDRSTRLEN] = {};
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(peer);
    if (peer.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, text,
                    sizeof text);
    } else if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
        ::inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], text, sizeof text);
    } else {
        ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    }
    return text;
}

} // namespace

Result<> ensure_host_key(const std::string& path)
{
    if (std::filesystem::exists(path)) {
        return {};
    }
    ssh_key key = nullptr;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        return fail("cannot generate an SSH host key");
    }
    char* text = nullptr;
    const int exported = ssh_pki_export_privkey_base64(key, nullptr, nullptr, nullptr, &text);
    ssh_key_free(key);
    if (exported != SSH_OK) {
        return fail("cannot export the SSH host key");
    }
    // Written 0600 from the start: the private key is never readable by others.
    auto written = write_file_atomic(path, text, 0600);
    ssh_string_free_char(text);
    if (written) {
        log::info("ssh: created host key {}", path);
    }
    return written;
}

SshServer::SshServer(const Router& router, std::vector<AuthorizedKey> keys)
    : m_router(router), m_keys(std::move(keys)), m_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{
}

SshServer::~SshServer()
{
    stop();
    if (m_bind != nullptr) {
        ssh_bind_free(m_bind);
    }
}

Result<> SshServer::start(const std::string& address, const std::string& host_key_path)
{
    auto where = parse_listen_address(address);
    if (!where) {
        return std::unexpected(where.error());
    }
    if (auto r = ensure_host_key(host_key_path); !r) {
        return r;
    }
    ssh_init();
    m_bind = ssh_bind_new();
    ssh_bind_options_set(m_bind, SSH_BIND_OPTIONS_BINDADDR, where->host.c_str());
    ssh_bind_options_set(m_bind, SSH_BIND_OPTIONS_BINDPORT, &where->port);
    ssh_bind_options_set(m_bind, SSH_BIND_OPTIONS_HOSTKEY, host_key_path.c_str());
    if (ssh_bind_listen(m_bind) != SSH_OK) {
        return fail("ssh: cannot listen on {}: {}", address, ssh_get_error(m_bind));
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (::getsockname(ssh_bind_get_fd(m_bind), reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
        m_port =
            ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    }
    // libssh listens with a backlog of 10; a burst of clients needs more room to wait.
    ::listen(ssh_bind_get_fd(m_bind), 128);
    log::info("ssh: control API listening on {}:{} ({} key{})", where->host, m_port, m_keys.size(),
              m_keys.size() == 1 ? "" : "s");
    m_acceptor = std::thread([this] { accept_loop(); });
    return {};
}

void SshServer::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_idle.notify_all();
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
    if (m_acceptor.joinable()) {
        m_acceptor.join();
    }
    std::unique_lock lock(m_mutex);
    m_idle.wait(lock, [this] { return m_active == 0; });
}

void SshServer::accept_loop()
{
    while (!m_stopping) {
        std::array<pollfd, 2> fds{
            {{ssh_bind_get_fd(m_bind), POLLIN, 0}, {m_wake.get(), POLLIN, 0}}};
        if (::poll(fds.data(), fds.size(), -1) <= 0 || fds[1].revents != 0) {
            continue;
        }
        {
            // At the cap, leave the connection in the kernel's queue until a session ends,
            // rather than refusing it.
            std::unique_lock lock(m_mutex);
            m_idle.wait_for(lock, kSessionLimit,
                            [this] { return m_active < kMaxSessions || m_stopping; });
        }
        if (m_stopping) {
            break;
        }
        ssh_session session = ssh_new();
        if (ssh_bind_accept(m_bind, session) != SSH_OK) {
            log::warn("ssh: accept: {}", ssh_get_error(m_bind));
            ssh_free(session);
            continue;
        }
        std::unique_lock lock(m_mutex);
        if (m_active >= kMaxSessions) {
            lock.unlock();
            log::warn("ssh: {} sessions already open; refusing a connection", kMaxSessions);
            ssh_disconnect(session);
            ssh_free(session);
            continue;
        }
        ++m_active;
        std::thread([this, session] {
            serve(session);
            finished();
        }).detach();
    }
}

void SshServer::finished()
{
    std::lock_guard lock(m_mutex);
    --m_active;
    m_idle.notify_all();
}

void SshServer::serve(ssh_session session)
{
    const int one = 1;
    ::setsockopt(ssh_get_fd(session), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long timeout = std::chrono::seconds(kSessionLimit).count() / 3; // a silent client
    ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout);

    Connection c;
    c.keys = &m_keys;
    c.address = peer_address(ssh_get_fd(session));
    ssh_server_callbacks_struct callbacks{};
    callbacks.userdata = &c;
    callbacks.auth_pubkey_function = on_auth_pubkey;
    callbacks.channel_open_request_session_function = on_channel_open;
    ssh_callbacks_init(&callbacks);
    ssh_set_server_callbacks(session, &callbacks);

    if (ssh_handle_key_exchange(session) == SSH_OK) {
        ssh_set_auth_methods(session, SSH_AUTH_METHOD_PUBLICKEY);
        ssh_event event = ssh_event_new();
        ssh_event_add_session(event, session);
        const auto deadline = Clock::now() + kSessionLimit;
        std::optional<Clock::time_point> linger_until;
        while (!m_stopping && Clock::now() < deadline && !closed(session) &&
               c.attempts <= kMaxAuthAttempts) {
            if (ssh_event_dopoll(event, 100) == SSH_ERROR) {
                break;
            }
            if (c.requested && !linger_until) {
                reply(m_router, c);
                linger_until = Clock::now() + kLinger;
            }
            if (linger_until && Clock::now() > *linger_until) {
                break;
            }
        }
        if (c.authorized == nullptr) {
            log::info("ssh: connection from {} closed without a valid key ({} attempt{})",
                      c.address, c.attempts, c.attempts == 1 ? "" : "s");
        }
        ssh_event_remove_session(event, session);
        ssh_event_free(event);
    } else {
        log::debug("ssh: key exchange failed: {}", ssh_get_error(session));
    }
    ssh_disconnect(session);
    ssh_free(session);
}

} // namespace gitopper
