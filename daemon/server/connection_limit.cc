#include "server/connection_limit.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace posh::server {
namespace {

// RFC 9113 3.4: the client connection preface is this magic followed by a SETTINGS frame.
constexpr char kMagic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMagicBytes = sizeof kMagic - 1;              // 24
constexpr size_t kPrefaceBytes = kMagicBytes + 9;              // + the SETTINGS frame header
constexpr unsigned char kSettingsFrame = 0x04;                 // frame type, header byte 3
constexpr uint64_t kListenerTag = 0, kStopTag = 1;             // epoll tags; pending ones from 2
constexpr size_t kAcceptBatch = 256;                           // then examine what is pending
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE and the like
// Before refusing anyone, look for slots freed since the last sweep, at most this often
// (a flood of connects at the cap would otherwise sweep on every one).
constexpr auto kRefuseSweepInterval = std::chrono::milliseconds(20);

int ErrnoOr(int fallback) { return errno != 0 ? errno : fallback; }

}  // namespace

Result<int> OpenUnixListener(const std::string& path, unsigned mode) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return Fail(Error{64, "socket path too long"});
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(Error{1, std::string("socket: ") + std::strerror(errno)});
  // The socket file gets its final mode at creation: no window in which the process
  // umask's mode lets other users connect.
  const mode_t old_umask = ::umask(~static_cast<mode_t>(mode) & 0777);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old_umask);
  if (bound != 0) {
    ::close(fd);
    return Fail(Error{1, std::string("bind: ") + std::strerror(bind_errno)});
  }
  if (::listen(fd, SOMAXCONN) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return Fail(Error{1, std::string("listen: ") + std::strerror(e)});
  }
  return fd;
}

ConnectionGate::ConnectionGate(int listen_fd, ConnectionGateOptions options,
                               ConnectionCounters counters, Handoff handoff)
    : listen_fd_(listen_fd), options_(options), counters_(counters), handoff_(std::move(handoff)) {}

ConnectionGate::~ConnectionGate() { Stop(); }

Result<bool> ConnectionGate::Start() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Fail(Error{1, std::string("epoll_create1: ") + std::strerror(errno)});
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return Fail(Error{1, std::string("eventfd: ") + std::strerror(errno)});
  epoll_event listen_ev{};
  listen_ev.events = EPOLLIN;  // level-triggered: a batch left over fires again
  listen_ev.data.u64 = kListenerTag;
  epoll_event stop_ev{};
  stop_ev.events = EPOLLIN;
  stop_ev.data.u64 = kStopTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &listen_ev) != 0 ||
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop_ev) != 0) {
    return Fail(Error{1, std::string("epoll_ctl: ") + std::strerror(errno)});
  }
  // Kept to be given up when accept(2) fails for want of descriptors: with it, a pending
  // connection can be accepted and closed instead of spinning on a readable listener.
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  last_sweep_ = Clock::now();
  Publish();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "poshd-accept");
    Run();
  });
  return true;
}

void ConnectionGate::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof one) < 0) {
      // An eventfd write fails only when its counter would overflow: it is readable anyway.
    }
    thread_.join();
  }
  while (!pending_.empty()) ClosePending(pending_.begin());
  for (int* fd : {&listen_fd_, &epoll_fd_, &stop_fd_, &reserve_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  // Established connections are gRPC's; they are no longer counted here.
  established_.clear();
  if (counters_.open != nullptr) Publish();
}

void ConnectionGate::Run() {
  epoll_event events[64];
  for (;;) {
    auto now = Clock::now();
    auto wake = last_sweep_ + options_.sweep_interval;
    if (!pending_.empty()) wake = std::min(wake, pending_.begin()->second.deadline);
    if (accept_paused_) wake = std::min(wake, accept_paused_until_);
    int timeout_ms = 0;
    if (wake > now) {
      // Rounded up: waking a little early would only spin until the deadline.
      timeout_ms =
          static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake - now).count());
    }
    const int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
    if (n < 0 && errno != EINTR) {
      POSH_LOG_ERROR("client socket: epoll_wait: %s; no longer accepting", std::strerror(errno));
      return;
    }
    now = Clock::now();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) return;
      if (tag == kListenerTag) {
        AcceptAll(now);
      } else {
        Examine(tag);
      }
    }
    ExpirePending(now);
    if (accept_paused_ && now >= accept_paused_until_) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerTag;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev) == 0) accept_paused_ = false;
    }
    if (now - last_sweep_ >= options_.sweep_interval) Sweep(now);
    MaybeWarn(now);
  }
}

void ConnectionGate::AcceptAll(Clock::time_point now) {
  for (size_t i = 0; i < kAcceptBatch; ++i) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Admit(fd, now);
      continue;
    }
    const int e = errno;
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) return;
    if ((e == EMFILE || e == ENFILE) && reserve_fd_ >= 0) {
      // Out of descriptors: take the oldest connection waiting in the backlog and close it,
      // rather than leave it (and every client behind it) waiting.
      ::close(reserve_fd_);
      const int victim = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (victim >= 0) ::close(victim);
      reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (now - last_fd_warn_ >= options_.warn_interval || last_fd_warn_ == Clock::time_point{}) {
        POSH_LOG_WARN(
            "client socket: out of file descriptors (%s) with %zu client connections open; "
            "raise the open files limit (LimitNOFILE=) or lower --max-connections",
            std::strerror(e), Open());
        last_fd_warn_ = now;
      }
      if (victim >= 0) Refused();
      if (reserve_fd_ < 0) PauseAccepting(now);
      return;
    }
    // EMFILE without a reserve, ENOBUFS, ENOMEM...: the listener stays readable, so stop
    // polling it for a moment instead of spinning.
    POSH_LOG_WARN("client socket: accept: %s", std::strerror(ErrnoOr(e)));
    PauseAccepting(now);
    return;
  }
}

