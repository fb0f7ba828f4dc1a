// The resolver service: answers lookups from the shared store on the caller's thread
// (hot path) and sends misses to the loop, where one retrieval per (domain, service)
// runs at a time (R18) and every waiter gets its result. Also runs background refreshes
// and keeps stale entries on transient failures (R19). Knows nothing of gRPC.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache/store.h"
#include "core/certificate.h"
#include "core/matcher.h"
#include "fetch/fetcher.h"
#include "l2/second_tier.h"
#include "resolve/resolver.h"
#include "server/event_loop.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace posh::server {

struct ServiceOptions {
  cache::Lifetimes lifetimes;
  resolve::ResolverOptions resolver;
  // Retrievals running at once; more are queued (FIFO) and still coalesce (R18). Bounds
  // sockets and TLS handshakes in flight when many distinct domains miss together.
  size_t max_concurrent_retrievals = 256;
  // Retrievals waiting for a slot. When full, the oldest waiting retrieval is dropped and
  // its callers answered with a "queue full" error (counted in `dropped`).
  size_t max_queued_retrievals = 10000;
  // When every slot is busy, a new retrieval may displace (cancel) the one that has run
  // longest if it has run longer than this (Unbound's jostle-timeout). 0: never displace.
  // Half the default fetch timeout: under a legitimate storm of cold lookups on a busy
  // machine a retrieval that makes progress may take a second or two (2 s displaced ~1 %
  // of a 6 000-domain storm in bench/run.sh section 7); one to an origin that never answers
  // still gives its slot up long before its own timeout.
  int64_t jostle_timeout_ms = 5000;
};

struct LookupAnswer {
  std::shared_ptr<const cache::Entry> entry;  // never null
  bool from_cache = false;
  bool stale = false;
};
using LookupCallback = std::function<void(LookupAnswer)>;

struct VerifyAnswer {
  LookupAnswer lookup;
  core::Verdict verdict = core::Verdict::kError;
  core::MatchOutcome match;
  std::string reason;
};
using VerifyCallback = std::function<void(VerifyAnswer)>;

// Retrieval latency histogram: fixed buckets, lock-free.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 14> kUpperMs = {1,   2,   5,    10,   20,   50,    100,
                                                      200, 500, 1000, 2000, 5000, 10000, 1e300};
  void Record(double ms);
  std::array<uint64_t, kUpperMs.size()> Counts() const;
  double SumMs() const;  // of every recorded value (Prometheus' _sum)
  // The upper bound of the bucket holding the p-quantile; in the overflow bucket (slower
  // than the last bound) the slowest value recorded, not the last bound.
  double Percentile(double p) const;
  double MaxMs() const;

 private:
  std::array<std::atomic<uint64_t>, kUpperMs.size()> counts_{};
  std::atomic<double> sum_ms_{0};
  std::atomic<double> max_ms_{0};
};

struct ServiceStats {
  std::atomic<uint64_t> lookups{0}, verifies{0}, cache_hits{0}, cache_misses{0}, fetches{0},
      coalesced{0}, in_flight{0}, errors{0}, refreshes{0}, stale_served{0}, not_found{0},
      invalid_requests{0}, queued{0}, dropped{0}, displaced{0}, reference_shared{0},
      reference_fetches{0}, connections{0}, connections_refused{0}, requests_too_large{0};
  LatencyHistogram retrieval_latency;
  l2::L2Stats l2;             // the second tier (--redis); all zero without one
  int64_t started_at_ms = 0;  // set once at construction
};

// Threads: the methods say where they run. State only the loop thread touches is
// ABSL_GUARDED_BY(loop_) (the EventLoop is the "loop thread" capability); the *OnLoop
// helpers require it, and every way into the loop (StartOnLoop/StopOnLoop, posted tasks,
// resolver and timer callbacks) asserts it with POSH_DCHECK_ON_LOOP, checked in debug
// builds.
class PoshService {
 public:
  // Creates the fetcher on the loop thread (tests inject fakes).
  using FetcherFactory = std::function<std::unique_ptr<fetch::Fetcher>(uv_loop_t*)>;

  PoshService(EventLoop& loop, cache::Store& store, const Clock& clock, ServiceOptions options,
              FetcherFactory fetcher_factory);
  ~PoshService();

  // The optional second tier (--redis, issue 16), created on the loop thread by
  // StartOnLoop and destroyed by StopOnLoop. Set before the loop starts; without it (the
  // default) nothing of the miss path changes.
  using SecondTierFactory =
      std::function<std::unique_ptr<l2::SecondTier>(uv_loop_t*, l2::L2Stats*)>;
  void SetSecondTierFactory(SecondTierFactory factory) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // Loop thread (asserted): create / destroy the fetcher and resolver. StopOnLoop answers
  // every waiter with a "shutting down" error.
  void StartOnLoop();
  void StopOnLoop();

