// The single reactor: one thread runs one libuv loop that owns all network I/O.
// Foreign threads (gRPC) reach it through exactly one doorway, Post(), which queues a
// task and wakes the loop with uv_async_send; the loop drains the whole queue each time
// (uv_async_send coalesces wake-ups, so draining one task per wake-up would lose work).
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace posh::server {

class EventLoop {
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

 private:
  static void OnAsync(uv_async_t* handle);
  void Drain();

  uv_loop_t loop_{};
  uv_async_t async_{};
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::mutex mu_;
  std::vector<Task> queue_;      // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  bool stop_requested_ = false;  // loop thread only
  Task on_stop_;
  std::atomic<bool> running_{false};
};

}  // namespace posh::server
