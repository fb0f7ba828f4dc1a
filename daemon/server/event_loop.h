// The single reactor: one thread runs one libuv loop that owns all network I/O.
// Foreign threads (gRPC) reach it through exactly one doorway, Post(), which queues a
// task and wakes the loop with uv_async_send; the loop drains the whole queue each time
// (uv_async_send coalesces wake-ups, so draining one task per wake-up would lose work).
//
// The EventLoop is also the capability "loop thread" for clang's thread-safety analysis:
// state only the loop thread may touch is ABSL_GUARDED_BY(loop_), and code that runs there
// starts with POSH_DCHECK_ON_LOOP(loop_), checked in debug builds, nothing in NDEBUG ones.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "util/mutex.h"

namespace posh::server {

class POSH_CAPABILITY("loop thread") EventLoop {
 public:
  using Task = std::function<void()>;

  EventLoop();
  ~EventLoop();  // Stop()s and joins if still running
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the loop thread. `on_start` runs first on the loop thread (create loop-owned
  // objects there); `on_stop` runs on the loop thread after Stop() (destroy them there).
  void Start(Task on_start, Task on_stop);
  // Thread-safe. Returns false once stopping (the task is dropped: callers must answer
  // their RPC themselves).
  bool Post(Task task);
  // Thread-safe. Runs on_stop on the loop, closes every handle, joins the thread.
  void Stop();

  uv_loop_t* uv() { return &loop_; }
  bool InLoopThread() const { return std::this_thread::get_id() == thread_id_.load(); }
  // Debug builds: aborts unless called on the thread running the loop (the loop thread
  // once started; the destroying thread while ~EventLoop runs the loop one last time).
  // For the analysis, the caller holds the "loop thread" capability from here on.
  void AssertOnLoopThread() const ABSL_ASSERT_EXCLUSIVE_LOCK() {
#ifndef NDEBUG
    if (!InLoopThread()) FailOffLoopThread();
#endif
  }

 private:
  static void OnAsync(uv_async_t* handle);
  void Drain();
  [[noreturn]] static void FailOffLoopThread();

  uv_loop_t loop_{};
  uv_async_t async_{};
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  util::Mutex mu_;
  std::vector<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ = false;  // loop thread only (Drain)
  Task on_stop_;
  std::atomic<bool> running_{false};
};

}  // namespace posh::server

// At the entry of code that must run on `loop`'s thread (see EventLoop::AssertOnLoopThread).
#define POSH_DCHECK_ON_LOOP(loop) (loop).AssertOnLoopThread()
