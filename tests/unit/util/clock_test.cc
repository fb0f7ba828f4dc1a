// util/clock.h: the wall clock decides validity and persisted lifetimes, the monotonic clock
// measures durations (the R7 deadline); a FakeClock (tests/support) replays both with no
// sleeping.
#include "util/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "support/fake_clock.h"

namespace posh {
namespace {

int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TEST(SystemClock, NowMsIsUnixTimeInMilliseconds) {
  SystemClock clk;
  int64_t before = SystemMs();
  int64_t now = clk.NowMs();
  int64_t after = SystemMs();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  // Milliseconds, not seconds or microseconds: after 2020-01-01, before 2100-01-01.
  EXPECT_GT(now, 1'577'836'800'000);
  EXPECT_LT(now, 4'102'444'800'000);
  int64_t s = clk.NowSeconds();
  EXPECT_GE(s, before / 1000);
  EXPECT_LE(s, SystemMs() / 1000);
}

TEST(SystemClock, MonotonicMsIsTheSteadyClock) {
  SystemClock clk;
  int64_t before = SteadyMs();
  int64_t first = clk.MonotonicMs();
  int64_t second = clk.MonotonicMs();
  int64_t after = SteadyMs();
  EXPECT_LE(before, first);
  EXPECT_LE(first, second);  // never goes back
  EXPECT_LE(second, after);
}

TEST(FakeClock, StandsStillUntilTold) {
  FakeClock clk(1'700'000'000'123);
  int64_t mono = clk.MonotonicMs();
  EXPECT_EQ(clk.NowMs(), 1'700'000'000'123);
  EXPECT_EQ(clk.NowSeconds(), 1'700'000'000);
  EXPECT_EQ(clk.NowMs(), 1'700'000'000'123);
  EXPECT_EQ(clk.MonotonicMs(), mono);
  EXPECT_EQ(FakeClock().NowMs(), 0);
}

TEST(FakeClock, AdvanceMovesBothClocks) {
  FakeClock clk(5'000);
  int64_t mono = clk.MonotonicMs();
  clk.Advance(1'500);
  EXPECT_EQ(clk.NowMs(), 6'500);
  EXPECT_EQ(clk.NowSeconds(), 6);
  EXPECT_EQ(clk.MonotonicMs(), mono + 1'500);
  clk.Advance(0);
  EXPECT_EQ(clk.NowMs(), 6'500);
  EXPECT_EQ(clk.MonotonicMs(), mono + 1'500);
}

TEST(FakeClock, SetStepsTheWallClockAloneEitherWay) {
  // A wall-clock step (NTP, an operator) must not move durations measured on the
  // monotonic clock: a deadline (R7) neither fires early nor never.
  FakeClock clk(10'000);
  int64_t mono = clk.MonotonicMs();
  clk.Set(90'000);
  EXPECT_EQ(clk.NowMs(), 90'000);
  EXPECT_EQ(clk.MonotonicMs(), mono);
  clk.Set(1'000);  // backwards
  EXPECT_EQ(clk.NowMs(), 1'000);
  EXPECT_EQ(clk.MonotonicMs(), mono);
  clk.Advance(250);
  EXPECT_EQ(clk.NowMs(), 1'250);
  EXPECT_EQ(clk.MonotonicMs(), mono + 250);
}

TEST(FakeClock, IsUsableThroughTheClockInterface) {
  FakeClock fake(42'000);
  const Clock& clk = fake;
  fake.Advance(1'000);
  EXPECT_EQ(clk.NowMs(), 43'000);
  EXPECT_EQ(clk.NowSeconds(), 43);
}

TEST(FakeClock, ConcurrentAdvancesAllCount) {
  // A test thread drives time while the loop thread reads it (run under TSan as well).
  FakeClock clk(0);
  int64_t mono = clk.MonotonicMs();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        clk.Advance(1);
        (void)clk.NowMs();
        (void)clk.MonotonicMs();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(clk.NowMs(), 4000);
  EXPECT_EQ(clk.MonotonicMs(), mono + 4000);
}

}  // namespace
}  // namespace posh
