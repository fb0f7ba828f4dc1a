#include "server/posh_service.h"

#include "util/log.h"
#include "util/text.h"

namespace posh::server {

void LatencyHistogram::Record(double ms) {
  size_t i = 0;
  while (i + 1 < kUpperMs.size() && ms > kUpperMs[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ms_.fetch_add(ms, std::memory_order_relaxed);
}

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
    if (seen >= rank) return i + 1 < counts.size() ? kUpperMs[i] : kUpperMs[i - 1];
  }
  return kUpperMs[kUpperMs.size() - 2];
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

void PoshService::StartOnLoop() {
  fetcher_ = fetcher_factory_(loop_.uv());
  resolver_ = std::make_unique<resolve::Resolver>(*fetcher_, clock_, options_.resolver);
}

std::shared_ptr<const cache::Entry> PoshService::ShuttingDownEntry() {
  auto e = std::make_shared<cache::Entry>();
  e->status = cache::EntryStatus::kError;
  e->error = "poshd is shutting down";
  e->error_kind = static_cast<uint8_t>(resolve::ErrorKind::kShuttingDown);
  return e;
}

void PoshService::StopOnLoop() {
  stopped_ = true;
  auto pending = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [k, flight] : pending) {
    if (flight.resolver) flight.resolver->Cancel(flight.handle);
    for (auto& w : flight.waiters) w(LookupAnswer{ShuttingDownEntry(), false, false});
  }
  stats_.in_flight.store(0, std::memory_order_relaxed);
  queued_.clear();
  running_ = 0;
  retired_.clear();
  resolver_.reset();
  fetcher_.reset();
}

void PoshService::ReplaceFetcher(FetcherFactory factory) {
  loop_.Post([this, factory = std::move(factory)] {
    if (stopped_) return;
    fetcher_factory_ = factory;
    retired_.push_back(Retired{std::move(fetcher_), std::move(resolver_)});
    fetcher_ = fetcher_factory_(loop_.uv());
    resolver_ = std::make_unique<resolve::Resolver>(*fetcher_, clock_, options_.resolver);
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

void PoshService::LookupMiss(const cache::Key& key, bool refresh, LookupCallback cb) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  stats_.cache_misses.fetch_add(1, std::memory_order_relaxed);
  auto shared_cb = std::make_shared<LookupCallback>(std::move(cb));
  bool posted = loop_.Post(
      [this, key, refresh, shared_cb] { OnMissOnLoop(key, refresh, std::move(*shared_cb)); });
  if (!posted) (*shared_cb)(LookupAnswer{ShuttingDownEntry(), false, false});
}

void PoshService::ClearRefreshPosted(const std::string& map_key) {
  std::lock_guard lock(refresh_mu_);
  refresh_posted_.erase(map_key);
}

void PoshService::MaybeStartBackgroundRefresh(const cache::Key& key) {
  std::string mk = MapKey(key);
  {
    std::lock_guard lock(refresh_mu_);
    if (!refresh_posted_.insert(mk).second) return;  // already on its way
  }
  bool posted = loop_.Post([this, key, mk] {
    if (stopped_) return;
    if (in_flight_.count(mk)) return;  // cleared when that retrieval completes
    // Re-check on the loop: another retrieval may have just replaced the entry.
    auto hit = store_.Get(key, clock_.NowMs());
    if (hit && !hit->needs_refresh) {
      ClearRefreshPosted(mk);
      return;
    }
    stats_.refreshes.fetch_add(1, std::memory_order_relaxed);
    StartResolutionOnLoop(key, {}, /*background=*/true);
  });
  if (!posted) ClearRefreshPosted(mk);
}

void PoshService::OnMissOnLoop(cache::Key key, bool refresh, LookupCallback cb) {
  if (stopped_) {
    cb(LookupAnswer{ShuttingDownEntry(), false, false});
    return;
  }
  auto it = in_flight_.find(MapKey(key));
  if (it != in_flight_.end()) {
    // R18: join the retrieval already running.
    stats_.coalesced.fetch_add(1, std::memory_order_relaxed);
    it->second.waiters.push_back(std::move(cb));
    return;
  }
  if (!refresh) {
    // A retrieval may have completed between the caller's miss and now.
    if (auto hit = store_.Get(key, clock_.NowMs())) {
      cb(LookupAnswer{std::move(hit->entry), true, hit->stale});
      return;
    }
  }
  std::vector<LookupCallback> waiters;
  waiters.push_back(std::move(cb));
  StartResolutionOnLoop(key, std::move(waiters), /*background=*/false);
}

void PoshService::StartResolutionOnLoop(const cache::Key& key, std::vector<LookupCallback> waiters,
                                        bool background) {
  std::string mk = MapKey(key);
  Flight& flight = in_flight_[mk];
  flight.waiters = std::move(waiters);
  flight.started_ms = clock_.NowMs();
  stats_.in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  POSH_LOG_DEBUG("retrieving POSH for %s (%s)%s", key.domain.c_str(), key.service.c_str(),
                 background ? " [background refresh]" : "");
  if (!HasRetrievalSlot()) {
    flight.queued = true;
    queued_.push_back(key);
    return;
  }
  LaunchOnLoop(key, flight);
}

void PoshService::LaunchOnLoop(const cache::Key& key, Flight& flight) {
  ++running_;
  flight.queued = false;
  flight.started_ms = clock_.NowMs();
  flight.resolver = resolver_.get();
  flight.handle = resolver_->Resolve(key.domain, key.service, [this, key](resolve::Resolution r) {
    OnResolvedOnLoop(key, std::move(r));
  });
}

bool PoshService::HasRetrievalSlot() const {
  return running_ < std::max<size_t>(1, options_.max_concurrent_retrievals);
}

void PoshService::LaunchQueuedOnLoop() {
  if (stopped_) return;
  while (!queued_.empty() && HasRetrievalSlot()) {
    cache::Key key = std::move(queued_.front());
    queued_.pop_front();
    auto it = in_flight_.find(MapKey(key));
    if (it == in_flight_.end() || !it->second.queued) continue;
    LaunchOnLoop(key, it->second);
  }
}

void PoshService::OnResolvedOnLoop(const cache::Key& key, resolve::Resolution r) {
  std::string mk = MapKey(key);
  auto it = in_flight_.find(mk);
  if (it == in_flight_.end()) return;
  Flight flight = std::move(it->second);
  in_flight_.erase(it);
  stats_.in_flight.store(in_flight_.size(), std::memory_order_relaxed);
  if (running_ > 0) --running_;
  // Start queued retrievals from a fresh loop turn, never inside the resolver's callback.
  if (!queued_.empty()) loop_.Post([this] { LaunchQueuedOnLoop(); });

  const int64_t now = clock_.NowMs();
  stats_.fetches.fetch_add(r.requests, std::memory_order_relaxed);
  stats_.retrieval_latency.Record(static_cast<double>(now - flight.started_ms));

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
  ClearRefreshPosted(mk);
  for (auto& w : flight.waiters) w(LookupAnswer{entry, false, stale});
  if (!retired_.empty()) loop_.Post([this] { CollectRetiredOnLoop(); });
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

void PoshService::VerifyMiss(const cache::Key& key, std::shared_ptr<const core::Certificate> leaf,
                             VerifyCallback cb) {
  stats_.verifies.fetch_add(1, std::memory_order_relaxed);
  // Lookup, not LookupMiss: the entry may have arrived since the caller's miss.
  Lookup(key, false, [this, leaf = std::move(leaf), cb = std::move(cb)](LookupAnswer a) {
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
    options_ = options;
    lifetimes_ = options.lifetimes;
    if (resolver_) resolver_->SetOptions(options.resolver);
    LaunchQueuedOnLoop();  // a raised max_concurrent_retrievals frees slots at once
  });
}

}  // namespace posh::server
