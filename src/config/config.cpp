// Reading the TOML file into plain structs. toml++ is used only in this file (it is slow to
// compile and nothing else needs it). toml++ does not report unknown keys, so every table is
// walked against a flat table of the keys it may hold.

#include "config/config.hpp"

#include <type_traits>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "config/fields.hpp"
#include "util/atomic_file.hpp"
#include "util/command_line.hpp"
#include "util/duration.hpp"
#include "util/endpoint.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

namespace gitopper {
namespace {

// The service fields one table ([global] or one [[services]]) sets, read into a Service, and
// where each was written; a field it does not set is absent from `set`.
struct Layer {
    Service values;
    std::map<std::string, Position, std::less<>> set;
};

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
    void problem_at(const toml::node& node, const std::string& what)
    {
        problem(position_of(node.source()), what);
    }
    std::vector<std::string>& problems() { return m_problems; }

    // Reports keys of `table` that a table of `scope` may not hold, with a suggestion for near
    // misses.
    void check_keys(const toml::table& table, Scope scope, const std::string& where)
    {
        const auto known = field_names(scope);
        for (auto&& [key, node] : table) {
            if (find_field(scope, key.str()) != nullptr) {
                continue;
            }
            std::string what = fmt::format("unknown key {} in {}", quote(key.str()), where);
            if (auto guess = closest_match(key.str(), known)) {
                what += fmt::format(" (did you mean {}?)", quote(*guess));
            }
            problem(position_of(key.source()), what);
        }
    }

