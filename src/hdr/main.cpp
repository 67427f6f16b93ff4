// gitopperhdr [-p PREFIX] [-l en|nl] FILE: prints the "managed by gitopper" header for FILE.

#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "hdr/header.hpp"

namespace {

constexpr std::string_view kUsage =
    "Usage: gitopperhdr [-p PREFIX] [-l en|nl] FILE\n"
    "Prints a two-line comment saying FILE is managed by gitopper and where to edit it.\n"
    "Run it inside a git checkout. PREFIX defaults to \"#\", the language to en.\n";

int usage_error(std::string_view message)
{
    fmt::print(stderr, "gitopperhdr: {}\n{}", message, kUsage);
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    std::string prefix = "#";
    std::string language = "en";
    std::string file;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            fmt::print("{}", kUsage);
            return 0;
        }
        if ((arg == "-p" || arg == "-l") && i + 1 < argc) {
            (arg == "-p" ? prefix : language) = argv[++i];
        } else if (arg.starts_with('-') && arg != "-") {
            return usage_error(fmt::format("unknown option {}", arg));
        } else if (file.empty()) {
            file = arg;
        } else {
            return usage_error("one FILE only");
        }
    }
    if (file.empty()) {
        return usage_error("missing FILE");
    }
    auto header = gitopper::header_for_file(file, prefix, language);
    if (!header) {
        fmt::print(stderr, "gitopperhdr: {}\n", header.error().message);
        return 1;
    }
    fmt::print("{}", *header);
    return 0;
}
