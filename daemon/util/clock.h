// Injected time. Everything in the daemon that depends on time reads it from a Clock, so
// tests replay scenarios on a FakeClock with no sleeping (Unbound's testbound):
//   - NowMs(): wall-clock (Unix) time. Decides POSH validity (expires, notAfter) and the
//     cache's lifetimes, which are persisted and so must be wall time.
//   - MonotonicMs(): never jumps. Measures durations on the running daemon: the R7
//     retrieval deadline, queue waits.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace posh {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in milliseconds (wall clock).
  virtual int64_t NowMs() const = 0;
  // Milliseconds on a clock that only moves forward (arbitrary origin).
  virtual int64_t MonotonicMs() const = 0;
  int64_t NowSeconds() const { return NowMs() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// The FakeClock tests replay scenarios on is in tests/support/fake_clock.h.

}  // namespace posh
