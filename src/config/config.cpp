// Reading the TOML file into plain structs. toml++ is used only in this file (it is slow to
// compile and nothing else needs it). toml++ does not report unknown keys, so every table is
// walked against a flat table of the keys it may hold.

#include "config/config.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "util/atomic_file.hpp"
#include "util/duration.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

template <typename T> struct Located {
    T value;
    Position position;
};

// The fields one table ([global] or one [[services]]) sets; absent fields stay empty.
struct Layer {
    std::map<std::string, Located<std::string>, std::less<>> strings;
    std::optional<Located<std::vector<Link>>> dirs;
};

constexpr std::array<std::string_view, 9> kStringFields{"machine", "service",  "branch",
                                                        "user",    "package",  "action",
                                                        "mount",   "upstream", "max_file_size"};
constexpr std::array<std::string_view, 10> kServiceKeys{
    "machine", "service", "branch",   "user", "package",
    "action",  "mount",   "upstream", "dirs", "max_file_size"};
constexpr std::array<std::string_view, 13> kGlobalKeys{
    "max_file_size", "machine", "service",  "branch", "user", "package",
    "action",        "mount",   "upstream", "dirs",   "keys", "webhook_secret_file",
    "git_timeout"};
constexpr std::array<std::string_view, 4> kLinkKeys{"local", "link", "file", "mode"};
constexpr std::array<std::string_view, 2> kKeyKeys{"path", "ro"};
constexpr std::array<std::string_view, 2> kTopKeys{"global", "services"};

Position position_of(const toml::source_region& source)
{
    return {static_cast<long>(source.begin.line), static_cast<long>(source.begin.column)};
}

std::string_view type_name(const toml::node& node)
{
    switch (node.type()) {
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a float";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

// Collects problems with their positions while the whole file is read.
class Reader {
public:
    explicit Reader(const Config& config) : m_config(config) {}

    void problem(Position at, const std::string& what)
    {
        m_problems.push_back(m_config.at(at) + ": " + what);
    }
    std::vector<std::string>& problems() { return m_problems; }

    // Reports keys of `table` not in `known`, with a suggestion for near misses.
    template <std::size_t N>
    void check_keys(const toml::table& table, const std::array<std::string_view, N>& known,
                    const std::string& where)
    {
        for (auto&& [key, node] : table) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end()) {
                continue;
            }
            std::string what = fmt::format("unknown key {} in {}", quote(key.str()), where);
            if (auto guess = closest_match(key.str(), known)) {
                what += fmt::format(" (did you mean {}?)", quote(*guess));
            }
            problem(position_of(key.source()), what);
        }
    }

    std::optional<std::string> string(const toml::node& node, std::string_view name,
                                      const std::string& where)
    {
        if (const auto* value = node.as_string()) {
            return value->get();
        }
        wrong_type(node, name, "a string", where);
        return std::nullopt;
    }

    std::optional<bool> boolean(const toml::node& node, std::string_view name,
                                const std::string& where)
    {
        if (const auto* value = node.as_boolean()) {
            return value->get();
        }
        wrong_type(node, name, "a boolean", where);
        return std::nullopt;
    }

    const toml::table* table(const toml::node& node, std::string_view name,
                             const std::string& where)
    {
        if (const auto* value = node.as_table()) {
            return value;
        }
        wrong_type(node, name, "a table", where);
        return nullptr;
    }

    const toml::array* array(const toml::node& node, std::string_view name,
                             const std::string& where)
    {
        if (const auto* value = node.as_array()) {
            return value;
        }
        wrong_type(node, name, "an array", where);
        return nullptr;
    }

private:
    void wrong_type(const toml::node& node, std::string_view name, std::string_view expected,
                    const std::string& where)
    {
        problem(position_of(node.source()), fmt::format("{} in {} must be {}, not {}", quote(name),
                                                        where, expected, type_name(node)));
    }

    const Config& m_config;
    std::vector<std::string> m_problems;
};

