#include "util/prometheus.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace gitopper {
namespace {

// Integers print without a fraction; everything else with enough digits to round-trip.
std::string number(double value)
{
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    if (std::isnan(value)) {
        return "NaN";
    }
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        return fmt::format("{:.0f}", value);
    }
    return fmt::format("{}", value);
}

} // namespace

std::string escape_label_value(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
    return out;
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help)
{
    m_text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsText::sample(std::string_view name, const Labels& labels, double value)
{
    m_text += name;
    if (!labels.empty()) {
        m_text += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
            m_text += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", labels[i].first,
                                  escape_label_value(labels[i].second));
        }
        m_text += '}';
    }
    m_text += ' ';
    m_text += number(value);
    m_text += '\n';
}

void MetricsText::histogram(std::string_view name, std::span<const double> bounds,
                            std::span<const std::uint64_t> counts, double sum)
{
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        const double le = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
        sample(fmt::format("{}_bucket", name), {{"le", number(le)}},
               static_cast<double>(cumulative));
    }
    sample(fmt::format("{}_sum", name), {}, sum);
    sample(fmt::format("{}_count", name), {}, static_cast<double>(cumulative));
}

Histogram::Histogram(std::vector<double> bounds)
    : m_bounds(std::move(bounds)), m_counts(m_bounds.size() + 1, 0)
{
}

void Histogram::observe(double value)
{
    std::size_t bucket = 0;
    while (bucket < m_bounds.size() && value > m_bounds[bucket]) {
        ++bucket;
    }
    std::lock_guard lock(m_mutex);
    ++m_counts[bucket];
    m_sum += value;
}

void Histogram::write(MetricsText& out, std::string_view name) const
{
    std::lock_guard lock(m_mutex);
    out.histogram(name, m_bounds, m_counts, m_sum);
}

} // namespace gitopper
