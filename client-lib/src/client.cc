// posh::client::Client: the public C++ API, a thin layer over the internal RpcClient that
// turns posh.v1 messages into the plain value types of posh/client.h.
#include "posh/client.h"

#include <utility>

#include "convert.h"
#include "rpc_client.h"

namespace posh::client {

using posh::client_rpc::FromProto;
using posh::client_rpc::RpcClient;
using posh::client_rpc::ToCallStatus;
using posh::client_rpc::ToProto;

struct Client::Impl {
  explicit Impl(ClientOptions options) : rpc(std::move(options)) {}
  RpcClient rpc;
};

uint64_t Stats::Get(std::string_view name) const {
  for (const auto& c : counters) {
    if (c.name == name) return c.value;
  }
  return 0;
}

std::string Client::DefaultSocketPath() { return posh::client_rpc::DefaultSocketPath(); }

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

const std::string& Client::socket_path() const { return impl_->rpc.socket_path(); }

CallStatus Client::Lookup(const LookupRequest& request, LookupResult* result) {
  posh::v1::LookupResponse resp;
  CallStatus st = impl_->rpc.Lookup(ToProto(request), &resp);
  if (st.ok()) *result = FromProto(resp);
  return st;
}

CallStatus Client::Verify(const VerifyRequest& request, VerifyResult* result) {
  posh::v1::VerifyResponse resp;
  CallStatus st = impl_->rpc.Verify(ToProto(request), &resp);
  if (st.ok()) *result = FromProto(resp);
  return st;
}

CallStatus Client::ListEntries(const std::string& domain, std::vector<CacheEntry>* entries) {
  std::vector<CacheEntry> all;
  posh::v1::ListEntriesRequest req;
  req.set_domain(domain);
  req.set_page_size(1000);  // the daemon's maximum
  for (;;) {
    posh::v1::ListEntriesResponse resp;
    CallStatus st = impl_->rpc.ListEntries(req, &resp);
    if (!st.ok()) return st;
    for (const auto& e : resp.entries()) all.push_back(FromProto(e));
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  *entries = std::move(all);
  return CallStatus{};
}

CallStatus Client::Evict(const std::string& domain, const std::string& service, bool* evicted) {
  posh::v1::EvictRequest req;
  req.set_domain(domain);
  req.set_service(service);
  posh::v1::EvictResponse resp;
  CallStatus st = impl_->rpc.Evict(req, &resp);
  if (st.ok()) *evicted = resp.evicted();
  return st;
}

CallStatus Client::Flush(uint64_t* flushed) {
  posh::v1::FlushResponse resp;
  CallStatus st = impl_->rpc.Flush(&resp);
  if (st.ok()) *flushed = resp.flushed();
  return st;
}

CallStatus Client::GetStats(Stats* stats) {
  posh::v1::GetStatsResponse resp;
  CallStatus st = impl_->rpc.GetStats(&resp);
  if (st.ok()) *stats = FromProto(resp);
  return st;
}

namespace {
// One asynchronous call: owns its context, request and response until completion.
template <class Req, class Resp, class Result>
struct AsyncCall {
  grpc::ClientContext ctx;
  Req request;
  Resp response;
  std::function<void(CallStatus, Result)> done;
};

template <class Result, class Req, class Resp, class Start>
void StartAsync(const RpcClient& rpc, Req request, std::function<void(CallStatus, Result)> done,
                Start start) {
  auto* call = new AsyncCall<Req, Resp, Result>;
  call->request = std::move(request);
  call->done = std::move(done);
  call->ctx.set_deadline(std::chrono::system_clock::now() + rpc.timeout());
  start(&call->ctx, &call->request, &call->response, [call](grpc::Status s) {
    CallStatus st = ToCallStatus(RpcClient::FromDaemon(std::move(s)));
    call->done(st, st.ok() ? FromProto(call->response) : Result{});
    delete call;
  });
}
}  // namespace

void Client::LookupAsync(const LookupRequest& request, LookupDone done) {
  auto* stub = impl_->rpc.stub();
  StartAsync<LookupResult, posh::v1::LookupRequest, posh::v1::LookupResponse>(
      impl_->rpc, ToProto(request), std::move(done),
      [stub](auto* ctx, auto* req, auto* resp, auto cb) {
        stub->async()->Lookup(ctx, req, resp, std::move(cb));
      });
}

void Client::VerifyAsync(const VerifyRequest& request, VerifyDone done) {
  auto* stub = impl_->rpc.stub();
  StartAsync<VerifyResult, posh::v1::VerifyRequest, posh::v1::VerifyResponse>(
      impl_->rpc, ToProto(request), std::move(done),
      [stub](auto* ctx, auto* req, auto* resp, auto cb) {
        stub->async()->Verify(ctx, req, resp, std::move(cb));
      });
}

CallStatus Client::Lookup(const std::string& domain, const std::string& service,
                          LookupResult* result) {
  return Lookup(LookupRequest{domain, service, false}, result);
}

CallStatus Client::Verify(const std::string& domain, const std::string& service,
                          const std::vector<std::string>& chain_der, VerifyResult* result) {
  return Verify(VerifyRequest{domain, service, chain_der}, result);
}

}  // namespace posh::client
