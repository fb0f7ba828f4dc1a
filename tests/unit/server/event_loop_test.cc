#include "server/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
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

}  // namespace
}  // namespace posh::server
