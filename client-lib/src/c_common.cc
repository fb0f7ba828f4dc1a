// C results own their strings in one C++ holder whose first member is the C struct, so one
// delete frees everything.
#include "c_common.h"

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/base64.h"

namespace posh::capi {

namespace {

thread_local std::string t_last_error;

// Standard base64 with padding (RFC 4648 §4), as RFC 7711 writes digests: the daemon's
// encoder (daemon/core/base64.cc, compiled into this library as a hidden object).
std::string Base64(const std::string& in) {
  return posh::core::EncodeBase64(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
}

struct LookupHolder {
  posh_lookup_result c{};  // must stay first
  std::string domain, service, delegated_to, format, error;
  std::vector<std::string> strings;  // kids, hash names, base64 values
  std::vector<std::vector<posh_fingerprint>> fps;
  std::vector<posh_key> keys;
};

struct VerifyHolder {
  posh_verify_result c{};  // must stay first
  std::string domain, service, delegated_to, reason, matched_kid;
};

}  // namespace

void SetLastError(std::string message) { t_last_error = std::move(message); }
const char* LastError() { return t_last_error.c_str(); }

int MakeLookupRequest(const char* fn, const char* domain, const char* service, int refresh,
                      posh::v1::LookupRequest* req) {
  if (!domain) {
    SetLastError(std::string(fn) + ": domain must not be NULL");
    return POSH_EINVAL;
  }
  req->set_domain(domain);
  if (service) req->set_service(service);
  req->set_refresh(refresh != 0);
  return POSH_OK;
}

int MakeVerifyRequest(const char* fn, const char* domain, const char* service,
                      const unsigned char* const* chain, const size_t* chain_lengths, size_t count,
                      posh::v1::VerifyRequest* req) {
  if (!domain || (count > 0 && (!chain || !chain_lengths))) {
    SetLastError(std::string(fn) + ": domain and chain must not be NULL");
    return POSH_EINVAL;
  }
  if (count == 0) {
    SetLastError(std::string(fn) + ": the presented chain is empty");
    return POSH_EINVAL;
  }
  req->set_domain(domain);
  if (service) req->set_service(service);
  for (size_t i = 0; i < count; ++i) {
    if (!chain[i]) {
      SetLastError(std::string(fn) + ": chain entry is NULL");
      return POSH_EINVAL;
    }
    req->add_presented_chain(reinterpret_cast<const char*>(chain[i]), chain_lengths[i]);
  }
  return POSH_OK;
}

int CodeOf(const posh::client::CallStatus& st) {
  if (st.invalid_argument()) return POSH_EINVAL;
  if (st.unreachable()) return POSH_EUNAVAILABLE;
  return POSH_EINTERNAL;
}

int CodeOf(const posh::v1::LookupResponse& r) {
  switch (r.status()) {
    case posh::v1::LOOKUP_STATUS_FOUND:
      return POSH_OK;
    case posh::v1::LOOKUP_STATUS_NOT_FOUND:
      return POSH_NEGATIVE;
    default:
      return POSH_UNDETERMINED;
  }
}

int CodeOf(const posh::v1::VerifyResponse& r) {
  switch (r.verdict()) {
    case posh::v1::VERDICT_VERIFIED:
      return POSH_OK;
    case posh::v1::VERDICT_NOT_VERIFIED:
    case posh::v1::VERDICT_NO_POSH:
      return POSH_NEGATIVE;
    default:
      return POSH_UNDETERMINED;
  }
}

posh_lookup_result* NewLookupResult(const posh::v1::LookupResponse& r) {
  auto h = std::make_unique<LookupHolder>();
  h->domain = r.domain();
  h->service = r.service();
  h->delegated_to = r.delegated_to();
  h->format = r.format() == posh::v1::DOCUMENT_FORMAT_RFC7711 ? "rfc7711"
              : r.format() == posh::v1::DOCUMENT_FORMAT_JWK   ? "jwk"
                                                              : "";
  h->error = r.error();
  // Reserve so that c_str() pointers stay valid while we append.
  size_t n = 0;
  for (const auto& k : r.keys()) n += 1 + 2 * k.fingerprints_size();
  h->strings.reserve(n);
  h->fps.resize(r.keys_size());
  h->keys.resize(r.keys_size());
  for (int i = 0; i < r.keys_size(); ++i) {
    const auto& k = r.keys(i);
    h->strings.push_back(k.kid());
    h->keys[i].kid = h->strings.back().c_str();
    h->keys[i].not_after = k.has_not_after() ? k.not_after().seconds() : 0;
    for (const auto& fp : k.fingerprints()) {
      h->strings.push_back(fp.hash());
      const char* name = h->strings.back().c_str();
      h->strings.push_back(Base64(fp.value()));
      h->fps[i].push_back(posh_fingerprint{name, h->strings.back().c_str()});
    }
    h->keys[i].fingerprint_count = h->fps[i].size();
    h->keys[i].fingerprints = h->fps[i].data();
  }
  h->c.status = static_cast<int>(r.status());
  h->c.domain = h->domain.c_str();
  h->c.service = h->service.c_str();
  h->c.delegated_to = h->delegated_to.c_str();
  h->c.format = h->format.c_str();
  h->c.expires_at = r.has_expires_at() ? r.expires_at().seconds() : 0;
  h->c.from_cache = r.from_cache() ? 1 : 0;
  h->c.error = h->error.c_str();
  h->c.key_count = h->keys.size();
  h->c.keys = h->keys.data();
  return &h.release()->c;
}

posh_verify_result* NewVerifyResult(const posh::v1::VerifyResponse& r) {
  auto h = std::make_unique<VerifyHolder>();
  h->domain = r.domain();
  h->service = r.service();
  h->delegated_to = r.delegated_to();
  h->reason = r.reason();
  h->matched_kid = r.matched_kid();
  h->c.verdict = static_cast<int>(r.verdict());
  h->c.domain = h->domain.c_str();
  h->c.service = h->service.c_str();
  h->c.delegated_to = h->delegated_to.c_str();
  h->c.reason = h->reason.c_str();
  h->c.matched_kid = h->matched_kid.c_str();
  h->c.from_cache = r.from_cache() ? 1 : 0;
  return &h.release()->c;
}

}  // namespace posh::capi

extern "C" {

void posh_lookup_result_free(posh_lookup_result* result) {
  delete reinterpret_cast<posh::capi::LookupHolder*>(result);
}

void posh_verify_result_free(posh_verify_result* result) {
  delete reinterpret_cast<posh::capi::VerifyHolder*>(result);
}

}  // extern "C"
