#include "server/ssh.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>

#include "server/address.hpp"
#include "util/atomic_file.hpp"
#include "util/last_resort.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

using Clock = SshServer::Clock;
using namespace std::chrono_literals;

constexpr auto kLinger = 2s; // after the reply, for the client to close first
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
    const auto answer = router.handle(request, role, key.who());
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

// libssh's timeout for the blocking key exchange: what is left until `deadline`.
void set_timeout(ssh_session session, Clock::time_point deadline)
{
    const auto left =
        std::max(std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()),
                 std::chrono::microseconds(1000)); // 0 would mean "no limit"
    long seconds = static_cast<long>(left.count() / 1000000);
    long micros = static_cast<long>(left.count() % 1000000);
    ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &seconds);
    ssh_options_set(session, SSH_OPTIONS_TIMEOUT_USEC, &micros);
}

// The client's address as sshd shows it, and the group its unauthenticated connections are
// counted in (server/address: the address, or its /64 for IPv6).
struct Source {
    std::string address;
    std::string group;
};

Source source_from(const sockaddr_storage& peer)
{
    return {peer_address(peer), source_of(peer)};
}

// Whether a pending socket has sent something (true), is still silent (false), or is gone.
std::optional<bool> has_data(int fd)
{
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return false;
    }
    return std::nullopt; // closed by the client, or an error
}

int milliseconds_until(Clock::time_point when)
{
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60000));
}

// After the key exchange: authentication by the pre-auth deadline (then the connection no
// longer counts against its source), one request, its reply, and a short wait for the client
// to close first; all within the session limit.
void converse(ssh_session session, Connection& c, const Router& router,
              const std::atomic<bool>& stopping, SshServer::SourceSlot& slot,
              Clock::time_point accepted)
{
    ssh_set_auth_methods(session, SSH_AUTH_METHOD_PUBLICKEY);
    ssh_event event = ssh_event_new();
    ssh_event_add_session(event, session);
    std::optional<Clock::time_point> linger_until;
    while (!stopping && Clock::now() < accepted + SshServer::kSessionLimit && !closed(session) &&
           c.attempts <= kMaxAuthAttempts && ssh_event_dopoll(event, 100) != SSH_ERROR) {
        if (c.authorized == nullptr && Clock::now() >= accepted + SshServer::kPreauthLimit) {
            log::info("ssh: {}: no authentication within {} s; closed", c.address,
                      SshServer::kPreauthLimit.count());
            break;
        }
        if (c.authorized != nullptr) {
            slot.release();
        }
        if (c.requested && !linger_until) {
            reply(router, c);
            linger_until = Clock::now() + kLinger;
        }
        if (linger_until && Clock::now() > *linger_until) {
            break;
        }
    }
    if (c.authorized == nullptr) {
        log::info("ssh: connection from {} closed without a valid key ({} attempt{})", c.address,
                  c.attempts, c.attempts == 1 ? "" : "s");
    }
    ssh_event_remove_session(event, session);
    ssh_event_free(event);
}

int bound_port(int fd)
{
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
        return 0;
    }
    return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

} // namespace

