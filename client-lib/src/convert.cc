#include "convert.h"

#include <utility>

#include "stats_counters.h"

namespace posh::client_rpc {

namespace {

using posh::client::TimePoint;

std::optional<TimePoint> Time(bool present, const google::protobuf::Timestamp& ts) {
  if (!present) return std::nullopt;
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::seconds(ts.seconds()) + std::chrono::nanoseconds(ts.nanos())));
}

}  // namespace

posh::client::LookupResult FromProto(const posh::v1::LookupResponse& r) {
  posh::client::LookupResult out;
  out.domain = r.domain();
  out.service = r.service();
  out.status = static_cast<posh::client::LookupStatus>(r.status());
  out.delegated_to = r.delegated_to();
  out.format = static_cast<posh::client::DocumentFormat>(r.format());
  out.keys.reserve(r.keys_size());
  for (const auto& k : r.keys()) {
    posh::client::Key key;
    key.kid = k.kid();
    key.fingerprints.reserve(k.fingerprints_size());
    for (const auto& fp : k.fingerprints()) key.fingerprints.push_back({fp.hash(), fp.value()});
    key.not_after = Time(k.has_not_after(), k.not_after());
    key.key_type = k.key_type();
    key.has_certificate = k.has_certificate();
    out.keys.push_back(std::move(key));
  }
  out.expires_at = Time(r.has_expires_at(), r.expires_at());
  out.from_cache = r.from_cache();
  out.error = r.error();
  out.error_kind = static_cast<posh::client::ErrorKind>(r.error_kind());
  out.fetched_at = Time(r.has_fetched_at(), r.fetched_at());
  out.stale = r.stale();
  out.source_url = r.source_url();
  return out;
}

posh::client::VerifyResult FromProto(const posh::v1::VerifyResponse& r) {
  posh::client::VerifyResult out;
  out.verdict = static_cast<posh::client::Verdict>(r.verdict());
  out.domain = r.domain();
  out.service = r.service();
  out.delegated_to = r.delegated_to();
  out.reason = r.reason();
  out.matched_kid = r.matched_kid();
  out.matched_key_index = r.matched_key_index();
  if (r.has_record()) out.record = FromProto(r.record());
  out.from_cache = r.from_cache();
  return out;
}

posh::client::CacheEntry FromProto(const posh::v1::CacheEntry& e) {
  posh::client::CacheEntry out;
  out.domain = e.domain();
  out.service = e.service();
  out.status = static_cast<posh::client::LookupStatus>(e.status());
  out.expires_at = Time(e.has_expires_at(), e.expires_at());
  out.fetched_at = Time(e.has_fetched_at(), e.fetched_at());
  if (e.has_record()) out.record = FromProto(e.record());
  out.hits = e.hits();
  return out;
}

posh::client::Stats FromProto(const posh::v1::GetStatsResponse& s) {
  posh::client::Stats out;
  for (const auto& [name, value] : posh::client_rpc::StatsCounters(s)) {
    out.counters.push_back({name, value});
  }
  const auto& h = s.retrieval_latency();
  out.retrieval_latency.bucket_upper_ms.assign(h.bucket_upper_ms().begin(),
                                               h.bucket_upper_ms().end());
  out.retrieval_latency.counts.assign(h.counts().begin(), h.counts().end());
  out.retrieval_latency.p50_ms = h.p50_ms();
  out.retrieval_latency.p90_ms = h.p90_ms();
  out.retrieval_latency.p99_ms = h.p99_ms();
  out.retrieval_latency.sum_ms = h.sum_ms();
  out.started_at = Time(s.has_started_at(), s.started_at());
  return out;
}

posh::v1::LookupRequest ToProto(const posh::client::LookupRequest& r) {
  posh::v1::LookupRequest out;
  out.set_domain(r.domain);
  out.set_service(r.service);
  out.set_refresh(r.refresh);
  return out;
}

posh::v1::VerifyRequest ToProto(const posh::client::VerifyRequest& r) {
  posh::v1::VerifyRequest out;
  out.set_domain(r.domain);
  out.set_service(r.service);
  for (const auto& der : r.chain_der) out.add_presented_chain(der);
  return out;
}

}  // namespace posh::client_rpc
