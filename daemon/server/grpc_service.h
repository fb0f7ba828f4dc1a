// posh.v1.Resolver over gRPC's callback API. Validates input on the gRPC thread, answers
// cache hits there, and finishes misses from the loop thread. Knows nothing of libcurl.
//
// Lookup and Verify, the RPCs on every XMPP connection's path, are raw methods: the
// request is read in place (wire.h) and a cache hit is answered with bytes kept from an
// earlier answer to the same entry (AnswerCache), so a hit builds no message objects. The
// bytes on the wire are those the generated code would write (tests/unit/server).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "posh/v1/resolver.grpc.pb.h"
#include "server/answer_cache.h"
#include "server/posh_service.h"
#include "util/mutex.h"

namespace posh::server {

// Parsed presented leaves, keyed by their DER bytes. X.509 parsing with OpenSSL 3 costs
// ~120 us per certificate (provider decoder look-ups), about 100x a cached Verify; XMPP
// peers present the same certificate on every connection, so Verify parses each distinct
// leaf once. Bounded (a full shard drops an arbitrary entry); only successful parses are
// kept; the DER is compared in full, so a hit is always the same certificate.
class LeafCache {
 public:
  static constexpr size_t kShards = 16;
  static constexpr size_t kPerShard = 64;

  std::shared_ptr<const core::Certificate> Get(std::string_view der);
  void Put(std::string_view der, std::shared_ptr<const core::Certificate> cert);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct alignas(64) Shard {
    util::SharedMutex mu;
    std::unordered_map<std::string, std::shared_ptr<const core::Certificate>, Hash, std::equal_to<>>
        map ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(size_t hash) { return shards_[hash % kShards]; }
  Shard shards_[kShards];
};

namespace v1 = posh::v1;
using ResolverServiceBase = v1::Resolver::WithRawCallbackMethod_Lookup<
    v1::Resolver::WithRawCallbackMethod_Verify<v1::Resolver::WithCallbackMethod_ListEntries<
        v1::Resolver::WithCallbackMethod_Evict<v1::Resolver::WithCallbackMethod_Flush<
            v1::Resolver::WithCallbackMethod_GetStats<v1::Resolver::Service>>>>>>;

class ResolverGrpcService final : public ResolverServiceBase {
 public:
  explicit ResolverGrpcService(PoshService& service) : service_(service) {}

  // Lookup and Verify requests larger than this are answered RESOURCE_EXHAUSTED and counted
  // (requests_too_large). gRPC's own limit (GrpcReceiveLimit) sits above it as a backstop.
  void SetMaxRequestBytes(size_t bytes) { max_request_bytes_ = bytes; }
  // gRPC's receive limit for `max_request_bytes`: twice it, so that every refusal up to
  // there is poshd's (counted, with a message naming the flag); larger ones gRPC refuses
  // before any method sees them, uncounted.
  static size_t GrpcReceiveLimit(size_t max_request_bytes) { return 2 * max_request_bytes; }

  // After this, new RPCs are answered UNAVAILABLE (shutdown in progress).
  void StopAccepting() { accepting_.store(false, std::memory_order_relaxed); }
  // RPCs accepted and not finished yet.
  uint64_t Active() const { return active_.load(std::memory_order_relaxed); }

  // Raw: `request` is a serialised LookupRequest / VerifyRequest, `response` receives a
  // serialised LookupResponse / VerifyResponse.
  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListEntries(grpc::CallbackServerContext* ctx,
                                        const posh::v1::ListEntriesRequest* request,
                                        posh::v1::ListEntriesResponse* response) override;
  grpc::ServerUnaryReactor* Evict(grpc::CallbackServerContext* ctx,
                                  const posh::v1::EvictRequest* request,
                                  posh::v1::EvictResponse* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* ctx,
                                  const posh::v1::FlushRequest* request,
                                  posh::v1::FlushResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const posh::v1::GetStatsRequest* request,
                                     posh::v1::GetStatsResponse* response) override;

 private:
  class MissReactor;
  // The default reactor, finished at once with UNAVAILABLE when shutting down. Otherwise
  // nullptr, the call counted active.
  grpc::ServerUnaryReactor* RefuseWhenStopping(grpc::CallbackServerContext* ctx);
  // The default reactor finished RESOURCE_EXHAUSTED (counted) when `request` is over
  // max_request_bytes_; nullptr otherwise.
  grpc::ServerUnaryReactor* RefuseTooLarge(grpc::CallbackServerContext* ctx,
                                           const grpc::ByteBuffer& request);
  bool Admit(grpc::ServerUnaryReactor* reactor);
  void Finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status);
  // INVALID_ARGUMENT, counted.
  void Reject(grpc::ServerUnaryReactor* reactor, const std::string& why);
  // Admit() plus R1/R2 normalisation of the request's key; false when already answered.
  bool AdmitKey(grpc::ServerUnaryReactor* reactor, std::string_view domain,
                std::string_view service, cache::Key* key);
  // Why a request is refused as INVALID_ARGUMENT: it did not parse (`parse_error`), or its
  // key is invalid (R1/R2). Empty when `*key` holds the normalised key.
  static std::string RequestError(std::string_view message, const std::string& parse_error,
                                  std::string_view domain, std::string_view service,
                                  cache::Key* key);
  // The default reactor, refused (counted) with `why`; CANCELLED, uncounted, when the client
  // has already given up.
  grpc::ServerUnaryReactor* RejectNow(grpc::CallbackServerContext* ctx, const std::string& why);
  // The serialised LookupResponse for `answer` (kept in answers_ when it is a fresh hit).
  grpc::Slice LookupAnswerBytes(const cache::Key& key, const LookupAnswer& answer);
  void SetLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                         grpc::ByteBuffer* response);
  void SetVerifyResponse(const cache::Key& key, const VerifyAnswer& answer,
                         grpc::ByteBuffer* response);

  PoshService& service_;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> active_{0};
  size_t max_request_bytes_ = SIZE_MAX;  // set before the server starts
  LeafCache leaves_;
  AnswerCache answers_;
};

// Fills a LookupResponse from a service answer (shared with tests and the snapshot view).
void FillLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                        posh::v1::LookupResponse* out);
// The VerifyResponse for `answer` around `record`, the serialised LookupResponse of
// answer.lookup: fields 1-7, 8 (`record`), 9, in field order, as three slices.
grpc::ByteBuffer VerifyResponseBuffer(const cache::Key& key, const VerifyAnswer& answer,
                                      const grpc::Slice& record);
// `message` serialised into one slice.
grpc::Slice SerializeToSlice(const google::protobuf::MessageLite& message);

}  // namespace posh::server