void ConnectionGate::Admit(int fd, Clock::time_point now) {
  // The kernel gave this number out again: the connection that had it is closed.
  established_.erase(fd);
  struct stat st {};
  FileId id;
  if (::fstat(fd, &st) == 0) id = FileId{st.st_dev, st.st_ino};
  if (Open() >= options_.max_connections && now - last_sweep_ >= kRefuseSweepInterval) {
    Sweep(now);
  }
  if (Open() >= options_.max_connections) {
    if (pending_.empty()) {
      Refused();  // counted before the client can see the close
      ::close(fd);
      return;
    }
    // Make room by closing the connection that has waited longest without a preface: real
    // clients send theirs at once, so they are never the ones waiting.
    Refused();
    ClosePending(pending_.begin());
  }
  const uint64_t tag = next_tag_++;
  epoll_event ev{};
  // Edge-triggered: the preface is only peeked at (MSG_PEEK leaves it for gRPC), so a
  // level-triggered descriptor holding part of one would fire without end.
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    POSH_LOG_WARN("client socket: epoll_ctl: %s", std::strerror(errno));
    ::close(fd);
    Publish();
    return;
  }
  pending_.emplace(tag, Pending{fd, now + options_.preface_timeout, id});
  Publish();
  Examine(tag);  // a client that connected and wrote at once has its preface there already
}

void ConnectionGate::Examine(uint64_t tag) {
  auto it = pending_.find(tag);
  if (it == pending_.end()) return;  // closed already (displaced, expired, handed off)
  unsigned char buf[kPrefaceBytes];
  const ssize_t n = ::recv(it->second.fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    ClosePending(it);  // reset by the peer, or the like
    Publish();
    return;
  }
  const size_t got = static_cast<size_t>(n);
  if (got == 0 || std::memcmp(buf, kMagic, std::min(got, kMagicBytes)) != 0) {
    // Gone before speaking, or not HTTP/2 at all (gRPC would close it too).
    ClosePending(it);
    Publish();
    return;
  }
  if (got < kPrefaceBytes) return;  // more to come: the next edge examines it again
  if (buf[kMagicBytes + 3] != kSettingsFrame) {
    ClosePending(it);  // RFC 9113 3.4: the preface's frame must be SETTINGS
    Publish();
    return;
  }
  HandOff(it);
}

void ConnectionGate::ClosePending(std::map<uint64_t, Pending>::iterator it) {
  // close(2) alone drops the descriptor from the epoll set: the gate holds its only copy.
  ::close(it->second.fd);
  pending_.erase(it);
}

void ConnectionGate::HandOff(std::map<uint64_t, Pending>::iterator it) {
  const int fd = it->second.fd;
  // Out of the gate's epoll set before gRPC owns it (gRPC may close it at any time after).
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  established_[fd] = it->second.id;
  pending_.erase(it);
  Publish();
  handoff_(fd);
}

void ConnectionGate::ExpirePending(Clock::time_point now) {
  size_t expired = 0;
  while (!pending_.empty() && pending_.begin()->second.deadline <= now) {
    ClosePending(pending_.begin());
    ++expired;
  }
  if (expired > 0) {
    POSH_LOG_DEBUG("client socket: closed %zu connections that sent no HTTP/2 preface in %lld ms",
                   expired, static_cast<long long>(options_.preface_timeout.count()));
    Publish();
  }
}

void ConnectionGate::Sweep(Clock::time_point now) {
  last_sweep_ = now;
  for (auto it = established_.begin(); it != established_.end();) {
    struct stat st {};
    const bool same =
        ::fstat(it->first, &st) == 0 && st.st_dev == it->second.dev && st.st_ino == it->second.ino;
    it = same ? std::next(it) : established_.erase(it);
  }
  Publish();
}

void ConnectionGate::Refused() {
  counters_.refused->fetch_add(1, std::memory_order_relaxed);
  ++refused_unreported_;
  Publish();
  // The warning comes after the accept batch (Run), with the batch's count and state.
}

void ConnectionGate::MaybeWarn(Clock::time_point now) {
  if (refused_unreported_ == 0) return;
  if (last_warn_ != Clock::time_point{} && now - last_warn_ < options_.warn_interval) return;
  POSH_LOG_WARN(
      "connection limit reached: %zu client connections open (--max-connections %zu); "
      "%llu refused or closed since the last report",
      Open(), options_.max_connections, static_cast<unsigned long long>(refused_unreported_));
  refused_unreported_ = 0;
  last_warn_ = now;
}

void ConnectionGate::PauseAccepting(Clock::time_point now) {
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = kListenerTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev) == 0) {
    accept_paused_ = true;
    accept_paused_until_ = now + kAcceptPause;
  }
}

void ConnectionGate::Publish() { counters_.open->store(Open(), std::memory_order_relaxed); }

}  // namespace posh::server
