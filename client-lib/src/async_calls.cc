// Asynchronous C calls. One mutex (mu_) protects everything: the calls, the queue of
// finished ones, the eventfd's level, the count of RPC attempts whose callback has not run.
//
// Life of a call: Start allocates it (with its completion, so taking it never fails),
// registers it and sends the RPC under mu_; gRPC runs OnDone on one of its threads, which
// either sends the one retry or appends the call to the queue (and makes the eventfd
// readable if the queue was empty); Next takes the first queued call under mu_ (and resets
// the eventfd when the queue becomes empty), then builds the C result outside the lock in
// the caller's thread and frees the call. No caller code ever runs on a gRPC thread.
//
// gRPC never runs the reaction of a callback-API unary call inline in the thread that
// starts it or calls TryCancel (completions go to its own threads; ClientContext itself
// calls grpc_call_cancel under its own lock), so sending and cancelling under mu_ cannot
// deadlock with OnDone. Holding mu_ there is what makes cancel and close exact:
// whoever holds mu_ sees the context of the attempt in flight, never a freed one, and a
// retry is sent before anyone else can look.
#include "async_calls.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <string>
#include <system_error>

#include "c_common.h"

namespace posh::capi {

namespace {

using posh::client_rpc::RpcClient;
using posh::client_rpc::SystemClock;
using posh::v1::Resolver;
using Done = std::function<void(grpc::Status)>;

// A completion owns its error string; lookup/verify are separate C results.
struct CompletionHolder {
  posh_completion c{};  // must stay first
  std::string error;
};

void Send(Resolver::Stub* stub, grpc::ClientContext* ctx, const posh::v1::LookupRequest* req,
          posh::v1::LookupResponse* resp, Done done) {
  stub->async()->Lookup(ctx, req, resp, std::move(done));
}
void Send(Resolver::Stub* stub, grpc::ClientContext* ctx, const posh::v1::VerifyRequest* req,
          posh::v1::VerifyResponse* resp, Done done) {
  stub->async()->Verify(ctx, req, resp, std::move(done));
}
void SetResult(posh_completion* c, const posh::v1::LookupResponse& r) {
  c->lookup = NewLookupResult(r);
}
void SetResult(posh_completion* c, const posh::v1::VerifyResponse& r) {
  c->verify = NewVerifyResult(r);
}

}  // namespace

struct AsyncCalls::Call {
  Call(int kind, void* user_data) : kind(kind), user_data(user_data) {}
  virtual ~Call() = default;
  // Sends one attempt on `ctx`; `done` runs once, on a gRPC thread.
  virtual void Send(Resolver::Stub* stub, grpc::ClientContext* ctx, Done done) = 0;
  virtual void DropResponse() = 0;
  // Sets the completion's result from the response; returns its code. May throw bad_alloc.
  virtual int SetResult(posh_completion* c) const = 0;

  const int kind;
  void* const user_data;
  posh_call_id id = 0;
  SystemClock::time_point start;
  // The attempt in flight, and the first attempt's context once retried (contexts are
  // freed with the call, in the caller's thread, never inside a gRPC callback).
  std::unique_ptr<grpc::ClientContext> ctx, first_ctx;
  std::unique_ptr<CompletionHolder> completion;
  grpc::Status status;  // of the last attempt, once finished
  bool retried = false;
  bool cancelled = false;
  bool finished = false;  // queued
  Call* next = nullptr;   // in the queue
};

template <class Req, class Resp, int Kind>
struct AsyncCalls::RpcCall final : Call {
  RpcCall(const Req& r, void* user_data) : Call(Kind, user_data), request(r) {}
  void Send(Resolver::Stub* stub, grpc::ClientContext* c, Done done) override {
    capi::Send(stub, c, &request, &response, std::move(done));
  }
  void DropResponse() override {
    Resp empty;
    response.Swap(&empty);
  }
  int SetResult(posh_completion* c) const override {
    capi::SetResult(c, response);
    return CodeOf(response);
  }
  Req request;
  Resp response;
};

AsyncCalls::AsyncCalls(const RpcClient& client) : client_(client) {
  efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

AsyncCalls::~AsyncCalls() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    closing_ = true;  // no more retries
    for (auto& [id, call] : calls_) {
      if (call->finished) continue;
      call->cancelled = true;
      call->ctx->TryCancel();
    }
    // The callback that brings rpcs_ to 0 notifies with mu_ held and touches nothing of
    // ours after releasing it.
    idle_.wait(lock, [this] { return rpcs_ == 0; });
  }
  calls_.clear();  // completions nobody took
  close(efd_);
}

posh_call_id AsyncCalls::StartLookup(const posh::v1::LookupRequest& request, void* user_data) {
  using LookupCall = RpcCall<posh::v1::LookupRequest, posh::v1::LookupResponse, POSH_CALL_LOOKUP>;
  return Start(std::make_unique<LookupCall>(request, user_data));
}

