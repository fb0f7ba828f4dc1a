// What the synchronous and asynchronous C calls share: argument checks and requests, the
// mapping of outcomes to posh_code, the C results built from responses, the calling
// thread's last error. Not installed.
#pragma once

#include <string>

#include "posh/client.h"
#include "posh/posh_client.h"
#include "posh/v1/resolver.pb.h"

namespace posh::capi {

void SetLastError(std::string message);
const char* LastError();

// Checks the arguments of a Lookup / Verify (`fn` names the C function in messages) and
// fills the request. POSH_OK, or POSH_EINVAL with the last error set. May throw bad_alloc.
int MakeLookupRequest(const char* fn, const char* domain, const char* service, int refresh,
                      posh::v1::LookupRequest* request);
int MakeVerifyRequest(const char* fn, const char* domain, const char* service,
                      const unsigned char* const* chain, const size_t* chain_lengths, size_t count,
                      posh::v1::VerifyRequest* request);

// A failed RPC: POSH_EINVAL, POSH_EUNAVAILABLE or POSH_EINTERNAL.
int CodeOf(const posh::client::CallStatus& status);
// An answered RPC: POSH_OK, POSH_NEGATIVE or POSH_UNDETERMINED.
int CodeOf(const posh::v1::LookupResponse& response);
int CodeOf(const posh::v1::VerifyResponse& response);

// The C result of an answer (free with posh_*_result_free). May throw bad_alloc.
posh_lookup_result* NewLookupResult(const posh::v1::LookupResponse& response);
posh_verify_result* NewVerifyResult(const posh::v1::VerifyResponse& response);

}  // namespace posh::capi
