// posh.v1.Resolver over gRPC's callback API. Validates input on the gRPC thread, answers
// cache hits there, and finishes misses from the loop thread. Knows nothing of libcurl.
#pragma once

#include <atomic>

#include "posh/v1/resolver.grpc.pb.h"
#include "server/posh_service.h"

namespace posh::server {

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

  PoshService& service_;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> active_{0};
};

// Fills a LookupResponse from a service answer (shared with tests and the snapshot view).
void FillLookupResponse(const cache::Key& key, const LookupAnswer& answer,
                        posh::v1::LookupResponse* out);

}  // namespace posh::server
