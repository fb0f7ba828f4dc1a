// poshctl probe: SRV target selection (RFC 2782 ordering, XEP-0368 merge). Pure code, so
// that the order is unit-tested with a scripted random source.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace posh::ctl::probe {

struct SrvRecord {
  std::string target;  // host name, no trailing dot; "." for "service not offered"
  uint16_t port = 0;
  uint16_t priority = 0;
  uint16_t weight = 0;
  bool direct_tls = false;  // from _xmpps-*._tcp (XEP-0368)
};

// Returns a uniformly distributed integer in [0, max] (RFC 2782's "random number").
using RandomUpTo = std::function<uint32_t(uint32_t max)>;

// RFC 2782: a single record whose target is "." says the service is decidedly not offered
// at that name.
bool SaysNotOffered(const std::vector<SrvRecord>& records);

// Merges the STARTTLS and direct-TLS answers and orders them: priority ascending, then
// RFC 2782's weighted random selection within each priority. Before the selection the
// records of one priority are listed zero-weight first (as RFC 2782 requires) and, within
// that, direct TLS first (XEP-0368 prefers it on a tie): with equal weights of 0 the order
// is therefore deterministic, direct TLS first. "." records are dropped.
std::vector<SrvRecord> OrderSrv(std::vector<SrvRecord> starttls, std::vector<SrvRecord> direct,
                                const RandomUpTo& random);

}  // namespace posh::ctl::probe
