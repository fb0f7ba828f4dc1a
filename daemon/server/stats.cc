#include "server/stats.h"

namespace posh::server {

void FillStats(PoshService& service, v1::GetStatsResponse* out) {
  auto& s = service.stats();
  auto r = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  out->set_lookups(r(s.lookups));
  out->set_verifies(r(s.verifies));
  out->set_cache_hits(r(s.cache_hits));
  out->set_cache_misses(r(s.cache_misses));
  out->set_fetches(r(s.fetches));
  out->set_coalesced(r(s.coalesced));
  out->set_in_flight(r(s.in_flight));
  out->set_errors(r(s.errors));
  out->set_refreshes(r(s.refreshes));
  out->set_stale_served(r(s.stale_served));
  out->set_not_found(r(s.not_found));
  out->set_invalid_requests(r(s.invalid_requests));
  out->set_queued(r(s.queued));
  out->set_dropped(r(s.dropped));
  out->set_displaced(r(s.displaced));
  out->set_reference_shared(r(s.reference_shared));
  out->set_reference_fetches(r(s.reference_fetches));
  out->set_connections(r(s.connections));
  out->set_connections_refused(r(s.connections_refused));
  out->set_requests_too_large(r(s.requests_too_large));
  out->set_l2_hits(r(s.l2.hits));
  out->set_l2_misses(r(s.l2.misses));
  out->set_l2_writes(r(s.l2.writes));
  out->set_l2_errors(r(s.l2.errors));
  out->set_l2_bad_macs(r(s.l2.bad_macs));
  out->mutable_started_at()->set_seconds(s.started_at_ms / 1000);
  out->mutable_started_at()->set_nanos(static_cast<int32_t>((s.started_at_ms % 1000) * 1000000));
  auto st = service.store().Stats();
  out->set_entries(st.entries);
  out->set_evictions(st.evictions);
  auto* h = out->mutable_retrieval_latency();
  auto counts = s.retrieval_latency.Counts();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i + 1 < counts.size()) h->add_bucket_upper_ms(LatencyHistogram::kUpperMs[i]);
    h->add_counts(counts[i]);
  }
  h->set_sum_ms(s.retrieval_latency.SumMs());
  h->set_p50_ms(s.retrieval_latency.Percentile(0.50));
  h->set_p90_ms(s.retrieval_latency.Percentile(0.90));
  h->set_p99_ms(s.retrieval_latency.Percentile(0.99));
}

}  // namespace posh::server
