#include "ctl/table.hpp"

#include <algorithm>

namespace gitopper::ctl {
namespace {

constexpr std::string_view kGap = "  ";

std::vector<std::size_t> column_widths(const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], display_width(row[i]));
        }
    }
    return widths;
}

std::string render_row(const std::vector<std::string>& row, const std::vector<std::size_t>& widths)
{
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) {
            line.append(widths[i] - display_width(row[i]), ' ');
            line += kGap;
        }
    }
    // An empty last cell (no INFO, say) would otherwise leave the padding of the one before.
    line.erase(line.find_last_not_of(' ') + 1);
    return line + '\n';
}

} // namespace

std::string printable(std::string text)
{
    std::replace_if(
        text.begin(), text.end(),
        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
    return text;
}

std::size_t display_width(const std::string& text)
{
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80; // not a continuation byte
    }));
}

Table::Table(std::vector<std::string> header)
{
    add_row(std::move(header));
}

void Table::add_row(std::vector<std::string> row)
{
    for (auto& cell : row) {
        cell = printable(std::move(cell));
    }
    m_rows.push_back(std::move(row));
}

std::string Table::render() const
{
    const auto widths = column_widths(m_rows);
    std::string text;
    for (const auto& row : m_rows) {
        text += render_row(row, widths);
    }
    return text;
}

} // namespace gitopper::ctl
