#pragma once
// One link of a service: a path in the repository and the place it is bind-mounted onto. The
// config reads them; git checks them out; the host mounts them. Here, below all three.

#include <optional>
#include <string>

namespace gitopper {

// Where in the config file something was written.
struct Position {
    long line = 0;
    long column = 0;
};

// One entry of `dirs`: `path` (the TOML key `link`: a path in the repository) is bind-mounted onto
// `local`.
struct Link {
    std::string local;
    std::string path;
    bool file = false; // a single file rather than a directory
    std::string mode;  // octal permission bits of the mounted directory ("0750"); "" = git's
    Position position;

    // The bits of `mode`, once validated; nullopt when unset.
    std::optional<unsigned> mode_bits() const;
};

} // namespace gitopper