Link read_link(Reader& reader, const toml::table& table, const std::string& where)
{
    reader.check_keys(table, kLinkKeys, where);
    Link link;
    link.position = position_of(table.source());
    for (auto&& [key, node] : table) {
        if (key.str() == "local") {
            link.local = reader.string(node, "local", where).value_or("");
        } else if (key.str() == "link") {
            link.path = reader.string(node, "link", where).value_or("");
        } else if (key.str() == "file") {
            link.file = reader.boolean(node, "file", where).value_or(false);
        } else if (key.str() == "mode") {
            link.mode = reader.string(node, "mode", where).value_or("");
        }
    }
    return link;
}

std::optional<std::vector<Link>> read_dirs(Reader& reader, const toml::node& node,
                                           const std::string& where)
{
    const auto* entries = reader.array(node, "dirs", where);
    if (entries == nullptr) {
        return std::nullopt;
    }
    std::vector<Link> dirs;
    std::size_t n = 0;
    for (const auto& entry : *entries) {
        const auto entry_where = fmt::format("dirs[{}] of {}", n++, where);
        if (const auto* table = reader.table(entry, "dirs entry", entry_where)) {
            dirs.push_back(read_link(reader, *table, entry_where));
        }
    }
    return dirs;
}

std::vector<Key> read_keys(Reader& reader, const toml::node& node)
{
    std::vector<Key> keys;
    const auto* entries = reader.array(node, "keys", "[global]");
    if (entries == nullptr) {
        return keys;
    }
    std::size_t n = 0;
    for (const auto& entry : *entries) {
        const auto where = fmt::format("keys[{}] of [global]", n++);
        const auto* table = reader.table(entry, "keys entry", where);
        if (table == nullptr) {
            continue;
        }
        reader.check_keys(*table, kKeyKeys, where);
        Key key;
        key.position = position_of(table->source());
        for (auto&& [name, value] : *table) {
            if (name.str() == "path") {
                key.path = reader.string(value, "path", where).value_or("");
            } else if (name.str() == "ro") {
                key.ro = reader.boolean(value, "ro", where).value_or(false);
            }
        }
        if (key.path.empty()) {
            reader.problem(key.position, fmt::format("missing \"path\" in {}", where));
        }
        keys.push_back(std::move(key));
    }
    return keys;
}

// Reads the service fields of one table; `keys` entries are left to the caller.
Layer read_layer(Reader& reader, const toml::table& table, const std::string& where)
{
    Layer layer;
    for (auto&& [key, node] : table) {
        const auto name = key.str();
        if (std::find(kStringFields.begin(), kStringFields.end(), name) != kStringFields.end()) {
            if (auto value = reader.string(node, name, where)) {
                layer.strings.emplace(name,
                                      Located<std::string>{*value, position_of(node.source())});
            }
        } else if (name == "dirs") {
            if (auto dirs = read_dirs(reader, node, where)) {
                layer.dirs = Located<std::vector<Link>>{*dirs, position_of(node.source())};
            }
        }
    }
    return layer;
}

// A service's own value wins over [global]; `branch` falls back to "main".
Service merge(const Layer& global, const Layer& own, std::size_t index, Position position)
{
    Service service;
    service.index = index;
    service.position = position;
    const std::array<std::pair<std::string_view, std::string*>, 9> fields{{
        {"machine", &service.machine},
        {"service", &service.name},
        {"branch", &service.branch},
        {"user", &service.user},
        {"package", &service.package},
        {"action", &service.action},
        {"mount", &service.mount},
        {"upstream", &service.upstream},
        {"max_file_size", &service.max_file_size},
    }};
    for (const auto& [name, target] : fields) {
        auto found = own.strings.find(name);
        if (found == own.strings.end()) {
            found = global.strings.find(name);
            if (found == global.strings.end()) {
                continue;
            }
        }
        *target = found->second.value;
        service.where.emplace(std::string(name), found->second.position);
    }
    if (!service.where.contains("branch")) {
        service.branch = "main";
    }
    const auto& dirs = own.dirs ? own.dirs : global.dirs;
    if (dirs) {
        service.dirs = dirs->value;
        service.where.emplace("dirs", dirs->position);
    }
    return service;
}

