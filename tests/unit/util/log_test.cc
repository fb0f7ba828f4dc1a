#include "util/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace posh::log {
namespace {

using namespace std::chrono_literals;

std::string Line(Level level, std::string_view message, bool journal) {
  char buf[kMaxLine];
  size_t n = FormatLine(level, message, journal, buf);
  return std::string(buf, n);
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Everything written to `fd` (a memfd or file) so far.
std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

// A pipe whose read end is drained into a string by a thread once Drain() is called.
struct Pipe {
  int r = -1, w = -1;
  std::thread reader;
  std::string got;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
    ::fcntl(w, F_SETPIPE_SZ, 4096);  // the smallest pipe: it fills at once
  }
  void Drain() {
    reader = std::thread([this] {
      char buf[4096];
      for (;;) {
        ssize_t n = ::read(r, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
    });
  }
  // Closes the write end and waits for the reader to see EOF.
  std::string Finish() {
    ::close(w);
    w = -1;
    if (reader.joinable()) reader.join();
    return got;
  }
  ~Pipe() {
    if (w >= 0) ::close(w);
    if (reader.joinable()) reader.join();
    ::close(r);
  }
};

TEST(LogFormat, JournalLinesCarryTheSyslogPriorityAndNoTimestamp) {
  EXPECT_EQ(Line(Level::kError, "snapshot: cannot write", true), "<3>snapshot: cannot write\n");
  EXPECT_EQ(Line(Level::kWarn, "w", true), "<4>w\n");
  EXPECT_EQ(Line(Level::kInfo, "listening on unix:/x", true), "<6>listening on unix:/x\n");
  EXPECT_EQ(Line(Level::kDebug, "d", true), "<7>d\n");
}

TEST(LogFormat, HumanLinesKeepTimestampAndLevelName) {
  std::regex re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) (.*)\n)");
  std::smatch m;
  std::string l = Line(Level::kInfo, "listening on unix:/x (mode 0660)", false);
  ASSERT_TRUE(std::regex_match(l, m, re)) << l;
  EXPECT_EQ(m[1], "info");
  EXPECT_EQ(m[2], "listening on unix:/x (mode 0660)");
  l = Line(Level::kWarn, "x", false);
  ASSERT_TRUE(std::regex_match(l, m, re)) << l;
  EXPECT_EQ(m[1], "warn");
}

TEST(LogFormat, ControlCharactersAreNeutralisedAndLongLinesCut) {
  EXPECT_EQ(Line(Level::kWarn, "a\nb\rc\x7f", true), "<4>a?b?c?\n");
  std::string l = Line(Level::kInfo, std::string(10000, 'x'), true);
  EXPECT_EQ(l.size(), kMaxLine);
  EXPECT_EQ(l.back(), '\n');
  EXPECT_EQ(l.find('\n'), kMaxLine - 1);
}

TEST(LogJournal, JournalStreamMustNameThisDescriptor) {
  int fd = ::memfd_create("log", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  auto name = [](unsigned long long dev, unsigned long long ino) {
    return std::to_string(dev) + ":" + std::to_string(ino);
  };
  EXPECT_TRUE(IsJournalStream(fd, name(st.st_dev, st.st_ino).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, name(st.st_dev, st.st_ino + 1).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, name(st.st_dev + 1, st.st_ino).c_str()));
  for (const char* bad : {"", ":", "1:", ":1", "x:y", "12", "1:2:3", "-1:5"}) {
    EXPECT_FALSE(IsJournalStream(fd, bad)) << bad;
  }
  EXPECT_FALSE(IsJournalStream(fd, nullptr));
  int other = ::memfd_create("other", MFD_CLOEXEC);
  EXPECT_FALSE(IsJournalStream(other, name(st.st_dev, st.st_ino).c_str()));
  ::close(other);
  ::close(fd);
}

TEST(AsyncSink, KeepsEachThreadsOrderAndLosesNothingWhenTheReaderKeepsUp) {
  Pipe pipe;
  pipe.Drain();
  constexpr int kThreads = 4, kPerThread = 3000;
  {
    AsyncSink sink(pipe.w, true, 1 << 20);
    std::vector<std::thread> threads;
    std::atomic<int> dropped{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Appended, not "t" + ...: GCC 12 at -O3 reports a false -Wrestrict in
          // operator+(const char*, std::string&&) (GCC bug 105329).
          std::string msg("t");
          msg.append(std::to_string(t)).append(" ").append(std::to_string(i));
          if (!sink.Write(Level::kInfo, msg)) dropped.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE(sink.Stop());
    // 12 000 short lines fit the 1 MiB ring: nothing is dropped.
    EXPECT_EQ(dropped.load(), 0);
    EXPECT_EQ(sink.dropped_total(), 0u);
  }
  auto lines = SplitLines(pipe.Finish());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (const auto& l : lines) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(l.c_str(), "<6>t%d %d", &t, &i), 2) << l;
    ASSERT_TRUE(t >= 0 && t < kThreads) << l;
    EXPECT_EQ(i, next[t]) << "thread " << t << " out of order";
    next[t] = i + 1;
  }
}

TEST(AsyncSink, AFullPipeNeverBlocksTheCallerAndTheGapIsReported) {
  Pipe pipe;  // nobody reads it until the end
  AsyncSink sink(pipe.w, true, 8192);
  constexpr int kLines = 5000;
  std::vector<bool> accepted;
  auto slowest = std::chrono::nanoseconds(0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kLines; ++i) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "line %05d %s", i, std::string(80, 'x').c_str());
    auto t0 = std::chrono::steady_clock::now();
    accepted.push_back(sink.Write(Level::kInfo, msg));
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  // ~500 KB into a 4 KiB pipe nobody reads: every call returned at once.
  EXPECT_LT(took, 3s);
  EXPECT_LT(slowest, 500ms);
  const uint64_t dropped = sink.dropped_total();
  EXPECT_GT(dropped, 4000u);
  // The writer is stuck: a flush cannot finish.
  EXPECT_FALSE(sink.Flush(50ms));
  // Once someone reads, the writer catches up; a later line follows the drop notice.
  pipe.Drain();
  ASSERT_TRUE(sink.Flush(10s));
  EXPECT_TRUE(sink.Write(Level::kError, "after the stall"));
  ASSERT_TRUE(sink.Stop());
  auto lines = SplitLines(pipe.Finish());
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.back(), "<3>after the stall");
  lines.pop_back();
  // Accepted lines in order; each notice stands where its lines are missing: before an
  // accepted line i, the notices so far count exactly the lines dropped before i.
  uint64_t noticed = 0, seen = 0;
  int last = -1;
  for (const auto& l : lines) {
    unsigned long long n = 0;
    int i = -1;
    if (std::sscanf(l.c_str(), "<4>%llu log lines dropped (the log writer could not keep up)",
                    &n) == 1) {
      noticed += n;
      continue;
    }
    ASSERT_EQ(std::sscanf(l.c_str(), "<6>line %d ", &i), 1) << l;
    ASSERT_GT(i, last) << l;
    ASSERT_TRUE(accepted[i]) << l;
    ++seen;
    uint64_t dropped_before = static_cast<uint64_t>(i) + 1 - seen;
    EXPECT_EQ(noticed, dropped_before) << "at " << l;
    last = i;
  }
  EXPECT_EQ(noticed, dropped);
  EXPECT_EQ(seen + dropped, static_cast<uint64_t>(kLines));
}

