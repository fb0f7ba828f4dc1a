// The asynchronous calls of one posh_client (posh_lookup_start, posh_verify_start, ...):
// calls in flight on gRPC's callback API, the queue of finished calls, and the eventfd that
// is readable exactly while that queue is not empty. Not installed.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "posh/posh_client.h"
#include "rpc_client.h"

namespace posh::capi {

class AsyncCalls {
 public:
  // Creates the eventfd; throws std::system_error when it cannot.
  explicit AsyncCalls(const posh::client_rpc::RpcClient& client);
  // posh_client_close: cancels what is in flight, waits until no gRPC callback can touch
  // this object any more, frees the completions nobody took, closes the eventfd.
  ~AsyncCalls();
  AsyncCalls(const AsyncCalls&) = delete;
  AsyncCalls& operator=(const AsyncCalls&) = delete;

  int fd() const { return efd_; }
  // Send the request; returns the call's id. Throws bad_alloc (then nothing was started).
  posh_call_id StartLookup(const posh::v1::LookupRequest& request, void* user_data);
  posh_call_id StartVerify(const posh::v1::VerifyRequest& request, void* user_data);
  // False when no call with this id is pending (unknown, or its completion taken).
  bool Cancel(posh_call_id id);
  posh_completion* Next();  // nullptr when no completion waits
  size_t Pending();
  static void Free(posh_completion* completion);

 private:
  struct Call;
  template <class Req, class Resp, int Kind>
  struct RpcCall;

  posh_call_id Start(std::unique_ptr<Call> call);
  void StartAttempt(Call* call);                 // with mu_ held
  void OnDone(Call* call, grpc::Status status);  // on a gRPC thread
  static posh_completion* Complete(std::unique_ptr<Call> call);

  const posh::client_rpc::RpcClient& client_;
  int efd_ = -1;

  std::mutex mu_;
  // Every call whose completion has not been taken: in flight or queued. The map owns them.
  std::unordered_map<posh_call_id, std::unique_ptr<Call>> calls_;
  // Finished calls in completion order (intrusive: queueing never allocates on a gRPC thread).
  Call* head_ = nullptr;
  Call* tail_ = nullptr;
  posh_call_id next_id_ = 1;
  size_t rpcs_ = 0;  // RPC attempts whose callback has not finished
  bool closing_ = false;
  std::condition_variable idle_;  // rpcs_ reached 0 while closing_
};

}  // namespace posh::capi
