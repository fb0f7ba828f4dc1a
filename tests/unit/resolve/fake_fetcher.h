// A scripted Fetcher for resolver tests: responses keyed by URL, requests recorded,
// callbacks invoked only when the test drains the queue (never synchronously, no network,
// no sleeping).
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "fetch/fetcher.h"

namespace posh::testing {

class FakeFetcher final : public fetch::Fetcher {
 public:
  // Scripts the answer for `url` (replacing any earlier script for it).
  void On(const std::string& url, fetch::FetchResult result) {
    scripts_.insert_or_assign(url, std::move(result));
  }
  void OnStatus(const std::string& url, long status, std::string body = {},
                std::string location = {}) {
    fetch::FetchResponse r;
    r.status = status;
    r.body = std::move(body);
    r.location = std::move(location);
    r.primary_ip = "192.0.2.1";
    On(url, std::move(r));
  }
  void OnRedirect(const std::string& url, const std::string& location, long status = 302) {
    OnStatus(url, status, {}, location);
  }
  void OnError(const std::string& url, fetch::FetchErrorKind kind, std::string message) {
    On(url, Fail(fetch::FetchError{kind, std::move(message)}));
  }

  Handle Fetch(fetch::FetchRequest request, fetch::FetchCallback cb) override {
    Handle h = next_++;
    requests.push_back(request);
    queue_.push_back(Pending{h, std::move(request), std::move(cb)});
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
    auto it = scripts_.find(p.request.url);
    if (it == scripts_.end()) {
      p.cb(Fail(fetch::FetchError{fetch::FetchErrorKind::kConnect,
                                  "connection: no script for " + p.request.url}));
    } else {
      p.cb(it->second);
    }
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
  struct Pending {
    Handle handle;
    fetch::FetchRequest request;
    fetch::FetchCallback cb;
  };
  std::map<std::string, fetch::FetchResult> scripts_;
  std::deque<Pending> queue_;
  Handle next_ = 1;
};

}  // namespace posh::testing
