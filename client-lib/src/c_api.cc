// The C API: posh_client is the internal RpcClient (synchronous calls) plus its
// asynchronous calls (async_calls.cc), sharing one channel. Results: c_common.cc.
#include <new>
#include <string>
#include <system_error>

#include "async_calls.h"
#include "c_common.h"
#include "posh/posh_client.h"
#include "rpc_client.h"

struct posh_client {
  posh::client_rpc::RpcClient client;
  posh::capi::AsyncCalls async;  // declared last: closed (and waited for) first
  explicit posh_client(posh::client::ClientOptions o) : client(std::move(o)), async(client) {}
};

namespace {

using posh::capi::SetLastError;

int FromCall(const posh::client::CallStatus& st) {
  SetLastError(st.message);
  return posh::capi::CodeOf(st);
}

int OutOfMemory() {
  SetLastError("out of memory");
  return POSH_EINTERNAL;
}

// posh_*_start: `make` checks the arguments and fills the request, `start` sends it.
template <class Request, class Make, class Start>
int StartCall(posh_client* client, const char* fn, posh_call_id* id, Make make, Start start) {
  if (id) *id = 0;
  if (!client) {
    SetLastError(std::string(fn) + ": client must not be NULL");
    return POSH_EINVAL;
  }
  try {
    Request req;
    int rc = make(&req);
    if (rc != POSH_OK) return rc;
    posh_call_id n = start(req);
    if (id) *id = n;
    SetLastError("");
    return POSH_OK;
  } catch (...) {
    return OutOfMemory();
  }
}

}  // namespace

extern "C" {

posh_client* posh_client_open(const char* socket_path, int timeout_ms) {
  posh::client::ClientOptions o;
  try {
    if (socket_path) o.socket_path = socket_path;
    if (timeout_ms > 0) o.timeout = std::chrono::milliseconds(timeout_ms);
    return new posh_client(std::move(o));
  } catch (const std::system_error& e) {  // no eventfd (out of file descriptors)
    SetLastError(e.what());
    return nullptr;
  } catch (...) {
    OutOfMemory();
    return nullptr;
  }
}

void posh_client_close(posh_client* client) { delete client; }

int posh_lookup(posh_client* client, const char* domain, const char* service, int refresh,
                posh_lookup_result** out) {
  if (out) *out = nullptr;
  if (!client || !domain || !out) {
    SetLastError("posh_lookup: client, domain and out must not be NULL");
    return POSH_EINVAL;
  }
  try {
    posh::v1::LookupRequest req;
    posh::capi::MakeLookupRequest("posh_lookup", domain, service, refresh, &req);
    posh::v1::LookupResponse resp;
    auto st = client->client.Lookup(req, &resp);
    if (!st.ok()) return FromCall(st);
    *out = posh::capi::NewLookupResult(resp);
    SetLastError("");
    return posh::capi::CodeOf(resp);
  } catch (...) {
    return OutOfMemory();
  }
}

int posh_verify(posh_client* client, const char* domain, const char* service,
                const unsigned char* const* chain, const size_t* chain_lengths, size_t count,
                posh_verify_result** out) {
  if (out) *out = nullptr;
  if (!client || !out) {
    SetLastError("posh_verify: client and out must not be NULL");
    return POSH_EINVAL;
  }
  try {
    posh::v1::VerifyRequest req;
    int rc = posh::capi::MakeVerifyRequest("posh_verify", domain, service, chain, chain_lengths,
                                           count, &req);
    if (rc != POSH_OK) return rc;
    posh::v1::VerifyResponse resp;
    auto st = client->client.Verify(req, &resp);
    if (!st.ok()) return FromCall(st);
    *out = posh::capi::NewVerifyResult(resp);
    SetLastError("");
    return posh::capi::CodeOf(resp);
  } catch (...) {
    return OutOfMemory();
  }
}

// ---- Asynchronous calls (async_calls.cc)

int posh_client_fd(posh_client* client) { return client ? client->async.fd() : -1; }

int posh_lookup_start(posh_client* client, const char* domain, const char* service, int refresh,
                      void* user_data, posh_call_id* id) {
  return StartCall<posh::v1::LookupRequest>(
      client, "posh_lookup_start", id,
      [&](auto* req) {
        return posh::capi::MakeLookupRequest("posh_lookup_start", domain, service, refresh, req);
      },
      [&](const auto& req) { return client->async.StartLookup(req, user_data); });
}

int posh_verify_start(posh_client* client, const char* domain, const char* service,
                      const unsigned char* const* chain, const size_t* chain_lengths, size_t count,
                      void* user_data, posh_call_id* id) {
  return StartCall<posh::v1::VerifyRequest>(
      client, "posh_verify_start", id,
      [&](auto* req) {
        return posh::capi::MakeVerifyRequest("posh_verify_start", domain, service, chain,
                                             chain_lengths, count, req);
      },
      [&](const auto& req) { return client->async.StartVerify(req, user_data); });
}

int posh_cancel(posh_client* client, posh_call_id id) {
  if (!client || !client->async.Cancel(id)) {
    SetLastError("posh_cancel: no such call pending");
    return POSH_EINVAL;
  }
  SetLastError("");
  return POSH_OK;
}

posh_completion* posh_next_completion(posh_client* client) {
  return client ? client->async.Next() : nullptr;
}

void posh_completion_free(posh_completion* completion) { posh::capi::AsyncCalls::Free(completion); }

size_t posh_pending(posh_client* client) { return client ? client->async.Pending() : 0; }

const char* posh_strerror(int code) {
  switch (code) {
    case POSH_OK:
      return "found / verified";
    case POSH_NEGATIVE:
      return "no POSH published, or not verified";
    case POSH_UNDETERMINED:
      return "the POSH record could not be determined (retrieval or document error)";
    case POSH_EINVAL:
      return "invalid argument";
    case POSH_EUNAVAILABLE:
      return "poshd cannot be reached";
    case POSH_EINTERNAL:
      return "internal error";
    case POSH_ECANCELED:
      return "the call was cancelled";
    default:
      return "unknown code";
  }
}

const char* posh_client_last_error(void) { return posh::capi::LastError(); }

}  // extern "C"
