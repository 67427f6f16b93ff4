#include "util/last_resort.hpp"

#include <exception>

namespace gitopper {

std::optional<std::string> escaped_exception(const std::function<void()>& step)
{
    try {
        step();
    } catch (const std::exception& e) {
        return std::string(e.what());
    } catch (...) {
        return std::string("an unknown exception");
    }
    return std::nullopt;
}

} // namespace gitopper
