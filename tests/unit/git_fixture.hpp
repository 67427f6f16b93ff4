#pragma once
// Git as the unit tests' fixtures run it, outside the code under test: no host or user
// config, a fixed author, nothing of the caller's GIT_* environment.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/process.hpp"
#include "util/strings.hpp"

namespace gitopper::test_support {

// Runs `git -C dir args...`; returns its trimmed stdout, or "" after adding a test failure.
inline std::string fixture_git(const std::filesystem::path& dir, std::vector<std::string> args)
{
    std::vector<std::string> argv{"git", "-C", dir.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    Command command{
        .argv = argv,
        .timeout = std::chrono::seconds(60),
        .env = environment_with({"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
                                 "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
                                 "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
                                 "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "LC_ALL=C"})};
    const auto output = run(command);
    if (!output) {
        ADD_FAILURE() << printable(argv) << ": " << output.error().message;
        return {};
    }
    if (!output->ok()) {
        ADD_FAILURE() << printable(argv) << ": " << output->describe();
        return {};
    }
    return std::string(trim(output->out));
}

} // namespace gitopper::test_support
