// The POSH retrieval state machine (R3-R7, R11). One Job per resolution:
//
//   primary phase:   template[i] URL -> (redirects) -> 200 document | 404/410 -> template[i+1]
//   reference phase: reference url  -> (redirects) -> 200 terminal document
//
// One deadline (R7) and one redirect budget / seen-URL set (R6) cover the whole
// resolution. Every completion happens inside a Fetcher callback, which the Fetcher never
// invokes synchronously, so Resolve() never calls back synchronously either.
//
// The reference phase is shared between jobs (delegation fan-in, issue 13): a job takes a
// fresh target from the ReferenceTargetCache, or joins the Flight retrieving its reference
// URL, or starts one. A Flight follows the target's redirects with its own seen set and the
// full redirect budget, under the deadline of the job that started it, and records the
// hops; each job then replays those hops through the same R6 checks against its own
// budget and seen set, so what a job accepts or refuses (and the message) is what it would
// have been had it fetched alone. A job joins only a flight whose deadline is not later
// than its own (R7), and when a flight times out, a waiting job with time left tries again.
#include "resolve/resolver.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include "core/document.h"
#include "fetch/url.h"
#include "resolve/reference_cache.h"
#include "util/thread_checker.h"

namespace posh::resolve {
namespace {

constexpr std::string_view kDraftMarker = "_{service}._tcp.json";

std::string Substitute(std::string text, std::string_view key, std::string_view value) {
  size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string::npos) {
    text.replace(pos, key.size(), value);
    pos += value.size();
  }
  return text;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsRedirectStatus(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

std::string HostOf(const std::string& url) {
  auto parsed = fetch::ParseAbsoluteUrl(url);
  return parsed ? parsed->host : std::string();
}

// A failed step, before it becomes a Resolution.
struct Failure {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
  bool transient = false;
};

Failure FromFetchError(const std::string& url, const fetch::FetchError& e) {
  ErrorKind kind = ErrorKind::kInternal;
  bool transient = false;
  switch (e.kind) {
    case fetch::FetchErrorKind::kTimeout:
      kind = ErrorKind::kTimeout;
      transient = true;
      break;
    case fetch::FetchErrorKind::kConnect:
      kind = ErrorKind::kConnect;
      transient = true;
      break;
    case fetch::FetchErrorKind::kTls:
      kind = ErrorKind::kTls;
      transient = true;
      break;
    case fetch::FetchErrorKind::kTooLarge:
      kind = ErrorKind::kLimit;
      break;
    case fetch::FetchErrorKind::kAddressRefused:
      kind = ErrorKind::kAddress;
      break;
    case fetch::FetchErrorKind::kProtocol:
      kind = ErrorKind::kConnect;
      break;
    case fetch::FetchErrorKind::kCancelled:
    case fetch::FetchErrorKind::kInternal:
      kind = ErrorKind::kInternal;
      break;
  }
  return Failure{kind, url + ": " + e.message, transient};
}

// R5: a status that is neither 200, 404/410 nor a redirect. 5xx is transient (R19).
Failure FromStatus(const std::string& url, long status) {
  return Failure{ErrorKind::kHttpStatus, "HTTP " + std::to_string(status) + " from " + url,
                 status >= 500 && status <= 599};
}

// The R6 checks of one redirect from `from`, in this order. `draft_service` non-null: the
// seed draft's path rule applies (primary phase, draft template) with that service.
std::optional<Failure> CheckRedirect(const std::string& from, long status,
                                     const std::string& location, int redirects, int max_redirects,
                                     const std::unordered_set<std::string>& seen,
                                     const std::string* draft_service) {
  std::string prefix = from + ": HTTP " + std::to_string(status) + " redirect";
  if (location.empty()) {
    return Failure{ErrorKind::kRedirect, prefix + " without Location", false};
  }
  if (!fetch::HasScheme(location)) {
    return Failure{
        ErrorKind::kRedirect,
        prefix + " to relative Location \"" + location + "\" (must be an absolute https: URL, R6)",
        false};
  }
  auto target = fetch::ParseAbsoluteUrl(location);
  if (!target) {
    return Failure{ErrorKind::kRedirect,
                   prefix + " to invalid Location \"" + location + "\": " + target.error().message,
                   false};
  }
  if (target->scheme != "https") {
    return Failure{ErrorKind::kRedirect, prefix + " to non-https URL " + location + " (R6)", false};
  }
  if (redirects >= max_redirects) {
    return Failure{ErrorKind::kRedirect,
                   prefix + " to " + location + ": too many redirects (more than " +
                       std::to_string(max_redirects) + ", R6)",
                   false};
  }
  if (seen.count(location) > 0) {
    return Failure{ErrorKind::kRedirect, prefix + " to " + location + ": redirect loop (R6)",
                   false};
  }
  if (draft_service != nullptr) {
    std::string suffix = "_" + *draft_service + "._tcp.json";
    std::string_view segment = fetch::LastPathSegment(target->path);
    if (!EndsWith(segment, suffix)) {
      return Failure{ErrorKind::kRedirect,
                     prefix + " to " + location +
                         ": the target's last path segment must end in \"" + suffix +
                         "\" (seed draft §4, R6)",
                     false};
    }
  }
  return std::nullopt;
}

}  // namespace

struct Resolver::Impl {
  enum class Phase { kPrimary, kReference };
  using FlightId = uint64_t;

