// poshd's optional Prometheus endpoint (--metrics-listen ADDR:PORT): a deliberately small
// HTTP/1.1 server on the event loop that answers GET and HEAD /metrics and nothing else.
//
// It has no authentication, so it listens on loopback only (127.0.0.0/8, ::1). Every
// client is treated as hostile: the request head is bounded (431 past the limit), one
// deadline runs from accept to close (a client that sends nothing, or too slowly, is
// dropped), open connections are capped (more are accepted and closed at once), and each
// connection carries one request (Connection: close). Everything runs on the loop thread
// with non-blocking libuv I/O; a response is a few KiB built from the GetStats snapshot.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/result.h"

namespace posh::server {

// A loopback address: "127.0.0.1:9464" (any of 127.0.0.0/8), "[::1]:9464", or
// "localhost:9464" (= 127.0.0.1). Port 0 lets the kernel choose (poshd logs the port).
struct MetricsEndpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
};
// Error code 64, the message names the flag and says why.
Result<MetricsEndpoint> ParseMetricsListen(const std::string& text);

// Binds and listens (non-blocking, close-on-exec) on the calling thread, so that a busy
// port stops poshd before it reports ready. Returns the descriptor; `*bound` is the
// address with the port actually bound ("127.0.0.1:9464", "[::1]:9464").
Result<int> OpenMetricsListener(const MetricsEndpoint& endpoint, std::string* bound);

// The head of an HTTP/1.x request (request line and header fields, RFC 9112), judged
// from the bytes received so far.
struct RequestHead {
  enum class State {
    kIncomplete,  // no complete head yet, and nothing wrong so far
    kComplete,    // method, target and version are set
    kBad,         // malformed: answer 400
    kBadVersion,  // a well-formed request line of another HTTP major version: 505
  };
  State state = State::kIncomplete;
  std::string_view method, target;
  int minor_version = 0;
};
RequestHead ParseRequestHead(std::string_view data);

// The whole response (status line, headers, body unless HEAD) to a head that is not
// kIncomplete. `render` (the exposition) is called only for GET/HEAD /metrics.
std::string BuildResponse(const RequestHead& head, const std::function<std::string()>& render);

struct MetricsServerLimits {
  size_t max_head_bytes = 8192;    // request line + header fields
  uint64_t deadline_ms = 5000;     // from accept to close, whatever the client does
  size_t max_connections = 16;     // open at once; more are closed as soon as accepted
  size_t max_drain_bytes = 65536;  // read and dropped after the response, then close
};

class MetricsServer {
 public:
  // Called on the loop thread for each GET/HEAD /metrics: the exposition text.
  using Render = std::function<std::string()>;

  explicit MetricsServer(Render render, MetricsServerLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Loop thread. Serves on `listen_fd` (from OpenMetricsListener), which it then owns.
  Result<bool> StartOnLoop(uv_loop_t* loop, int listen_fd);
  // Loop thread. Closes the listener and every connection; the handles are released by
  // the loop's next turns, so the server must outlive the loop's run.
  void StopOnLoop();
  size_t open_connections() const { return active_; }  // loop thread

 private:
  struct Connection;
  static void OnConnection(uv_stream_t* listener, int status);
  void Accept();
  void Release(Connection* c);  // close callback, both handles closed

  Render render_;
  MetricsServerLimits limits_;
  uv_tcp_t listener_{};
  bool listening_ = false;
  bool stopped_ = false;
  size_t active_ = 0;  // connections admitted and not closing
  std::unordered_set<Connection*> connections_;
  std::vector<char> scratch_;  // drained bytes land here
};

}  // namespace posh::server