    // Reports the required fields of `scope` that `table` lacks.
    void check_required(const toml::table& table, Scope scope, Position at,
                        const std::string& where)
    {
        for (const auto& field : config_fields()) {
            if (field.scope == scope && field.required && !table.contains(field.name)) {
                problem(at, fmt::format("missing {} in {}", quote(field.name), where));
            }
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

    std::optional<std::int64_t> integer(const toml::node& node, std::string_view name,
                                        const std::string& where)
    {
        if (const auto* value = node.as_integer()) {
            return value->get();
        }
        wrong_type(node, name, "an integer", where);
        return std::nullopt;
    }

    // An array of strings, each passing `rule` (a problem at its own position otherwise).
    std::optional<std::vector<std::string>> strings(const toml::node& node, std::string_view name,
                                                    const std::string& where,
                                                    Problem (*rule)(std::string_view))
    {
        const auto* list = node.as_array();
        if (list == nullptr || !std::all_of(list->begin(), list->end(),
                                            [](const toml::node& n) { return n.is_string(); })) {
            wrong_type(node, name, "an array of strings", where);
            return std::nullopt;
        }
        std::vector<std::string> texts;
        bool good = true;
        for (const auto& item : *list) {
            const auto& text = item.as_string()->get();
            if (auto problem = rule != nullptr ? rule(text) : Problem()) {
                problem_at(item, *problem);
                good = false;
            }
            texts.push_back(text);
        }
        return good ? std::optional(std::move(texts)) : std::nullopt;
    }

    // A command: an array of strings, or one string split into words (util/command_line).
    std::optional<Argv> command(const toml::node& node, std::string_view name,
                                const std::string& where)
    {
        auto argv = command_words(node, name, where);
        if (!argv) {
            return std::nullopt;
        }
        const auto& program = argv->front();
        if (program.find('/') != std::string::npos && !program.starts_with('/') &&
            !program.starts_with('{')) {
            problem(position_of(node.source()),
                    fmt::format("{} in {}: the program {} must be an absolute path or a name "
                                "found on PATH (commands run in /)",
                                name, where, quote(program)));
            return std::nullopt;
        }
        if (auto known = check_placeholders(*argv, kCommandPlaceholders); !known) {
            problem(position_of(node.source()),
                    fmt::format("{} in {}: {}", name, where, known.error().message));
            return std::nullopt;
        }
        return argv;
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
    std::optional<Argv> command_words(const toml::node& node, std::string_view name,
                                      const std::string& where)
    {
        if (const auto* text = node.as_string()) {
            auto words = split_command(text->get());
            if (!words) {
                problem(position_of(node.source()),
                        fmt::format("{} in {}: {}", name, where, words.error().message));
                return std::nullopt;
            }
            return std::move(*words);
        }
        const auto* list = node.as_array();
        if (list == nullptr || list->empty() ||
            !std::all_of(list->begin(), list->end(),
                         [](const toml::node& n) { return n.is_string(); })) {
            wrong_type(node, name, "a non-empty array of strings or a string", where);
            return std::nullopt;
        }
        Argv argv;
        for (const auto& word : *list) {
            argv.push_back(word.as_string()->get());
        }
        return argv;
    }

    void wrong_type(const toml::node& node, std::string_view name, std::string_view expected,
                    const std::string& where)
    {
        problem(position_of(node.source()), fmt::format("{} in {} must be {}, not {}", quote(name),
                                                        where, expected, type_name(node)));
    }

    const Config& m_config;
    std::vector<std::string> m_problems;
};

// What one table's values go into: a [[services]] table fills a Layer, [global] a Layer and
// the Config, an entry of `dirs` a Link, an entry of `keys` a Key.
struct Into {
    Layer* layer = nullptr;
    Config* config = nullptr;
    Link* link = nullptr;
    Key* key = nullptr;
    NotifyTarget* notify = nullptr;
    StatusTarget* status = nullptr;
    RolloutConfig* rollout = nullptr;

    template <typename T> T& as()
    {
        if constexpr (std::is_same_v<T, Service>) {
            return layer->values;
        } else if constexpr (std::is_same_v<T, Config>) {
            return *config;
        } else if constexpr (std::is_same_v<T, Link>) {
            return *link;
        } else if constexpr (std::is_same_v<T, NotifyTarget>) {
            return *notify;
        } else if constexpr (std::is_same_v<T, StatusTarget>) {
            return *status;
        } else if constexpr (std::is_same_v<T, RolloutConfig>) {
            return *rollout;
        } else {
            static_assert(std::is_same_v<T, Key>);
            return *key;
        }
    }

    void mark(std::string_view name, Position at) const
    {
        if (layer != nullptr) {
            layer->set.insert_or_assign(std::string(name), at);
        }
    }
};

template <typename... Ts> struct Overloaded : Ts... {
    using Ts::operator()...;
};

void read_table(Reader& reader, const toml::table& table, Scope scope, const std::string& where,
                Into into);

// The tables of an array such as `dirs`, each read by the fields of `scope` into a T that
// Into holds at `slot`; nullopt when the value is no array.
template <typename T>
std::optional<std::vector<T>> read_entries(Reader& reader, const toml::node& node,
                                           std::string_view name, Scope scope,
                                           const std::string& where, T* Into::*slot)
{
    const auto* entries = reader.array(node, name, where);
    if (entries == nullptr) {
        return std::nullopt;
    }
    std::vector<T> values;
    std::size_t n = 0;
    for (const auto& entry : *entries) {
        const auto entry_where = fmt::format("{}[{}] of {}", name, n++, where);
        if (const auto* table = reader.table(entry, fmt::format("{} entry", name), entry_where)) {
            T value;
            value.position = position_of(table->source());
            Into into;
            into.*slot = &value;
            read_table(reader, *table, scope, entry_where, into);
            values.push_back(std::move(value));
        }
    }
    return values;
}

void read_status_table(Reader& reader, const toml::node& node, Config& config)
{
    if (const auto* table = reader.table(node, "status", "[global]")) {
        StatusTarget status;
        status.position = position_of(table->source());
        read_table(reader, *table, Scope::status, "status of [global]", Into{.status = &status});
        config.status = std::move(status);
    }
}

void read_rollout_table(Reader& reader, const toml::node& node, Config& config)
{
    if (const auto* table = reader.table(node, "rollout", "[global]")) {
        RolloutConfig rollout;
        rollout.position = position_of(table->source());
        read_table(reader, *table, Scope::rollout, "rollout of [global]",
                   Into{.rollout = &rollout});
        config.rollout = std::move(rollout);
    }
}

// A value checked by its rule where it is read: durations and numbers, whose text is gone
// once converted. Strings are checked on the merged service (validate.cpp).
bool passes(Reader& reader, const Field& field, const toml::node& node, std::string_view text)
{
    if (field.rule == nullptr) {
        return true;
    }
    auto problem = field.rule(text);
    if (problem) {
        reader.problem(position_of(node.source()), *problem);
    }
    return !problem;
}

// One value, by the type of the member it goes into.
void read_value(Reader& reader, const Field& field, const toml::node& node,
                const std::string& where, Into into)
{
    const auto name = field.name;
    const auto at = position_of(node.source());
    std::visit(Overloaded{
                   [&]<typename T>(std::string T::*member) {
                       if (auto value = reader.string(node, name, where)) {
                           into.as<T>().*member = *value;
                           into.mark(name, at);
                       }
                   },
                   [&]<typename T>(bool T::*member) {
                       if (auto value = reader.boolean(node, name, where)) {
                           into.as<T>().*member = *value;
                           into.mark(name, at);
                       }
                   },
                   [&]<typename T>(Duration T::*member) {
                       const auto text = reader.string(node, name, where);
                       if (text && passes(reader, field, node, *text)) {
                           into.as<T>().*member = parse_duration(*text).value_or(Duration{});
                           into.mark(name, at);
                       }
                   },
                   [&]<typename T>(std::int64_t T::*member) {
                       const auto number = reader.integer(node, name, where);
                       if (number && passes(reader, field, node, std::to_string(*number))) {
                           into.as<T>().*member = *number;
                           into.mark(name, at);
                       }
                   },
                   [&]<typename T>(Strings T::*member) {
                       // Each string checked by the rule where it stands in the array.
                       if (auto texts = reader.strings(node, name, where, field.rule)) {
                           into.as<T>().*member = Strings(texts->begin(), texts->end());
                           into.mark(name, at);
                       }
                   },
                   [&]<typename T>(Argv T::*member) {
                       if (auto argv = reader.command(node, name, where)) {
                           into.as<T>().*member = std::move(*argv);
                           into.mark(name, at);
                       }
                   },
                   [&](std::monostate) {
                       if (name == "dirs") {
                           if (auto dirs = read_entries(reader, node, name, Scope::link, where,
                                                        &Into::link)) {
                               into.layer->values.dirs = std::move(*dirs);
                           }
                           into.mark(name, at);
                       } else if (name == "notify") {
                           if (auto targets = read_entries(reader, node, name, Scope::notify, where,
                                                           &Into::notify)) {
                               into.layer->values.notify = std::move(*targets);
                           }
                           into.mark(name, at);
                       } else if (name == "keys") {
                           if (auto keys = read_entries(reader, node, name, Scope::key, where,
                                                        &Into::key)) {
                               into.config->keys = std::move(*keys);
                           }
                       } else if (name == "status") {
                           read_status_table(reader, node, *into.config);
                       } else if (name == "rollout") {
                           read_rollout_table(reader, node, *into.config);
                       }
                   },
               },
               field.target);
}

void read_table(Reader& reader, const toml::table& table, Scope scope, const std::string& where,
                Into into)
{
    reader.check_keys(table, scope, where);
    if (scope == Scope::link || scope == Scope::key || scope == Scope::notify ||
        scope == Scope::status || scope == Scope::rollout) {
        reader.check_required(table, scope, position_of(table.source()), where);
    }
    for (auto&& [key, node] : table) {
        if (const auto* field = find_field(scope, key.str())) {
            read_value(reader, *field, node, where, into);
        }
    }
}

// The member `target` names, of `to`, takes its value in `from`.
void copy_field(const FieldTarget& target, std::string_view name, const Service& from, Service& to)
{
    std::visit(Overloaded{
                   [&]<typename M, typename T>(M T::*member) {
                       if constexpr (std::is_same_v<T, Service>) {
                           to.*member = from.*member;
                       }
                   },
                   [&](std::monostate) {
                       if (name == "dirs") {
                           to.dirs = from.dirs;
                       } else if (name == "notify") {
                           to.notify = from.notify;
                       }
                   },
               },
               target);
}

// A field nobody set takes the table's fallback, converted as a value in the file would be.
void take_fallback(const Field& field, Service& service)
{
    if (field.fallback.empty()) {
        return;
    }
    const auto text = field.fallback;
    std::visit(
        Overloaded{
            [&](std::string Service::*member) { service.*member = text; },
            [&](Duration Service::*member) {
                service.*member = parse_duration(text).value_or(Duration{});
            },
            [&](std::int64_t Service::*member) {
                std::from_chars(text.data(), text.data() + text.size(), service.*member);
            },
            [&](Argv Service::*member) { service.*member = split_command(text).value_or(Argv{}); },
            [](auto) {},
        },
        field.target);
}

// A service's own value wins over [global]; unset fields take their fallback ("main").
Service merge(const Layer& global, const Layer& own, std::size_t index, Position position)
{
    Service service = own.values;
    service.index = index;
    service.position = position;
    for (const auto& field : config_fields()) {
        if (field.scope != Scope::service) {
            continue;
        }
        const auto name = std::string(field.name);
        if (const auto mine = own.set.find(name); mine != own.set.end()) {
            service.where.emplace(name, mine->second);
        } else if (const auto shared = global.set.find(name); shared != global.set.end()) {
            copy_field(field.target, field.name, global.values, service);
            service.where.emplace(name, shared->second);
        } else {
            take_fallback(field, service);
        }
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
        Layer own;
        read_table(reader, *table, Scope::service, where, Into{.layer = &own});
        config.services.push_back(merge(global, own, index, position_of(table->source())));
    }
}

} // namespace

std::uint64_t Service::file_size_limit() const
{
    constexpr std::uint64_t kDefault = 100ULL << 20;
    return max_file_size.empty() ? kDefault : parse_size(max_file_size).value_or(kDefault);
}

std::string NotifyTarget::label() const
{
    if (!name.empty()) {
        return name;
    }
    if (!url.empty()) {
        auto parsed = parse_http_url(url);
        return parsed ? parsed->origin() : std::string("url");
    }
    return exec.empty() ? std::string("exec")
                        : std::filesystem::path(exec.front()).filename().string();
}

std::string NotifyTarget::describe() const
{
    if (url.empty()) {
        return fmt::format("{}: exec {}", label(), printable(exec));
    }
    auto parsed = parse_http_url(url);
    const auto shown = parsed ? parsed->origin() + (parsed->target == "/" ? "/" : "/…") : "?";
    return fmt::format("{}: POST {} ({}{}{})", label(), shown, format.empty() ? "json" : format,
                       secret_file.empty() ? "" : ", signed with " + secret_file,
                       ca_file.empty() ? "" : ", CA " + ca_file);
}

std::string NotifyTarget::identity() const
{
    return join(std::vector<std::string>{url, format.empty() ? "json" : format, secret_file,
                                         ca_file, join(exec, std::string_view("\0", 1)),
                                         format_duration(timeout), name},
                std::string_view("\n"));
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
    reader.check_keys(root, Scope::top, "the top level");
    Layer global;
    if (const auto* node = root.get("global")) {
        if (const auto* table = reader.table(*node, "global", "the top level")) {
            read_table(reader, *table, Scope::global, "[global]",
                       Into{.layer = &global, .config = &config});
        }
    }
    if (const auto* node = root.get("services")) {
        read_services(reader, *node, global, config);
    }
    for (auto& service : config.services) {
        for (auto* file : {&service.allowed_signers, &service.ssh_key, &service.known_hosts,
                           &service.token_file, &service.ca_file}) {
            *file = config.resolve(*file);
        }
        for (auto& target : service.notify) {
            target.secret_file = config.resolve(target.secret_file);
            target.ca_file = config.resolve(target.ca_file);
        }
    }
    if (config.status) {
        config.status->token_file = config.resolve(config.status->token_file);
        config.status->ca_file = config.resolve(config.status->ca_file);
        if (config.status->api.empty() && config.status->forge == "github") {
            config.status->api = "https://api.github.com";
        }
    }
    if (config.rollout) {
        for (auto* file : {&config.rollout->ca_file, &config.rollout->cert_file,
                           &config.rollout->key_file, &config.rollout->password_file}) {
            *file = config.resolve(*file);
        }
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
