// A scripted Fetcher on simulated time, for code that runs on one thread (the resolver):
// answers keyed by URL, requests recorded, callbacks delivered only when the test steps
// (never synchronously inside Fetch), no network and no sleeping.
//
// Time (Unbound's testbound): given a FakeClock, each answer takes its URL's scripted
// latency. Delivering it advances the clock by that latency; an answer slower than the
// request's time_left instead advances the clock to the deadline and fails with kTimeout,
// as the real fetcher would. A request whose time_left is already spent fails at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fetch/fetcher.h"
#include "support/fake_clock.h"

namespace posh::testing {

class ScriptedFetcher final : public fetch::Fetcher {
 public:
  explicit ScriptedFetcher(FakeClock* clock = nullptr) : clock_(clock) {}

  // Scripts the answer for `url` (replacing any earlier script for it).
  void On(const std::string& url, fetch::FetchResult result,
          std::chrono::milliseconds latency = std::chrono::milliseconds(0)) {
    scripts_.insert_or_assign(url, Script{std::move(result), latency});
  }
  void OnStatus(const std::string& url, long status, std::string body = {},
                std::string location = {}) {
    On(url, Response(status, std::move(body), std::move(location)));
  }
  void OnRedirect(const std::string& url, const std::string& location, long status = 302) {
    OnStatus(url, status, {}, location);
  }
  void OnError(const std::string& url, fetch::FetchErrorKind kind, std::string message) {
    On(url, Fail(fetch::FetchError{kind, std::move(message)}));
  }
  // The answer for `url` takes `latency` of simulated time (needs a clock).
  void Delay(const std::string& url, std::chrono::milliseconds latency) {
    scripts_[url].latency = latency;
  }

  static fetch::FetchResponse Response(long status, std::string body = {},
                                       std::string location = {}) {
    fetch::FetchResponse r;
    r.status = status;
    r.body = std::move(body);
    r.location = std::move(location);
    r.primary_ip = "192.0.2.1";
    return r;
  }

  Handle Fetch(fetch::FetchRequest request, fetch::FetchCallback cb) override {
    Handle h = next_++;
    requests.push_back(request);
    const int64_t started = clock_ != nullptr ? clock_->MonotonicMs() : 0;
    queue_.push_back(Pending{h, std::move(request), std::move(cb), started});
    return h;
  }

  void Cancel(Handle handle) override {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->handle == handle) {
        cancelled.push_back(handle);
        queue_.erase(it);
        return;
      }
    }
  }

  size_t InFlight() const override { return queue_.size(); }
  uint64_t RequestsStarted() const override { return requests.size(); }

  // Delivers queued answers (including those queued by the callbacks) until none is left.
  void Drain() {
    while (Step()) {
    }
  }

  // Delivers the oldest queued answer; false when nothing is queued.
  bool Step() {
    if (queue_.empty()) return false;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    if (p.request.time_left.count() <= 0) {
      p.cb(Fail(fetch::FetchError{fetch::FetchErrorKind::kTimeout,
                                  "timeout: deadline passed before the request started"}));
      return true;
    }
    auto it = scripts_.find(p.request.url);
    if (it == scripts_.end()) {
      p.cb(Fail(fetch::FetchError{fetch::FetchErrorKind::kConnect,
                                  "connection: no script for " + p.request.url}));
      return true;
    }
    if (clock_ != nullptr) {
      // Requests run concurrently: this one ends `latency` after it started, unless an
      // earlier delivery already moved the clock past that.
      const int64_t deadline = p.started_ms + p.request.time_left.count();
      const int64_t done = p.started_ms + it->second.latency.count();
      const int64_t until = std::min(done, deadline);
      if (until > clock_->MonotonicMs()) clock_->Advance(until - clock_->MonotonicMs());
      if (done > deadline) {
        p.cb(Fail(fetch::FetchError{fetch::FetchErrorKind::kTimeout,
                                    "timeout: no complete answer before the deadline"}));
        return true;
      }
    }
    p.cb(it->second.result);
    return true;
  }

  size_t Count(const std::string& url) const {
    size_t n = 0;
    for (const auto& r : requests) n += r.url == url ? 1 : 0;
    return n;
  }

  std::vector<std::string> Urls() const {
    std::vector<std::string> out;
    for (const auto& r : requests) out.push_back(r.url);
    return out;
  }

  std::vector<fetch::FetchRequest> requests;
  std::vector<Handle> cancelled;

 private:
  struct Script {
    fetch::FetchResult result = Fail(
        fetch::FetchError{fetch::FetchErrorKind::kConnect, "connection: delay without an answer"});
    std::chrono::milliseconds latency{0};
  };
  struct Pending {
    Handle handle;
    fetch::FetchRequest request;
    fetch::FetchCallback cb;
    int64_t started_ms;
  };
  FakeClock* clock_;
  std::map<std::string, Script> scripts_;
  std::deque<Pending> queue_;
  Handle next_ = 1;
};

}  // namespace posh::testing
