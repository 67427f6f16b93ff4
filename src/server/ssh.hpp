#pragma once
// The control API over SSH (libssh): public-key authentication against the config's keys
// (with their authorized_keys options: from=, command=, expiry-time=), the exec command is
// the request, the reply goes to stdout with the route's exit status.
//
// Threads and ownership: one acceptor thread owns the listening socket and the *pending*
// list: connections it accept(2)ed itself that have not sent a byte yet. Those cost a file
// descriptor, no thread. A connection gets a session thread (which then owns its libssh
// session alone) only once the client has sent something (its banner) and fewer than
// kMaxSessions threads run. Until it authenticates, a connection counts against its source
// address (IPv4 address, IPv6 /64): at kMaxUnauthenticatedPerSource more from there are
// closed at once. Pending sockets are closed at their deadline; key exchange and
// authentication must end by the same deadline (kPreauthLimit from accept), the whole
// connection by kSessionLimit. Beyond kMaxPending, the oldest pending socket is dropped.
// The per-source counts are shared by the acceptor and the session threads under m_mutex.

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/router.hpp"
#include "server/keys.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/wake.hpp"

namespace gitopper {

class SshServer {
public:
    using Clock = std::chrono::steady_clock;

    // A real client finishes key exchange and public-key authentication in well under a
    // second, even over a slow link or with a security key to touch; 10 s leaves room for
    // that while an idle or trickling connection holds its slot only briefly.
    static constexpr auto kPreauthLimit = std::chrono::seconds(10);
    static constexpr auto kSessionLimit = std::chrono::seconds(30); // accept to goodbye
    static constexpr int kMaxSessions = 32;                         // session threads at once
    static constexpr int kMaxUnauthenticatedPerSource = 8; // pending or in a session thread
    static constexpr std::size_t kMaxPending = 256;        // fds well under the 1024 default

    SshServer(const Router& router, std::vector<AuthorizedKey> keys);
    ~SshServer();
    SshServer(const SshServer&) = delete;
    SshServer& operator=(const SshServer&) = delete;

    // Creates the host key on first use (mode 0600) and listens; the acceptor starts too.
    [[nodiscard]] Result<> start(const std::string& address, const std::string& host_key_path);
    void stop();

    // Holds one unauthenticated place of a source address; given back when authenticated
    // or destroyed. Move-only.
    class SourceSlot {
    public:
        SourceSlot() = default;
        SourceSlot(SshServer* server, std::string group)
            : m_server(server), m_group(std::move(group))
        {
        }
        SourceSlot(SourceSlot&& other) noexcept;
        SourceSlot& operator=(SourceSlot&& other) noexcept;
        SourceSlot(const SourceSlot&) = delete;
        SourceSlot& operator=(const SourceSlot&) = delete;
        ~SourceSlot() { release(); }
        void release();

    private:
        SshServer* m_server = nullptr;
        std::string m_group;
    };

private:
    struct Pending {
        Fd fd;
        std::string address; // the client's, for from= and logs
        SourceSlot slot;
        Clock::time_point accepted;
    };
    struct SourceCount {
        int unauthenticated = 0;
        long refused = 0; // over the cap since the count was last zero
    };

    void accept_loop();
    std::vector<pollfd> poll_set();
    int poll_timeout() const;
    void accept_new();
    void admit(Fd fd, const std::string& address, const std::string& group);
    void handle_pending(const std::vector<pollfd>& polled);
    void expire_pending(Clock::time_point now);
    void note_eviction(const std::string& address);
    bool session_free();
    void start_session(Pending pending);
    void serve(ssh_session session, Pending pending); // gives the slot back before it returns
    void finished();
    std::optional<SourceSlot> take_slot(const std::string& group);
    void give_back(const std::string& group);

    const Router& m_router;
    std::vector<AuthorizedKey> m_keys;
    ssh_bind m_bind = nullptr;
    int m_port = 0;
    Wake m_wake; // stop, or a session thread ended
    std::atomic<bool> m_stopping{false};
    std::thread m_acceptor;
    std::vector<Pending> m_pending; // the acceptor's alone, oldest first
    Clock::time_point m_listen_paused_until{};
    long m_evicted = 0; // pending sockets dropped since the last log line about it
    Clock::time_point m_evicted_logged{};
    std::mutex m_mutex;
    std::condition_variable m_idle;
    int m_active = 0;                             // session threads running
    std::map<std::string, SourceCount> m_sources; // by address group
};

// Loads the ed25519 host key at `path`, creating it (mode 0600) when it does not exist.
[[nodiscard]] Result<> ensure_host_key(const std::string& path);

} // namespace gitopper