  struct Job {
    Handle id = 0;
    std::string domain;
    std::string service;
    Callback cb;
    ResolverOptions options;
    int64_t deadline_ms = 0;  // R7, on clock.MonotonicMs()
    size_t template_index = 0;
    bool draft_template = false;  // the current template is the seed draft's (R6 path rule)
    int redirects = 0;
    std::unordered_set<std::string> seen;
    Phase phase = Phase::kPrimary;
    std::string url;  // URL being fetched (reference phase: reached through the target)
    std::string reference_url;
    int64_t reference_expires = 0;
    fetch::Fetcher::Handle fetch = 0;
    bool fetching = false;  // primary phase only: the reference phase fetches in a Flight
    uint32_t requests = 0;
    FlightId flight = 0;          // reference phase: the shared retrieval it waits on
    bool shared_counted = false;  // counted once in reference_shared, even when retrying
  };

  // One retrieval of a reference target, shared by every job waiting on it. It belongs to
  // the Impl: the job that started it may be cancelled while others still wait.
  struct Flight {
    FlightId id = 0;
    std::string reference_url;
    std::string url;          // URL being fetched
    int64_t deadline_ms = 0;  // of the job that started it (R7), on clock.MonotonicMs()
    size_t max_body = 0;
    int max_redirects = 0;
    int redirects = 0;
    std::unordered_set<std::string> seen;  // its own: loops within the target's chain
    std::vector<RedirectHop> hops;
    fetch::Fetcher::Handle fetch = 0;  // always in flight while the Flight exists
    uint32_t requests = 0;
    std::vector<Handle> waiters;  // oldest first
  };

  // How a flight ended: a target, or a failure reached after `hops`.
  struct Outcome {
    std::shared_ptr<const ReferenceTarget> target;
    std::vector<RedirectHop> hops;       // failure: redirects followed first
    std::optional<RedirectHop> refused;  // failure: the redirect the flight refused (R6)
    std::string url;                     // failure: the URL that failed
    Failure failure;
    bool timeout = false;  // a fetch timeout, relative to the flight's deadline
    int64_t deadline_ms = 0;
  };

  Impl(fetch::Fetcher& f, const Clock& c, ResolverOptions o, ResolverCounters k)
      : fetcher(f),
        clock(c),
        options(Normalize(std::move(o))),
        counters(k),
        cache(options.reference_cache_entries) {}
  ~Impl() { *alive = false; }

  static ResolverOptions Normalize(ResolverOptions o) {
    if (o.url_templates.empty()) o.url_templates = DefaultUrlTemplates();
    if (o.max_redirects < 0) o.max_redirects = 0;
    if (o.reference_cache_max_ttl.count() < 0) o.reference_cache_max_ttl = std::chrono::seconds(0);
    return o;
  }

  // The fetcher is given the budget, not the deadline: the deadline lives on the injected
  // clock, which the fetcher does not share (a FakeClock in tests).
  std::chrono::milliseconds TimeLeft(int64_t deadline_ms) const {
    return std::chrono::milliseconds(deadline_ms - clock.MonotonicMs());
  }

  static void Bump(std::atomic<uint64_t>* counter) {
    if (counter != nullptr) counter->fetch_add(1, std::memory_order_relaxed);
  }