TEST(AsyncSink, TheDropNoticeComesWithoutAnotherLine) {
  Pipe pipe;
  AsyncSink sink(pipe.w, false, 4096);
  int dropped = 0;
  for (int i = 0; i < 500; ++i) dropped += sink.Write(Level::kInfo, std::string(100, 'y')) ? 0 : 1;
  ASSERT_GT(dropped, 0);
  pipe.Drain();  // space returns; no further line is logged
  ASSERT_TRUE(sink.Stop());
  uint64_t noticed = 0;
  for (const auto& l : SplitLines(pipe.Finish())) {
    size_t at = l.find(" warn ");
    unsigned long long n = 0;
    if (at != std::string::npos && std::sscanf(l.c_str() + at, " warn %llu log lines", &n) == 1)
      noticed += n;
  }
  EXPECT_EQ(noticed, static_cast<uint64_t>(dropped));
}

TEST(AsyncSink, FlushAndStopWriteEverythingQueued) {
  int fd = ::memfd_create("log", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  {
    AsyncSink sink(fd, true, 1 << 20);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(sink.Write(Level::kDebug, std::to_string(i)));
    ASSERT_TRUE(sink.Flush(10s));
    EXPECT_EQ(SplitLines(ReadAll(fd)).size(), 1000u);
    for (int i = 1000; i < 3000; ++i) ASSERT_TRUE(sink.Write(Level::kDebug, std::to_string(i)));
    ASSERT_TRUE(sink.Stop());  // at once after the writes: nothing is lost
    auto lines = SplitLines(ReadAll(fd));
    ASSERT_EQ(lines.size(), 3000u);
    for (int i = 0; i < 3000; ++i) ASSERT_EQ(lines[i], "<7>" + std::to_string(i));
    // After Stop a line is written synchronously.
    EXPECT_TRUE(sink.Write(Level::kError, "stopped"));
    EXPECT_EQ(SplitLines(ReadAll(fd)).back(), "<3>stopped");
    EXPECT_TRUE(sink.Flush(0ms));
  }
  ::close(fd);
}

// The process-wide logger on a stderr that is "the journal" (JOURNAL_STREAM names it).
TEST(ProcessLog, StderrNamedByJournalStreamGetsPrefixesAndStopWritesAll) {
  int fd = ::memfd_create("stderr", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  int saved = ::dup(STDERR_FILENO);
  ASSERT_EQ(::dup2(fd, STDERR_FILENO), STDERR_FILENO);
  std::string js = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", js.c_str(), 1);
  SetLevel(Level::kInfo);
  POSH_LOG_ERROR("before the writer %d", 1);  // synchronous
  StartWriter(1 << 16);
  POSH_LOG_INFO("queued %s", "info");
  POSH_LOG_DEBUG("not at this level");
  POSH_LOG_WARN("queued warning");
  Direct(Level::kError, "poshd: direct");
  StopWriter();
  POSH_LOG_INFO("after the writer");
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::unsetenv("JOURNAL_STREAM");
  auto lines = SplitLines(ReadAll(fd));
  std::vector<std::string> want = {"<3>before the writer 1", "<6>queued info", "<4>queued warning",
                                   "<3>poshd: direct", "<6>after the writer"};
  EXPECT_EQ(lines, want);
  EXPECT_EQ(DroppedTotal(), 0u);
  ::close(fd);
}

}  // namespace
}  // namespace posh::log
