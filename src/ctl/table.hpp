#pragma once
// A plain text table: columns two spaces apart, each as wide as its widest cell, like the
// Go tool's output, so scripts that cut columns keep working.

#include <string>
#include <vector>

namespace gitopper::ctl {

class Table {
public:
    explicit Table(std::vector<std::string> header);

    // Cells go through printable(): a value from the server must not break the alignment.
    void add_row(std::vector<std::string> row);

    // The header and every row, each line ending in '\n', without trailing blanks.
    std::string render() const;

private:
    std::vector<std::vector<std::string>> m_rows; // the header first
};

// `text` with every control character (newlines, escapes) turned into a space: what a server
// sends must not reach the terminal as an escape sequence.
std::string printable(std::string text);

// The width of `text` on a terminal, counting UTF-8 code points rather than bytes.
std::size_t display_width(const std::string& text);

} // namespace gitopper::ctl
