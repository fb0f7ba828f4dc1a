#include "server/posh_service.h"

#include <malloc.h>

#include "util/log.h"
#include "util/text.h"

namespace posh::server {

void LatencyHistogram::Record(double ms) {
  size_t i = 0;
  while (i + 1 < kUpperMs.size() && ms > kUpperMs[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ms_.fetch_add(ms, std::memory_order_relaxed);
  double seen = max_ms_.load(std::memory_order_relaxed);
  while (ms > seen && !max_ms_.compare_exchange_weak(seen, ms, std::memory_order_relaxed)) {
  }
}

double LatencyHistogram::MaxMs() const { return max_ms_.load(std::memory_order_relaxed); }

double LatencyHistogram::SumMs() const { return sum_ms_.load(std::memory_order_relaxed); }

std::array<uint64_t, LatencyHistogram::kUpperMs.size()> LatencyHistogram::Counts() const {
  std::array<uint64_t, kUpperMs.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

double LatencyHistogram::Percentile(double p) const {
  auto counts = Counts();
  uint64_t total = 0;
  for (auto c : counts) total += c;
  if (total == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(total) + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return i + 1 < counts.size() ? kUpperMs[i] : MaxMs();
  }
  return MaxMs();
}

const char* VerdictName(core::Verdict verdict) {
  switch (verdict) {
    case core::Verdict::kVerified:
      return "verified";
    case core::Verdict::kNotVerified:
      return "not_verified";
    case core::Verdict::kNoPosh:
      return "no_posh";
    case core::Verdict::kError:
      return "error";
  }
  return "error";
}

PoshService::PoshService(EventLoop& loop, cache::Store& store, const Clock& clock,
                         ServiceOptions options, FetcherFactory fetcher_factory)
    : loop_(loop),
      store_(store),
      clock_(clock),
      options_(std::move(options)),
      lifetimes_(options_.lifetimes),
      fetcher_factory_(std::move(fetcher_factory)) {
  stats_.started_at_ms = clock_.NowMs();
}

PoshService::~PoshService() = default;

void PoshService::SetSecondTierFactory(SecondTierFactory factory) {
  // Before the loop runs (main), or from a test before StartOnLoop: nothing else touches
  // the factory then (hence no analysis: the loop capability is not held yet).
  second_tier_factory_ = std::move(factory);
}

void PoshService::StartOnLoop() {
  POSH_DCHECK_ON_LOOP(loop_);
  fetcher_ = fetcher_factory_(loop_.uv());
  resolver_ = std::make_unique<resolve::Resolver>(
      *fetcher_, clock_, options_.resolver,
      resolve::ResolverCounters{&stats_.reference_shared, &stats_.reference_fetches});
  jostle_timer_ = new uv_timer_t;
  uv_timer_init(loop_.uv(), jostle_timer_);
  jostle_timer_->data = this;
  if (second_tier_factory_) l2_ = second_tier_factory_(loop_.uv(), &stats_.l2);
}

std::shared_ptr<const cache::Entry> PoshService::ServiceErrorEntry(resolve::ErrorKind kind,
                                                                   std::string why) {
  auto e = std::make_shared<cache::Entry>();
  e->status = cache::EntryStatus::kError;
  e->error = std::move(why);
  e->error_kind = static_cast<uint8_t>(kind);
  return e;
}

std::shared_ptr<const cache::Entry> PoshService::ShuttingDownEntry() {
  return ServiceErrorEntry(resolve::ErrorKind::kShuttingDown, "poshd is shutting down");
}

void PoshService::StopOnLoop() {
  POSH_DCHECK_ON_LOOP(loop_);
  stopped_ = true;
  auto pending = std::move(in_flight_);
  in_flight_.clear();
  ticket_flights_.clear();
  queue_.clear();
  running_order_.clear();
  UpdateQueueStatsOnLoop();
  auto entry = ShuttingDownEntry();
  for (auto& [k, flight] : pending) {
    if (flight.running && flight.resolver && flight.handle != 0) {
      flight.resolver->Cancel(flight.handle);
    }
    for (auto& w : flight.waiters) w.cb(LookupAnswer{entry, false, false});
  }
  if (jostle_timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(jostle_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    jostle_timer_ = nullptr;
  }
  l2_.reset();  // pending reads are dropped: their flights were answered above
  retired_.clear();
  resolver_.reset();
  fetcher_.reset();
}

void PoshService::ReplaceFetcher(FetcherFactory factory) {
  loop_.Post([this, factory = std::move(factory)] {
    POSH_DCHECK_ON_LOOP(loop_);
    if (stopped_) return;
    fetcher_factory_ = factory;
    retired_.push_back(Retired{std::move(fetcher_), std::move(resolver_)});
    fetcher_ = fetcher_factory_(loop_.uv());
    resolver_ = std::make_unique<resolve::Resolver>(
        *fetcher_, clock_, options_.resolver,
        resolve::ResolverCounters{&stats_.reference_shared, &stats_.reference_fetches});
    CollectRetiredOnLoop();
  });
}

void PoshService::CollectRetiredOnLoop() {
  // Destroy retired resolvers once idle; never from inside their own callbacks (posted).
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (it->resolver->InFlight() == 0) {
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string PoshService::MapKey(const cache::Key& key) {
  std::string k;
  k.reserve(key.domain.size() + key.service.size() + 1);
  k.append(key.domain).push_back('\0');
  k.append(key.service);
  return k;
}

void PoshService::Lookup(const cache::Key& key, bool refresh, LookupCallback cb) {
  LookupAnswer hit;
  if (!refresh && LookupCached(key, &hit)) {
    cb(std::move(hit));
    return;
  }
  LookupMiss(key, refresh, std::move(cb));
}

bool PoshService::LookupCached(const cache::Key& key, LookupAnswer* out) {
  // Hot path: answered on the caller's thread, shared locks only.
  auto hit = store_.Get(key, clock_.NowMs());
  if (!hit) return false;
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  stats_.cache_hits.fetch_add(1, std::memory_order_relaxed);
  if (hit->stale) stats_.stale_served.fetch_add(1, std::memory_order_relaxed);
  if (hit->needs_refresh) MaybeStartBackgroundRefresh(key);
  out->entry = std::move(hit->entry);
  out->from_cache = true;
  out->stale = hit->stale;
  return true;
}

PoshService::MissTicket PoshService::LookupMiss(const cache::Key& key, bool refresh,
                                                LookupCallback cb) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  stats_.cache_misses.fetch_add(1, std::memory_order_relaxed);
  const MissTicket ticket = next_ticket_.fetch_add(1, std::memory_order_relaxed);
  auto shared_cb = std::make_shared<LookupCallback>(std::move(cb));
  bool posted = loop_.Post([this, key, refresh, ticket, shared_cb] {
    POSH_DCHECK_ON_LOOP(loop_);
    OnMissOnLoop(key, refresh, ticket, std::move(*shared_cb));
  });
  if (!posted) {
    (*shared_cb)(LookupAnswer{ShuttingDownEntry(), false, false});
    return 0;
  }
  return ticket;
}

void PoshService::Abandon(MissTicket ticket) {
  if (ticket == 0) return;
  // Posted after the miss itself (the caller had the ticket only once LookupMiss returned),
  // so the loop always sees the miss first.
  loop_.Post([this, ticket] {
    POSH_DCHECK_ON_LOOP(loop_);
    AbandonOnLoop(ticket);
  });
}

void PoshService::AbandonOnLoop(MissTicket ticket) {
  auto t = ticket_flights_.find(ticket);
  if (t == ticket_flights_.end()) return;  // answered already
  const std::string mk = std::move(t->second);
  ticket_flights_.erase(t);
  auto it = in_flight_.find(mk);
  if (it == in_flight_.end()) return;
  Flight& flight = it->second;
  auto& ws = flight.waiters;
  for (size_t i = 0; i < ws.size(); ++i) {
    if (ws[i].ticket == ticket) {
      ws[i] = std::move(ws.back());
      ws.pop_back();
      break;
    }
  }
  if (!ws.empty() || flight.background) return;
  // Nobody waits for this retrieval any more and the cache did not ask for it: free its
  // queue place or its slot (and its sockets) for work someone still waits for.
  POSH_LOG_DEBUG("dropping the retrieval for %s (%s): every caller gave up",
                 flight.key.domain.c_str(), flight.key.service.c_str());
  DropFlightOnLoop(mk, stats_.dropped);
  PostLaunchQueuedOnLoop();
  TrimMemoryWhenIdleOnLoop();
}

void PoshService::PostLaunchQueuedOnLoop() {
  // From the next loop turn: the rest of this batch of posted tasks (typically more
  // abandoned tickets of the same client) runs first, so a queued retrieval that is about to
  // be abandoned too is not started for nothing. One post however many slots free up.
  if (queue_.empty() || launch_posted_) return;
  launch_posted_ = true;
  loop_.Post([this] {
    POSH_DCHECK_ON_LOOP(loop_);
    launch_posted_ = false;
    LaunchQueuedOnLoop();
  });
}

PoshService::Flight PoshService::RemoveFlightOnLoop(const std::string& mk, bool cancel) {
  auto it = in_flight_.find(mk);
  Flight flight = std::move(it->second);
  in_flight_.erase(it);
  if (flight.queued) queue_.erase(flight.queue_pos);
  if (flight.running) {
    running_order_.erase(flight.running_pos);
    // handle 0: still asking the second tier (its late reply finds no flight).
    if (cancel && flight.handle != 0) flight.resolver->Cancel(flight.handle);
  }
  flight.queued = flight.running = false;
  for (const auto& w : flight.waiters) {
    if (w.ticket != 0) ticket_flights_.erase(w.ticket);
  }
  UpdateQueueStatsOnLoop();
  return flight;
}

PoshService::Flight PoshService::DropFlightOnLoop(const std::string& mk,
                                                  std::atomic<uint64_t>& counter) {
  ClearRefreshPosted(mk);
  counter.fetch_add(1, std::memory_order_relaxed);
  return RemoveFlightOnLoop(mk, /*cancel=*/true);
}

void PoshService::FailFlightOnLoop(Flight flight,
                                   const std::shared_ptr<const cache::Entry>& entry) {
  for (auto& w : flight.waiters) w.cb(LookupAnswer{entry, false, false});
}

void PoshService::UpdateQueueStatsOnLoop() {
  stats_.in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  stats_.queued.store(queue_.size(), std::memory_order_relaxed);
  flights_peak_ = std::max(flights_peak_, in_flight_.size());
}

void PoshService::TrimMemoryWhenIdleOnLoop() {
  // After a storm of thousands of flights the allocator keeps the freed pages; give them
  // back once the storm is over (rare, and only after a large peak: malloc_trim costs a
  // walk of the heap).
  if (!in_flight_.empty() || flights_peak_ < 1000) return;
  flights_peak_ = 0;
  malloc_trim(0);
}

void PoshService::ClearRefreshPosted(const std::string& map_key) {
  util::MutexLock lock(&refresh_mu_);
  refresh_posted_.erase(map_key);
}

void PoshService::MaybeStartBackgroundRefresh(const cache::Key& key) {
  std::string mk = MapKey(key);
  {
    util::MutexLock lock(&refresh_mu_);
    if (!refresh_posted_.insert(mk).second) return;  // already on its way
  }
  bool posted = loop_.Post([this, key, mk] {
    POSH_DCHECK_ON_LOOP(loop_);
    if (stopped_) return;
    if (in_flight_.count(mk)) return;  // cleared when that retrieval completes
    // Re-check on the loop: another retrieval may have just replaced the entry.
    auto hit = store_.Get(key, clock_.NowMs());
    if (hit && !hit->needs_refresh) {
      ClearRefreshPosted(mk);
      return;
    }
    stats_.refreshes.fetch_add(1, std::memory_order_relaxed);
    StartResolutionOnLoop(key, Waiter{}, /*background=*/true);
  });
  if (!posted) ClearRefreshPosted(mk);
}

void PoshService::OnMissOnLoop(cache::Key key, bool refresh, MissTicket ticket, LookupCallback cb) {
  if (stopped_) {
    cb(LookupAnswer{ShuttingDownEntry(), false, false});
    return;
  }
  std::string mk = MapKey(key);
  auto it = in_flight_.find(mk);
  if (it != in_flight_.end()) {
    // R18: join the retrieval already running.
    stats_.coalesced.fetch_add(1, std::memory_order_relaxed);
    it->second.waiters.push_back(Waiter{ticket, std::move(cb)});
    if (ticket != 0) ticket_flights_.emplace(ticket, std::move(mk));
    return;
  }
  if (!refresh) {
    // A retrieval may have completed between the caller's miss and now.
    if (auto hit = store_.Get(key, clock_.NowMs())) {
      cb(LookupAnswer{std::move(hit->entry), true, hit->stale});
      return;
    }
  }
  StartResolutionOnLoop(key, Waiter{ticket, std::move(cb)}, /*background=*/false, refresh);
}

void PoshService::StartResolutionOnLoop(const cache::Key& key, Waiter waiter, bool background,
                                        bool refresh) {
  std::string mk = MapKey(key);
  Flight& flight = in_flight_[mk];
  flight.key = key;
  flight.id = ++next_flight_id_;
  flight.background = background;
  // A caller's refresh wants the origin, not a copy of the fleet's. A background refresh
  // asks the tier first: another daemon of the fleet may have refreshed the domain already
  // (OnSecondTierOnLoop takes that copy only when it is not itself due for a refresh).
  flight.l2_asked = refresh;
  flight.started_ms = clock_.MonotonicMs();
  if (waiter.cb) {
    if (waiter.ticket != 0) ticket_flights_.emplace(waiter.ticket, mk);
    flight.waiters.push_back(std::move(waiter));
  }
  POSH_LOG_DEBUG("retrieving POSH for %s (%s)%s", key.domain.c_str(), key.service.c_str(),
                 background ? " [background refresh]" : "");
  if (queue_.empty() && HasRetrievalSlot()) {
    LaunchOnLoop(mk, flight);
    UpdateQueueStatsOnLoop();
    return;
  }
  flight.queued = true;
  flight.queue_pos = queue_.insert(queue_.end(), mk);
  // Bounded queue: over the cap the retrieval that has waited longest goes (its callers,
  // if any are left, have waited longest too and are the nearest to their deadlines).
  const size_t cap = std::max<size_t>(1, options_.max_queued_retrievals);
  while (queue_.size() > cap) {
    std::string victim = queue_.front();
    if (const uint64_t n = queue_full_log_.Due(clock_.MonotonicMs())) {
      POSH_LOG_WARN(
          "retrieval queue full (%zu, --max-queued-retrievals): dropping the retrieval "
          "for %s (%llu dropped for this since the last report)",
          cap, in_flight_[victim].key.domain.c_str(), static_cast<unsigned long long>(n));
    }
    FailFlightOnLoop(DropFlightOnLoop(victim, stats_.dropped),
                     ServiceErrorEntry(resolve::ErrorKind::kOverloaded,
                                       "poshd is overloaded: the retrieval queue is full (" +
                                           std::to_string(cap) + " waiting); try again later"));
  }
  UpdateQueueStatsOnLoop();
  JostleOnLoop();
  LaunchQueuedOnLoop();
  ArmJostleTimerOnLoop();
}

void PoshService::LaunchOnLoop(const std::string& mk, Flight& flight) {
  if (flight.queued) {
    queue_.erase(flight.queue_pos);
    flight.queued = false;
  }
  flight.running = true;
  flight.running_pos = running_order_.insert(running_order_.end(), mk);
  flight.started_ms = clock_.MonotonicMs();
  flight.resolver = resolver_.get();
  flight.handle = 0;
  if (l2_ && !flight.l2_asked) {
    // Inside the flight: one read of the second tier per key, however many callers wait
    // (R18). It holds the slot for at most the tier's read budget.
    flight.l2_asked = true;
    const uint64_t id = flight.id;
    if (l2_->Get(flight.key, [this, mk, id](std::shared_ptr<const cache::Entry> entry) {
          POSH_DCHECK_ON_LOOP(loop_);
          OnSecondTierOnLoop(mk, id, std::move(entry));
        })) {
      return;
    }
  }
  ResolveOnLoop(flight);
}

void PoshService::ResolveOnLoop(Flight& flight) {
  flight.resolver = resolver_.get();
  const cache::Key key = flight.key;
  flight.handle = resolver_->Resolve(key.domain, key.service, [this, key](resolve::Resolution r) {
    POSH_DCHECK_ON_LOOP(loop_);
    OnResolvedOnLoop(key, std::move(r));
  });
}

void PoshService::OnSecondTierOnLoop(const std::string& mk, uint64_t id,
                                     std::shared_ptr<const cache::Entry> entry) {
  if (stopped_) return;
  auto it = in_flight_.find(mk);
  if (it == in_flight_.end() || it->second.id != id || !it->second.running ||
      it->second.handle != 0) {
    return;  // dropped meanwhile (abandoned, displaced): nothing waits for this answer
  }
  if (!entry) {
    ResolveOnLoop(it->second);  // miss, timeout, error: fetch as without the tier
    return;
  }
  if (it->second.background && entry->status == cache::EntryStatus::kFound &&
      clock_.NowMs() >= entry->refresh_at_ms) {
    // The fleet's copy is as old as ours (often ours): a refresh needs the origin.
    POSH_LOG_DEBUG("refreshing %s (%s): the second tier's copy is due for a refresh too",
                   it->second.key.domain.c_str(), it->second.key.service.c_str());
    ResolveOnLoop(it->second);
    return;
  }
  Flight flight = RemoveFlightOnLoop(mk, /*cancel=*/false);
  PostLaunchQueuedOnLoop();
  POSH_LOG_DEBUG("POSH for %s (%s) from the second tier", flight.key.domain.c_str(),
                 flight.key.service.c_str());
  store_.Put(flight.key, entry);
  ClearRefreshPosted(mk);
  for (auto& w : flight.waiters) w.cb(LookupAnswer{entry, false, false});
  TrimMemoryWhenIdleOnLoop();
}

bool PoshService::HasRetrievalSlot() const {
  return running_order_.size() < std::max<size_t>(1, options_.max_concurrent_retrievals);
}

void PoshService::LaunchQueuedOnLoop() {
  if (stopped_) return;
  const int64_t now = clock_.MonotonicMs();
  while (!queue_.empty() && HasRetrievalSlot()) {
    // FIFO while the queue moves; when its head has waited past the jostle timeout the
    // daemon is overloaded, and the newest retrieval goes first (adaptive LIFO): its
    // caller has the most time left, while the oldest are likely to be abandoned anyway.
    const std::string& head = queue_.front();
    const bool overloaded = options_.jostle_timeout_ms > 0 &&
                            now - in_flight_[head].started_ms > options_.jostle_timeout_ms;
    std::string mk = overloaded ? queue_.back() : head;
    LaunchOnLoop(mk, in_flight_[mk]);
  }
  UpdateQueueStatsOnLoop();
  ArmJostleTimerOnLoop();
}

void PoshService::JostleOnLoop() {
  if (stopped_ || options_.jostle_timeout_ms <= 0) return;
  const int64_t now = clock_.MonotonicMs();
  // Unbound's jostle-timeout: while retrievals wait for a slot, one that has run longer
  // than the timeout (an origin that does not answer, a slow body) gives its slot up.
  while (!queue_.empty() && !HasRetrievalSlot() && !running_order_.empty()) {
    const std::string oldest = running_order_.front();
    const int64_t ran = now - in_flight_[oldest].started_ms;
    if (ran <= options_.jostle_timeout_ms) break;
    Flight displaced = DropFlightOnLoop(oldest, stats_.displaced);
    if (const uint64_t n = displaced_log_.Due(now)) {
      POSH_LOG_WARN(
          "retrieval for %s (%s) displaced after %lld ms by waiting work "
          "(--jostle-timeout %lld ms, --max-concurrent-retrievals %zu; %llu displaced since "
          "the last report)",
          displaced.key.domain.c_str(), displaced.key.service.c_str(), static_cast<long long>(ran),
          static_cast<long long>(options_.jostle_timeout_ms), options_.max_concurrent_retrievals,
          static_cast<unsigned long long>(n));
    }
    FailFlightOnLoop(
        std::move(displaced),
        ServiceErrorEntry(
            resolve::ErrorKind::kOverloaded,
            "poshd is overloaded: the retrieval ran " + std::to_string(ran) +
                " ms and was displaced by newer work (jostle-timeout); try again later"));
  }
}

void PoshService::ArmJostleTimerOnLoop() {
  if (!jostle_timer_ || stopped_) return;
  if (queue_.empty() || running_order_.empty() || options_.jostle_timeout_ms <= 0) {
    uv_timer_stop(jostle_timer_);
    return;
  }
  // Due when the oldest running retrieval passes the jostle timeout.
  const int64_t due = in_flight_[running_order_.front()].started_ms + options_.jostle_timeout_ms;
  const int64_t wait = std::max<int64_t>(1, due - clock_.MonotonicMs() + 1);
  uv_timer_start(
      jostle_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<PoshService*>(t->data);
        POSH_DCHECK_ON_LOOP(self->loop_);
        self->JostleOnLoop();
        self->LaunchQueuedOnLoop();
      },
      static_cast<uint64_t>(wait), 0);
}

void PoshService::OnResolvedOnLoop(const cache::Key& key, resolve::Resolution r) {
  std::string mk = MapKey(key);
  auto it = in_flight_.find(mk);
  if (it == in_flight_.end() || !it->second.running) return;
  Flight flight = RemoveFlightOnLoop(mk, /*cancel=*/false);  // its resolver job is over
  // Start queued retrievals from a fresh loop turn, never inside the resolver's callback.
  PostLaunchQueuedOnLoop();

  const int64_t now = clock_.NowMs();
  stats_.fetches.fetch_add(r.requests, std::memory_order_relaxed);
  stats_.retrieval_latency.Record(static_cast<double>(clock_.MonotonicMs() - flight.started_ms));

  std::shared_ptr<const cache::Entry> entry;
  bool stale = false;
  switch (r.status) {
    case resolve::Resolution::Status::kFound: {
      // Text that reaches the API is made valid UTF-8 once, here, not on every answer.
      core::PoshRecord clean = std::move(r.record);
      clean.delegated_to = SanitizeUtf8(clean.delegated_to);
      clean.source_url = SanitizeUtf8(clean.source_url);
      for (auto& k : clean.keys) {
        k.kid = SanitizeUtf8(k.kid, 256);
        k.kty = SanitizeUtf8(k.kty, 32);
      }
      auto record = std::make_shared<const core::PoshRecord>(std::move(clean));
      entry = cache::MakePositiveEntry(record, now, lifetimes_);
      if (!entry) {
        auto e = std::make_shared<cache::Entry>();
        e->status = cache::EntryStatus::kError;
        e->error = "POSH record already expired when retrieved";
        e->error_kind = static_cast<uint8_t>(resolve::ErrorKind::kDocument);
        e->fetched_at_ms = now;
        e->expires_at_ms = now + lifetimes_.error_ttl_ms;
        entry = std::move(e);
      }
      POSH_LOG_INFO("POSH found for %s (%s)%s%s", key.domain.c_str(), key.service.c_str(),
                    record->delegated_to.empty() ? "" : ", delegated to ",
                    record->delegated_to.c_str());
      break;
    }
    case resolve::Resolution::Status::kNotFound:
      stats_.not_found.fetch_add(1, std::memory_order_relaxed);
      entry = cache::MakeNotFoundEntry(now, lifetimes_);
      POSH_LOG_INFO("no POSH published for %s (%s)", key.domain.c_str(), key.service.c_str());
      break;
    case resolve::Resolution::Status::kError: {
      stats_.errors.fetch_add(1, std::memory_order_relaxed);
      POSH_LOG_WARN("POSH retrieval for %s (%s) failed: %s", key.domain.c_str(),
                    key.service.c_str(), r.error.c_str());
      if (r.transient) {
        // R19: a transient failure keeps serving the old positive entry for a bounded time.
        auto old = store_.Peek(key);
        if (old && old->status == cache::EntryStatus::kFound) {
          entry = cache::MakeStaleEntry(*old, now, lifetimes_);
          if (entry) stale = true;
        }
      }
      if (!entry) {
        entry = cache::MakeErrorEntry(SanitizeUtf8(r.error), static_cast<uint8_t>(r.error_kind),
                                      now, lifetimes_);
      }
      break;
    }
  }
  store_.Put(key, entry);
  // A fresh result from the origin is shared with the fleet; errors and stale copies never.
  if (l2_ && !stale && entry->status != cache::EntryStatus::kError) l2_->Put(key, *entry);
  ClearRefreshPosted(mk);
  for (auto& w : flight.waiters) w.cb(LookupAnswer{entry, false, stale});
  if (!retired_.empty()) {
    loop_.Post([this] {
      POSH_DCHECK_ON_LOOP(loop_);
      CollectRetiredOnLoop();
    });
  }
  TrimMemoryWhenIdleOnLoop();
}

void PoshService::Verify(const cache::Key& key, std::shared_ptr<const core::Certificate> leaf,
                         VerifyCallback cb) {
  VerifyAnswer answer;
  if (VerifyCached(key, *leaf, &answer)) {
    cb(std::move(answer));
    return;
  }
  VerifyMiss(key, std::move(leaf), std::move(cb));
}

bool PoshService::VerifyCached(const cache::Key& key, const core::Certificate& leaf,
                               VerifyAnswer* out) {
  LookupAnswer hit;
  if (!LookupCached(key, &hit)) return false;
  stats_.verifies.fetch_add(1, std::memory_order_relaxed);
  *out = Judge(std::move(hit), leaf);
  return true;
}

PoshService::MissTicket PoshService::VerifyMiss(const cache::Key& key,
                                                std::shared_ptr<const core::Certificate> leaf,
                                                VerifyCallback cb) {
  stats_.verifies.fetch_add(1, std::memory_order_relaxed);
  // The entry may have arrived since the caller's miss.
  LookupAnswer hit;
  if (LookupCached(key, &hit)) {
    cb(Judge(std::move(hit), *leaf));
    return 0;
  }
  return LookupMiss(key, false, [this, leaf = std::move(leaf), cb = std::move(cb)](LookupAnswer a) {
    cb(Judge(std::move(a), *leaf));
  });
}

VerifyAnswer PoshService::Judge(LookupAnswer lookup, const core::Certificate& leaf) const {
  VerifyAnswer v;
  const cache::Entry& e = *lookup.entry;
  switch (e.status) {
    case cache::EntryStatus::kFound:
      v.match = core::Match(*e.record, leaf, clock_.NowSeconds());
      v.verdict = v.match.matched ? core::Verdict::kVerified : core::Verdict::kNotVerified;
      if (!v.match.matched) v.reason = v.match.reason;
      break;
    case cache::EntryStatus::kNotFound:
      v.verdict = core::Verdict::kNoPosh;
      v.reason = "no POSH document published";
      break;
    case cache::EntryStatus::kError:
      v.verdict = core::Verdict::kError;
      v.reason = e.error;
      break;
  }
  v.lookup = std::move(lookup);
  return v;
}

void PoshService::UpdateOptions(ServiceOptions options) {
  loop_.Post([this, options = std::move(options)] {
    POSH_DCHECK_ON_LOOP(loop_);
    options_ = options;
    lifetimes_ = options.lifetimes;
    if (resolver_) resolver_->SetOptions(options.resolver);
    if (l2_) l2_->SetLifetimes(options.lifetimes);
    JostleOnLoop();        // a lowered jostle timeout applies at once
    LaunchQueuedOnLoop();  // a raised max_concurrent_retrievals frees slots at once
  });
}

}  // namespace posh::server
