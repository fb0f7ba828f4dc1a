// Mutexes that clang's thread-safety analysis (-Wthread-safety) understands: thin annotated
// wrappers over std::mutex, std::shared_mutex and std::condition_variable, so that
// ABSL_GUARDED_BY(mu_) on a member is checked at compile time instead of trusted as a comment.
//
// Why wrappers and not absl::Mutex: libstdc++'s mutexes carry no annotations, and
// absl::Mutex changes what runs. The store's hit path takes a shared lock on every gRPC
// read (measured in docs/BENCHMARKS.md with std::shared_mutex), and Debian's abseil keeps
// its lock-order (deadlock) bookkeeping on for every absl::Mutex acquisition unless the
// process turns it off, which poshd's main does but the tests and a library user would
// not. These wrappers compile to exactly the std calls they replace: only the analysis
// changes, not the behaviour. The API follows absl's (Lock/Unlock, ReaderLock, MutexLock,
// ReaderMutexLock, CondVar), so a later switch to absl::Mutex is a rename.
//
// Header only: the annotations come from absl/base/thread_annotations.h (absl::core_headers,
// an interface target) and expand to nothing on compilers without the analysis (GCC).
#pragma once

#include <absl/base/thread_annotations.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

// A capability that is not a mutex, e.g. "loop thread": an object whose methods may only
// run on one thread is that thread's capability; members only that thread touches are
// ABSL_GUARDED_BY(it), and a method that runs there asserts it (ABSL_ASSERT_EXCLUSIVE_LOCK).
#if defined(__clang__)
#define POSH_CAPABILITY(name) __attribute__((capability(name)))
#else
#define POSH_CAPABILITY(name)
#endif

namespace posh::util {

class CondVar;

// An exclusive mutex (std::mutex).
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// A reader/writer mutex (std::shared_mutex): readers share it, a writer excludes all.
class ABSL_LOCKABLE SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { mu_.lock_shared(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

// Holds `mu` exclusively for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds `mu` exclusively (a writer) for its scope.
class ABSL_SCOPED_LOCKABLE WriterMutexLock {
 public:
  explicit WriterMutexLock(SharedMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~WriterMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  WriterMutexLock(const WriterMutexLock&) = delete;
  WriterMutexLock& operator=(const WriterMutexLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// Holds `mu` shared (a reader) for its scope.
class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(SharedMutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// A condition variable over a Mutex the caller holds (std::condition_variable). No
// predicate overloads: the analysis cannot see that a lambda runs under the lock, so
// callers loop (`while (!ready_) cv.Wait(&mu_);`), which it can check.
class CondVar {
 public:
  // Releases `mu` while waiting; holds it again on return. May wake spuriously.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's scope unlocks it
  }
  // As Wait, until `deadline` at the latest. True when the deadline passed.
  template <class Clock, class Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
    lock.release();
    return timed_out;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace posh::util
