#include "server/event_loop.h"

#include <cstdio>
#include <cstdlib>

namespace posh::server {

EventLoop::EventLoop() {
  if (uv_loop_init(&loop_) != 0) {
    std::fprintf(stderr, "poshd: uv_loop_init failed\n");
    std::abort();
  }
  async_.data = this;
  uv_async_init(&loop_, &async_, &EventLoop::OnAsync);
}

EventLoop::~EventLoop() {
  Stop();  // from here on, Post() refuses without touching async_ (see Post)
  // Close anything still open (the async handle when the loop never ran).
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&async_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
  // This thread runs the loop from here on (the loop thread, if any, has been joined):
  // callbacks that assert the loop thread run here.
  thread_id_ = std::this_thread::get_id();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void EventLoop::FailOffLoopThread() {
  std::fprintf(stderr, "poshd: loop-thread-only code called from another thread\n");
  std::abort();
}

void EventLoop::Start(Task on_start, Task on_stop) {
  on_stop_ = std::move(on_stop);
  running_ = true;
  thread_ = std::thread([this, on_start = std::move(on_start)] {
    thread_id_ = std::this_thread::get_id();
    if (on_start) on_start();
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

bool EventLoop::Post(Task task) {
  // The wake-up is sent under mu_. Teardown closes async_ only after stopping_ was set under
  // mu_ (the loop's Drain reads it under mu_; the destructor runs after Stop), so a Post
  // that passed the check has finished its send before the close, and a later one refuses
  // without touching the handle, whatever order the owner tears down in. uv_async_send is
  // thread-safe and does not block: sending under our own lock is fine.
  util::MutexLock lock(&mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(task));
  uv_async_send(&async_);
  return true;
}

void EventLoop::OnAsync(uv_async_t* handle) { static_cast<EventLoop*>(handle->data)->Drain(); }

void EventLoop::Drain() {
  AssertOnLoopThread();
  std::vector<Task> batch;
  bool stop = false;
  {
    util::MutexLock lock(&mu_);
    batch.swap(queue_);
    stop = stopping_;
  }
  for (auto& task : batch) task();
  if (stop && !stop_requested_) {
    stop_requested_ = true;
    // Tasks posted before Stop() have run; let the owner tear down loop objects, then
    // close every remaining handle so uv_run returns.
    if (on_stop_) on_stop_();
    // Anything the teardown posted (it cannot: stopping_) is dropped.
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  }
}

void EventLoop::Stop() {
  {
    util::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      // The last wake-up ever sent: under mu_ and in the same critical section that sets
      // stopping_, so before the loop can see stopping_ and close async_. A second Stop()
      // sends nothing (the handle may be closed by then).
      if (running_.load()) uv_async_send(&async_);
    }
  }
  // thread_ is only read by the one caller that wins running_ (never while another joins).
  if (!running_.exchange(false)) return;
  if (thread_.joinable()) thread_.join();
}

}  // namespace posh::server
