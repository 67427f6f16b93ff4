#pragma once
// The Prometheus text exposition format (version 0.0.4), written by hand: prometheus-cpp is
// not packaged. Families are written whole (HELP, TYPE, samples) in the order added.

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gitopper {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Escapes a label value: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

class MetricsText {
public:
    // Starts a family; type is "counter", "gauge" or "histogram".
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, const Labels& labels, double value);
    // A histogram's _bucket (cumulative, with +Inf), _sum and _count samples.
    void histogram(std::string_view name, std::span<const double> bounds,
                   std::span<const std::uint64_t> counts, double sum);

    const std::string& text() const { return m_text; }

private:
    std::string m_text;
};

// Fixed-bucket histogram, safe to observe from several threads.
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double value);
    void write(MetricsText& out, std::string_view name) const;

private:
    std::vector<double> m_bounds;
    mutable std::mutex m_mutex;
    std::vector<std::uint64_t> m_counts; // per bucket, not cumulative; last is +Inf
    double m_sum = 0;
};

} // namespace gitopper