  // Any thread. `cb` runs synchronously on a cache hit, else later on the loop thread.
  // `key` must be normalised. Same as LookupCached, then LookupMiss when it misses.
  void Lookup(const cache::Key& key, bool refresh, LookupCallback cb);
  // Verify `leaf` (already parsed) for key (R13-R15). VerifyCached, then VerifyMiss.
  void Verify(const cache::Key& key, std::shared_ptr<const core::Certificate> leaf,
              VerifyCallback cb);

  // The hot path, split out so that a caller can answer a hit without a callback object:
  // true and `*out` set when the store has a servable entry (counted as a lookup and a
  // hit; may post a background refresh, R19). False: nothing counted, call the *Miss form.
  bool LookupCached(const cache::Key& key, LookupAnswer* out);
  bool VerifyCached(const cache::Key& key, const core::Certificate& leaf, VerifyAnswer* out);
  // Counts the lookup (or verify) and the miss and answers from the loop thread, joining
  // or starting a retrieval (R18). A hit that appeared meanwhile is answered at once.
  // Returns a ticket for Abandon(); 0 when the answer was given at once.
  using MissTicket = uint64_t;
  MissTicket LookupMiss(const cache::Key& key, bool refresh, LookupCallback cb);
  MissTicket VerifyMiss(const cache::Key& key, std::shared_ptr<const core::Certificate> leaf,
                        VerifyCallback cb);
  // Any thread: the caller of a miss gave up (cancelled, or its deadline passed). Its
  // callback is dropped without being run; a retrieval nobody waits for any more is taken
  // off the queue, or cancelled when running, unless it is a background refresh (counted in
  // `dropped`). Unknown or already answered ticket: no-op.
  void Abandon(MissTicket ticket);

  // Reloadable settings (SIGHUP): applied on the loop thread.
  void UpdateOptions(ServiceOptions options);
  // New fetcher settings (trust anchors): retrievals started afterwards use a new fetcher;
  // the old one finishes what it has in flight, then is destroyed.
  void ReplaceFetcher(FetcherFactory factory);

  ServiceStats& stats() { return stats_; }
  cache::Store& store() { return store_; }
  const Clock& clock() const { return clock_; }
  uint64_t InFlight() const { return stats_.in_flight.load(std::memory_order_relaxed); }

 private:
  struct Waiter {
    MissTicket ticket = 0;  // 0: cannot be abandoned (internal callers)
    LookupCallback cb;
  };
  // One retrieval per (domain, service) (R18). Queued flights wait in queue_, running ones
  // are listed in running_order_ oldest first (the displacement candidates); each flight
  // keeps its position in those lists so that dropping it is O(1).
  struct Flight {
    cache::Key key;
    uint64_t id = 0;  // tells a reused key's new flight from the old one (late replies)
    std::vector<Waiter> waiters;
    resolve::Resolver::Handle handle = 0;
    resolve::Resolver* resolver = nullptr;
    int64_t started_ms = 0;   // queued at, then launched at (clock_.MonotonicMs())
    bool background = false;  // a refresh the cache needs: kept when nobody waits
    bool queued = false;
    bool running = false;
    bool l2_asked = false;  // the second tier was asked (or must not be: refresh, background)
    std::list<std::string>::iterator queue_pos;    // valid while queued
    std::list<std::string>::iterator running_pos;  // valid while running
  };

