#include "util/log.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace posh::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
constexpr std::string_view kNames[] = {"error", "warn", "info", "debug"};
// sd-daemon.h: SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG.
constexpr std::string_view kPrefixes[] = {"<3>", "<4>", "<6>", "<7>"};

// The process-wide writer (never freed: a writer stuck on a stalled descriptor at exit may
// still use it).
std::atomic<AsyncSink*> g_sink{nullptr};

bool StderrIsJournal() {
  static const bool journal = IsJournalStream(STDERR_FILENO);
  return journal;
}

bool ParseUnsigned(std::string_view text, unsigned long long* out) {
  if (text.empty() || text.size() > 20) return false;
  unsigned long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    unsigned long long next = v * 10 + static_cast<unsigned>(c - '0');
    if (next / 10 != v) return false;  // overflow
    v = next;
  }
  *out = v;
  return true;
}

// Writes both pieces in full: EINTR retried, EAGAIN (a descriptor someone made
// non-blocking) waited out. False when the descriptor fails for good.
bool WriteAll(int fd, const char* a, size_t an, const char* b, size_t bn) {
  iovec iov[2] = {{const_cast<char*>(a), an}, {const_cast<char*>(b), bn}};
  int first = an == 0 ? 1 : 0;
  int count = bn == 0 ? 1 : 2;
  while (first < count) {
    ssize_t w = ::writev(fd, iov + first, count - first);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return false;
    }
    size_t left = static_cast<size_t>(w);
    while (first < count && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < count) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

size_t CountLines(const char* p, size_t n) {
  return static_cast<size_t>(std::count(p, p + n, '\n'));
}

}  // namespace