  Handle Start(std::string domain, std::string service, Callback cb) {
    auto job = std::make_unique<Job>();
    job->id = next_id++;
    job->domain = std::move(domain);
    job->service = std::move(service);
    job->cb = std::move(cb);
    job->options = options;
    job->deadline_ms = clock.MonotonicMs() + job->options.timeout.count();
    Job& j = *job;
    jobs.emplace(j.id, std::move(job));
    StartTemplate(j);
    return j.id;
  }

  void StartTemplate(Job& j) {
    const std::string& tmpl = j.options.url_templates[j.template_index];
    j.draft_template = EndsWith(tmpl, kDraftMarker);
    std::string url = Substitute(Substitute(tmpl, "{domain}", j.domain), "{service}", j.service);
    j.seen.insert(url);
    Fetch(j, std::move(url));
  }

  void Fetch(Job& j, std::string url) {
    j.url = std::move(url);
    ++j.requests;
    fetch::FetchRequest req;
    req.url = j.url;
    req.max_body = j.options.max_body;
    req.time_left = TimeLeft(j.deadline_ms);
    Handle id = j.id;
    j.fetching = true;
    j.fetch = fetcher.Fetch(std::move(req),
                            [this, id](fetch::FetchResult r) { OnFetched(id, std::move(r)); });
  }

  // Primary phase only: the reference phase fetches through a Flight.
  void OnFetched(Handle id, fetch::FetchResult result) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    Job& j = *it->second;
    j.fetching = false;
    if (!result.ok()) return Fail(j, FromFetchError(j.url, result.error()));
    const fetch::FetchResponse& resp = result.value();
    long status = resp.status;
    if (status == 200) return OnDocument(j, resp.body);
    if (status == 404 || status == 410) {
      if (j.template_index + 1 < j.options.url_templates.size()) {
        ++j.template_index;
        return StartTemplate(j);
      }
      return Finish(j, NotFound(j));
    }
    if (IsRedirectStatus(status)) return OnRedirect(j, status, resp.location);
    return Fail(j, FromStatus(j.url, status));
  }

  void OnRedirect(Job& j, long status, const std::string& location) {
    if (auto failure = CheckRedirect(j.url, status, location, j.redirects, j.options.max_redirects,
                                     j.seen, j.draft_template ? &j.service : nullptr)) {
      return Fail(j, std::move(*failure));
    }
    ++j.redirects;
    j.seen.insert(location);
    Fetch(j, location);
  }

  void OnDocument(Job& j, const std::string& body) {
    auto parsed = core::ParseDocument(body, clock.NowSeconds());
    if (!parsed) return Fail(j, ErrorKind::kDocument, j.url + ": " + parsed.error().message, false);
    core::Document& doc = parsed.value();
    if (auto* ref = std::get_if<core::ReferenceDocument>(&doc)) {
      auto target = fetch::ParseAbsoluteUrl(ref->url);
      if (!target || target->scheme != "https") {
        return Fail(
            j, ErrorKind::kDocument,
            j.url + ": reference url \"" + ref->url + "\" is not an absolute https URL (R11)",
            false);
      }
      if (j.seen.count(ref->url) > 0) {
        return Fail(j, ErrorKind::kRedirect,
                    j.url + ": reference url " + ref->url + " was already visited (loop)", false);
      }
      j.phase = Phase::kReference;
      j.reference_url = ref->url;
      j.reference_expires = ref->expires;
      j.seen.insert(ref->url);
      return EnterReference(j);
    }
    FinishWithDocument(j, doc);
  }

  // A terminal document: the primary one, or the reference target (R11: the lower expires).
  void FinishWithDocument(Job& j, const core::Document& doc) {
    auto record = core::BuildRecord(doc, j.phase == Phase::kReference ? j.reference_expires : 0);
    if (!record) return Fail(j, ErrorKind::kDocument, j.url + ": " + record.error().message, false);
    std::string host = HostOf(j.url);
    record->delegated_to = host != j.domain ? host : std::string();
    record->source_url = j.url;
    Resolution r;
    r.status = Resolution::Status::kFound;
    r.record = std::move(record.value());
    Finish(j, std::move(r));
  }

  // ---- reference phase: cache, flights ----

  void CountShared(Job& j) {
    if (j.shared_counted) return;
    j.shared_counted = true;
    Bump(counters.reference_shared);
  }

