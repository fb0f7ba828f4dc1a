// libposhclient: the C++ client of poshd's gRPC API (posh.v1.Resolver) over its unix
// socket. Thread-safe: one Client may be shared by many threads. Synchronous calls block
// the caller at most for the client's timeout; asynchronous ones return at once and call
// back on a gRPC thread (keep the callback short; never block it on another call).
// The channel reconnects by itself after a daemon restart (backoff capped at 1 s); a call
// made while the daemon is down fails fast with unreachable() instead of waiting.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "posh/v1/resolver.pb.h"

namespace posh::client {

struct ClientOptions {
  // Empty: $POSHD_SOCKET, else the daemon's default path (DefaultSocketPath()).
  std::string socket_path;
  std::chrono::milliseconds timeout{30000};
  // When the daemon is unreachable (e.g. restarting), a synchronous call waits up to this
  // long for the channel to reconnect before failing with unreachable(). 0: fail at once.
  std::chrono::milliseconds reconnect_wait{2000};
};

// The outcome of one call: ok, or a gRPC status code with the server's message.
struct CallStatus {
  int code = 0;  // grpc::StatusCode value; 0 = OK
  std::string message;

  bool ok() const { return code == 0; }
  // The daemon cannot be reached (no socket, refused, shutting down, no answer in time).
  bool unreachable() const;
  // The request was rejected as invalid (bad domain, bad service, bad certificate chain).
  bool invalid_argument() const;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& socket_path() const;

  CallStatus Lookup(const posh::v1::LookupRequest& request, posh::v1::LookupResponse* response);
  CallStatus Verify(const posh::v1::VerifyRequest& request, posh::v1::VerifyResponse* response);
  CallStatus ListEntries(const posh::v1::ListEntriesRequest& request,
                         posh::v1::ListEntriesResponse* response);
  CallStatus Evict(const posh::v1::EvictRequest& request, posh::v1::EvictResponse* response);
  CallStatus Flush(posh::v1::FlushResponse* response);
  CallStatus GetStats(posh::v1::GetStatsResponse* response);

  // Asynchronous Lookup and Verify: `done` runs exactly once, on a gRPC thread, with the
  // status and (when ok) the response. The Client must outlive pending calls.
  using LookupDone = std::function<void(CallStatus, posh::v1::LookupResponse)>;
  using VerifyDone = std::function<void(CallStatus, posh::v1::VerifyResponse)>;
  void LookupAsync(const posh::v1::LookupRequest& request, LookupDone done);
  void VerifyAsync(const posh::v1::VerifyRequest& request, VerifyDone done);

  // Convenience forms of the common calls.
  CallStatus Lookup(const std::string& domain, const std::string& service,
                    posh::v1::LookupResponse* response);
  // `chain_der`: DER certificates, leaf first.
  CallStatus Verify(const std::string& domain, const std::string& service,
                    const std::vector<std::string>& chain_der, posh::v1::VerifyResponse* response);

  // The socket path the daemon uses by default for this user (see poshd --help).
  static std::string DefaultSocketPath();

 private:
  struct Impl;
  friend struct ClientInternals;  // the library's C API (not part of the public API)
  std::unique_ptr<Impl> impl_;
};

}  // namespace posh::client