bool ParseLevel(std::string_view text, Level* out) {
  for (int i = 0; i < 4; ++i) {
    if (text == kNames[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  if (text == "warning") {
    *out = Level::kWarn;
    return true;
  }
  return false;
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }
bool Enabled(Level level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

std::string_view PriorityPrefix(Level level) { return kPrefixes[static_cast<int>(level)]; }

bool IsJournalStream(int fd, const char* journal_stream) {
  if (journal_stream == nullptr) return false;
  std::string_view text(journal_stream);
  size_t colon = text.find(':');
  unsigned long long dev = 0, ino = 0;
  if (colon == std::string_view::npos || !ParseUnsigned(text.substr(0, colon), &dev) ||
      !ParseUnsigned(text.substr(colon + 1), &ino)) {
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

bool IsJournalStream(int fd) { return IsJournalStream(fd, std::getenv("JOURNAL_STREAM")); }

size_t FormatLine(Level level, std::string_view message, bool journal, char* out) {
  size_t n = 0;
  if (journal) {
    std::string_view p = PriorityPrefix(level);
    std::memcpy(out, p.data(), p.size());
    n = p.size();
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int h = std::snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          ts.tv_nsec / 1000000, kNames[static_cast<int>(level)].data());
    n = h > 0 ? std::min<size_t>(static_cast<size_t>(h), 63) : 0;
  }
  // Network-derived text is logged: neutralise control characters (log injection).
  const size_t room = kMaxLine - 1 - n;
  const size_t take = std::min(message.size(), room);
  for (size_t i = 0; i < take; ++i) {
    unsigned char u = static_cast<unsigned char>(message[i]);
    out[n++] = u < 0x20 || u == 0x7f ? '?' : message[i];
  }
  out[n++] = '\n';
  return n;
}

// ---------------------------------------------------------------------------------------
// AsyncSink

AsyncSink::AsyncSink(int fd, bool journal, size_t capacity)
    : fd_(fd),
      journal_(journal),
      capacity_(std::max<size_t>(capacity, 512)),
      ring_(new char[capacity_]) {
  thread_ = std::thread([this] {
    // Signals are for the main thread (it waits for SIGTERM/SIGHUP synchronously).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    Run();
  });
}

AsyncSink::~AsyncSink() { Stop(std::chrono::milliseconds::max()); }

void AsyncSink::PutLocked(const char* data, size_t n) {
  size_t off = tail_ % capacity_;
  size_t first = std::min(n, capacity_ - off);
  std::memcpy(ring_.get() + off, data, first);
  std::memcpy(ring_.get(), data + first, n - first);
  tail_ += n;
}

bool AsyncSink::AppendDropNoticeLocked() {
  char msg[96];
  std::snprintf(msg, sizeof msg, "%llu log lines dropped (the log writer could not keep up)",
                static_cast<unsigned long long>(dropped_));
  char line[kMaxLine];
  size_t n = FormatLine(Level::kWarn, msg, journal_, line);
  if (capacity_ - (tail_ - head_) < n) return false;
  PutLocked(line, n);
  dropped_ = 0;
  return true;
}

bool AsyncSink::Write(Level level, std::string_view message) {
  char line[kMaxLine];
  size_t n = FormatLine(level, message, journal_, line);
  return WriteFormatted(std::string_view(line, n));
}

bool AsyncSink::WriteFormatted(std::string_view line) {
  bool write_now = false;
  bool was_empty = false;
  {
    util::MutexLock lock(&mu_);
    if (stopped_) {
      write_now = true;
    } else {
      was_empty = tail_ == head_ && dropped_ == 0;
      // The notice goes where the gap is: before the first line that fits again.
      if ((dropped_ > 0 && !AppendDropNoticeLocked()) ||
          capacity_ - (tail_ - head_) < line.size()) {
        ++dropped_;
        ++dropped_total_;
        return false;
      }
      PutLocked(line.data(), line.size());
    }
  }
  if (write_now) {
    WriteAll(fd_, line.data(), line.size(), nullptr, 0);
    return true;
  }
  // The writer sleeps only when there is nothing to do.
  if (was_empty) wake_.Signal();
  return true;
}

void AsyncSink::Run() {
  mu_.Lock();
  for (;;) {
    while (tail_ == head_ && dropped_ == 0 && !stopping_) wake_.Wait(&mu_);
    if (tail_ == head_) {
      if (dropped_ > 0) {
        AppendDropNoticeLocked();  // always fits an empty ring
        continue;
      }
      break;  // stopping, and everything is written
    }
    const uint64_t head = head_, tail = tail_;
    const size_t off = head % capacity_;
    const size_t n = tail - head;
    const size_t first = std::min(n, capacity_ - off);
    mu_.Unlock();
    // Producers only write the free part of the ring: [head, tail) stays as it is.
    bool ok = WriteAll(fd_, ring_.get() + off, first, ring_.get(), n - first);
    mu_.Lock();
    if (!ok) {
      dropped_total_ += CountLines(ring_.get() + off, first) + CountLines(ring_.get(), n - first);
    }
    head_ = tail;
    written_.SignalAll();
  }
  stopped_ = true;
  written_.SignalAll();
  mu_.Unlock();
}

bool AsyncSink::Flush(std::chrono::milliseconds timeout) {
  util::MutexLock lock(&mu_);
  if (stopped_) return true;
  if (dropped_ > 0) AppendDropNoticeLocked();
  const uint64_t target = tail_;
  if (head_ >= target) return true;
  wake_.Signal();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (head_ < target && !stopped_) {
    if (written_.WaitUntil(&mu_, deadline)) return head_ >= target || stopped_;
  }
  return true;
}

bool AsyncSink::Stop(std::chrono::milliseconds timeout) {
  bool done = true;
  {
    util::MutexLock lock(&mu_);
    if (!thread_.joinable()) return stopped_;
    stopping_ = true;
    wake_.Signal();
    if (timeout == std::chrono::milliseconds::max()) {
      while (!stopped_) written_.Wait(&mu_);
    } else {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (!stopped_) {
        if (written_.WaitUntil(&mu_, deadline)) {
          done = stopped_;
          break;
        }
      }
    }
  }
  if (done) {
    thread_.join();
  } else {
    thread_.detach();
  }
  return done;
}

uint64_t AsyncSink::dropped_total() const {
  util::MutexLock lock(&mu_);
  return dropped_total_;
}

// ---------------------------------------------------------------------------------------
// Process-wide

void Write(Level level, std::string_view message) {
  if (AsyncSink* sink = g_sink.load(std::memory_order_acquire)) {
    sink->Write(level, message);
    return;
  }
  char line[kMaxLine];
  size_t n = FormatLine(level, message, StderrIsJournal(), line);
  WriteAll(STDERR_FILENO, line, n, nullptr, 0);
}

void StartWriter(size_t capacity) {
  if (g_sink.load(std::memory_order_acquire) != nullptr) return;  // once per process
  g_sink.store(new AsyncSink(STDERR_FILENO, StderrIsJournal(), capacity),
               std::memory_order_release);
}

void StopWriter(std::chrono::milliseconds timeout) {
  if (AsyncSink* sink = g_sink.load(std::memory_order_acquire)) sink->Stop(timeout);
}

bool Flush(std::chrono::milliseconds timeout) {
  AsyncSink* sink = g_sink.load(std::memory_order_acquire);
  return sink == nullptr || sink->Flush(timeout);
}

void Direct(Level level, std::string_view text) {
  Flush(std::chrono::seconds(1));
  std::string line;
  line.reserve(text.size() + 4);
  if (StderrIsJournal()) line.append(PriorityPrefix(level));
  line.append(text);
  line.push_back('\n');
  WriteAll(STDERR_FILENO, line.data(), line.size(), nullptr, 0);
}

uint64_t DroppedTotal() {
  AsyncSink* sink = g_sink.load(std::memory_order_acquire);
  return sink == nullptr ? 0 : sink->dropped_total();
}

}  // namespace posh::log