  void OnMissOnLoop(cache::Key key, bool refresh, MissTicket ticket, LookupCallback cb)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // `refresh`: the caller asked for a fresh retrieval: the second tier is not asked.
  void StartResolutionOnLoop(const cache::Key& key, Waiter waiter, bool background,
                             bool refresh = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // A launched flight's retrieval proper, on the resolver (after the second tier missed).
  void ResolveOnLoop(Flight& flight) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // The second tier's answer for flight `id` of `mk`: a hit is stored and answered, a miss
  // goes on to the retrieval. Ignored when that flight is gone (abandoned, displaced).
  void OnSecondTierOnLoop(const std::string& mk, uint64_t id,
                          std::shared_ptr<const cache::Entry> entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void LaunchOnLoop(const std::string& mk, Flight& flight) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void LaunchQueuedOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void PostLaunchQueuedOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // running_order_ below max_concurrent_retrievals.
  bool HasRetrievalSlot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void OnResolvedOnLoop(const cache::Key& key, resolve::Resolution resolution)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void AbandonOnLoop(MissTicket ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // Takes `mk`'s flight out of the queue / running list and the table; cancels its
  // retrieval when `cancel` (not when the retrieval has just finished). The flight is
  // returned so that its waiters can be answered last.
  Flight RemoveFlightOnLoop(const std::string& mk, bool cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // Removes and cancels a flight that will not complete (abandoned, queue full, displaced),
  // counted in `counter`; its key may be refreshed again.
  Flight DropFlightOnLoop(const std::string& mk, std::atomic<uint64_t>& counter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // Answers a flight's waiters with an error that is not stored in the cache (the failure
  // says nothing about the domain): queue full, displaced, shutting down.
  void FailFlightOnLoop(Flight flight, const std::shared_ptr<const cache::Entry>& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // Displaces running retrievals that have run longer than jostle_timeout while work waits.
  void JostleOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void ArmJostleTimerOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void UpdateQueueStatsOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  void TrimMemoryWhenIdleOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  // An error answer about poshd itself (shutting down, overloaded): never stored.
  static std::shared_ptr<const cache::Entry> ServiceErrorEntry(resolve::ErrorKind kind,
                                                               std::string why);
  void MaybeStartBackgroundRefresh(const cache::Key& key);
  static std::string MapKey(const cache::Key& key);
  // R13-R15 on an answered lookup.
  VerifyAnswer Judge(LookupAnswer lookup, const core::Certificate& leaf) const;
  static std::shared_ptr<const cache::Entry> ShuttingDownEntry();

  EventLoop& loop_;
  cache::Store& store_;
  const Clock& clock_;
  ServiceOptions options_ ABSL_GUARDED_BY(loop_);
  cache::Lifetimes lifetimes_ ABSL_GUARDED_BY(loop_);
  FetcherFactory fetcher_factory_ ABSL_GUARDED_BY(loop_);
  ServiceStats stats_;

  // Keys with a background refresh posted and not finished: at most one post per refresh,
  // however many hits arrive meanwhile (touched only in refresh windows, not on plain hits).
  util::Mutex refresh_mu_;
  std::unordered_set<std::string> refresh_posted_ ABSL_GUARDED_BY(refresh_mu_);
  void ClearRefreshPosted(const std::string& map_key) ABSL_LOCKS_EXCLUDED(refresh_mu_);

  // Loop thread only.
  std::unique_ptr<fetch::Fetcher> fetcher_ ABSL_GUARDED_BY(loop_);
  std::unique_ptr<resolve::Resolver> resolver_ ABSL_GUARDED_BY(loop_);
  SecondTierFactory second_tier_factory_ ABSL_GUARDED_BY(loop_);
  std::unique_ptr<l2::SecondTier> l2_ ABSL_GUARDED_BY(loop_);  // null without --redis
  uint64_t next_flight_id_ ABSL_GUARDED_BY(loop_) = 0;
  struct Retired {
    std::unique_ptr<fetch::Fetcher> fetcher;
    std::unique_ptr<resolve::Resolver> resolver;
  };
  std::vector<Retired> retired_ ABSL_GUARDED_BY(loop_);
  void CollectRetiredOnLoop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_);
  std::unordered_map<std::string, Flight> in_flight_ ABSL_GUARDED_BY(loop_);
  // Waiting ticket -> flight.
  std::unordered_map<MissTicket, std::string> ticket_flights_ ABSL_GUARDED_BY(loop_);
  // Flights waiting for a slot, oldest first.
  std::list<std::string> queue_ ABSL_GUARDED_BY(loop_);
  // Running flights, oldest launch first.
  std::list<std::string> running_order_ ABSL_GUARDED_BY(loop_);
  std::atomic<MissTicket> next_ticket_{1};
  // Armed while flights wait for a slot.
  uv_timer_t* jostle_timer_ ABSL_GUARDED_BY(loop_) = nullptr;
  size_t flights_peak_ ABSL_GUARDED_BY(loop_) = 0;  // since the last malloc_trim
  // At most one warning per 10 s for each kind of overload (a storm would flood the log);
  // Due() returns how many events the warning now reports, 0 while it stays quiet.
  struct RateLimitedLog {
    int64_t next_ms = 0;
    uint64_t pending = 0;
    uint64_t Due(int64_t now_ms) {
      ++pending;
      if (now_ms < next_ms) return 0;
      next_ms = now_ms + 10'000;
      return std::exchange(pending, 0);
    }
  };
  RateLimitedLog queue_full_log_ ABSL_GUARDED_BY(loop_);
  RateLimitedLog displaced_log_ ABSL_GUARDED_BY(loop_);
  bool launch_posted_ ABSL_GUARDED_BY(loop_) = false;  // a LaunchQueuedOnLoop is posted
  bool stopped_ ABSL_GUARDED_BY(loop_) = false;
};

const char* VerdictName(core::Verdict verdict);

}  // namespace posh::server