posh_call_id AsyncCalls::StartVerify(const posh::v1::VerifyRequest& request, void* user_data) {
  using VerifyCall = RpcCall<posh::v1::VerifyRequest, posh::v1::VerifyResponse, POSH_CALL_VERIFY>;
  return Start(std::make_unique<VerifyCall>(request, user_data));
}

posh_call_id AsyncCalls::Start(std::unique_ptr<Call> call) {
  call->completion = std::make_unique<CompletionHolder>();
  call->ctx = std::make_unique<grpc::ClientContext>();
  call->start = SystemClock::now();
  call->ctx->set_deadline(call->start + client_.timeout());
  std::lock_guard<std::mutex> lock(mu_);
  Call* c = call.get();
  c->id = next_id_;
  calls_.emplace(c->id, std::move(call));  // the only step that can fail (bad_alloc)
  ++next_id_;
  ++rpcs_;
  StartAttempt(c);
  return c->id;
}

void AsyncCalls::StartAttempt(Call* c) {
  c->Send(client_.stub(), c->ctx.get(), [this, c](grpc::Status s) { OnDone(c, std::move(s)); });
}

void AsyncCalls::OnDone(Call* c, grpc::Status s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!c->cancelled) s = RpcClient::FromDaemon(std::move(s));
  if (!c->retried && !c->cancelled && !closing_ && client_.ShouldRetry(s)) {
    // The daemon is unreachable (restarting?): send once more on a fresh context that
    // waits for the channel to come back. This attempt's rpcs_ count passes to the next.
    auto* ctx = new (std::nothrow) grpc::ClientContext;
    if (ctx) {
      c->retried = true;
      c->first_ctx = std::move(c->ctx);
      c->ctx.reset(ctx);
      client_.PrepareRetry(ctx, c->start);
      c->DropResponse();
      StartAttempt(c);
      return;
    }
  }
  c->status = c->retried ? RpcClient::RetryOutcome(std::move(s)) : std::move(s);
  c->finished = true;
  if (tail_) {
    tail_->next = c;
  } else {
    head_ = c;
    const uint64_t one = 1;  // empty -> not empty: the eventfd becomes readable
    if (write(efd_, &one, sizeof one) < 0) {
      // Cannot fail: the counter only ever goes from 0 to 1.
    }
  }
  tail_ = c;
  if (--rpcs_ == 0 && closing_) idle_.notify_all();
}

bool AsyncCalls::Cancel(posh_call_id id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end()) return false;
  Call* c = it->second.get();
  if (!c->cancelled) {
    c->cancelled = true;
    if (c->finished) {
      c->DropResponse();  // queued already: it will be delivered as POSH_ECANCELED
    } else {
      c->ctx->TryCancel();  // OnDone follows (with CANCELLED, or whatever won the race)
    }
  }
  return true;
}

posh_completion* AsyncCalls::Next() {
  std::unique_ptr<Call> call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Call* c = head_;
    if (!c) return nullptr;
    head_ = c->next;
    if (!head_) {
      tail_ = nullptr;
      uint64_t value;  // not empty -> empty: the eventfd stops being readable
      if (read(efd_, &value, sizeof value) < 0) {
        // Cannot fail: the queue was not empty, so the counter is 1.
      }
    }
    auto it = calls_.find(c->id);
    call = std::move(it->second);
    calls_.erase(it);
  }
  return Complete(std::move(call));
}

size_t AsyncCalls::Pending() {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.size();
}

posh_completion* AsyncCalls::Complete(std::unique_ptr<Call> call) {
  CompletionHolder* h = call->completion.release();
  posh_completion* c = &h->c;
  c->id = call->id;
  c->kind = call->kind;
  c->user_data = call->user_data;
  c->error = "";
  try {
    if (call->cancelled) {
      c->code = POSH_ECANCELED;
      h->error = "cancelled by posh_cancel";
    } else if (!call->status.ok()) {
      c->code = CodeOf(posh::client_rpc::ToCallStatus(call->status));
      h->error = call->status.error_message();
      if (h->error.empty()) h->error = posh_strerror(c->code);
    } else {
      c->code = call->SetResult(c);
    }
    c->error = h->error.c_str();
  } catch (const std::bad_alloc&) {
    posh_lookup_result_free(c->lookup);
    posh_verify_result_free(c->verify);
    c->lookup = nullptr;
    c->verify = nullptr;
    c->code = POSH_EINTERNAL;
    c->error = "out of memory";
  }
  return c;
}

void AsyncCalls::Free(posh_completion* c) {
  if (!c) return;
  posh_lookup_result_free(c->lookup);
  posh_verify_result_free(c->verify);
  delete reinterpret_cast<CompletionHolder*>(c);
}

}  // namespace posh::capi
