#pragma once
// Looking up an enum's name in its one table of {value, name} pairs.

#include <array>
#include <string_view>
#include <utility>

namespace gitopper {

template <typename E, std::size_t N>
constexpr std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table,
                                   E value, std::string_view unknown)
{
    for (const auto& [each, name] : table) {
        if (each == value) {
            return name;
        }
    }
    return unknown;
}

} // namespace gitopper
