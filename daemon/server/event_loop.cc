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
  Stop();
  // Close anything still open (the async handle when the loop never ran).
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&async_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
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
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(task));
  }
  uv_async_send(&async_);
  return true;
}

void EventLoop::OnAsync(uv_async_t* handle) { static_cast<EventLoop*>(handle->data)->Drain(); }

void EventLoop::Drain() {
  std::vector<Task> batch;
  bool stop = false;
  {
    std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (!running_.exchange(false)) return;
  uv_async_send(&async_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace posh::server
