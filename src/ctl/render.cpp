#include "ctl/render.hpp"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "ctl/table.hpp"

namespace gitopper::ctl {
namespace {

using nlohmann::json;

constexpr std::size_t kShortHash = 8; // as `git log --oneline` would show it, and the Go tool

struct Column {
    std::string_view title;
    std::string_view field;
    bool is_hash = false;
};

// One entry per listing: the reply's array member and the columns taken from each element.
struct Layout {
    Listing listing;
    std::string_view member;
    std::vector<Column> columns;
};

const Layout& layout_of(Listing listing)
{
    static const std::array kLayouts{
        Layout{Listing::machines, "machines", {{"MACHINE", "machine"}, {"ACTUAL", "actual"}}},
        Layout{Listing::services,
               "services",
               {{"SERVICE", "service"},
                {"HASH", "hash", true},
                {"STATE", "state"},
                {"INFO", "stateinfo"},
                {"SINCE", "change"}}},
        Layout{Listing::history,
               "history",
               {{"TIME", "time"},
                {"FROM", "from", true},
                {"TO", "to", true},
                {"TRIGGER", "trigger"},
                {"RESULT", "result"}}},
    };
    return *std::find_if(kLayouts.begin(), kLayouts.end(),
                         [&](const Layout& l) { return l.listing == listing; });
}

std::string cell(const json& entry, const Column& column)
{
    const auto found = entry.find(column.field);
    if (found == entry.end() || found->is_null()) {
        return {};
    }
    auto text = found->is_string() ? found->get<std::string>() : found->dump();
    return column.is_hash ? text.substr(0, kShortHash) : text;
}

[[nodiscard]] Result<json> parse_object(std::string_view body)
{
    auto parsed = json::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        return fail("the reply is not a JSON object");
    }
    return parsed;
}

// With several hosts, the added column says which host answered. A machines listing already
// has a MACHINE column (the config's), so there it is called HOST.
Row header(const Layout& layout, bool several_hosts)
{
    Row titles{"#"};
    if (several_hosts) {
        titles.emplace_back(layout.listing == Listing::machines ? "HOST" : "MACHINE");
    }
    for (const auto& column : layout.columns) {
        titles.emplace_back(column.title);
    }
    return titles;
}

} // namespace

[[nodiscard]] Result<std::vector<Row>> rows_of(Listing listing, std::string_view body)
{
    const auto& layout = layout_of(listing);
    auto reply = parse_object(body);
    if (!reply) {
        return std::unexpected(reply.error());
    }
    const auto entries = reply->find(layout.member);
    if (entries == reply->end() || !entries->is_array()) {
        return fail("the reply has no \"{}\" list", layout.member);
    }
    std::vector<Row> rows;
    for (const auto& entry : *entries) {
        if (!entry.is_object()) {
            return fail("an entry of \"{}\" is not an object", layout.member);
        }
        Row& row = rows.emplace_back();
        for (const auto& column : layout.columns) {
            row.push_back(cell(entry, column));
        }
    }
    return rows;
}

std::string render_listing(Listing listing, const std::vector<Answer>& answers, bool several_hosts)
{
    Table table(header(layout_of(listing), several_hosts));
    std::size_t number = 0;
    for (const auto& answer : answers) {
        for (const auto& row : answer.rows) {
            Row line{std::to_string(number++)};
            if (several_hosts) {
                line.push_back(answer.label);
            }
            line.insert(line.end(), row.begin(), row.end());
            table.add_row(std::move(line));
        }
    }
    return table.render();
}

[[nodiscard]] Result<std::string> tagged_json(std::string_view label, std::string_view body)
{
    auto reply = parse_object(body);
    if (!reply) {
        return std::unexpected(reply.error());
    }
    json tagged{{"host", label}};
    tagged.update(*reply);
    return tagged.dump();
}

} // namespace gitopper::ctl