[[nodiscard]] Result<> ensure_host_key(const std::string& path)
{
    std::error_code error;
    if (std::filesystem::exists(path, error)) {
        return {};
    }
    if (error) {
        return fail("SSH host key {}: {}", path, error.message());
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

// ---- unauthenticated places per source -----------------------------------------------------

SshServer::SourceSlot::SourceSlot(SourceSlot&& other) noexcept
    : m_server(std::exchange(other.m_server, nullptr)), m_group(std::move(other.m_group))
{
}

SshServer::SourceSlot& SshServer::SourceSlot::operator=(SourceSlot&& other) noexcept
{
    if (this != &other) {
        release();
        m_server = std::exchange(other.m_server, nullptr);
        m_group = std::move(other.m_group);
    }
    return *this;
}

void SshServer::SourceSlot::release()
{
    if (auto* server = std::exchange(m_server, nullptr)) {
        server->give_back(m_group);
    }
}

std::optional<SshServer::SourceSlot> SshServer::take_slot(const std::string& group)
{
    std::lock_guard lock(m_mutex);
    auto& count = m_sources[group];
    if (count.unauthenticated >= kMaxUnauthenticatedPerSource) {
        if (count.refused++ == 0) {
            log::warn("ssh: {} unauthenticated connections from {} already; closing more from "
                      "there at once",
                      kMaxUnauthenticatedPerSource, group);
        }
        return std::nullopt;
    }
    ++count.unauthenticated;
    return SourceSlot(this, group);
}

void SshServer::give_back(const std::string& group)
{
    std::lock_guard lock(m_mutex);
    const auto it = m_sources.find(group);
    if (it == m_sources.end() || --it->second.unauthenticated > 0) {
        return;
    }
    if (it->second.refused > 0) {
        log::warn("ssh: closed {} connection{} from {} over the cap of {} unauthenticated",
                  it->second.refused, it->second.refused == 1 ? "" : "s", group,
                  kMaxUnauthenticatedPerSource);
    }
    m_sources.erase(it);
}

// ---- start and stop ----------------------------------------------------------------------

SshServer::SshServer(const Router& router, std::vector<AuthorizedKey> keys)
    : m_router(router), m_keys(std::move(keys))
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
    const int listener = ssh_bind_get_fd(m_bind);
    m_port = bound_port(listener);
    // libssh listens with a backlog of 10. When the queue overflows, Linux drops the client's
    // last handshake packet and, under a burst, may later drop the half-open connection
    // silently: the client thinks it is connected and nobody ever closes it. The acceptor
    // empties the queue at once, so a deep one costs little (the kernel caps it at somaxconn).
    ::listen(listener, 1024);
    // We accept(2) ourselves until the queue is empty; a blocking accept would hang there.
    ::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK);
    const auto host =
        where->host.find(':') == std::string::npos ? where->host : "[" + where->host + "]";
    log::info("ssh: control API listening on {}:{} ({} key{})", host, m_port, m_keys.size(),
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
    m_wake.signal();
    if (m_acceptor.joinable()) {
        m_acceptor.join();
    }
    std::unique_lock lock(m_mutex);
    m_idle.wait(lock, [this] { return m_active == 0; });
}

// ---- the acceptor ------------------------------------------------------------------------

void SshServer::accept_loop()
{
    while (!m_stopping) {
        auto fds = poll_set();
        if (::poll(fds.data(), fds.size(), poll_timeout()) < 0 && errno != EINTR) {
            log::error("ssh: poll: {}", errno_message(errno));
            return;
        }
        m_wake.drain();
        const auto what = escaped_exception([&] {
            handle_pending(fds);
            expire_pending(Clock::now());
            if ((fds[1].revents & POLLIN) != 0) {
                accept_new();
            }
        });
        if (what) {
            log::error("ssh: accepting connections: {}; pausing a second", *what);
            m_listen_paused_until = Clock::now() + std::chrono::seconds(1);
        }
    }
    m_pending.clear(); // closes them and gives their places back
}

// The wake eventfd, the listening socket, then every pending socket in m_pending's order.
std::vector<pollfd> SshServer::poll_set()
{
    const short listen_events = Clock::now() >= m_listen_paused_until ? POLLIN : 0;
    // A pending socket is watched for data only while a session thread is free; hang-ups
    // and errors are reported always.
    const short pending_events = session_free() ? POLLIN : 0;
    std::vector<pollfd> fds{{m_wake.fd(), POLLIN, 0}, {ssh_bind_get_fd(m_bind), listen_events, 0}};
    for (const auto& p : m_pending) {
        fds.push_back({p.fd.get(), pending_events, 0});
    }
    return fds;
}

// Until the oldest pending socket's deadline, or the end of an accept pause; -1: no limit.
int SshServer::poll_timeout() const
{
    auto wake_at = Clock::time_point::max();
    if (Clock::now() < m_listen_paused_until) {
        wake_at = m_listen_paused_until;
    }
    if (!m_pending.empty()) {
        wake_at = std::min(wake_at, m_pending.front().accepted + kPreauthLimit);
    }
    return wake_at == Clock::time_point::max() ? -1 : milliseconds_until(wake_at);
}

// Takes every connection waiting in the kernel's queue.
void SshServer::accept_new()
{
    while (!m_stopping) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        Fd fd(::accept4(ssh_bind_get_fd(m_bind), reinterpret_cast<sockaddr*>(&peer), &length,
                        SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: the queue stays readable, so rest instead of spinning.
                log::warn("ssh: accept: {}; pausing for 100 ms", errno_message(errno));
                m_listen_paused_until = Clock::now() + 100ms;
            }
            return; // EAGAIN: the queue is empty; others: the client is gone already
        }
        const auto source = source_from(peer);
        admit(std::move(fd), source.address, source.group);
    }
}

