#pragma once
// Every key of the config file, once. The parser reads each table by this table, the validator
// applies its rules and its "required", "did you mean" suggests from its names, --check prints a
// service by it, and the README's field reference is made from it (a unit test keeps the README
// the same as field_reference()). A new field is one row here.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace gitopper {

// Which table a key stands in. A service field may stand in [[services]] and in [global], where
// it is the default of every service that does not set it.
enum class Scope { top, service, global, link, key, notify, status, rollout };

using Problem = std::optional<std::string>;

// Where a value goes; the member's type is the value's TOML type (a Duration is written as a
// string). std::monostate: an array or table that the parser reads entry by entry
// (`global`, `services`, `dirs`, `keys`, `notify`, `status`, `rollout`).
using FieldTarget =
    std::variant<std::monostate, std::string Service::*, Duration Service::*,
                 std::int64_t Service::*, Argv Service::*, Strings Service::*,
                 std::string Config::*, Duration Config::*, std::string Link::*, bool Link::*,
                 std::string Key::*, bool Key::*, std::string NotifyTarget::*, Argv NotifyTarget::*,
                 Duration NotifyTarget::*, std::string StatusTarget::*, Strings RolloutConfig::*,
                 std::int64_t RolloutConfig::*, std::string RolloutConfig::*,
                 Duration RolloutConfig::*>;

struct Field {
    std::string_view name;
    Scope scope;
    FieldTarget target;
    std::string_view type;     // for the reference
    bool required = false;     // a service's, after [global] is merged in
    std::string_view fallback; // the value when unset, as it would be written
    std::string_view unset;    // what leaving it unset means, where there is no fallback
    // One value alone, as written (a number as its digits); nullptr: any. Strings are checked
    // on the merged service, other types where they are read.
    Problem (*rule)(std::string_view value) = nullptr;
    std::string_view meaning; // for the reference (Markdown, one line)
    std::string_view example; // for the reference: a value as written in the file, Markdown
};

std::span<const Field> config_fields();

// The field `name` in a table of `scope`; [global] also holds every service field.
const Field* find_field(Scope scope, std::string_view name);

// The names a table of `scope` may hold, for "did you mean".
std::vector<std::string_view> field_names(Scope scope);

// A service field's value as text, for --check ("60s", a command's words quoted where
// needed); nullopt for a field that is not the service's or has no text form (dirs).
std::optional<std::string> field_text(const Service& service, const Field& field);

// The README's field reference: a Markdown table, one row per field.
std::string field_reference();

} // namespace gitopper