  // The job needs the target at j.reference_url: from the cache, by joining the flight
  // retrieving it, or by starting one. May finish the job (and run its callback) at once;
  // it is only ever reached from a Fetcher callback, never inside Resolve().
  void EnterReference(Job& j) {
    j.url = j.reference_url;
    auto cached = cache.Find(j.reference_url, clock.NowMs());
    if (cached && cached->body_size <= j.options.max_body) {
      CountShared(j);
      return ApplyTarget(j, *cached);
    }
    auto reg = flight_by_url.find(j.reference_url);
    if (reg != flight_by_url.end()) {
      Flight& f = *flights.at(reg->second);
      // Joining a flight with a later deadline would let this job run past its own (R7);
      // other limits must be the job's own for the outcome to be the one it would get.
      if (f.deadline_ms <= j.deadline_ms && f.max_body == j.options.max_body &&
          f.max_redirects == j.options.max_redirects) {
        CountShared(j);
        f.waiters.push_back(j.id);
        j.flight = f.id;
        return;
      }
    }
    StartFlight(j);
  }

  void StartFlight(Job& j) {
    auto owned = std::make_unique<Flight>();
    Flight& f = *owned;
    f.id = next_flight_id++;
    f.reference_url = j.reference_url;
    f.deadline_ms = j.deadline_ms;
    f.max_body = j.options.max_body;
    f.max_redirects = j.options.max_redirects;
    f.seen.insert(j.reference_url);
    f.waiters.push_back(j.id);
    j.flight = f.id;
    // The newest flight is the one to join: a job that could not join the previous one had
    // an earlier deadline, which every later joiner of this one respects too.
    flight_by_url.insert_or_assign(f.reference_url, f.id);
    flights.emplace(f.id, std::move(owned));
    Bump(counters.reference_fetches);
    FetchFlight(f, f.reference_url);
  }

  void FetchFlight(Flight& f, std::string url) {
    f.url = std::move(url);
    ++f.requests;
    fetch::FetchRequest req;
    req.url = f.url;
    req.max_body = f.max_body;
    req.time_left = TimeLeft(f.deadline_ms);
    FlightId id = f.id;
    f.fetch = fetcher.Fetch(
        std::move(req), [this, id](fetch::FetchResult r) { OnFlightFetched(id, std::move(r)); });
  }

  void OnFlightFetched(FlightId id, fetch::FetchResult result) {
    auto it = flights.find(id);
    if (it == flights.end()) return;
    Flight& f = *it->second;
    Outcome o;
    if (!result.ok()) {
      o.failure = FromFetchError(f.url, result.error());
      o.timeout = result.error().kind == fetch::FetchErrorKind::kTimeout;
      return EndFlight(f, std::move(o));
    }
    fetch::FetchResponse& resp = result.value();
    const long status = resp.status;
    if (status == 200) {
      auto parsed = core::ParseDocument(resp.body, clock.NowSeconds());
      if (!parsed) {
        o.failure = Failure{ErrorKind::kDocument, f.url + ": " + parsed.error().message, false};
      } else if (std::holds_alternative<core::ReferenceDocument>(parsed.value())) {
        o.failure = Failure{ErrorKind::kDocument,
                            f.url + ": reference points to another reference (R11)", false};
      } else {
        auto target = std::make_shared<ReferenceTarget>();
        target->document = std::make_shared<const core::Document>(std::move(parsed.value()));
        target->hops = std::move(f.hops);
        target->final_url = f.url;
        target->body_size = resp.body.size();
        target->fetched_at_ms = clock.NowMs();
        target->expires_at_ms = ReferenceTargetExpiry(
            *target->document, target->fetched_at_ms,
            std::chrono::duration_cast<std::chrono::milliseconds>(options.reference_cache_max_ttl)
                .count());
        // Cached before any callback runs: a resolution started from one finds it.
        if (target->expires_at_ms > target->fetched_at_ms) cache.Insert(f.reference_url, target);
        o.target = std::move(target);
      }
    } else if (status == 404 || status == 410) {
      o.failure = Failure{
          ErrorKind::kHttpStatus,
          "HTTP " + std::to_string(status) + " from " + f.url + " (the reference target, R11)",
          false};
    } else if (IsRedirectStatus(status)) {
      RedirectHop hop{f.url, status, std::move(resp.location)};
      // The flight's own R6 checks use the whole budget: each job applies its own budget
      // (already partly spent in its primary phase) when it replays the hops.
      if (auto failure = CheckRedirect(f.url, status, hop.location, f.redirects, f.max_redirects,
                                       f.seen, nullptr)) {
        o.refused = std::move(hop);
        o.failure = std::move(*failure);
      } else {
        std::string next = hop.location;
        f.hops.push_back(std::move(hop));
        ++f.redirects;
        f.seen.insert(next);
        return FetchFlight(f, std::move(next));
      }
    } else {
      o.failure = FromStatus(f.url, status);
    }
    EndFlight(f, std::move(o));
  }

