#include "git/transport.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "util/atomic_file.hpp"
#include "util/base64.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"
#include "util/trusted_file.hpp"

namespace gitopper {
namespace {

constexpr std::string_view kHelper = "GITOPPER_HELPER";

// Our own binary, which git runs as its GIT_SSH and GIT_ASKPASS.
const std::string& own_program()
{
    static const std::string path = [] {
        std::array<char, PATH_MAX> buffer{};
        const auto size = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
        std::string exe(buffer.data(), static_cast<std::size_t>(std::max<ssize_t>(size, 0)));
        // Replaced by an upgrade while we run: the kernel names the old file so; the new one
        // is at the same path.
        constexpr std::string_view kDeleted = " (deleted)";
        if (exe.ends_with(kDeleted)) {
            exe.resize(exe.size() - kDeleted.size());
        }
        return exe;
    }();
    return path;
}

// One key of a known_hosts file: its host names, type and base64 blob.
struct HostKey {
    std::string type;
    std::string blob;
};

// The keys `file` holds for `name` (plain names only: gitopper writes no hashed ones, and a
// pinned file with hashed names is matched by ssh itself, not here).
std::vector<HostKey> keys_for(std::string_view file, std::string_view name)
{
    std::vector<HostKey> keys;
    for (const auto& line : split(file, '\n')) {
        const auto words = split_blanks(line);
        if (words.size() < 3 || words[0].starts_with('#') || words[0].starts_with('@')) {
            continue;
        }
        const auto names = split(words[0], ',');
        if (std::find(names.begin(), names.end(), name) != names.end()) {
            keys.push_back({std::string(words[1]), std::string(words[2])});
        }
    }
    return keys;
}

std::string read_known(const std::string& path)
{
    auto text = read_file(path);
    return text ? *text : std::string();
}

// The host's keys now, asked by ssh-keyscan (as root, with no ssh config: nothing of the
// repository or the user is involved), as known_hosts lines.
[[nodiscard]] Result<std::string> scan_host(const Endpoint& endpoint,
                                            std::chrono::milliseconds timeout)
{
    const auto port = std::to_string(endpoint.port == 0 ? 22 : endpoint.port);
    auto output = run_checked(
        Command{.argv = {"ssh-keyscan", "-T", "10", "-p", port, "--", endpoint.host},
                .timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(30))});
    if (!output) {
        return std::unexpected(output.error());
    }
    std::string lines;
    for (const auto& line : split(output->out, '\n')) {
        if (split_blanks(line).size() >= 3 && !line.starts_with('#')) {
            lines += line + '\n';
        }
    }
    if (lines.empty()) {
        return fail("ssh-keyscan got no host key from {}", endpoint.shown());
    }
    return lines;
}

std::string fingerprints(const std::vector<HostKey>& keys)
{
    std::vector<std::string> shown;
    for (const auto& key : keys) {
        shown.push_back(fmt::format("{} ({})", key_fingerprint(key.blob), key.type));
    }
    return join(shown, ", ");
}

std::mutex& tofu_mutex()
{
    static std::mutex mutex;
    return mutex;
}

// ---- as the helper, in git's process tree ----

int read_fd_number(const char* name)
{
    const char* text = std::getenv(name);
    int number = -1;
    if (text != nullptr) {
        std::from_chars(text, text + std::strlen(text), number);
    }
    return number;
}

int wait_status(pid_t pid)
{
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return 255;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ssh with our options and git's arguments. It stays our child, not our replacement: ssh
// closes the descriptors it inherits, so it reads the key and the known hosts through ours.
// Not util/process: ssh must share git's stdin, stdout and process group (a timeout kills
// the group).
int helper_ssh(int argc, char** argv)
{
    const auto fd_path = [](int fd) { return fmt::format("/proc/{}/fd/{}", ::getpid(), fd); };
    std::vector<std::string> args{"ssh",
                                  "-F",
                                  "/dev/null",
                                  "-o",
                                  "BatchMode=yes",
                                  "-o",
                                  "IdentityAgent=none",
                                  "-o",
                                  "StrictHostKeyChecking=yes",
                                  "-o",
                                  "UpdateHostKeys=no",
                                  "-o",
                                  "GlobalKnownHostsFile=/dev/null",
                                  "-o",
                                  "UserKnownHostsFile=" +
                                      fd_path(read_fd_number("GITOPPER_KNOWN_HOSTS_FD"))};
    if (const int key = read_fd_number("GITOPPER_SSH_KEY_FD"); key >= 0) {
        args.insert(args.end(), {"-o", "IdentitiesOnly=yes", "-i", fd_path(key)});
    }
    for (int i = 1; i < argc; ++i) {
        args.emplace_back(argv[i]);
    }
    std::vector<char*> pointers;
    for (auto& arg : args) {
        pointers.push_back(arg.data());
    }
    pointers.push_back(nullptr);
    ::unsetenv(std::string(kHelper).c_str());
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("gitopper ssh helper: fork");
        return 255;
    }
    if (pid == 0) {
        ::execvp("ssh", pointers.data());
        std::perror("gitopper ssh helper: ssh");
        ::_exit(255);
    }
    return wait_status(pid);
}

// git's prompts, exactly: "Username for 'https://host:port': " and "Password for
// 'https://user@host:port': ". Only those of the upstream itself are answered: git asking
// for another host or scheme (after a redirect), or anything else, gets nothing. Compared
// whole, not parsed: a user name in a redirect can hold "@" and quotes.
int helper_askpass(int argc, char** argv)
{
    const std::string_view prompt = argc > 1 ? argv[1] : "";
    const char* host = std::getenv("GITOPPER_ASKPASS_HOST");
    const char* user_name = std::getenv("GITOPPER_USERNAME");
    const std::string user = user_name != nullptr ? user_name : "git";
    const std::string where = host != nullptr ? host : "";
    if (!where.empty() && prompt == fmt::format("Username for 'https://{}': ", where)) {
        std::printf("%s\n", user.c_str());
        return 0;
    }
    if (where.empty() || prompt != fmt::format("Password for 'https://{}@{}': ", user, where)) {
        std::fputs("gitopper askpass: not a prompt of the upstream's; no credential\n", stderr);
        return 1;
    }
    const int fd = read_fd_number("GITOPPER_TOKEN_FD");
    std::string token;
    std::array<char, 4096> buffer{};
    for (off_t at = 0;;) {
        const auto count = ::pread(fd, buffer.data(), buffer.size(), at);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count <= 0) {
            break;
        }
        token.append(buffer.data(), static_cast<std::size_t>(count));
        at += count;
    }
    if (fd < 0 || token.empty()) {
        std::fputs("gitopper askpass: no token\n", stderr);
        return 1;
    }
    std::printf("%s\n", std::string(trim(token)).c_str());
    return 0;
}

} // namespace

