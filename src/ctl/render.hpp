#pragma once
// Turns the control API's JSON replies (SPEC §4) into gitopperctl's tables. Pure: no I/O.

#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gitopper::ctl {

enum class Listing { machines, services, history, diff };

using Row = std::vector<std::string>;

// One host's rows, without the '#' and MACHINE columns.
struct Answer {
    std::string label; // the host as the user wrote it
    std::vector<Row> rows;
};

// The rows of one reply; an error if the body is not the JSON this listing expects.
[[nodiscard]] Result<std::vector<Row>> rows_of(Listing listing, std::string_view body);

// The aligned table of every answer, numbered from 0. With several hosts a first column says
// which host each row came from.
std::string render_listing(Listing listing, const std::vector<Answer>& answers, bool several_hosts);

// A /list/diff reply as text to read: the commits, the files, the action, then the unified
// diff, coloured as git colours it when `colour` (stdout is a terminal).
[[nodiscard]] Result<std::string> render_diff(std::string_view body, bool colour);

// One host's reply as a compact JSON object with a "host" member added, for -m with several
// hosts (printed as one array).
[[nodiscard]] Result<std::string> tagged_json(std::string_view label, std::string_view body);

} // namespace gitopper::ctl
