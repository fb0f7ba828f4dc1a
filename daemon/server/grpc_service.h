// posh.v1.Resolver over gRPC's callback API. Validates input on the gRPC thread, answers
// cache hits there, and finishes misses from the loop thread. Knows nothing of libcurl.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "posh/v1/resolver.grpc.pb.h"
#include "server/posh_service.h"

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
    std::shared_mutex mu;
    std::unordered_map<std::string, std::shared_ptr<const core::Certificate>, Hash, std::equal_to<>>
        map;
  };
  Shard& ShardFor(size_t hash) { return shards_[hash % kShards]; }
  Shard shards_[kShards];
};

class ResolverGrpcService final : public posh::v1::Resolver::CallbackService {
 public:
  explicit ResolverGrpcService(PoshService& service) : service_(service) {}

  // After this, new RPCs are answered UNAVAILABLE (shutdown in progress).
  void StopAccepting() { accepting_.store(false, std::memory_order_relaxed); }
  // RPCs accepted and not finished yet.
  uint64_t Active() const { return active_.load(std::memory_order_relaxed); }

  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx,
                                   const posh::v1::LookupRequest* request,
                                   posh::v1::LookupResponse* response) override;
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* ctx,
                                   const posh::v1::VerifyRequest* request,
                                   posh::v1::VerifyResponse* response) override;
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
  bool Admit(grpc::ServerUnaryReactor* reactor);
  void Finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status);
  // INVALID_ARGUMENT, counted.
  void Reject(grpc::ServerUnaryReactor* reactor, const std::string& why);
  // Admit() plus R1/R2 normalisation of the request's key; false when already answered.
  bool AdmitKey(grpc::ServerUnaryReactor* reactor, const std::string& domain,
                const std::string& service, cache::Key* key);

  PoshService& service_;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> active_{0};
  LeafCache leaves_;
};

// Fills a LookupResponse from a service answer (shared with tests and the snapshot view).
void FillLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                        posh::v1::LookupResponse* out);

}  // namespace posh::server
