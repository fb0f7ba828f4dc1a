#include "server/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <new>
#include <random>
#include <thread>
#include <vector>

namespace posh::server {
namespace {

TEST(EventLoop, DrainsEveryPostedTaskFromManyThreads) {
  EventLoop loop;
  std::atomic<int> ran{0};
  std::atomic<bool> wrong_thread{false};
  loop.Start(nullptr, nullptr);
  constexpr int kThreads = 8, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(loop.Post([&] {
          if (!loop.InLoopThread()) wrong_thread = true;
          ran.fetch_add(1, std::memory_order_relaxed);
        }));
      }
    });
  }
  for (auto& th : threads) th.join();
  std::promise<void> done;
  loop.Post([&] { done.set_value(); });
  done.get_future().wait();
  EXPECT_EQ(ran.load(), kThreads * kPerThread);
  EXPECT_FALSE(wrong_thread.load());
  loop.Stop();
}

TEST(EventLoop, PostAfterStopIsRefused) {
  EventLoop loop;
  bool stopped_hook = false;
  loop.Start(nullptr, [&] { stopped_hook = true; });
  loop.Stop();
  EXPECT_TRUE(stopped_hook);
  EXPECT_FALSE(loop.Post([] {}));
}

// Post() racing with teardown: threads post until Post() refuses while the owner stops
// and destroys the loop. A Post() that slipped past the "stopping" check used to call
// uv_async_send after releasing the lock, so a poster descheduled there could wake a handle
// that teardown had already closed, or a loop already closed (libuv then writes to fd -1
// and aborts). Every accepted task must run, and no Post() may touch the handle once
// closed. Runs under ThreadSanitizer and ASan (label "concurrency").
//
// The loop lives in storage that outlives the posters: a poster may still be inside (or
// about to enter) Post() when the destructor returns; with the fix such a call finds
// "stopping" under the lock and returns false without touching the handle.
void RaceTeardown(bool explicit_stop) {
  constexpr int kPosters = 4;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kIterations = 150;
#else
  constexpr int kIterations = 400;
#endif
  std::mt19937 rng(explicit_stop ? 1 : 2);
  for (int iter = 0; iter < kIterations; ++iter) {
    alignas(EventLoop) unsigned char storage[sizeof(EventLoop)];
    auto* loop = new (storage) EventLoop();
    std::atomic<int> ran{0};
    std::atomic<int> accepted{0};
    std::atomic<int> hook_posts_refused{0};
    loop->Start(nullptr, [&] {
      // The stop hook runs while stopping: its own posts are refused.
      if (!loop->Post([] {})) ++hook_posts_refused;
    });
    std::atomic<int> started{0};
    std::vector<std::thread> posters;
    for (int t = 0; t < kPosters; ++t) {
      posters.emplace_back([&] {
        ++started;
        while (loop->Post([&] { ran.fetch_add(1, std::memory_order_relaxed); })) ++accepted;
      });
    }
    while (started.load() < kPosters) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
    if (explicit_stop) {
      loop->Stop();
      EXPECT_FALSE(loop->Post([] {}));
    }
    loop->~EventLoop();
    for (auto& th : posters) th.join();
    ASSERT_EQ(ran.load(), accepted.load()) << "iteration " << iter;
    ASSERT_EQ(hook_posts_refused.load(), 1) << "iteration " << iter;
  }
}

TEST(EventLoop, PostRacingWithStopThenDestructionIsSafe) { RaceTeardown(true); }

TEST(EventLoop, PostRacingWithDestructionIsSafe) { RaceTeardown(false); }

// Stop() from several threads at once, with posters running: one stop, no hang, no crash.
TEST(EventLoop, ConcurrentStopsWithPosters) {
  for (int iter = 0; iter < 50; ++iter) {
    EventLoop loop;
    std::atomic<int> stops{0};
    loop.Start(nullptr, [&] { ++stops; });
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        while (loop.Post([] {})) {
        }
      });
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        loop.Stop();
        EXPECT_FALSE(loop.Post([] {}));
      });
    }
    go = true;
    for (auto& th : threads) th.join();
    loop.Stop();
    EXPECT_EQ(stops.load(), 1);
  }
}

}  // namespace
}  // namespace posh::server
