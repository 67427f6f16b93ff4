#include "util/prometheus.hpp"

#include <gtest/gtest.h>

using namespace gitopper;

TEST(Prometheus, EscapesLabelValues)
{
    EXPECT_EQ(escape_label_value("plain"), "plain");
    EXPECT_EQ(escape_label_value("a\"b"), "a\\\"b");
    EXPECT_EQ(escape_label_value("a\\b"), "a\\\\b");
    EXPECT_EQ(escape_label_value("line\nbreak"), "line\\nbreak");
    EXPECT_EQ(escape_label_value("ünïcode {}=,"), "ünïcode {}=,");
}

TEST(Prometheus, FamilyAndSamples)
{
    MetricsText out;
    out.family("x_total", "counter", "Things.");
    out.sample("x_total", {{"service", "a\"b"}, {"code", "0"}}, 3);
    out.sample("x_total", {}, 0.25);
    EXPECT_EQ(out.text(), "# HELP x_total Things.\n# TYPE x_total counter\n"
                          "x_total{service=\"a\\\"b\",code=\"0\"} 3\n"
                          "x_total 0.25\n");
}

TEST(Prometheus, HistogramIsCumulativeWithInf)
{
    Histogram histogram({0.1, 1});
    histogram.observe(0.05);
    histogram.observe(0.5);
    histogram.observe(0.5);
    histogram.observe(7);
    MetricsText out;
    histogram.write(out, "d");
    EXPECT_EQ(out.text(), "d_bucket{le=\"0.1\"} 1\n"
                          "d_bucket{le=\"1\"} 3\n"
                          "d_bucket{le=\"+Inf\"} 4\n"
                          "d_sum 8.05\n"
                          "d_count 4\n");
}
