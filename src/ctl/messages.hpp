#pragma once
// Library messages (strerror, gai_strerror, libssh) start with a capital; ours, after
// "gitopperctl: @host: ", do not.

#include <cctype>
#include <string>

namespace gitopper::ctl {

inline std::string lowercase_first(std::string text)
{
    if (!text.empty()) {
        text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    }
    return text;
}

} // namespace gitopper::ctl
