// ConnectionGate (server/connection_limit.h) on a real unix socket, with a hand-off that
// keeps the descriptors (standing in for gRPC, which owns and closes them).
#include "server/connection_limit.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace posh::server {
namespace {

using namespace std::chrono_literals;

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
constexpr size_t kPrefaceBytes = sizeof kPreface - 1;  // magic + SETTINGS frame header

// Polls `pred` for up to `limit`.
template <class Pred>
bool Eventually(Pred pred, std::chrono::milliseconds limit = 3000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class GateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/posh-gate-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override {
    gate_.reset();
    for (int fd : clients_) ::close(fd);
    std::lock_guard lock(mu_);
    for (int fd : handed_) ::close(fd);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Start(ConnectionGateOptions options) {
    auto fd = OpenUnixListener(path_, 0600);
    ASSERT_TRUE(fd) << fd.error().message;
    gate_ = std::make_unique<ConnectionGate>(*fd, options, ConnectionCounters{&open_, &refused_},
                                             [this](int handed) {
                                               std::lock_guard lock(mu_);
                                               handed_.push_back(handed);
                                             });
    auto started = gate_->Start();
    ASSERT_TRUE(started) << started.error().message;
  }

  // A connected client; sends `bytes` if any.
  int Connect(const void* bytes = nullptr, size_t n = 0) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (n > 0) {
      // May fail (EPIPE, ECONNRESET) when the gate refused the connection already.
      const ssize_t sent = ::send(fd, bytes, n, MSG_NOSIGNAL);
      static_cast<void>(sent);
    }
    clients_.push_back(fd);
    return fd;
  }
  int ConnectWithPreface() { return Connect(kPreface, kPrefaceBytes); }

  // The server closed its side (EOF or reset) within `limit`.
  static bool ClosedByServer(int fd, std::chrono::milliseconds limit = 2000ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  size_t Handed() {
    std::lock_guard lock(mu_);
    return handed_.size();
  }
  // Closes a handed-off descriptor, as gRPC does when a connection ends.
  void CloseHanded(size_t i) {
    std::lock_guard lock(mu_);
    ::close(handed_[i]);
    handed_.erase(handed_.begin() + static_cast<long>(i));
  }

  std::string dir_, path_;
  std::atomic<uint64_t> open_{0}, refused_{0};
  std::unique_ptr<ConnectionGate> gate_;
  std::vector<int> clients_;
  std::mutex mu_;
  std::vector<int> handed_;  // guarded by mu_
};

TEST_F(GateTest, ListenerHasItsModeFromCreation) {
  Start({});
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(GateTest, HandsOffOnlyAfterTheWholePreface) {
  Start({});
  int c = Connect(kPreface, 24);  // the magic alone
  ASSERT_TRUE(Eventually([&] { return open_.load() == 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(Handed(), 0u);
  ASSERT_EQ(::send(c, kPreface + 24, kPrefaceBytes - 24, MSG_NOSIGNAL), 9);
  ASSERT_TRUE(Eventually([&] { return Handed() == 1; }));
  EXPECT_EQ(open_.load(), 1u);
  // The preface was only peeked at: the new owner reads it whole.
  char buf[kPrefaceBytes];
  int handed;
  {
    std::lock_guard lock(mu_);
    handed = handed_[0];
  }
  ASSERT_EQ(::recv(handed, buf, sizeof buf, MSG_WAITALL), static_cast<ssize_t>(kPrefaceBytes));
  EXPECT_EQ(std::memcmp(buf, kPreface, kPrefaceBytes), 0);
}

TEST_F(GateTest, ClosesConnectionsWithoutAPrefaceAtTheTimeout) {
  ConnectionGateOptions o;
  o.preface_timeout = 200ms;
  Start(o);
  int silent = Connect();
  int partial = Connect(kPreface, 10);
  ASSERT_TRUE(Eventually([&] { return open_.load() == 2; }));
  EXPECT_FALSE(ClosedByServer(silent, 50ms));
  EXPECT_TRUE(ClosedByServer(silent));
  EXPECT_TRUE(ClosedByServer(partial));
  EXPECT_TRUE(Eventually([&] { return open_.load() == 0; }));
  EXPECT_EQ(refused_.load(), 0u);  // timeouts are not refusals
  EXPECT_EQ(Handed(), 0u);
}

TEST_F(GateTest, ClosesWhatIsNotHttp2AtOnce) {
  Start({});
  const char get[] = "GET / HTTP/1.1\r\n\r\n";
  int c = Connect(get, sizeof get - 1);
  EXPECT_TRUE(ClosedByServer(c, 1000ms));
  EXPECT_EQ(Handed(), 0u);
}

TEST_F(GateTest, RefusesOverTheCapAndCounts) {
  ConnectionGateOptions o;
  o.max_connections = 2;
  Start(o);
  ConnectWithPreface();
  ConnectWithPreface();
  ASSERT_TRUE(Eventually([&] { return Handed() == 2; }));
  int third = ConnectWithPreface();
  EXPECT_TRUE(ClosedByServer(third));
  EXPECT_TRUE(Eventually([&] { return refused_.load() == 1u; }));
  EXPECT_EQ(open_.load(), 2u);
  EXPECT_EQ(Handed(), 2u);
}

TEST_F(GateTest, ANewConnectionDisplacesTheOldestWithoutAPreface) {
  ConnectionGateOptions o;
  o.max_connections = 2;
  Start(o);
  int silent = Connect();
  ConnectWithPreface();
  ASSERT_TRUE(Eventually([&] { return Handed() == 1 && open_.load() == 2; }));
  int late = ConnectWithPreface();
  EXPECT_TRUE(ClosedByServer(silent));
  ASSERT_TRUE(Eventually([&] { return Handed() == 2; }));
  EXPECT_FALSE(ClosedByServer(late, 50ms));
  EXPECT_TRUE(Eventually([&] { return refused_.load() == 1u; }));
  EXPECT_EQ(open_.load(), 2u);
}

TEST_F(GateTest, NoticesWhenTheOwnerClosesAHandedOffConnection) {
  ConnectionGateOptions o;
  o.max_connections = 1;
  o.sweep_interval = 50ms;
  Start(o);
  ConnectWithPreface();
  ASSERT_TRUE(Eventually([&] { return Handed() == 1; }));
  EXPECT_EQ(open_.load(), 1u);
  CloseHanded(0);
  EXPECT_TRUE(Eventually([&] { return open_.load() == 0; }, 1000ms));
  // The slot is free again.
  ConnectWithPreface();
  EXPECT_TRUE(Eventually([&] { return Handed() == 1; }));
  EXPECT_EQ(refused_.load(), 0u);
}

TEST_F(GateTest, AClosedSlotIsFoundBeforeRefusingEvenBetweenSweeps) {
  ConnectionGateOptions o;
  o.max_connections = 1;
  o.sweep_interval = 3600s;  // only the sweep before a refusal can see the close
  Start(o);
  ConnectWithPreface();
  ASSERT_TRUE(Eventually([&] { return Handed() == 1; }));
  CloseHanded(0);
  std::this_thread::sleep_for(50ms);
  int next = ConnectWithPreface();
  EXPECT_TRUE(Eventually([&] { return Handed() == 1; }));
  EXPECT_FALSE(ClosedByServer(next, 50ms));
  EXPECT_EQ(refused_.load(), 0u);
}

TEST_F(GateTest, StopClosesPendingConnectionsAndTheListener) {
  Start({});
  int silent = Connect();
  ASSERT_TRUE(Eventually([&] { return open_.load() == 1; }));
  gate_->Stop();
  EXPECT_TRUE(ClosedByServer(silent));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  EXPECT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
}

}  // namespace
}  // namespace posh::server
