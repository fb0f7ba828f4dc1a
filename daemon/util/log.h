// Leveled logger to standard error that never blocks the caller.
//
// Each line carries its syslog priority: when stderr is the journal (systemd's
// JOURNAL_STREAM names its device and inode) a line is "<N>message" (sd-daemon.h's
// SD_ERR/SD_WARNING/SD_INFO/SD_DEBUG prefixes, no timestamp: journald has its own);
// otherwise "2024-05-01T12:00:00.000Z info message" for foreground runs and files.
//
// Once StartWriter() has run, a line is formatted on the caller's thread (on its stack)
// and copied into a bounded in-memory ring; one writer thread writes the ring to stderr.
// A full ring drops the line and counts it; "N log lines dropped" is logged where the gap
// is, as soon as there is room again. So a stalled journald (or a pipe nobody reads)
// never blocks the event loop. Before StartWriter() and after StopWriter() lines are
// written synchronously (startup errors, the last words of a shutdown).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>
#include <thread>

#include "util/mutex.h"

namespace posh::log {

enum class Level : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

bool ParseLevel(std::string_view text, Level* out);
void SetLevel(Level level);
Level GetLevel();
bool Enabled(Level level);
// Queues one line (or writes it, when no writer runs). Never blocks on the descriptor.
void Write(Level level, std::string_view message);

// Starts the writer thread for stderr; StopWriter() writes what is queued (for at most
// `timeout`) and joins it. Both are for the main thread; StartWriter after StopWriter
// starts a new writer.
void StartWriter(size_t capacity = 1 << 20);
void StopWriter(std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Waits (at most `timeout`) until every line queued before the call is written. For
// threads that may wait (main): systemd notifications are sent after the lines before them.
bool Flush(std::chrono::milliseconds timeout);
// Writes `text` + "\n" to stderr at once, after what is queued, with the priority prefix
// when stderr is the journal and verbatim otherwise ("poshd: cannot ..." messages of a
// failed start). Main thread only (it may wait for the queue, like Flush).
void Direct(Level level, std::string_view text);
// Lines dropped because the ring was full, since the start.
uint64_t DroppedTotal();

// RAII: StartWriter() / StopWriter().
class WriterScope {
 public:
  WriterScope() { StartWriter(); }
  ~WriterScope() { StopWriter(); }
  WriterScope(const WriterScope&) = delete;
  WriterScope& operator=(const WriterScope&) = delete;
};

// --- building blocks (public for tests)

// Is `fd` the stream named by `journal_stream` ("DEV:INODE", systemd's JOURNAL_STREAM)?
bool IsJournalStream(int fd, const char* journal_stream);
// Same, with the JOURNAL_STREAM of the environment.
bool IsJournalStream(int fd);
// The syslog prefix of a level: "<3>", "<4>", "<6>", "<7>".
std::string_view PriorityPrefix(Level level);

// Longest line written (longer messages are cut).
constexpr size_t kMaxLine = 4096;
// Formats one line, newline included, into out[kMaxLine]; control characters in `message`
// become '?' (network-derived text is logged: no log injection). Returns its length.
size_t FormatLine(Level level, std::string_view message, bool journal, char* out);

// The ring and its writer thread, writing to one descriptor.
class AsyncSink {
 public:
  AsyncSink(int fd, bool journal, size_t capacity);
  ~AsyncSink();  // Stop()
  AsyncSink(const AsyncSink&) = delete;
  AsyncSink& operator=(const AsyncSink&) = delete;

  // Formats and queues; false when the line was dropped (ring full). Once stopped, writes
  // the line synchronously instead.
  bool Write(Level level, std::string_view message);
  // Queues an already formatted line (newline included).
  bool WriteFormatted(std::string_view line);
  bool Flush(std::chrono::milliseconds timeout);
  // Writes what is queued (for at most `timeout`) and joins the writer. Returns false when
  // the descriptor did not take it all in time (the writer is then left behind, detached,
  // and this object must outlive it: the process is exiting).
  bool Stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  bool journal() const { return journal_; }
  uint64_t dropped_total() const;

 private:
  void Run();
  void PutLocked(const char* data, size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AppendDropNoticeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One write(2)/writev(2) loop; returns false when the descriptor failed for good.
  bool WriteOut(const char* a, size_t an, const char* b, size_t bn);

  const int fd_;
  const bool journal_;
  const size_t capacity_;
  // Producers write the free part under mu_; the writer reads [head_, tail_) outside it
  // (nobody else touches that part until head_ moves).
  std::unique_ptr<char[]> ring_;
  mutable util::Mutex mu_;
  util::CondVar wake_;                         // the writer: data, a drop notice, or stop
  util::CondVar written_;                      // Flush/Stop: head_ moved
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;     // bytes written out (or discarded), monotonic
  uint64_t tail_ ABSL_GUARDED_BY(mu_) = 0;     // bytes queued, monotonic
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;  // dropped since the last notice
  uint64_t dropped_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // the writer has finished: write synchronously
  std::thread thread_;  // set by the constructor; joined or detached by the one Stop()
};

template <class... Args>
void Logf(Level level, const char* fmt, Args... args) {
  if (!Enabled(level)) return;
  if constexpr (sizeof...(Args) == 0) {
    // No arguments: the text itself (snprintf with a non-literal format and no arguments
    // is what -Wformat-security, an error under Debian's build flags, reports).
    Write(level, fmt);
  } else {
    char buf[2048];
    int n = std::snprintf(buf, sizeof buf, fmt, args...);
    if (n < 0) return;
    Write(level, std::string_view(buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1));
  }
}

}  // namespace posh::log

#define POSH_LOG_ERROR(...) ::posh::log::Logf(::posh::log::Level::kError, __VA_ARGS__)
#define POSH_LOG_WARN(...) ::posh::log::Logf(::posh::log::Level::kWarn, __VA_ARGS__)
#define POSH_LOG_INFO(...) ::posh::log::Logf(::posh::log::Level::kInfo, __VA_ARGS__)
#define POSH_LOG_DEBUG(...) ::posh::log::Logf(::posh::log::Level::kDebug, __VA_ARGS__)
