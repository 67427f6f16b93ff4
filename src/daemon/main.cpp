// gitopper, the daemon.

#include <unistd.h>

#include <variant>

#include "daemon/options.hpp"
#include "git/transport.hpp"
#include "util/log.hpp"

int main(int argc, char** argv)
{
    using namespace gitopper;
    // Run by git, as the service's user, to reach a private upstream (git/transport.hpp).
    if (const auto helped = run_transport_helper(argc, argv)) {
        return *helped;
    }
    auto parsed = parse_command_line(argc, argv);
    if (const int* status = std::get_if<int>(&parsed)) {
        return *status;
    }
    const auto& options = std::get<Options>(parsed);
    log::setup(options.debug);
    if (options.check) {
        return run_check(options);
    }
    if (options.require_root && geteuid() != 0) {
        log::error("gitopper must run as root to mount and manage services (use -o=false to debug "
                   "as another user)");
        return 1;
    }
    return run_daemon(options);
}