  // Removes the flight, then answers its waiters. Failures are not cached: the next job
  // to need the target fetches it again.
  void EndFlight(Flight& f, Outcome o) {
    o.url = f.url;
    o.deadline_ms = f.deadline_ms;
    if (!o.target) o.hops = std::move(f.hops);
    auto reg = flight_by_url.find(f.reference_url);
    if (reg != flight_by_url.end() && reg->second == f.id) flight_by_url.erase(reg);
    std::vector<Handle> waiters = std::move(f.waiters);
    const uint32_t requests = f.requests;
    flights.erase(f.id);  // `f` is gone from here on
    Dispatch(waiters, requests, o);
  }

  // Each callback may cancel other waiters, start resolutions, or destroy the Resolver.
  void Dispatch(const std::vector<Handle>& waiters, uint32_t requests, const Outcome& o) {
    std::shared_ptr<bool> still_alive = alive;
    std::vector<std::pair<int64_t, Handle>> retry;
    bool reported = false;
    for (Handle id : waiters) {
      auto it = jobs.find(id);
      if (it == jobs.end()) continue;
      Job& j = *it->second;
      j.flight = 0;
      // The flight's requests were sent once: reported once (the service's `fetches`).
      if (!reported) {
        j.requests += requests;
        reported = true;
      }
      // A timeout is the flight's deadline passing; a job with time left tries again, as it
      // would have had it fetched alone (unless the hops already refuse it).
      if (o.timeout && j.deadline_ms > o.deadline_ms && !ReplayRefuses(j, o.hops)) {
        retry.emplace_back(j.deadline_ms, id);
        continue;
      }
      if (o.target) {
        ApplyTarget(j, *o.target);
      } else {
        ApplyFailure(j, o);
      }
      if (!*still_alive) return;
    }
    // Earliest deadline first: it starts the new flight and the others can join it.
    std::sort(retry.begin(), retry.end());
    for (const auto& [deadline, id] : retry) {
      auto it = jobs.find(id);
      if (it == jobs.end()) continue;
      EnterReference(*it->second);
      if (!*still_alive) return;
    }
  }

  // Runs the R6 checks of a job over a target's redirects, advancing its state.
  static std::optional<Failure> Replay(const std::vector<RedirectHop>& hops, int max_redirects,
                                       int& redirects, std::unordered_set<std::string>& seen,
                                       std::string& url) {
    for (const RedirectHop& hop : hops) {
      if (auto failure = CheckRedirect(url, hop.status, hop.location, redirects, max_redirects,
                                       seen, nullptr)) {
        return failure;
      }
      ++redirects;
      seen.insert(hop.location);
      url = hop.location;
    }
    return std::nullopt;
  }

  static bool ReplayRefuses(const Job& j, const std::vector<RedirectHop>& hops) {
    int redirects = j.redirects;
    std::unordered_set<std::string> seen = j.seen;
    std::string url = j.url;
    return Replay(hops, j.options.max_redirects, redirects, seen, url).has_value();
  }

  void ApplyTarget(Job& j, const ReferenceTarget& target) {
    if (auto failure = Replay(target.hops, j.options.max_redirects, j.redirects, j.seen, j.url)) {
      return Fail(j, std::move(*failure));
    }
    FinishWithDocument(j, *target.document);
  }

  void ApplyFailure(Job& j, const Outcome& o) {
    if (auto failure = Replay(o.hops, j.options.max_redirects, j.redirects, j.seen, j.url)) {
      return Fail(j, std::move(*failure));
    }
    if (o.refused) {
      // The job's checks are at least as strict as the flight's; its own message wins
      // (e.g. its budget runs out before the flight's loop check).
      if (auto failure = CheckRedirect(j.url, o.refused->status, o.refused->location, j.redirects,
                                       j.options.max_redirects, j.seen, nullptr)) {
        return Fail(j, std::move(*failure));
      }
    }
    j.url = o.url;
    Fail(j, o.failure);
  }

