// poshctl probe: non-blocking TCP, every wait a poll bounded by the probe's deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "probe.h"

namespace posh::ctl::probe {

int Deadline::RemainingMs() const {
  const auto left = at_ - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

Error Errno(const std::string& what, int err) {
  std::string m = what;
  m += ": ";
  m += std::strerror(err);
  return Error{err, m};
}

// Waits for `events` on fd; error on timeout or poll failure.
Result<Ok> WaitFor(int fd, short events, const Deadline& deadline, const char* waiting_for) {
  for (;;) {
    const int left = deadline.RemainingMs();
    if (left <= 0) {
      std::string m = "timed out waiting for ";
      m += waiting_for;
      return Fail(Error{ETIMEDOUT, m});
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Errno("poll", errno));
    }
    if (n > 0) return Ok{};
  }
}

}  // namespace

Result<Socket> ConnectTcp(const Address& address, const Deadline& deadline) {
  Socket s(::socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.fd() < 0) return Fail(Errno("socket", errno));
  if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0) {
    if (errno != EINPROGRESS) return Fail(Error{errno, std::strerror(errno)});
    auto w = WaitFor(s.fd(), POLLOUT, deadline, "the TCP connection");
    if (!w) return Fail(w.error());
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      return Fail(Errno("getsockopt", errno));
    }
    if (err != 0) return Fail(Error{err, std::strerror(err)});
  }
  return s;
}

Result<Ok> SendAll(int fd, std::string_view data, const Deadline& deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Fail(Errno("send", errno));
    auto w = WaitFor(fd, POLLOUT, deadline, "the server to accept our data");
    if (!w) return Fail(w.error());
  }
  return Ok{};
}

Result<size_t> RecvSome(int fd, char* buf, size_t max, const Deadline& deadline) {
  for (;;) {
    const ssize_t n = ::recv(fd, buf, max, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Fail(Errno("recv", errno));
    auto w = WaitFor(fd, POLLIN, deadline, "the server");
    if (!w) return Fail(w.error());
  }
}

Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return Fail(Error{0, "\"" + s + "\" is not HOST:PORT or [IPV6]:PORT"});
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) {
      return Fail(Error{0, "\"" + s + "\" is not HOST:PORT or [IPV6]:PORT"});
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) return Fail(Error{0, "\"" + s + "\" has no host"});
  char* end = nullptr;
  errno = 0;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || errno != 0 || *end != '\0' || p < 1 || p > 65535) {
    return Fail(Error{0, "\"" + s + "\" has no valid port (1..65535)"});
  }
  return std::make_pair(host, static_cast<uint16_t>(p));
}

}  // namespace posh::ctl::probe
