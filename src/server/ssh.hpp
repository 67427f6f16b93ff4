#pragma once
// The control API over SSH (libssh): public-key authentication against the config's keys,
// the exec command is the request, the reply goes to stdout with the route's exit status.
// Threads: one acceptor thread polls the listening socket and a stop eventfd; each accepted
// connection gets its own thread with a deadline and a cap on authentication attempts, and
// owns its libssh session alone. At most kMaxSessions connections are served at once.

#include <libssh/libssh.h>
#include <libssh/server.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/router.hpp"
#include "server/keys.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace gitopper {

class SshServer {
public:
    static constexpr int kMaxSessions = 32;

    SshServer(const Router& router, std::vector<AuthorizedKey> keys);
    ~SshServer();
    SshServer(const SshServer&) = delete;
    SshServer& operator=(const SshServer&) = delete;

    // Creates the host key on first use (mode 0600) and listens; the acceptor starts too.
    Result<> start(const std::string& address, const std::string& host_key_path);
    void stop();
    int port() const { return m_port; }

private:
    void accept_loop();
    void serve(ssh_session session);
    void finished();

    const Router& m_router;
    std::vector<AuthorizedKey> m_keys;
    ssh_bind m_bind = nullptr;
    int m_port = 0;
    Fd m_wake;
    std::atomic<bool> m_stopping{false};
    std::thread m_acceptor;
    std::mutex m_mutex;
    std::condition_variable m_idle;
    int m_active = 0; // connection threads running
};

// Loads the ed25519 host key at `path`, creating it (mode 0600) when it does not exist.
Result<> ensure_host_key(const std::string& path);

} // namespace gitopper
