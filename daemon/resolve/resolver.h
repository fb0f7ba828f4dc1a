// POSH retrieval state machine (R3-R7, R11): URLs in order, status codes, redirects,
// reference following, limits. Runs on the loop thread over a Fetcher; parses with the
// protocol core. Knows nothing of gRPC or the record cache.
//
// Delegation fan-in (issue 13): reference targets are shared by URL. A target already
// retrieved and still fresh (its own `expires`, capped) is reused from a small
// ReferenceTargetCache; a target being retrieved is joined. The shared retrieval belongs to
// the Resolver, not to the job that started it, so cancelling that job does not stop it
// while others wait. Each job still applies its own checks (R6 budget and loop over the
// target's redirects, R11) and its own reference `expires`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/record.h"
#include "fetch/fetcher.h"
#include "util/clock.h"

namespace posh::resolve {

// Mirrors posh.v1.ErrorKind numbering.
enum class ErrorKind : uint8_t {
  kNone = 0,
  kTimeout = 1,
  kConnect = 2,
  kTls = 3,
  kHttpStatus = 4,
  kRedirect = 5,
  kLimit = 6,
  kAddress = 7,
  kDocument = 8,
  kInternal = 9,
  kShuttingDown = 10,
  kOverloaded = 11,  // set by the service (queue full, displaced), never by the resolver
};

struct Resolution {
  enum class Status : uint8_t { kFound = 1, kNotFound = 2, kError = 3 };
  Status status = Status::kError;
  core::PoshRecord record;  // kFound
  std::string error;        // kError: precise reason
  ErrorKind error_kind = ErrorKind::kNone;
  // R19: timeout, connection, TLS, 5xx are transient (stale entries may be kept);
  // documents that are invalid and 4xx are not.
  bool transient = false;
  // HTTP requests this resolution sent. A shared reference retrieval's requests are
  // reported once, by the first job still waiting on it when it ends.
  uint32_t requests = 0;
  std::string final_url;
};

// R3 URL templates. "{domain}" and "{service}" are substituted.
inline const std::vector<std::string>& DefaultUrlTemplates() {
  static const std::vector<std::string> k = {
      "https://{domain}/.well-known/posh/{service}.json",        // RFC 7711
      "https://{domain}/.well-known/posh._{service}._tcp.json",  // seed draft
  };
  return k;
}

struct ResolverOptions {
  std::vector<std::string> url_templates = DefaultUrlTemplates();
  size_t max_body = 64 * 1024;
  std::chrono::milliseconds timeout{10000};  // whole resolution (R7)
  int max_redirects = 10;                    // R6
  // Reference targets (R11) shared by delegating domains: kept at most this long (their
  // own `expires` is used when lower), and for at most this many URLs (least recently used
  // evicted; 0 keeps none, retrievals in flight are still shared).
  std::chrono::seconds reference_cache_max_ttl{24 * 3600};
  size_t reference_cache_entries = 10000;
};

// Optional counters the Resolver bumps (relaxed) for the service's stats. Null: not counted.
struct ResolverCounters {
  // Delegating resolutions served by a target already cached or in flight (no fetch of
  // their own for it).
  std::atomic<uint64_t>* reference_shared = nullptr;
  // Reference target retrievals started.
  std::atomic<uint64_t>* reference_fetches = nullptr;
};

class Resolver {
 public:
  using Callback = std::function<void(Resolution)>;
  using Handle = uint64_t;

  Resolver(fetch::Fetcher& fetcher, const Clock& clock, ResolverOptions options,
           ResolverCounters counters = {});
  ~Resolver();  // cancels everything in flight without invoking callbacks

  // `domain` and `service` are already normalised (R1, R2). Callback runs on the loop
  // thread exactly once (never synchronously inside Resolve), unless cancelled.
  Handle Resolve(std::string domain, std::string service, Callback cb);
  // Drops the job; its callback never runs. A shared reference retrieval it waits on goes
  // on for the other jobs waiting on it, and is cancelled when none is left.
  void Cancel(Handle handle);
  size_t InFlight() const;
  size_t CachedReferenceTargets() const;     // entries in the reference-target cache
  void SetOptions(ResolverOptions options);  // applies to resolutions started afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace posh::resolve
