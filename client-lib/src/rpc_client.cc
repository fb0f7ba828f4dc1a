#include "rpc_client.h"

#include <unistd.h>

#include <cstdlib>

// CallStatus's predicates are public API, defined here with the gRPC codes they name so
// that poshctl (which links this file, not libposhclient) has them too.
namespace posh::client {

bool CallStatus::unreachable() const {
  return code == static_cast<int>(grpc::StatusCode::UNAVAILABLE) ||
         code == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED);
}

bool CallStatus::invalid_argument() const {
  return code == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace posh::client

namespace posh::client_rpc {

std::string DefaultSocketPath() {
  // The system daemon's socket when it exists (any user in its group may use it).
  static constexpr const char* kSystem = "/run/poshd/poshd.sock";
  if (geteuid() == 0 || access(kSystem, F_OK) == 0) return kSystem;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    std::string path = xdg;
    path += "/poshd/poshd.sock";
    return path;
  }
  std::string path = "/tmp/poshd-";
  path += std::to_string(geteuid());
  path += "/poshd.sock";
  return path;
}

RpcClient::RpcClient(posh::client::ClientOptions options)
    : socket_path_(std::move(options.socket_path)),
      timeout_(options.timeout),
      reconnect_wait_(options.reconnect_wait) {
  if (socket_path_.empty()) {
    const char* env = std::getenv("POSHD_SOCKET");
    socket_path_ = env && *env ? env : DefaultSocketPath();
  }
  grpc::ChannelArguments args;
  // Reconnect quickly after a daemon restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::string target = "unix:";
  target += socket_path_;
  channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  stub_ = posh::v1::Resolver::NewStub(channel_);
}

CallStatus RpcClient::Lookup(const posh::v1::LookupRequest& req, posh::v1::LookupResponse* resp) {
  return Invoke([&](grpc::ClientContext* c) { return stub_->Lookup(c, req, resp); });
}
CallStatus RpcClient::Verify(const posh::v1::VerifyRequest& req, posh::v1::VerifyResponse* resp) {
  return Invoke([&](grpc::ClientContext* c) { return stub_->Verify(c, req, resp); });
}
CallStatus RpcClient::ListEntries(const posh::v1::ListEntriesRequest& req,
                                  posh::v1::ListEntriesResponse* resp) {
  return Invoke([&](grpc::ClientContext* c) { return stub_->ListEntries(c, req, resp); });
}
CallStatus RpcClient::Evict(const posh::v1::EvictRequest& req, posh::v1::EvictResponse* resp) {
  return Invoke([&](grpc::ClientContext* c) { return stub_->Evict(c, req, resp); });
}
CallStatus RpcClient::Flush(posh::v1::FlushResponse* resp) {
  posh::v1::FlushRequest req;
  return Invoke([&](grpc::ClientContext* c) { return stub_->Flush(c, req, resp); });
}
CallStatus RpcClient::GetStats(posh::v1::GetStatsResponse* resp) {
  posh::v1::GetStatsRequest req;
  return Invoke([&](grpc::ClientContext* c) { return stub_->GetStats(c, req, resp); });
}

}  // namespace posh::client_rpc
