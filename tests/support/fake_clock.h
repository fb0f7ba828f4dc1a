// Simulated time for tests: a Clock that moves only when the test says so (no sleeping).
#pragma once

#include <atomic>
#include <cstdint>

#include "util/clock.h"

namespace posh {

// Advance() moves both clocks; Set() moves the wall clock alone (a wall-clock step, as NTP
// may make), never the monotonic one.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 0) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  int64_t MonotonicMs() const override { return mono_ms_.load(std::memory_order_relaxed); }
  void Set(int64_t now_ms) { now_ms_.store(now_ms, std::memory_order_relaxed); }
  void Advance(int64_t delta_ms) {
    now_ms_.fetch_add(delta_ms, std::memory_order_relaxed);
    mono_ms_.fetch_add(delta_ms, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int64_t> mono_ms_{1'000'000};
};

}  // namespace posh
