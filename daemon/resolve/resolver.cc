// The POSH retrieval state machine (R3-R7, R11). One Job per resolution:
//
//   primary phase:   template[i] URL -> (redirects) -> 200 document | 404/410 -> template[i+1]
//   reference phase: reference url  -> (redirects) -> 200 terminal document
//
// One deadline (R7) and one redirect budget / seen-URL set (R6) cover the whole
// resolution. Every completion happens inside a Fetcher callback, which the Fetcher never
// invokes synchronously, so Resolve() never calls back synchronously either.
#include "resolve/resolver.h"

#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/document.h"
#include "fetch/url.h"

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

}  // namespace

struct Resolver::Impl {
  enum class Phase { kPrimary, kReference };

  struct Job {
    Handle id = 0;
    std::string domain;
    std::string service;
    Callback cb;
    ResolverOptions options;
    std::chrono::steady_clock::time_point deadline;
    size_t template_index = 0;
    bool draft_template = false;  // the current template is the seed draft's (R6 path rule)
    int redirects = 0;
    std::unordered_set<std::string> seen;
    Phase phase = Phase::kPrimary;
    std::string url;  // URL being fetched
    std::string reference_url;
    int64_t reference_expires = 0;
    fetch::Fetcher::Handle fetch = 0;
    bool fetching = false;
    uint32_t requests = 0;
  };

  Impl(fetch::Fetcher& f, const Clock& c, ResolverOptions o)
      : fetcher(f), clock(c), options(Normalize(std::move(o))) {}

  static ResolverOptions Normalize(ResolverOptions o) {
    if (o.url_templates.empty()) o.url_templates = DefaultUrlTemplates();
    if (o.max_redirects < 0) o.max_redirects = 0;
    return o;
  }

  Handle Start(std::string domain, std::string service, Callback cb) {
    auto job = std::make_unique<Job>();
    job->id = next_id++;
    job->domain = std::move(domain);
    job->service = std::move(service);
    job->cb = std::move(cb);
    job->options = options;
    job->deadline = std::chrono::steady_clock::now() + job->options.timeout;
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
    req.deadline = j.deadline;
    Handle id = j.id;
    j.fetching = true;
    j.fetch = fetcher.Fetch(std::move(req),
                            [this, id](fetch::FetchResult r) { OnFetched(id, std::move(r)); });
  }

  void OnFetched(Handle id, fetch::FetchResult result) {
    auto it = jobs.find(id);
    if (it == jobs.end()) return;
    Job& j = *it->second;
    j.fetching = false;
    if (!result.ok()) return FailFetch(j, result.error());
    const fetch::FetchResponse& resp = result.value();
    long status = resp.status;
    if (status == 200) return OnDocument(j, resp.body);
    if (status == 404 || status == 410) {
      if (j.phase == Phase::kReference) {
        return Fail(
            j, ErrorKind::kHttpStatus,
            "HTTP " + std::to_string(status) + " from " + j.url + " (the reference target, R11)",
            false);
      }
      if (j.template_index + 1 < j.options.url_templates.size()) {
        ++j.template_index;
        return StartTemplate(j);
      }
      return Finish(j, NotFound(j));
    }
    if (IsRedirectStatus(status)) return OnRedirect(j, status, resp.location);
    return Fail(j, ErrorKind::kHttpStatus, "HTTP " + std::to_string(status) + " from " + j.url,
                status >= 500 && status <= 599);
  }

  void OnRedirect(Job& j, long status, const std::string& location) {
    std::string prefix = j.url + ": HTTP " + std::to_string(status) + " redirect";
    if (location.empty()) return Fail(j, ErrorKind::kRedirect, prefix + " without Location", false);
    if (!fetch::HasScheme(location)) {
      return Fail(j, ErrorKind::kRedirect,
                  prefix + " to relative Location \"" + location +
                      "\" (must be an absolute https: URL, R6)",
                  false);
    }
    auto target = fetch::ParseAbsoluteUrl(location);
    if (!target) {
      return Fail(j, ErrorKind::kRedirect,
                  prefix + " to invalid Location \"" + location + "\": " + target.error().message,
                  false);
    }
    if (target->scheme != "https") {
      return Fail(j, ErrorKind::kRedirect, prefix + " to non-https URL " + location + " (R6)",
                  false);
    }
    if (j.redirects >= j.options.max_redirects) {
      return Fail(j, ErrorKind::kRedirect,
                  prefix + " to " + location + ": too many redirects (more than " +
                      std::to_string(j.options.max_redirects) + ", R6)",
                  false);
    }
    if (j.seen.count(location) > 0) {
      return Fail(j, ErrorKind::kRedirect, prefix + " to " + location + ": redirect loop (R6)",
                  false);
    }
    if (j.phase == Phase::kPrimary && j.draft_template) {
      std::string suffix = "_" + j.service + "._tcp.json";
      std::string_view segment = fetch::LastPathSegment(target->path);
      if (!EndsWith(segment, suffix)) {
        return Fail(j, ErrorKind::kRedirect,
                    prefix + " to " + location + ": the target's last path segment must end in \"" +
                        suffix + "\" (seed draft §4, R6)",
                    false);
      }
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
      if (j.phase == Phase::kReference) {
        return Fail(j, ErrorKind::kDocument,
                    j.url + ": reference points to another reference (R11)", false);
      }
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
      return Fetch(j, ref->url);
    }
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

  void FailFetch(Job& j, const fetch::FetchError& e) {
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
    Fail(j, kind, j.url + ": " + e.message, transient);
  }

  Resolution NotFound(const Job& j) {
    Resolution r;
    r.status = Resolution::Status::kNotFound;
    r.error = "no POSH document published for " + j.service + " at " + j.domain + " (R3)";
    return r;
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
    if (it->second->fetching) fetcher.Cancel(it->second->fetch);
    jobs.erase(it);
  }

  void CancelAll() {
    for (auto& [id, job] : jobs) {
      if (job->fetching) fetcher.Cancel(job->fetch);
    }
    jobs.clear();
  }

  fetch::Fetcher& fetcher;
  const Clock& clock;
  ResolverOptions options;
  Handle next_id = 1;
  std::unordered_map<Handle, std::unique_ptr<Job>> jobs;
};

Resolver::Resolver(fetch::Fetcher& fetcher, const Clock& clock, ResolverOptions options)
    : impl_(std::make_unique<Impl>(fetcher, clock, std::move(options))) {}

Resolver::~Resolver() { impl_->CancelAll(); }

Resolver::Handle Resolver::Resolve(std::string domain, std::string service, Callback cb) {
  return impl_->Start(std::move(domain), std::move(service), std::move(cb));
}

void Resolver::Cancel(Handle handle) { impl_->Cancel(handle); }

size_t Resolver::InFlight() const { return impl_->jobs.size(); }

void Resolver::SetOptions(ResolverOptions options) {
  impl_->options = Impl::Normalize(std::move(options));
}

}  // namespace posh::resolve