std::vector<int> Transport::numbers() const
{
    std::vector<int> numbers;
    for (const auto& fd : fds) {
        numbers.push_back(fd.get());
    }
    return numbers;
}

Result<Transport> transport_for(std::string_view url, const Access& access,
                                const std::optional<Credentials>& user)
{
    Transport transport;
    const auto endpoint = endpoint_of(url);
    const uid_t uid = user ? user->uid : ::geteuid();
    const gid_t gid = user ? user->gid : ::getegid();
    // One file handed over: its descriptor, named in `variable`.
    const auto hand_over = [&](std::string_view variable, std::string_view name,
                               std::string_view content) -> Result<> {
        auto fd = sealed_copy(name, content, uid, gid);
        if (!fd) {
            return std::unexpected(fd.error());
        }
        transport.env.push_back(fmt::format("{}={}", variable, fd->get()));
        transport.fds.push_back(std::move(*fd));
        return {};
    };
    const auto read_and_hand_over = [&](std::string_view variable, const std::string& path,
                                        Trust trust) -> Result<> {
        auto text = read_trusted_file(path, trust);
        if (!text) {
            return std::unexpected(text.error());
        }
        return hand_over(variable, variable, *text);
    };
    if (endpoint.kind == Endpoint::Kind::ssh) {
        transport.env.insert(
            transport.env.end(),
            {"GIT_SSH=" + own_program(), "GIT_SSH_VARIANT=ssh", std::string(kHelper) + "=ssh"});
        auto known =
            access.known_hosts.empty()
                ? hand_over("GITOPPER_KNOWN_HOSTS_FD", "known_hosts", read_known(access.tofu_file))
                : read_and_hand_over("GITOPPER_KNOWN_HOSTS_FD", access.known_hosts, Trust::keys);
        if (!known) {
            return fail("known_hosts: {}", known.error().message);
        }
        if (!access.ssh_key.empty()) {
            if (auto key = read_and_hand_over("GITOPPER_SSH_KEY_FD", access.ssh_key, Trust::secret);
                !key) {
                return fail("ssh_key: {}", key.error().message);
            }
        }
    }
    if (endpoint.kind == Endpoint::Kind::https && !access.token_file.empty()) {
        transport.env.insert(
            transport.env.end(),
            {"GIT_ASKPASS=" + own_program(), std::string(kHelper) + "=askpass",
             "GITOPPER_ASKPASS_HOST=" + endpoint.shown(),
             "GITOPPER_USERNAME=" + (endpoint.user.empty() ? "git" : endpoint.user)});
        if (auto token = read_and_hand_over("GITOPPER_TOKEN_FD", access.token_file, Trust::secret);
            !token) {
            return fail("token_file: {}", token.error().message);
        }
    }
    if (endpoint.kind == Endpoint::Kind::https && !access.ca_file.empty()) {
        auto text = read_trusted_file(access.ca_file, Trust::keys);
        auto fd = text ? sealed_copy("ca_file", *text, uid, gid) : std::unexpected(text.error());
        if (!fd) {
            return fail("ca_file: {}", fd.error().message);
        }
        // Opened by curl inside git-remote-https, which inherits the descriptor from git.
        transport.env.push_back(fmt::format("GIT_SSL_CAINFO=/proc/self/fd/{}", fd->get()));
        transport.fds.push_back(std::move(*fd));
    }
    return transport;
}

