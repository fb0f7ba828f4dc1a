// libposhclient internals: the protobuf-typed client of posh.v1.Resolver (its channel, stub,
// timeout and the retry-after-reconnect rule). The public posh::client::Client, the C API
// and poshctl (which needs every field of every answer, and the Prometheus formatter that
// takes GetStatsResponse) are built on it. Not installed, never exported: libposhclient
// compiles it against its own lite copy of the generated code (docs/CLIENT_ABI.md), poshctl
// against the daemon's.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "posh/client.h"
#include "posh/v1/resolver.grpc.pb.h"

namespace posh::client_rpc {

using posh::client::CallStatus;
using SystemClock = std::chrono::system_clock;

inline CallStatus ToCallStatus(const grpc::Status& s) {
  return CallStatus{static_cast<int>(s.error_code()), s.error_message()};
}

// The socket path the daemon uses by default for this user.
std::string DefaultSocketPath();

class RpcClient {
 public:
  explicit RpcClient(posh::client::ClientOptions options);
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  posh::v1::Resolver::Stub* stub() const { return stub_.get(); }

  CallStatus Lookup(const posh::v1::LookupRequest& request, posh::v1::LookupResponse* response);
  CallStatus Verify(const posh::v1::VerifyRequest& request, posh::v1::VerifyResponse* response);
  CallStatus ListEntries(const posh::v1::ListEntriesRequest& request,
                         posh::v1::ListEntriesResponse* response);
  CallStatus Evict(const posh::v1::EvictRequest& request, posh::v1::EvictResponse* response);
  CallStatus Flush(posh::v1::FlushResponse* response);
  CallStatus GetStats(posh::v1::GetStatsResponse* response);

  // poshd never cancels a call by choice: a call cancelled from the other side (streams the
  // gRPC server drops when it shuts down, before answering them) met a daemon going away,
  // exactly like UNAVAILABLE. The client's own cancellations (posh_cancel) never get here.
  static grpc::Status FromDaemon(grpc::Status s) {
    if (s.error_code() != grpc::StatusCode::CANCELLED) return s;
    std::string message = "poshd dropped the call (shutting down?): ";
    message += s.error_message();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
  }

  // Every posh.v1 call is idempotent, so one retry after a reconnection is safe: a call
  // that finds the daemon unreachable (fail-fast UNAVAILABLE, e.g. during a restart) is
  // sent once more, waiting for the channel to come back.
  bool ShouldRetry(const grpc::Status& s) const {
    return s.error_code() == grpc::StatusCode::UNAVAILABLE && reconnect_wait_.count() > 0;
  }
  // The retry waits for the channel (wait_for_ready) at most reconnect_wait, and never past
  // the call's own timeout (counted from `call_start`).
  void PrepareRetry(grpc::ClientContext* ctx, SystemClock::time_point call_start) const {
    ctx->set_wait_for_ready(true);
    ctx->set_deadline(std::min(call_start + timeout_, SystemClock::now() + reconnect_wait_));
  }
  // A retry that ran out of time means the daemon did not come back: unreachable.
  static grpc::Status RetryOutcome(grpc::Status s) {
    if (s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) return s;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "poshd did not answer within the reconnect wait");
  }

 private:
  template <class Call>
  CallStatus Invoke(Call&& call) {
    const auto start = SystemClock::now();
    grpc::Status s;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(start + timeout_);
      s = FromDaemon(call(&ctx));
    }
    if (ShouldRetry(s)) {
      grpc::ClientContext ctx;
      PrepareRetry(&ctx, start);
      s = RetryOutcome(FromDaemon(call(&ctx)));
    }
    return ToCallStatus(s);
  }

  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds reconnect_wait_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<posh::v1::Resolver::Stub> stub_;
};

}  // namespace posh::client_rpc
