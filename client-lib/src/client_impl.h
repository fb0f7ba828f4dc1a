// libposhclient internals: the state behind posh::client::Client (its channel, stub, timeout
// and the retry-after-reconnect rule), shared by client.cc and the asynchronous C calls.
// Not installed.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "posh/client.h"
#include "posh/v1/resolver.grpc.pb.h"

namespace posh::client {

using SystemClock = std::chrono::system_clock;

inline CallStatus ToCallStatus(const grpc::Status& s) {
  return CallStatus{static_cast<int>(s.error_code()), s.error_message()};
}

struct Client::Impl {
  std::string socket_path;
  std::chrono::milliseconds timeout;
  std::chrono::milliseconds reconnect_wait;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<posh::v1::Resolver::Stub> stub;

  // poshd never cancels a call by choice: a call cancelled from the other side (streams the
  // gRPC server drops when it shuts down, before answering them) met a daemon going away,
  // exactly like UNAVAILABLE. The client's own cancellations (posh_cancel) never get here.
  static grpc::Status FromDaemon(grpc::Status s) {
    if (s.error_code() != grpc::StatusCode::CANCELLED) return s;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "poshd dropped the call (shutting down?): " + s.error_message());
  }

  // Every posh.v1 call is idempotent, so one retry after a reconnection is safe: a call
  // that finds the daemon unreachable (fail-fast UNAVAILABLE, e.g. during a restart) is
  // sent once more, waiting for the channel to come back.
  bool ShouldRetry(const grpc::Status& s) const {
    return s.error_code() == grpc::StatusCode::UNAVAILABLE && reconnect_wait.count() > 0;
  }
  // The retry waits for the channel (wait_for_ready) at most reconnect_wait, and never past
  // the call's own timeout (counted from `call_start`).
  void PrepareRetry(grpc::ClientContext* ctx, SystemClock::time_point call_start) const {
    ctx->set_wait_for_ready(true);
    ctx->set_deadline(std::min(call_start + timeout, SystemClock::now() + reconnect_wait));
  }
  // A retry that ran out of time means the daemon did not come back: unreachable.
  static grpc::Status RetryOutcome(grpc::Status s) {
    if (s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) return s;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "poshd did not answer within the reconnect wait");
  }

  template <class Call>
  CallStatus Invoke(Call&& call) {
    const auto start = SystemClock::now();
    grpc::Status s;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(start + timeout);
      s = FromDaemon(call(&ctx));
    }
    if (ShouldRetry(s)) {
      grpc::ClientContext ctx;
      PrepareRetry(&ctx, start);
      s = RetryOutcome(FromDaemon(call(&ctx)));
    }
    return ToCallStatus(s);
  }
};

// The library's own access to a Client's state (the C API shares the channel and stub).
struct ClientInternals {
  using Impl = Client::Impl;
  static Impl& Of(Client& c) { return *c.impl_; }
};

using ClientImpl = ClientInternals::Impl;

}  // namespace posh::client
