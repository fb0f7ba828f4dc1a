// The GetStats snapshot: the service's counters, the store's size and the retrieval latency
// histogram as a posh.v1.GetStatsResponse. One builder for the gRPC GetStats and the
// Prometheus endpoint (--metrics-listen), so both report the same figures. Any thread:
// relaxed atomic loads and the store's shared locks only.
#pragma once

#include "posh/v1/resolver.pb.h"
#include "server/posh_service.h"

namespace posh::server {

void FillStats(PoshService& service, v1::GetStatsResponse* out);

}  // namespace posh::server
