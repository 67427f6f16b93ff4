#include "ctl/render.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ctl/table.hpp"
#include "util/strings.hpp"

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

namespace {

// git diff's own colours: meta bold, hunk headers cyan, removed red, added green.
std::string colour_line(std::string_view line, bool colour)
{
    if (!colour) {
        return std::string(line);
    }
    const auto paint = [&](std::string_view code) {
        return fmt::format("\x1b[{}m{}\x1b[m", code, line);
    };
    if (line.starts_with("diff --git") || line.starts_with("index ") || line.starts_with("--- ") ||
        line.starts_with("+++ ") || line.starts_with("new file") ||
        line.starts_with("deleted file")) {
        return paint("1");
    }
    if (line.starts_with("@@")) {
        return paint("36");
    }
    if (line.starts_with('-')) {
        return paint("31");
    }
    if (line.starts_with('+')) {
        return paint("32");
    }
    return std::string(line);
}

std::string text_of(const json& reply, const char* key)
{
    const auto found = reply.find(key);
    return found != reply.end() && found->is_string() ? found->get<std::string>() : "";
}

} // namespace

[[nodiscard]] Result<std::string> render_diff(std::string_view body, bool colour)
{
    auto reply = parse_object(body);
    if (!reply) {
        return std::unexpected(reply.error());
    }
    const auto deployed = text_of(*reply, "deployed");
    const auto upstream = text_of(*reply, "upstream");
    std::string out = fmt::format("{}: deployed {}, upstream {}\n", text_of(*reply, "service"),
                                  deployed.substr(0, kShortHash), upstream.substr(0, kShortHash));
    if (const auto note = text_of(*reply, "note"); !note.empty()) {
        out += note + "\n";
    }
    if (deployed == upstream) {
        return out + "nothing to deploy\n";
    }
    const auto& commits = (*reply)["commits"];
    out += fmt::format("\n{} commit{}{}:\n", commits.size(), commits.size() == 1 ? "" : "s",
                       reply->value("more_commits", false) ? " (and more)" : "");
    for (const auto& commit : commits) {
        out += fmt::format("  {}  {}  ({})\n", text_of(commit, "hash").substr(0, kShortHash),
                           text_of(commit, "subject"), text_of(commit, "author"));
    }
    const auto& files = (*reply)["files"];
    out += fmt::format("\n{} file{} of its links:\n", files.size(), files.size() == 1 ? "" : "s");
    for (const auto& file : files) {
        out += fmt::format("  {}  {}\n", text_of(file, "status"), text_of(file, "path"));
    }
    out += fmt::format("\naction: {}\n", text_of(*reply, "action"));
    const auto diff = text_of(*reply, "diff");
    if (!diff.empty()) {
        out += "\n";
        for (const auto& line : split(diff, '\n')) {
            out += colour_line(line, colour) + "\n";
        }
        while (out.ends_with("\n\n")) {
            out.pop_back();
        }
    }
    if (reply->value("truncated", false)) {
        out += "[diff truncated: more than the daemon sends; see git diff on the host]\n";
    }
    return out;
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
