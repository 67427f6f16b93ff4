#pragma once
// Invariant checks for the fuzz targets. A failed check prints what broke and aborts, which
// libFuzzer reports as a crash and saves the input that caused it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string_view>

namespace gitopper::fuzz {

inline void check(bool condition, std::string_view what,
                  std::source_location where = std::source_location::current())
{
    if (!condition) {
        std::fprintf(stderr, "%s:%u: invariant failed: %.*s\n", where.file_name(), where.line(),
                     static_cast<int>(what.size()), what.data());
        std::abort();
    }
}

inline std::string_view text_of(const std::uint8_t* data, std::size_t size)
{
    return {reinterpret_cast<const char*>(data), size};
}

} // namespace gitopper::fuzz
