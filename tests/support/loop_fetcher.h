// A Fetcher for tests of code on a running EventLoop (the service): requests wait until the
// test thread answers them, and answers are delivered on the loop thread, so concurrency is
// deterministic; no network, no sleeping on the loop. Single-threaded code on simulated
// time uses ScriptedFetcher instead.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fetch/fetcher.h"
#include "server/event_loop.h"

namespace posh::testing {

class LoopFetcher final : public fetch::Fetcher {
 public:
  struct Pending {
    Handle handle;
    std::string url;
    fetch::FetchCallback cb;
  };

  explicit LoopFetcher(server::EventLoop& loop) : loop_(loop) {}

  Handle Fetch(fetch::FetchRequest request, fetch::FetchCallback cb) override {
    std::lock_guard lock(mu_);
    Handle h = ++next_;
    pending_[h] = Pending{h, request.url, std::move(cb)};
    ++started_;
    cv_.notify_all();
    return h;
  }
  void Cancel(Handle handle) override {
    std::lock_guard lock(mu_);
    if (pending_.erase(handle) > 0) ++cancelled_;
  }
  uint64_t Cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // URLs of the requests waiting for an answer, oldest first.
  std::vector<std::string> PendingUrls() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> urls;
    for (const auto& [h, p] : pending_) urls.push_back(p.url);
    return urls;
  }
  size_t InFlight() const override {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  uint64_t RequestsStarted() const override {
    std::lock_guard lock(mu_);
    return started_;
  }

  // Test thread: wait until `n` requests have been started in total.
  bool WaitStarted(uint64_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return started_ >= n; });
  }
  // Test thread: answer the oldest pending request (on the loop thread).
  std::string Answer(fetch::FetchResult result) {
    Pending p;
    {
      std::lock_guard lock(mu_);
      if (pending_.empty()) return "";
      auto it = pending_.begin();
      p = std::move(it->second);
      pending_.erase(it);
    }
    std::string url = p.url;
    auto shared = std::make_shared<fetch::FetchResult>(std::move(result));
    loop_.Post([cb = std::move(p.cb), shared]() mutable { cb(std::move(*shared)); });
    return url;
  }
  std::string AnswerStatus(long status, std::string body = "") {
    fetch::FetchResponse r;
    r.status = status;
    r.body = std::move(body);
    return Answer(std::move(r));
  }
  std::string AnswerError(fetch::FetchErrorKind kind, std::string msg) {
    return Answer(posh::Fail(fetch::FetchError{kind, std::move(msg)}));
  }

 private:
  server::EventLoop& loop_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Handle, Pending> pending_;
  Handle next_ = 0;
  uint64_t started_ = 0;
  uint64_t cancelled_ = 0;
};

}  // namespace posh::testing
