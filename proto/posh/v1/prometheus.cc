#include "posh/v1/prometheus.h"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace posh::metrics {
namespace {

using Getter = uint64_t (v1::GetStatsResponse::*)() const;

struct Scalar {
  const char* name;
  const char* type;  // "counter" or "gauge"
  const char* help;
  Getter get;
};

// Every uint64 field of GetStatsResponse (tests/unit/server/prometheus_test.cc checks that
// none is missing).
constexpr Scalar kScalars[] = {
    {"poshd_lookups_total", "counter",
     "Lookups answered, those made for Verify included (cache hits plus misses).",
     &v1::GetStatsResponse::lookups},
    {"poshd_verifies_total", "counter", "Verify requests answered.",
     &v1::GetStatsResponse::verifies},
    {"poshd_cache_hits_total", "counter", "Lookups answered from the cache.",
     &v1::GetStatsResponse::cache_hits},
    {"poshd_cache_misses_total", "counter",
     "Lookups the cache could not answer (they joined or started a retrieval).",
     &v1::GetStatsResponse::cache_misses},
    {"poshd_fetches_total", "counter", "HTTP requests sent to retrieve POSH documents.",
     &v1::GetStatsResponse::fetches},
    {"poshd_coalesced_total", "counter", "Lookups that joined a retrieval already in flight.",
     &v1::GetStatsResponse::coalesced},
    {"poshd_errors_total", "counter",
     "Retrievals that ended in an error (network, TLS, HTTP status, limits, document).",
     &v1::GetStatsResponse::errors},
    {"poshd_not_found_total", "counter", "Retrievals that found no POSH document published.",
     &v1::GetStatsResponse::not_found},
    {"poshd_refreshes_total", "counter",
     "Background refreshes started for entries near the end of their lifetime.",
     &v1::GetStatsResponse::refreshes},
    {"poshd_stale_served_total", "counter",
     "Answers served from a stale entry while its refresh failed transiently.",
     &v1::GetStatsResponse::stale_served},
    {"poshd_evictions_total", "counter", "Cache entries evicted to stay within --max-entries.",
     &v1::GetStatsResponse::evictions},
    {"poshd_invalid_requests_total", "counter",
     "Requests refused as invalid (bad domain, service or certificate chain).",
     &v1::GetStatsResponse::invalid_requests},
    {"poshd_dropped_total", "counter",
     "Retrievals dropped or cancelled because nobody waited for them any more, or the queue was "
     "full.",
     &v1::GetStatsResponse::dropped},
    {"poshd_displaced_total", "counter",
     "Running retrievals cancelled to make room for new work (ran longest, past the jostle "
     "timeout).",
     &v1::GetStatsResponse::displaced},
    {"poshd_reference_shared_total", "counter",
     "Delegating lookups served by a reference target already fetched or in flight (R11).",
     &v1::GetStatsResponse::reference_shared},
    {"poshd_reference_fetches_total", "counter", "Retrievals of reference targets started (R11).",
     &v1::GetStatsResponse::reference_fetches},
    {"poshd_connections_refused_total", "counter",
     "Client connections refused over --max-connections.",
     &v1::GetStatsResponse::connections_refused},
    {"poshd_requests_too_large_total", "counter",
     "Requests refused as RESOURCE_EXHAUSTED because they exceed the message size limit.",
     &v1::GetStatsResponse::requests_too_large},
    {"poshd_l2_hits_total", "counter",
     "Local misses answered from the second tier (Redis): authenticated and still servable.",
     &v1::GetStatsResponse::l2_hits},
    {"poshd_l2_misses_total", "counter",
     "Second-tier reads that found nothing servable (absent, or expired by the local clock).",
     &v1::GetStatsResponse::l2_misses},
    {"poshd_l2_writes_total", "counter", "Fresh results written to the second tier.",
     &v1::GetStatsResponse::l2_writes},
    {"poshd_l2_errors_total", "counter",
     "Second-tier failures: not connected, read budget exceeded, refused writes.",
     &v1::GetStatsResponse::l2_errors},
    {"poshd_l2_bad_macs_total", "counter",
     "Second-tier entries ignored because their MAC was missing or wrong.",
     &v1::GetStatsResponse::l2_bad_macs},
    {"poshd_retrievals_queued", "gauge", "Retrievals waiting for a retrieval slot.",
     &v1::GetStatsResponse::queued},
    {"poshd_connections", "gauge", "Client connections open.", &v1::GetStatsResponse::connections},
    {"poshd_cache_entries", "gauge", "Entries in the cache.", &v1::GetStatsResponse::entries},
    {"poshd_retrievals_in_flight", "gauge", "Retrievals running or waiting for a slot.",
     &v1::GetStatsResponse::in_flight},
};

constexpr char kHistogram[] = "poshd_retrieval_duration_seconds";

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

}  // namespace

std::string FormatPrometheusValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "NaN";  // cannot happen: 64 bytes hold any double
  return std::string(buf, end);
}

std::string FormatPrometheus(const v1::GetStatsResponse& stats) {
  std::string out;
  out.reserve(4096);
  for (const Scalar& m : kScalars) {
    Header(out, m.name, m.type, m.help);
    out.append(m.name).append(" ").append(std::to_string((stats.*m.get)())).append("\n");
  }

  // The proto carries per-bucket counts over millisecond upper bounds (the count after the
  // last bound is the +Inf bucket); Prometheus wants cumulative counts over bounds in
  // seconds. A bound that is not finite or not above the previous one is left out: its
  // count then belongs to the next bucket written, which keeps every "le" cumulative count
  // exact. Counts beyond the bounds all go to +Inf.
  const auto& h = stats.retrieval_latency();
  Header(out, kHistogram, "histogram",
         "Time from the start of a retrieval to its result, waiting for a slot included.");
  uint64_t cumulative = 0;
  double previous = -INFINITY;
  for (int i = 0; i < h.counts_size(); ++i) {
    cumulative += h.counts(i);
    if (i >= h.bucket_upper_ms_size()) continue;
    const double upper_ms = h.bucket_upper_ms(i);
    if (!std::isfinite(upper_ms) || upper_ms <= previous) continue;
    previous = upper_ms;
    out.append(kHistogram)
        .append("_bucket{le=\"")
        .append(FormatPrometheusValue(upper_ms / 1000.0))
        .append("\"} ")
        .append(std::to_string(cumulative))
        .append("\n");
  }
  out.append(kHistogram).append("_bucket{le=\"+Inf\"} ").append(std::to_string(cumulative));
  out.append("\n");
  out.append(kHistogram).append("_sum ").append(FormatPrometheusValue(h.sum_ms() / 1000.0));
  out.append("\n");
  out.append(kHistogram).append("_count ").append(std::to_string(cumulative)).append("\n");

  const auto& t = stats.started_at();
  Header(out, "poshd_start_time_seconds", "gauge",
         "When poshd started, in seconds since the Unix epoch.");
  out.append("poshd_start_time_seconds ")
      .append(FormatPrometheusValue(static_cast<double>(t.seconds()) + t.nanos() / 1e9))
      .append("\n");
  return out;
}

}  // namespace posh::metrics