Result<> learn_host_key(std::string_view url, const Access& access,
                        std::chrono::milliseconds timeout)
{
    const auto endpoint = endpoint_of(url);
    if (endpoint.kind != Endpoint::Kind::ssh || !access.known_hosts.empty() ||
        access.tofu_file.empty()) {
        return {};
    }
    if (!keys_for(read_known(access.tofu_file), endpoint.known_hosts_name()).empty()) {
        return {}; // the usual case, without the lock that a first use holds while it scans
    }
    std::lock_guard lock(tofu_mutex());
    const auto known = read_known(access.tofu_file);
    if (!keys_for(known, endpoint.known_hosts_name()).empty()) {
        return {};
    }
    auto scanned = scan_host(endpoint, timeout);
    if (!scanned) {
        return fail("cannot learn the host key of {}: {}", endpoint.shown(),
                    scanned.error().message);
    }
    if (auto r = write_file_atomic(access.tofu_file, known + *scanned, 0600); !r) {
        return std::unexpected(r.error());
    }
    log::warn("trusting the host key of {} on first use: {}; kept in {}", endpoint.shown(),
              fingerprints(keys_for(*scanned, endpoint.known_hosts_name())), access.tofu_file);
    return {};
}

std::optional<std::string> host_key_problem(std::string_view url, const Access& access,
                                            std::string_view stderr_text,
                                            std::chrono::milliseconds timeout)
{
    const auto endpoint = endpoint_of(url);
    if (endpoint.kind != Endpoint::Kind::ssh ||
        stderr_text.find("Host key verification failed") == std::string_view::npos) {
        return std::nullopt;
    }
    const auto& file = access.known_hosts.empty() ? access.tofu_file : access.known_hosts;
    const auto name = endpoint.known_hosts_name();
    const auto expected = keys_for(read_known(file), name);
    if (expected.empty()) {
        return fmt::format("host key for {} is not in {} (add it, e.g. with ssh-keyscan -p {} {} "
                           ">>{})",
                           endpoint.shown(), file, endpoint.port == 0 ? 22 : endpoint.port,
                           endpoint.host, file);
    }
    auto scanned = scan_host(endpoint, timeout);
    auto got = scanned ? keys_for(*scanned, name) : std::vector<HostKey>{};
    // Side by side for one key type when both have it; else all of each.
    std::vector<HostKey> was = expected;
    std::vector<HostKey> now = got;
    for (const auto& key : got) {
        const auto same = std::find_if(expected.begin(), expected.end(),
                                       [&](const HostKey& k) { return k.type == key.type; });
        if (same != expected.end() && same->blob != key.blob) {
            was = {*same};
            now = {key};
            break;
        }
    }
    return fmt::format(
        "host key for {} changed; expected {}, got {}; if the new key is right, "
        "edit {}",
        endpoint.shown(), fingerprints(was),
        now.empty() ? "none (" + (scanned ? std::string("no key") : scanned.error().message) + ")"
                    : fingerprints(now),
        file);
}

std::string key_fingerprint(std::string_view base64_blob)
{
    const auto blob = base64_decode(base64_blob);
    if (!blob) {
        return "SHA256:?";
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    EVP_Digest(blob->data(), blob->size(), digest.data(), &size, EVP_sha256(), nullptr);
    auto text = base64_encode({reinterpret_cast<const char*>(digest.data()), size});
    while (text.ends_with('=')) {
        text.pop_back();
    }
    return "SHA256:" + text;
}

std::optional<int> run_transport_helper(int argc, char** argv)
{
    const char* kind = std::getenv(std::string(kHelper).c_str());
    if (kind == nullptr) {
        return std::nullopt;
    }
    if (std::string_view(kind) == "ssh") {
        return helper_ssh(argc, argv);
    }
    if (std::string_view(kind) == "askpass") {
        return helper_askpass(argc, argv);
    }
    return std::nullopt;
}

} // namespace gitopper
