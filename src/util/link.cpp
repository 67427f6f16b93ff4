#include "util/link.hpp"

namespace gitopper {

std::optional<unsigned> Link::mode_bits() const
{
    if (mode.empty() || mode.size() > 4 ||
        mode.find_first_not_of("01234567") != std::string::npos) {
        return std::nullopt;
    }
    return static_cast<unsigned>(std::stoul(mode, nullptr, 8));
}

} // namespace gitopper
