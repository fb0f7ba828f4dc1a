#include "server/grpc_service.h"

#include "core/domain.h"
#include "core/hash.h"
#include "util/text.h"

namespace posh::server {
namespace {

void SetTime(google::protobuf::Timestamp* ts, int64_t ms) {
  ts->set_seconds(ms / 1000);
  ts->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

// R1/R2 validation; on failure fills `status` with INVALID_ARGUMENT.
bool NormalizeKey(const std::string& domain, const std::string& service, cache::Key* key,
                  grpc::Status* status) {
  auto d = core::NormalizeDomain(domain);
  if (!d) {
    *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, SanitizeUtf8(d.error().message));
    return false;
  }
  auto s = core::NormalizeService(service);
  if (!s) {
    *status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, SanitizeUtf8(s.error().message));
    return false;
  }
  key->domain = std::move(d).value();
  key->service = std::move(s).value();
  return true;
}

posh::v1::LookupStatus ToProto(cache::EntryStatus s) {
  switch (s) {
    case cache::EntryStatus::kFound:
      return posh::v1::LOOKUP_STATUS_FOUND;
    case cache::EntryStatus::kNotFound:
      return posh::v1::LOOKUP_STATUS_NOT_FOUND;
    case cache::EntryStatus::kError:
      return posh::v1::LOOKUP_STATUS_ERROR;
  }
  return posh::v1::LOOKUP_STATUS_UNSPECIFIED;
}

posh::v1::Verdict ToProto(core::Verdict v) {
  switch (v) {
    case core::Verdict::kVerified:
      return posh::v1::VERDICT_VERIFIED;
    case core::Verdict::kNotVerified:
      return posh::v1::VERDICT_NOT_VERIFIED;
    case core::Verdict::kNoPosh:
      return posh::v1::VERDICT_NO_POSH;
    case core::Verdict::kError:
      return posh::v1::VERDICT_ERROR;
  }
  return posh::v1::VERDICT_UNSPECIFIED;
}

}  // namespace

std::shared_ptr<const core::Certificate> LeafCache::Get(std::string_view der) {
  const size_t h = std::hash<std::string_view>{}(der);
  Shard& s = ShardFor(h);
  std::shared_lock lock(s.mu);  // readers (every Verify of a known peer) never block each other
  auto it = s.map.find(der);
  return it == s.map.end() ? nullptr : it->second;
}

void LeafCache::Put(std::string_view der, std::shared_ptr<const core::Certificate> cert) {
  const size_t h = std::hash<std::string_view>{}(der);
  Shard& s = ShardFor(h);
  std::shared_ptr<const core::Certificate> dropped;  // released after the lock
  std::unique_lock lock(s.mu);
  if (s.map.size() >= kPerShard && s.map.find(der) == s.map.end()) {
    auto victim = s.map.begin();
    dropped = std::move(victim->second);
    s.map.erase(victim);
  }
  s.map.insert_or_assign(std::string(der), std::move(cert));
}

void FillLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                        posh::v1::LookupResponse* out) {
  const cache::Entry& e = *answer.entry;
  out->set_domain(key.domain);
  out->set_service(key.service);
  out->set_status(ToProto(e.status));
  out->set_from_cache(answer.from_cache);
  out->set_stale(answer.stale);
  if (e.fetched_at_ms > 0) SetTime(out->mutable_fetched_at(), e.fetched_at_ms);
  int64_t expires = answer.stale && e.stale_until_ms > 0 ? e.stale_until_ms : e.expires_at_ms;
  if (expires > 0) SetTime(out->mutable_expires_at(), expires);
  if (e.status == cache::EntryStatus::kError) {
    out->set_error(e.error);  // sanitised when the entry was made (PoshService)
    out->set_error_kind(static_cast<posh::v1::ErrorKind>(e.error_kind));
  }
  if (e.status != cache::EntryStatus::kFound || !e.record) return;
  const core::PoshRecord& r = *e.record;
  out->set_delegated_to(r.delegated_to);  // record text is sanitised once, when stored
  out->set_source_url(r.source_url);
  out->set_format(r.format == core::Format::kJwk ? posh::v1::DOCUMENT_FORMAT_JWK
                                                 : posh::v1::DOCUMENT_FORMAT_RFC7711);
  for (const auto& k : r.keys) {
    auto* pk = out->add_keys();
    pk->set_kid(k.kid);
    pk->set_key_type(k.kty);
    pk->set_has_certificate(k.has_certificate);
    if (k.not_after > 0) SetTime(pk->mutable_not_after(), k.not_after * 1000);
    for (const auto& fp : k.fingerprints) {
      auto* f = pk->add_fingerprints();
      f->set_hash(std::string(core::HashAlgName(fp.alg)));
      f->set_value(fp.value.data(), fp.value.size());
    }
  }
}

