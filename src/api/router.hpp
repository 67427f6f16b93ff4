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

    Reply handle(std::string_view request, Role role) const;

    // Requests served so far, by route ("unknown" for anything else) and status.
    std::map<std::pair<std::string, int>, std::uint64_t> requests() const;

private:
    Reply dispatch(std::string_view request, Role role, std::string& route) const;
    Reply list_machines(const std::vector<std::string>& args) const;
    Reply list_services(const std::vector<std::string>& args) const;
    Reply list_history(const std::vector<std::string>& args) const;
    Reply freeze(const std::vector<std::string>& args) const;
    Reply unfreeze(const std::vector<std::string>& args) const;
    Reply pull(const std::vector<std::string>& args) const;
    Reply rollback(const std::vector<std::string>& args) const;
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