void read_services(Reader& reader, const toml::node& node, const Layer& global, Config& config)
{
    const auto* entries = reader.array(node, "services", "the file");
    if (entries == nullptr) {
        return;
    }
    std::size_t index = 0;
    for (const auto& entry : *entries) {
        const auto where = fmt::format("[[services]] #{}", ++index);
        const auto* table = reader.table(entry, "services entry", where);
        if (table == nullptr) {
            continue;
        }
        reader.check_keys(*table, kServiceKeys, where);
        const auto own = read_layer(reader, *table, where);
        config.services.push_back(merge(global, own, index, position_of(table->source())));
    }
}

// How long one git command may run before it is killed and the service goes to DIFF.
void read_git_timeout(Reader& reader, const toml::node& node, Config& config)
{
    const auto text = reader.string(node, "git_timeout", "[global]");
    if (!text) {
        return;
    }
    const auto timeout = parse_duration(*text);
    if (!timeout) {
        reader.problem(position_of(node.source()), "git_timeout: " + timeout.error().message);
    } else if (*timeout < std::chrono::seconds(1) || *timeout > std::chrono::hours(1)) {
        reader.problem(position_of(node.source()),
                       fmt::format("git_timeout {} is out of range (1s to 1h)", quote(*text)));
    } else {
        config.git_timeout = *timeout;
    }
}

} // namespace

std::uint64_t Service::file_size_limit() const
{
    constexpr std::uint64_t kDefault = 100ULL << 20;
    return max_file_size.empty() ? kDefault : parse_size(max_file_size).value_or(kDefault);
}

std::string Service::label() const
{
    return name.empty() ? fmt::format("[[services]] #{}", index)
                        : fmt::format("[[services]] #{} ({})", index, name);
}

Position Service::position_of(std::string_view field) const
{
    const auto found = where.find(field);
    return found == where.end() ? position : found->second;
}

std::string Config::at(Position position) const
{
    return fmt::format("{}:{}:{}", path, position.line, position.column);
}

std::string Config::resolve(const std::string& file) const
{
    if (file.empty() || file.starts_with('/')) {
        return file;
    }
    const auto dir = std::filesystem::path(path).parent_path();
    return (dir / file).string();
}

[[nodiscard]] Result<Config> parse_config(std::string_view text, const std::string& path)
{
    Config config;
    config.path = path;
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        // toml++ shows the offending input, newlines included; a problem is one line.
        return fail("{}: {}", config.at(position_of(e.source())), escape_controls(e.description()));
    }

    Reader reader(config);
    reader.check_keys(root, kTopKeys, "the top level");
    Layer global;
    if (const auto* node = root.get("global")) {
        if (const auto* table = reader.table(*node, "global", "the top level")) {
            reader.check_keys(*table, kGlobalKeys, "[global]");
            global = read_layer(reader, *table, "[global]");
            if (const auto* keys = table->get("keys")) {
                config.keys = read_keys(reader, *keys);
            }
            if (const auto* secret = table->get("webhook_secret_file")) {
                config.webhook_secret_file =
                    reader.string(*secret, "webhook_secret_file", "[global]").value_or("");
            }
            if (const auto* timeout = table->get("git_timeout")) {
                read_git_timeout(reader, *timeout, config);
            }
        }
    }
    if (const auto* node = root.get("services")) {
        read_services(reader, *node, global, config);
    }
    if (reader.problems().empty()) {
        reader.problems() = validate(config);
    }
    if (!reader.problems().empty()) {
        return std::unexpected(Error{join(reader.problems(), "\n")});
    }
    return config;
}

[[nodiscard]] Result<Config> load_config(const std::string& path)
{
    auto text = read_file(path);
    if (!text) {
        return std::unexpected(text.error());
    }
    return parse_config(*text, path);
}

} // namespace gitopper
