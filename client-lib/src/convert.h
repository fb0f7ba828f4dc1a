// The public value types of posh/client.h built from (and into) the posh.v1 messages.
// Not installed.
#pragma once

#include "posh/client.h"
#include "posh/v1/resolver.pb.h"

namespace posh::client_rpc {

posh::client::LookupResult FromProto(const posh::v1::LookupResponse& r);
posh::client::VerifyResult FromProto(const posh::v1::VerifyResponse& r);
posh::client::CacheEntry FromProto(const posh::v1::CacheEntry& e);
posh::client::Stats FromProto(const posh::v1::GetStatsResponse& s);

posh::v1::LookupRequest ToProto(const posh::client::LookupRequest& r);
posh::v1::VerifyRequest ToProto(const posh::client::VerifyRequest& r);

}  // namespace posh::client_rpc
