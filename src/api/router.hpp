#pragma once
// The control API's requests (SPEC §4), independent of the transport: one request line in,
// an exit status and a body out. The same table serves SSH and the read-only HTTP routes.
// Every argument is checked here, before anything runs.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/control.hpp"
#include "util/error.hpp"

namespace gitopper {

enum class Role { read_only, read_write };

struct Reply {
    int status = 0; // 0, or an HTTP-like code: 400, 401, 404, 406, 409, 500
    std::string body;
};

class Router {
public:
    // `machines`: the machine of every service in the config; `actual`: this host's name.
    Router(Control& control, std::vector<std::string> machines, std::string actual);

    // `who`: the caller as the records of what it did name it (a key's comment).
    Reply handle(std::string_view request, Role role, std::string_view who = "") const;

    // Requests served so far, by route ("unknown" for anything else) and status.
    std::map<std::pair<std::string, int>, std::uint64_t> requests() const;

    // One request's arguments (after the route) and its caller, as the routes get them.
    struct Call {
        const std::vector<std::string>& args;
        std::string_view who;
    };

private:
    Reply dispatch(std::string_view request, Role role, std::string_view who,
                   std::string& route) const;
    Reply list_machines(const Call& call) const;
    Reply list_services(const Call& call) const;
    Reply list_history(const Call& call) const;
    Reply list_diff(const Call& call) const;
    Reply freeze(const Call& call) const;
    Reply unfreeze(const Call& call) const;
    Reply pull(const Call& call) const;
    Reply rollback(const Call& call) const;
    Reply release(const Call& call) const;
    bool exists(const std::string& service) const;
    Reply on_service(const std::string& service,
                     Result<> (Control::*operation)(const std::string&)) const;

    Control& m_control;
    std::vector<std::string> m_machines;
    std::string m_actual;
    mutable std::mutex m_mutex; // guards m_requests
    mutable std::map<std::pair<std::string, int>, std::uint64_t> m_requests;
};

// "Mon, 02 Jan 2006 15:04:05 UTC", as the Go tool prints times.
std::string rfc1123(std::chrono::system_clock::time_point time);

} // namespace gitopper