  void LeaveFlight(FlightId id, Handle job) {
    auto it = flights.find(id);
    if (it == flights.end()) return;
    Flight& f = *it->second;
    std::erase(f.waiters, job);
    if (!f.waiters.empty()) return;
    // Nobody waits any more: stop the shared retrieval too.
    fetcher.Cancel(f.fetch);
    auto reg = flight_by_url.find(f.reference_url);
    if (reg != flight_by_url.end() && reg->second == f.id) flight_by_url.erase(reg);
    flights.erase(it);
  }

  // ---- endings ----

  Resolution NotFound(const Job& j) {
    Resolution r;
    r.status = Resolution::Status::kNotFound;
    r.error = "no POSH document published for " + j.service + " at " + j.domain + " (R3)";
    return r;
  }

  void Fail(Job& j, Failure failure) {
    Fail(j, failure.kind, std::move(failure.message), failure.transient);
  }

  void Fail(Job& j, ErrorKind kind, std::string message, bool transient) {
    Resolution r;
    r.status = Resolution::Status::kError;
    r.error_kind = kind;
    r.error = std::move(message);
    r.transient = transient;
    Finish(j, std::move(r));
  }

  // Removes the job and runs its callback last: the callback may start, cancel or even
  // destroy the Resolver.
  void Finish(Job& j, Resolution r) {
    r.requests = j.requests;
    r.final_url = j.url;
    auto it = jobs.find(j.id);
    std::unique_ptr<Job> owned = std::move(it->second);
    jobs.erase(it);
    Callback cb = std::move(owned->cb);
    owned.reset();
    cb(std::move(r));
  }

  void Cancel(Handle id) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    std::unique_ptr<Job> job = std::move(it->second);
    jobs.erase(it);
    if (job->fetching) fetcher.Cancel(job->fetch);
    if (job->flight != 0) LeaveFlight(job->flight, id);
  }

  void CancelAll() {
    for (auto& [id, job] : jobs) {
      if (job->fetching) fetcher.Cancel(job->fetch);
    }
    for (auto& [id, flight] : flights) fetcher.Cancel(flight->fetch);
    jobs.clear();
    flights.clear();
    flight_by_url.clear();
  }

  fetch::Fetcher& fetcher;
  const Clock& clock;
  ResolverOptions options;
  ResolverCounters counters;
  ReferenceTargetCache cache;
  Handle next_id = 1;
  FlightId next_flight_id = 1;
  std::unordered_map<Handle, std::unique_ptr<Job>> jobs;
  std::unordered_map<FlightId, std::unique_ptr<Flight>> flights;
  std::unordered_map<std::string, FlightId> flight_by_url;  // the flight to join, per URL
  // Cleared by the destructor: Dispatch stops when a callback destroyed the Resolver.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  util::ThreadChecker loop_thread;  // the one thread every entry point runs on (debug check)
};

Resolver::Resolver(fetch::Fetcher& fetcher, const Clock& clock, ResolverOptions options,
                   ResolverCounters counters)
    : impl_(std::make_unique<Impl>(fetcher, clock, std::move(options), counters)) {}

// Every entry point runs on the loop thread (the fetcher's callbacks come back there too);
// debug builds check it. The state needs no lock.
Resolver::~Resolver() {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  impl_->CancelAll();
}

Resolver::Handle Resolver::Resolve(std::string domain, std::string service, Callback cb) {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  return impl_->Start(std::move(domain), std::move(service), std::move(cb));
}

void Resolver::Cancel(Handle handle) {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  impl_->Cancel(handle);
}

size_t Resolver::InFlight() const {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  return impl_->jobs.size();
}

size_t Resolver::CachedReferenceTargets() const {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  return impl_->cache.size();
}

void Resolver::SetOptions(ResolverOptions options) {
  POSH_DCHECK_ON_THREAD(impl_->loop_thread);
  impl_->options = Impl::Normalize(std::move(options));
  impl_->cache.SetCapacity(impl_->options.reference_cache_entries);
}

}  // namespace posh::resolve