// Queues a new connection, or closes it at once when its source has too many waiting.
void SshServer::admit(Fd fd, const std::string& address, const std::string& group)
{
    auto slot = take_slot(group);
    if (!slot) {
        return;
    }
    if (m_pending.size() >= kMaxPending) {
        // Real clients send their banner within a round trip, so the oldest silent socket
        // is the one least likely to be one.
        note_eviction(m_pending.front().address);
        m_pending.erase(m_pending.begin());
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    m_pending.push_back({std::move(fd), address, std::move(*slot), Clock::now()});
}

// Evictions come in floods from many addresses: one line per 10 s, with the count.
void SshServer::note_eviction(const std::string& address)
{
    ++m_evicted;
    const auto now = Clock::now();
    if (now - m_evicted_logged >= 10s) {
        log::warn("ssh: over {} connections waiting for a first byte: dropped the oldest {} "
                  "(the last from {})",
                  kMaxPending, m_evicted, address);
        m_evicted = 0;
        m_evicted_logged = now;
    }
}

// Hands each pending socket that has sent something to a session thread while threads are
// free; drops those the client has closed.
void SshServer::handle_pending(const std::vector<pollfd>& polled)
{
    std::vector<Pending> kept;
    for (std::size_t i = 0; i < m_pending.size(); ++i) {
        const auto revents = polled[i + 2].revents;
        if (revents == 0) {
            kept.push_back(std::move(m_pending[i]));
            continue;
        }
        // A client that hung up cannot finish a handshake, whatever it sent; dropping it
        // also keeps poll() from reporting it again and again while no thread is free.
        const auto data =
            (revents & (POLLHUP | POLLERR)) != 0 ? std::nullopt : has_data(m_pending[i].fd.get());
        if (!data) {
            continue; // gone
        }
        if (*data && session_free()) {
            start_session(std::move(m_pending[i]));
        } else {
            kept.push_back(std::move(m_pending[i]));
        }
    }
    m_pending = std::move(kept);
}

void SshServer::expire_pending(Clock::time_point now)
{
    const auto late = std::find_if(m_pending.begin(), m_pending.end(), [&](const Pending& p) {
        return p.accepted + kPreauthLimit > now;
    });
    const auto expired = late - m_pending.begin();
    if (expired > 0) {
        log::debug("ssh: closed {} connection{} that sent nothing within {} s", expired,
                   expired == 1 ? "" : "s", kPreauthLimit.count());
        m_pending.erase(m_pending.begin(), late);
    }
}

bool SshServer::session_free()
{
    std::lock_guard lock(m_mutex);
    return m_active < kMaxSessions;
}

// The session thread owns the libssh session from here on.
void SshServer::start_session(Pending pending)
{
    ssh_session session = ssh_new();
    if (ssh_bind_accept_fd(m_bind, session, pending.fd.get()) != SSH_OK) {
        log::warn("ssh: accept from {}: {}", pending.address, ssh_get_error(m_bind));
        if (ssh_get_fd(session) == pending.fd.get()) {
            pending.fd.release(); // the session closes it
        }
        ssh_free(session);
        return;
    }
    pending.fd.release();
    {
        std::lock_guard lock(m_mutex);
        ++m_active;
    }
    try {
        std::thread([this, session, p = std::move(pending)]() mutable {
            if (auto what = escaped_exception([&] { serve(session, std::move(p)); })) {
                log::error("ssh: a connection ended early: {}", *what);
            }
            finished(); // the last use of `this`: stop() may return right after it
        }).detach();
    } catch (const std::system_error& e) {
        log::warn("ssh: cannot start a thread for a connection: {}", e.what());
        ssh_disconnect(session);
        ssh_free(session);
        finished();
    }
}

void SshServer::finished()
{
    std::lock_guard lock(m_mutex);
    --m_active;
    // The acceptor may hold readable sockets until a thread is free. Woken under the lock:
    // once it is released, stop() may return and the eventfd be gone.
    m_wake.signal();
    m_idle.notify_all();
}

// ---- one connection ----------------------------------------------------------------------

void SshServer::serve(ssh_session session, Pending pending)
{
    set_timeout(session, pending.accepted + kPreauthLimit);
    Connection c;
    c.keys = &m_keys;
    c.address = pending.address;
    ssh_server_callbacks_struct callbacks{};
    callbacks.userdata = &c;
    callbacks.auth_pubkey_function = on_auth_pubkey;
    callbacks.channel_open_request_session_function = on_channel_open;
    ssh_callbacks_init(&callbacks);
    ssh_set_server_callbacks(session, &callbacks);

    if (ssh_handle_key_exchange(session) == SSH_OK) {
        converse(session, c, m_router, m_stopping, pending.slot, pending.accepted);
    } else {
        log::debug("ssh: key exchange with {} failed: {}", c.address, ssh_get_error(session));
    }
    ssh_disconnect(session);
    ssh_free(session);
}

} // namespace gitopper
