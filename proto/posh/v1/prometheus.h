// The Prometheus text exposition (format 0.0.4) of a posh.v1.GetStatsResponse: the one
// formatter behind both `poshctl stats --prometheus` (node_exporter's textfile collector)
// and poshd's --metrics-listen endpoint, so the two outputs are the same bytes for the same
// snapshot. Pure: no I/O, no clock.
//
// Names follow Prometheus' conventions: prefix poshd_, counters end in _total, units in the
// name and in base units (seconds). Every counter and gauge of GetStatsResponse appears,
// and the retrieval latency as a histogram (poshd_retrieval_duration_seconds: cumulative
// _bucket{le="..."} ending in +Inf, _sum, _count). The p50/p90/p99 fields are not
// exported: they are bucket bounds derived from the same buckets, and histogram_quantile()
// computes them (over any range) from the series.
#pragma once

#include <string>

#include "posh/v1/resolver.pb.h"

namespace posh::metrics {

// The Content-Type of the exposition over HTTP.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string FormatPrometheus(const v1::GetStatsResponse& stats);

// A sample value as the exposition writes it: the shortest text that reads back as the same
// double; "+Inf", "-Inf", "NaN" for the special values.
std::string FormatPrometheusValue(double value);

}  // namespace posh::metrics
