// The --metrics-listen endpoint: the address rules (loopback only), the request-head parser
// and the responses, then a real server on the event loop against hostile clients
// (garbage, oversized heads, silence, too many connections, trickled bytes).
#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "server/event_loop.h"

namespace posh::server {
namespace {

using State = RequestHead::State;

TEST(MetricsListen, AcceptsLoopbackOnly) {
  for (const char* ok : {"127.0.0.1:9464", "127.1.2.3:1", "[::1]:9464", "localhost:9464",
                         "127.0.0.1:0", "127.0.0.1:65535"}) {
    EXPECT_TRUE(ParseMetricsListen(ok).ok()) << ok;
  }
  for (const char* non_loopback :
       {"0.0.0.0:9464", "10.0.0.1:9464", "192.168.1.1:80", "[::]:9464", "[fe80::1]:9464",
        "[::ffff:127.0.0.1]:9464", "example.com:9464", "128.0.0.1:9464"}) {
    auto r = ParseMetricsListen(non_loopback);
    ASSERT_FALSE(r.ok()) << non_loopback;
    EXPECT_EQ(r.error().code, 64);
    EXPECT_NE(r.error().message.find("loopback"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("--metrics-listen"), std::string::npos);
  }
  for (const char* malformed :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x", ":9464",
        "::1:9464", "[::1]9464", "[::1]:", "[::1", "127.0.0.1:9464 "}) {
    auto r = ParseMetricsListen(malformed);
    ASSERT_FALSE(r.ok()) << malformed;
    EXPECT_EQ(r.error().code, 64);
  }
}

TEST(RequestHeadParser, CompleteRequests) {
  auto h = ParseRequestHead("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(h.state, State::kComplete);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/metrics");
  EXPECT_EQ(h.minor_version, 1);
  // HTTP/1.0 needs no Host; bare LF line ends; empty lines before the request line.
  EXPECT_EQ(ParseRequestHead("GET /metrics HTTP/1.0\n\n").state, State::kComplete);
  EXPECT_EQ(ParseRequestHead("\r\nHEAD /metrics HTTP/1.0\r\n\r\n").state, State::kComplete);
  // Bytes after the head (a body, a pipelined request) do not matter.
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.0\r\n\r\nxyz").state, State::kComplete);
}

TEST(RequestHeadParser, IncompleteUntilTheEmptyLine) {
  for (const char* partial :
       {"", "G", "GET /metr", "GET /metrics HTTP/1.1\r", "GET /metrics HTTP/1.1\r\n",
        "GET /metrics HTTP/1.1\r\nHost: a\r\n", "GET /metrics HTTP/1.1\r\nHost: a\r\n\r", "\r\n"}) {
    EXPECT_EQ(ParseRequestHead(partial).state, State::kIncomplete) << partial;
  }
}

TEST(RequestHeadParser, Garbage) {
  for (const char* bad : {
           "\x16\x03\x01\x02\x00",                                 // a TLS ClientHello
           "GET\r\n\r\n",                                          // no target, no version
           "GET /metrics\r\n\r\n",                                 // HTTP/0.9
           "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",            // two spaces
           "GET /metrics HTTP/1.1 \r\nHost: a\r\n\r\n",            // trailing space
           "GET /metrics HTTP/1.x\r\nHost: a\r\n\r\n",             // version
           "GET /metrics http/1.1\r\nHost: a\r\n\r\n",             // version case
           "G(T /metrics HTTP/1.1\r\nHost: a\r\n\r\n",             // method token
           "GET /me\x01trics HTTP/1.1\r\n\r\n",                    // control byte in the target
           "GET /metrics HTTP/1.1\r\n\r\n",                        // HTTP/1.1 without Host
           "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  // two Hosts
           "GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  // obsolete folding
           "GET /metrics HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
           "GET /metrics HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
           "GET /metrics HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",  // bare CR
       }) {
    EXPECT_EQ(ParseRequestHead(bad).state, State::kBad) << bad;
  }
  // A NUL byte in a field value (std::string with an embedded NUL).
  std::string nul = "GET /metrics HTTP/1.1\r\nHost: a\r\nX: a";
  nul += '\0';
  nul += "b\r\n\r\n";
  EXPECT_EQ(ParseRequestHead(nul).state, State::kBad);
  // Garbage shows before any line ends.
  EXPECT_EQ(ParseRequestHead(std::string("\x80\x81", 2)).state, State::kBad);
  EXPECT_EQ(ParseRequestHead("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").state, State::kBadVersion);
}

std::string Respond(const std::string& request) {
  return BuildResponse(ParseRequestHead(request), [] { return std::string("body 1\n"); });
}

TEST(MetricsResponses, StatusCodes) {
  auto ok = Respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(ok.find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_NE(ok.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(ok.substr(ok.size() - 11), "\r\n\r\nbody 1\n");
  // A query string is ignored; absolute-form targets are understood.
  EXPECT_EQ(Respond("GET /metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(Respond("GET http://127.0.0.1:9464/metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0),
            0u);
  auto head = Respond("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(head.find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body
  EXPECT_EQ(Respond("GET / HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Respond("GET /metrics/ HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Respond("GET /Metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  auto post = Respond("POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(Respond("get /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Respond("GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Respond("GET /metrics HTTP/2.0\r\n\r\n").rfind("HTTP/1.1 505", 0), 0u);
}

// ---- a real server on an EventLoop, blocking clients on this thread

class MetricsServerTest : public ::testing::Test {
 protected:
  void Start(MetricsServerLimits limits) {
    auto ep = ParseMetricsListen("127.0.0.1:0");
    ASSERT_TRUE(ep.ok());
    std::string bound;
    auto fd = OpenMetricsListener(*ep, &bound);
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    port_ = std::stoi(bound.substr(bound.rfind(':') + 1));
    ASSERT_GT(port_, 0);
    server_ = std::make_unique<MetricsServer>(
        [this] {
          ++renders_;
          return std::string("poshd_up 1\n");
        },
        limits);
    std::promise<bool> started;
    loop_.Start([&, fd = *fd] { started.set_value(server_->StartOnLoop(loop_.uv(), fd).ok()); },
                [this] { server_->StopOnLoop(); });
    ASSERT_TRUE(started.get_future().get());
  }
  void TearDown() override {
    loop_.Stop();
    server_.reset();
  }

  size_t OpenConnections() {
    std::promise<size_t> n;
    loop_.Post([&] { n.set_value(server_->open_connections()); });
    return n.get_future().get();
  }

  int Connect() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }

  // Everything the server sends until it closes (or 10 s pass: `closed` false).
  static std::string ReadAll(int fd, bool* closed = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (closed) *closed = n == 0 || errno == ECONNRESET;
      return out;
    }
  }

  std::string Exchange(const std::string& request) {
    int fd = Connect();
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    bool closed = false;
    std::string out = ReadAll(fd, &closed);
    EXPECT_TRUE(closed);
    ::close(fd);
    return out;
  }

  EventLoop loop_;
  std::unique_ptr<MetricsServer> server_;
  int port_ = 0;
  std::atomic<int> renders_{0};
};

TEST_F(MetricsServerTest, ServesMetricsAndRefusesTheRest) {
  Start({});
  auto ok = Exchange("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_EQ(ok.substr(ok.find("\r\n\r\n") + 4), "poshd_up 1\n");
  EXPECT_EQ(Exchange("GET /other HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Exchange("DELETE /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Exchange(std::string("\x16\x03\x01\x00\xa5\x01\x00\x00", 8)).rfind("HTTP/1.1 400", 0),
            0u);
  EXPECT_EQ(Exchange(std::string(20000, 'A')).rfind("HTTP/1.1 431", 0), 0u);
  std::string many_headers = "GET /metrics HTTP/1.1\r\nHost: a\r\n";
  while (many_headers.size() < 9000) many_headers += "X-Filler: 0123456789abcdef\r\n";
  EXPECT_EQ(Exchange(many_headers + "\r\n").rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(renders_.load(), 1);
  EXPECT_EQ(OpenConnections(), 0u);
}

TEST_F(MetricsServerTest, TrickledRequestIsServed) {
  Start({});
  int fd = Connect();
  for (char c : std::string("GET /metrics HTTP/1.0\r\nUser-Agent: slow\r\n\r\n")) {
    ASSERT_EQ(::send(fd, &c, 1, MSG_NOSIGNAL), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ReadAll(fd).rfind("HTTP/1.1 200 OK", 0), 0u);
  ::close(fd);
}

TEST_F(MetricsServerTest, SilentClientIsDroppedAtTheDeadline) {
  MetricsServerLimits limits;
  limits.deadline_ms = 300;
  Start(limits);
  int fd = Connect();
  ASSERT_EQ(::send(fd, "GET /metr", 9, MSG_NOSIGNAL), 9);  // and then nothing
  auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  EXPECT_EQ(ReadAll(fd, &closed), "");
  EXPECT_TRUE(closed);
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(200));
  EXPECT_LT(waited, std::chrono::seconds(5));
  ::close(fd);
  EXPECT_EQ(OpenConnections(), 0u);
}

TEST_F(MetricsServerTest, ConnectionsBeyondTheCapAreClosedAtOnce) {
  MetricsServerLimits limits;
  limits.max_connections = 3;
  limits.deadline_ms = 60000;  // the held ones stay until closed by the client
  Start(limits);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(Connect());
  for (int i = 0; i < 50 && OpenConnections() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(OpenConnections(), 3u);
  for (int i = 0; i < 5; ++i) {
    int extra = Connect();
    auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    EXPECT_EQ(ReadAll(extra, &closed), "");
    EXPECT_TRUE(closed);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    ::close(extra);
  }
  EXPECT_EQ(OpenConnections(), 3u);
  // A held connection still gets its answer, and a freed slot serves a new client.
  const std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  ASSERT_EQ(::send(held[0], req.data(), req.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(req.size()));
  EXPECT_EQ(ReadAll(held[0]).rfind("HTTP/1.1 200", 0), 0u);
  ::close(held[0]);
  for (int i = 0; i < 100 && OpenConnections() > 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Exchange(req).rfind("HTTP/1.1 200", 0), 0u);
  for (size_t i = 1; i < held.size(); ++i) ::close(held[i]);
}

TEST_F(MetricsServerTest, StopClosesOpenConnections) {
  Start({});
  int a = Connect(), b = Connect();
  ASSERT_EQ(::send(b, "GET /", 5, MSG_NOSIGNAL), 5);
  for (int i = 0; i < 50 && OpenConnections() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  loop_.Stop();  // StopOnLoop, then the loop releases every handle (ASan: no leak)
  bool closed = false;
  ReadAll(a, &closed);
  EXPECT_TRUE(closed);
  ::close(a);
  ::close(b);
}

}  // namespace
}  // namespace posh::server
