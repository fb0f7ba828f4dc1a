#include "server/grpc_service.h"

#include <grpc/slice.h>

#include "core/domain.h"
#include "core/hash.h"
#include "server/stats.h"
#include "server/wire.h"
#include "util/text.h"

namespace posh::server {
namespace {

void SetTime(google::protobuf::Timestamp* ts, int64_t ms) {
  ts->set_seconds(ms / 1000);
  ts->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

// R1/R2 validation; on failure fills `status` with INVALID_ARGUMENT.
bool NormalizeKey(std::string_view domain, std::string_view service, cache::Key* key,
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

// A raw request's bytes in one piece: its only slice when it has one (no copy), else a
// flattened copy. An unusable buffer reads as empty (then the domain is missing).
class RequestBytes {
 public:
  explicit RequestBytes(const grpc::ByteBuffer& buffer) {
    if (!buffer.TrySingleSlice(&slice_).ok() && !buffer.DumpToSingleSlice(&slice_).ok()) {
      slice_ = grpc::Slice();
    }
  }
  std::string_view view() const {
    return {reinterpret_cast<const char*>(slice_.begin()), slice_.size()};
  }

 private:
  grpc::Slice slice_;
};

void SetSingleSlice(grpc::Slice slice, grpc::ByteBuffer* response) {
  grpc::ByteBuffer buffer(&slice, 1);
  response->Swap(&buffer);
}

}  // namespace

grpc::Slice SerializeToSlice(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  grpc_slice slice = grpc_slice_malloc(size);
  message.SerializeWithCachedSizesToArray(GRPC_SLICE_START_PTR(slice));
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

grpc::ByteBuffer VerifyResponseBuffer(const cache::Key& key, const VerifyAnswer& answer,
                                      const grpc::Slice& record) {
  // posh.v1.VerifyResponse field numbers; proto3 leaves default values out.
  std::string head;
  head.reserve(64 + key.domain.size() + key.service.size() + answer.reason.size());
  const auto verdict = ToProto(answer.verdict);
  if (verdict != 0) wire::AppendVarintField(&head, 1, static_cast<uint64_t>(verdict));
  if (!key.domain.empty()) wire::AppendBytesField(&head, 2, key.domain);
  if (!key.service.empty()) wire::AppendBytesField(&head, 3, key.service);
  const cache::Entry& e = *answer.lookup.entry;
  if (e.record && !e.record->delegated_to.empty())
    wire::AppendBytesField(&head, 4, e.record->delegated_to);
  if (!answer.reason.empty()) wire::AppendBytesField(&head, 5, SanitizeUtf8(answer.reason));
  if (!answer.match.kid.empty()) wire::AppendBytesField(&head, 6, answer.match.kid);
  const int32_t index = answer.match.matched ? answer.match.key_index : -1;
  if (index != 0) wire::AppendInt32Field(&head, 7, index);
  wire::AppendLengthPrefix(&head, 8, record.size());
  grpc::Slice slices[3] = {grpc::Slice(head), record, grpc::Slice()};
  size_t n = 2;
  if (answer.lookup.from_cache) {
    std::string tail;
    wire::AppendVarintField(&tail, 9, 1);
    slices[n++] = grpc::Slice(tail);
  }
  return grpc::ByteBuffer(slices, n);
}

std::shared_ptr<const core::Certificate> LeafCache::Get(std::string_view der) {
  const size_t h = std::hash<std::string_view>{}(der);
  Shard& s = ShardFor(h);
  util::ReaderMutexLock lock(
      &s.mu);  // readers (every Verify of a known peer) never block each other
  auto it = s.map.find(der);
  return it == s.map.end() ? nullptr : it->second;
}

void LeafCache::Put(std::string_view der, std::shared_ptr<const core::Certificate> cert) {
  const size_t h = std::hash<std::string_view>{}(der);
  Shard& s = ShardFor(h);
  std::shared_ptr<const core::Certificate> dropped;  // released after the lock
  util::WriterMutexLock lock(&s.mu);
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

// The reactor of a Lookup or Verify that missed the cache. Two parties may finish it: the
// loop thread with the answer, or gRPC's OnCancel when the client cancels or its deadline
// passes; whichever claims `done` first finishes it, the other does nothing. A cancelled
// call abandons its ticket, so a retrieval nobody waits for any more is dropped
// (PoshService::Abandon). The answer callback keeps `done` alive on its own: the reactor is
// deleted (OnDone) once finished, possibly before the loop gets to the answer.
class ResolverGrpcService::MissReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit MissReactor(ResolverGrpcService& owner)
      : owner_(owner), done_(std::make_shared<std::atomic<bool>>(false)) {}

  // Wraps the code that fills the response: runs it and finishes the call with OK, unless
  // the call was cancelled first.
  template <typename Answer, typename Fill>
  std::function<void(Answer)> Answerer(Fill fill) {
    return [owner = &owner_, self = this, done = done_, fill = std::move(fill)](Answer a) {
      if (done->exchange(true, std::memory_order_acq_rel)) return;
      fill(a);
      owner->Finish(self, grpc::Status::OK);
    };
  }
  void SetTicket(PoshService::MissTicket ticket) {
    ticket_.store(ticket, std::memory_order_release);
  }

  void OnCancel() override {
    if (done_->exchange(true, std::memory_order_acq_rel)) return;
    owner_.service_.Abandon(ticket_.load(std::memory_order_acquire));
    owner_.Finish(this, grpc::Status(grpc::StatusCode::CANCELLED,
                                     "cancelled by the client or its deadline passed"));
  }
  void OnDone() override { delete this; }

 private:
  ResolverGrpcService& owner_;
  std::shared_ptr<std::atomic<bool>> done_;
  std::atomic<PoshService::MissTicket> ticket_{0};
};

grpc::ServerUnaryReactor* ResolverGrpcService::RefuseWhenStopping(
    grpc::CallbackServerContext* ctx) {
  if (!accepting_.load(std::memory_order_relaxed)) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "poshd is shutting down"));
    return reactor;
  }
  active_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

grpc::ServerUnaryReactor* ResolverGrpcService::RefuseTooLarge(grpc::CallbackServerContext* ctx,
                                                              const grpc::ByteBuffer& request) {
  const size_t size = request.Length();
  if (size <= max_request_bytes_) return nullptr;
  service_.stats().requests_too_large.fetch_add(1, std::memory_order_relaxed);
  auto* reactor = ctx->DefaultReactor();
  Finish(reactor, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "request of " + std::to_string(size) + " bytes is over the " +
                                   std::to_string(max_request_bytes_) +
                                   "-byte limit (--max-request-bytes)"));
  return reactor;
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

std::string ResolverGrpcService::RequestError(std::string_view message,
                                              const std::string& parse_error,
                                              std::string_view domain, std::string_view service,
                                              cache::Key* key) {
  if (!parse_error.empty()) return "malformed " + std::string(message) + ": " + parse_error;
  grpc::Status invalid;
  if (!NormalizeKey(domain, service, key, &invalid)) return invalid.error_message();
  return {};
}

grpc::ServerUnaryReactor* ResolverGrpcService::RejectNow(grpc::CallbackServerContext* ctx,
                                                         const std::string& why) {
  auto* reactor = ctx->DefaultReactor();
  if (ctx->IsCancelled()) {
    // The client gave up (cancel, deadline) before the call was served: its request may not
    // even be complete, so what did not parse is not counted as invalid. Checked here, on
    // the refusal path only, not on every request.
    Finish(reactor, grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before it was served"));
    return reactor;
  }
  Reject(reactor, why);
  return reactor;
}

bool ResolverGrpcService::AdmitKey(grpc::ServerUnaryReactor* reactor, std::string_view domain,
                                   std::string_view service, cache::Key* key) {
  if (!Admit(reactor)) return false;
  const std::string why = RequestError("", "", domain, service, key);
  if (why.empty()) return true;
  Reject(reactor, why);
  return false;
}

grpc::Slice ResolverGrpcService::LookupAnswerBytes(const cache::Key& key,
                                                   const LookupAnswer& answer) {
  // Only a fresh hit is kept: its bytes depend on nothing but the entry and the key.
  const bool keep = answer.from_cache && !answer.stale;
  grpc::Slice bytes;
  if (keep && answers_.Get(key, answer.entry, &bytes)) return bytes;
  posh::v1::LookupResponse message;
  FillLookupResponse(key, answer, &message);
  bytes = SerializeToSlice(message);
  if (keep) answers_.Put(key, answer.entry, bytes);
  return bytes;
}

void ResolverGrpcService::SetLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                                            grpc::ByteBuffer* response) {
  SetSingleSlice(LookupAnswerBytes(key, answer), response);
}

void ResolverGrpcService::SetVerifyResponse(const cache::Key& key, const VerifyAnswer& answer,
                                            grpc::ByteBuffer* response) {
  grpc::ByteBuffer buffer =
      VerifyResponseBuffer(key, answer, LookupAnswerBytes(key, answer.lookup));
  response->Swap(&buffer);
}

grpc::ServerUnaryReactor* ResolverGrpcService::Lookup(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  if (auto* refused = RefuseWhenStopping(ctx)) return refused;
  if (auto* refused = RefuseTooLarge(ctx, *request)) return refused;
  const RequestBytes bytes(*request);
  wire::LookupRequestView req;
  cache::Key key;
  if (const std::string why =
          RequestError("LookupRequest", wire::ParseLookupRequest(bytes.view(), &req), req.domain,
                       req.service, &key);
      !why.empty())
    return RejectNow(ctx, why);
  LookupAnswer hit;
  if (!req.refresh && service_.LookupCached(key, &hit)) {  // the hot path: no callback object
    auto* reactor = ctx->DefaultReactor();
    SetLookupResponse(key, hit, response);
    Finish(reactor, grpc::Status::OK);
    return reactor;
  }
  auto* reactor = new MissReactor(*this);
  reactor->SetTicket(service_.LookupMiss(
      key, req.refresh,
      reactor->Answerer<LookupAnswer>(
          [this, response, key](const LookupAnswer& a) { SetLookupResponse(key, a, response); })));
  return reactor;
}

grpc::ServerUnaryReactor* ResolverGrpcService::Verify(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  if (auto* refused = RefuseWhenStopping(ctx)) return refused;
  if (auto* refused = RefuseTooLarge(ctx, *request)) return refused;
  const RequestBytes bytes(*request);
  wire::VerifyRequestView req;
  cache::Key key;
  if (const std::string why =
          RequestError("VerifyRequest", wire::ParseVerifyRequest(bytes.view(), &req), req.domain,
                       req.service, &key);
      !why.empty())
    return RejectNow(ctx, why);
  if (req.chain_size == 0 || req.leaf.empty())
    return RejectNow(ctx, "presented_chain is empty: give the DER leaf certificate first");
  std::shared_ptr<const core::Certificate> leaf = leaves_.Get(req.leaf);
  if (!leaf) {
    auto parsed = core::ParseCertificateDer(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(req.leaf.data()), req.leaf.size()));
    if (!parsed)
      return RejectNow(ctx,
                       "presented_chain[0] is not a DER certificate: " + parsed.error().message);
    leaf = std::make_shared<const core::Certificate>(std::move(parsed).value());
    leaves_.Put(req.leaf, leaf);
  }
  VerifyAnswer hit;
  if (service_.VerifyCached(key, *leaf, &hit)) {  // the hot path: no callback object
    auto* reactor = ctx->DefaultReactor();
    SetVerifyResponse(key, hit, response);
    Finish(reactor, grpc::Status::OK);
    return reactor;
  }
  // The callback keeps nothing of `req`: it points into the request bytes.
  auto* reactor = new MissReactor(*this);
  reactor->SetTicket(service_.VerifyMiss(
      key, std::move(leaf),
      reactor->Answerer<VerifyAnswer>(
          [this, response, key](const VerifyAnswer& v) { SetVerifyResponse(key, v, response); })));
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
  FillStats(service_, response);
  Finish(reactor, grpc::Status::OK);
  return reactor;
}

}  // namespace posh::server
