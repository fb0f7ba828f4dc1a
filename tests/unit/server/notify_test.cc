// systemd notifications (sd_notify): the datagrams poshd sends to $NOTIFY_SOCKET, read back
// from a socket of our own, and silence when not started by systemd.
#include "server/notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <set>
#include <sstream>
#include <string>

#include "options_test_support.h"

namespace posh::server {
namespace {

using testing::ScopedEnv;
using testing::TempDir;

// A unix datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  NotifySocket() : path_(dir_.path() + "/notify.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& path() const { return path_; }

  // The next datagram as its set of lines; sd_notify's send is synchronous, so whatever
  // was sent is already queued: never waits. Empty when nothing was sent.
  std::set<std::string> Next() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      return {};
    }
    std::set<std::string> lines;
    std::istringstream in(std::string(buf, static_cast<size_t>(n)));
    for (std::string line; std::getline(in, line);) lines.insert(line);
    return lines;
  }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
};

using Lines = std::set<std::string>;

TEST(Notify, ReadyCarriesTheStatusAndTheMainPid) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", sock.path());
  NotifyReady("listening on /run/poshd/poshd.sock");
  EXPECT_EQ(sock.Next(), (Lines{"READY=1", "STATUS=listening on /run/poshd/poshd.sock",
                                "MAINPID=" + std::to_string(::getpid())}));
  EXPECT_EQ(sock.Next(), Lines{});  // one datagram per notification
}

TEST(Notify, ReloadingStoppingAndStatus) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", sock.path());
  NotifyReloading();
  EXPECT_EQ(sock.Next(), (Lines{"RELOADING=1", "STATUS=reloading configuration"}));
  NotifyStatus("3 entries, 10 lookups, 7 hits, 3 fetches");
  EXPECT_EQ(sock.Next(), Lines{"STATUS=3 entries, 10 lookups, 7 hits, 3 fetches"});
  NotifyStopping();
  EXPECT_EQ(sock.Next(), (Lines{"STOPPING=1", "STATUS=stopping"}));
  // The environment is left in place: later notifications still reach systemd.
  NotifyStatus("again");
  EXPECT_EQ(sock.Next(), Lines{"STATUS=again"});
}

TEST(Notify, NothingIsSentWithoutNotifySocket) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
  NotifyReady("ready");
  NotifyReloading();
  NotifyStatus("status");
  NotifyStopping();
  EXPECT_EQ(sock.Next(), Lines{});
}

// A loop with one watchdog timer, closed and run down at the end.
class WatchdogLoop {
 public:
  WatchdogLoop() { EXPECT_EQ(uv_loop_init(&loop_), 0); }
  ~WatchdogLoop() {
    if (started_) uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  bool Start() { return started_ = StartWatchdog(&loop_, &timer_); }
  // Runs the timers that are due now (the first ping is due at once).
  void RunDue() { uv_run(&loop_, UV_RUN_NOWAIT); }
  uint64_t RepeatMs() const { return uv_timer_get_repeat(&timer_); }

 private:
  uv_loop_t loop_{};
  uv_timer_t timer_{};
  bool started_ = false;
};

TEST(Notify, WatchdogPingsAtHalfTheInterval) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", sock.path());
  ScopedEnv usec("WATCHDOG_USEC", "20000000");  // WatchdogSec=20s
  ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
  WatchdogLoop loop;
  ASSERT_TRUE(loop.Start());
  EXPECT_EQ(loop.RepeatMs(), 10000u);
  EXPECT_EQ(sock.Next(), Lines{});  // pings come from the loop thread, not from Start
  loop.RunDue();
  EXPECT_EQ(sock.Next(), Lines{"WATCHDOG=1"});
  EXPECT_EQ(sock.Next(), Lines{});
}

TEST(Notify, AVeryShortWatchdogStillPingsEveryMillisecond) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", sock.path());
  ScopedEnv usec("WATCHDOG_USEC", "1000");
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  WatchdogLoop loop;
  ASSERT_TRUE(loop.Start());
  EXPECT_EQ(loop.RepeatMs(), 1u);
}

TEST(Notify, NoWatchdogUnlessSystemdAskedThisProcess) {
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    WatchdogLoop loop;
    EXPECT_FALSE(loop.Start());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "0");
    WatchdogLoop loop;
    EXPECT_FALSE(loop.Start());
  }
  {
    // Meant for another process (e.g. the parent that started poshd).
    ScopedEnv usec("WATCHDOG_USEC", "20000000");
    ScopedEnv other("WATCHDOG_PID", std::to_string(::getpid() + 1));
    WatchdogLoop loop;
    EXPECT_FALSE(loop.Start());
  }
}

}  // namespace
}  // namespace posh::server