bool ResolverGrpcService::Admit(grpc::ServerUnaryReactor* reactor) {
  if (!accepting_.load(std::memory_order_relaxed)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "poshd is shutting down"));
    return false;
  }
  active_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ResolverGrpcService::Finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status) {
  reactor->Finish(status);
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void ResolverGrpcService::Reject(grpc::ServerUnaryReactor* reactor, const std::string& why) {
  service_.stats().invalid_requests.fetch_add(1, std::memory_order_relaxed);
  Finish(reactor, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
}

bool ResolverGrpcService::AdmitKey(grpc::ServerUnaryReactor* reactor, const std::string& domain,
                                   const std::string& service, cache::Key* key) {
  if (!Admit(reactor)) return false;
  grpc::Status bad;
  if (!NormalizeKey(domain, service, key, &bad)) {
    Reject(reactor, bad.error_message());
    return false;
  }
  return true;
}

grpc::ServerUnaryReactor* ResolverGrpcService::Lookup(grpc::CallbackServerContext* ctx,
                                                      const posh::v1::LookupRequest* request,
                                                      posh::v1::LookupResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  cache::Key key;
  if (!AdmitKey(reactor, request->domain(), request->service(), &key)) return reactor;
  service_.Lookup(key, request->refresh(), [this, reactor, response, key](LookupAnswer a) {
    FillLookupResponse(key, a, response);
    Finish(reactor, grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::Verify(grpc::CallbackServerContext* ctx,
                                                      const posh::v1::VerifyRequest* request,
                                                      posh::v1::VerifyResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  cache::Key key;
  if (!AdmitKey(reactor, request->domain(), request->service(), &key)) return reactor;
  if (request->presented_chain_size() == 0 || request->presented_chain(0).empty()) {
    Reject(reactor, "presented_chain is empty: give the DER leaf certificate first");
    return reactor;
  }
  const std::string& leaf_der = request->presented_chain(0);
  std::shared_ptr<const core::Certificate> shared_leaf = leaves_.Get(leaf_der);
  if (!shared_leaf) {
    auto leaf = core::ParseCertificateDer(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(leaf_der.data()), leaf_der.size()));
    if (!leaf) {
      Reject(reactor, "presented_chain[0] is not a DER certificate: " + leaf.error().message);
      return reactor;
    }
    shared_leaf = std::make_shared<const core::Certificate>(std::move(leaf).value());
    leaves_.Put(leaf_der, shared_leaf);
  }
  service_.Verify(key, std::move(shared_leaf), [this, reactor, response, key](VerifyAnswer v) {
    response->set_verdict(ToProto(v.verdict));
    response->set_domain(key.domain);
    response->set_service(key.service);
    if (v.lookup.entry->record) response->set_delegated_to(v.lookup.entry->record->delegated_to);
    response->set_reason(SanitizeUtf8(v.reason));
    response->set_matched_kid(v.match.kid);
    response->set_matched_key_index(v.match.matched ? v.match.key_index : -1);
    response->set_from_cache(v.lookup.from_cache);
    FillLookupResponse(key, v.lookup, response->mutable_record());
    Finish(reactor, grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::ListEntries(
    grpc::CallbackServerContext* ctx, const posh::v1::ListEntriesRequest* request,
    posh::v1::ListEntriesResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(reactor)) return reactor;
  std::string filter;
  if (!request->domain().empty()) {
    auto d = core::NormalizeDomain(request->domain());
    if (!d) {
      Finish(reactor,
             grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, SanitizeUtf8(d.error().message)));
      return reactor;
    }
    filter = std::move(d).value();
  }
  size_t page = request->page_size() <= 0 ? 100 : std::min(request->page_size(), 1000);
  std::string next;
  auto entries = service_.store().List(filter, request->page_token(), page, &next);
  for (const auto& le : entries) {
    auto* ce = response->add_entries();
    ce->set_domain(le.key.domain);
    ce->set_service(le.key.service);
    ce->set_status(ToProto(le.entry->status));
    ce->set_hits(le.hits);
    int64_t exp = std::max(le.entry->expires_at_ms, le.entry->stale_until_ms);
    if (exp > 0) SetTime(ce->mutable_expires_at(), exp);
    if (le.entry->fetched_at_ms > 0) SetTime(ce->mutable_fetched_at(), le.entry->fetched_at_ms);
    bool stale =
        le.entry->stale_until_ms > 0 && service_.clock().NowMs() >= le.entry->expires_at_ms;
    FillLookupResponse(le.key, LookupAnswer{le.entry, true, stale}, ce->mutable_record());
  }
  response->set_next_page_token(next);
  response->set_total(service_.store().Size());
  Finish(reactor, grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::Evict(grpc::CallbackServerContext* ctx,
                                                     const posh::v1::EvictRequest* request,
                                                     posh::v1::EvictResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  cache::Key key;
  if (!AdmitKey(reactor, request->domain(), request->service(), &key)) return reactor;
  response->set_evicted(service_.store().Evict(key));
  Finish(reactor, grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::Flush(grpc::CallbackServerContext* ctx,
                                                     const posh::v1::FlushRequest*,
                                                     posh::v1::FlushResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(reactor)) return reactor;
  response->set_flushed(service_.store().Flush());
  Finish(reactor, grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::GetStats(grpc::CallbackServerContext* ctx,
                                                        const posh::v1::GetStatsRequest*,
                                                        posh::v1::GetStatsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  if (!Admit(reactor)) return reactor;
  auto& s = service_.stats();
  auto r = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  response->set_lookups(r(s.lookups));
  response->set_verifies(r(s.verifies));
  response->set_cache_hits(r(s.cache_hits));
  response->set_cache_misses(r(s.cache_misses));
  response->set_fetches(r(s.fetches));
  response->set_coalesced(r(s.coalesced));
  response->set_in_flight(r(s.in_flight));
  response->set_errors(r(s.errors));
  response->set_refreshes(r(s.refreshes));
  response->set_stale_served(r(s.stale_served));
  response->set_not_found(r(s.not_found));
  response->set_invalid_requests(r(s.invalid_requests));
  SetTime(response->mutable_started_at(), s.started_at_ms);
  auto st = service_.store().Stats();
  response->set_entries(st.entries);
  response->set_evictions(st.evictions);
  auto* h = response->mutable_retrieval_latency();
  auto counts = s.retrieval_latency.Counts();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i + 1 < counts.size()) h->add_bucket_upper_ms(LatencyHistogram::kUpperMs[i]);
    h->add_counts(counts[i]);
  }
  h->set_p50_ms(s.retrieval_latency.Percentile(0.50));
  h->set_p90_ms(s.retrieval_latency.Percentile(0.90));
  h->set_p99_ms(s.retrieval_latency.Percentile(0.99));
  Finish(reactor, grpc::Status::OK);
  return reactor;
}

}  // namespace posh::server
