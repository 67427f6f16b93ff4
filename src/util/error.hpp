#pragma once
// The one error type below main(): a message a person can act on. Callers add context
// as the error travels up ("cloning grafana-server: git exited 128: ...").

#include <expected>
#include <string>
#include <utility>

#include <fmt/core.h> // format_string and format: not the rest of fmt in every file

namespace gitopper {

struct Error {
    std::string message;

    bool operator==(const Error&) const = default;
};

template <typename T = void> using Result = std::expected<T, Error>;

template <typename... Args>
std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args)
{
    return std::unexpected(Error{fmt::format(format, std::forward<Args>(args)...)});
}

// Prefixes what the caller was doing: with_context(r, "loading {}", path).
template <typename T, typename... Args>
[[nodiscard]] Result<T> with_context(Result<T> result, fmt::format_string<Args...> format,
                                     Args&&... args)
{
    if (!result) {
        result.error().message =
            fmt::format(format, std::forward<Args>(args)...) + ": " + result.error().message;
    }
    return result;
}

} // namespace gitopper
