#pragma once
// Owning handles for the libssh objects gitopperctl uses, so every exit path frees them.

#include <libssh/libssh.h>

#include <memory>

namespace gitopper::ctl {

struct SessionFree {
    void operator()(ssh_session session) const
    {
        if (ssh_is_connected(session) != 0) {
            ssh_disconnect(session); // says goodbye, so the daemon stops waiting at once
        }
        ssh_free(session);
    }
};
struct ChannelFree {
    void operator()(ssh_channel channel) const { ssh_channel_free(channel); }
};
struct KeyFree {
    void operator()(ssh_key key) const { ssh_key_free(key); }
};
struct StringFree {
    void operator()(char* text) const { ssh_string_free_char(text); }
};

using SessionPtr = std::unique_ptr<ssh_session_struct, SessionFree>;
using ChannelPtr = std::unique_ptr<ssh_channel_struct, ChannelFree>;
using KeyPtr = std::unique_ptr<ssh_key_struct, KeyFree>;
using StringPtr = std::unique_ptr<char, StringFree>;

} // namespace gitopper::ctl
