// Thread affinity checked in debug builds: an object whose methods must all run on one
// thread (the loop thread, for a fetcher or a resolver that has no EventLoop to ask) keeps
// a ThreadChecker and calls POSH_DCHECK_ON_THREAD(checker_) at its entry points. The
// checker binds to the first thread that checks it (objects may be built on one thread and
// used only on another) and aborts, naming the call site, when another thread calls.
// With NDEBUG the check compiles to nothing; for clang's thread-safety analysis the
// checker is a capability ("thread") the check asserts, so members can be
// ABSL_GUARDED_BY(checker_).
#pragma once

#include <absl/base/thread_annotations.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "util/mutex.h"

namespace posh::util {

class POSH_CAPABILITY("thread") ThreadChecker {
 public:
  // Aborts (debug builds) when called from a thread other than the bound one.
  void Check(const char* where) const ABSL_ASSERT_EXCLUSIVE_LOCK() {
#ifndef NDEBUG
    const std::thread::id self = std::this_thread::get_id();
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    if (owner == self) return;
    if (owner == std::thread::id() &&
        owner_.compare_exchange_strong(owner, self, std::memory_order_relaxed)) {
      return;
    }
    std::fprintf(stderr, "poshd: %s called off its owning thread\n", where);
    std::abort();
#else
    (void)where;
#endif
  }

 private:
#ifndef NDEBUG
  mutable std::atomic<std::thread::id> owner_{};
#endif
};

}  // namespace posh::util

#define POSH_DCHECK_ON_THREAD(checker) (checker).Check(__func__)
