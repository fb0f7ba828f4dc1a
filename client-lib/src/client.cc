#include "posh/client.h"

#include <unistd.h>

#include <cstdlib>

#include "client_impl.h"

namespace posh::client {

bool CallStatus::unreachable() const {
  return code == static_cast<int>(grpc::StatusCode::UNAVAILABLE) ||
         code == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED);
}

bool CallStatus::invalid_argument() const {
  return code == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);
}

std::string Client::DefaultSocketPath() {
  // The system daemon's socket when it exists (any user in its group may use it).
  static constexpr const char* kSystem = "/run/poshd/poshd.sock";
  if (geteuid() == 0 || access(kSystem, F_OK) == 0) return kSystem;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    return std::string(xdg) + "/poshd/poshd.sock";
  }
  return "/tmp/poshd-" + std::to_string(geteuid()) + "/poshd.sock";
}

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  std::string path = options.socket_path;
  if (path.empty()) {
    const char* env = std::getenv("POSHD_SOCKET");
    path = env && *env ? env : DefaultSocketPath();
  }
  impl_->socket_path = path;
  impl_->timeout = options.timeout;
  impl_->reconnect_wait = options.reconnect_wait;
  grpc::ChannelArguments args;
  // Reconnect quickly after a daemon restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  impl_->channel =
      grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
  impl_->stub = posh::v1::Resolver::NewStub(impl_->channel);
}

Client::~Client() = default;

const std::string& Client::socket_path() const { return impl_->socket_path; }

CallStatus Client::Lookup(const posh::v1::LookupRequest& req, posh::v1::LookupResponse* resp) {
  return impl_->Invoke([&](grpc::ClientContext* c) { return impl_->stub->Lookup(c, req, resp); });
}
CallStatus Client::Verify(const posh::v1::VerifyRequest& req, posh::v1::VerifyResponse* resp) {
  return impl_->Invoke([&](grpc::ClientContext* c) { return impl_->stub->Verify(c, req, resp); });
}
CallStatus Client::ListEntries(const posh::v1::ListEntriesRequest& req,
                               posh::v1::ListEntriesResponse* resp) {
  return impl_->Invoke(
      [&](grpc::ClientContext* c) { return impl_->stub->ListEntries(c, req, resp); });
}
CallStatus Client::Evict(const posh::v1::EvictRequest& req, posh::v1::EvictResponse* resp) {
  return impl_->Invoke([&](grpc::ClientContext* c) { return impl_->stub->Evict(c, req, resp); });
}
CallStatus Client::Flush(posh::v1::FlushResponse* resp) {
  posh::v1::FlushRequest req;
  return impl_->Invoke([&](grpc::ClientContext* c) { return impl_->stub->Flush(c, req, resp); });
}
namespace {
// One asynchronous call: owns its context, request and response until completion.
template <class Req, class Resp>
struct AsyncCall {
  grpc::ClientContext ctx;
  Req request;
  Resp response;
  std::function<void(CallStatus, Resp)> done;
};
}  // namespace

void Client::LookupAsync(const posh::v1::LookupRequest& req, LookupDone done) {
  auto* call = new AsyncCall<posh::v1::LookupRequest, posh::v1::LookupResponse>;
  call->request = req;
  call->done = std::move(done);
  call->ctx.set_deadline(std::chrono::system_clock::now() + impl_->timeout);
  impl_->stub->async()->Lookup(&call->ctx, &call->request, &call->response, [call](grpc::Status s) {
    call->done(ToCallStatus(Impl::FromDaemon(std::move(s))), std::move(call->response));
    delete call;
  });
}

void Client::VerifyAsync(const posh::v1::VerifyRequest& req, VerifyDone done) {
  auto* call = new AsyncCall<posh::v1::VerifyRequest, posh::v1::VerifyResponse>;
  call->request = req;
  call->done = std::move(done);
  call->ctx.set_deadline(std::chrono::system_clock::now() + impl_->timeout);
  impl_->stub->async()->Verify(&call->ctx, &call->request, &call->response, [call](grpc::Status s) {
    call->done(ToCallStatus(Impl::FromDaemon(std::move(s))), std::move(call->response));
    delete call;
  });
}

CallStatus Client::Lookup(const std::string& domain, const std::string& service,
                          posh::v1::LookupResponse* response) {
  posh::v1::LookupRequest req;
  req.set_domain(domain);
  req.set_service(service);
  return Lookup(req, response);
}

CallStatus Client::Verify(const std::string& domain, const std::string& service,
                          const std::vector<std::string>& chain_der,
                          posh::v1::VerifyResponse* response) {
  posh::v1::VerifyRequest req;
  req.set_domain(domain);
  req.set_service(service);
  for (const auto& der : chain_der) req.add_presented_chain(der);
  return Verify(req, response);
}

CallStatus Client::GetStats(posh::v1::GetStatsResponse* resp) {
  posh::v1::GetStatsRequest req;
  return impl_->Invoke([&](grpc::ClientContext* c) { return impl_->stub->GetStats(c, req, resp); });
}

}  // namespace posh::client
