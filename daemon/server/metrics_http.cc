#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "util/log.h"

namespace posh::server {
namespace {

Error BadListen(const std::string& text, const std::string& why) {
  return Error{64, "--metrics-listen: \"" + text + "\" " + why};
}

// RFC 9110 tchar: the characters of a method or a field name.
bool IsTchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

// A field value: visible characters, spaces, tabs and obs-text; no other control bytes.
bool IsFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

// "HTTP/D.D": true with the digits.
bool ParseVersion(std::string_view v, int* major, int* minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return false;
  *major = v[5] - '0';
  *minor = v[7] - '0';
  return true;
}

// The request line without its line ending.
RequestHead ParseRequestLine(std::string_view line) {
  RequestHead head;
  head.state = RequestHead::State::kBad;
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return head;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return head;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || target.empty()) return head;
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return head;
  }
  int major = 0, minor = 0;
  if (!ParseVersion(version, &major, &minor)) return head;
  head.method = method;
  head.target = target;
  head.minor_version = minor;
  head.state = major == 1 ? RequestHead::State::kComplete : RequestHead::State::kBadVersion;
  return head;
}

// The path of an origin-form ("/metrics?x") or absolute-form ("http://h:p/metrics") target.
std::string_view TargetPath(std::string_view target) {
  if (target.size() >= 7 && EqualsIgnoreCase(target.substr(0, 7), "http://")) {
    size_t slash = target.find('/', 7);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  return target.substr(0, target.find('?'));
}

std::string Response(int code, const char* reason, const char* content_type,
                     const std::string& body, bool head_only, const char* extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

constexpr char kTextPlain[] = "text/plain; charset=utf-8";
constexpr char kExposition[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

Result<MetricsEndpoint> ParseMetricsListen(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Fail(BadListen(text, "is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)"));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return Fail(BadListen(text, "is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return Fail(
          BadListen(text, "is not ADDR:PORT: write an IPv6 address in brackets, [::1]:PORT"));
    }
  }
  unsigned port_number = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || port_number > 65535) {
    return Fail(BadListen(text, "has no valid PORT (0 to 65535)"));
  }
  const std::string loopback_only =
      "is not a loopback address: the metrics endpoint has no authentication, so it listens "
      "on 127.0.0.0/8 or [::1] only";
  MetricsEndpoint ep;
  if (text[0] == '[') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
    if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1) {
      return Fail(BadListen(text, "is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)"));
    }
    if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) return Fail(BadListen(text, loopback_only));
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port_number));
    ep.len = sizeof(sockaddr_in6);
    return ep;
  }
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) {
    // A name, or a shortened form inet_pton does not take ("127.1").
    return Fail(BadListen(text, loopback_only));
  }
  if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) return Fail(BadListen(text, loopback_only));
  a4->sin_family = AF_INET;
  a4->sin_port = htons(static_cast<uint16_t>(port_number));
  ep.len = sizeof(sockaddr_in);
  return ep;
}

Result<int> OpenMetricsListener(const MetricsEndpoint& ep, std::string* bound) {
  const int family = ep.addr.ss_family;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(Error{1, std::string("socket: ") + std::strerror(errno)});
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0 ||
      ::listen(fd, 64) != 0) {
    int err = errno;
    ::close(fd);
    return Fail(Error{1, std::strerror(err)});
  }
  sockaddr_storage actual{};
  socklen_t len = sizeof actual;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &len);
  char text[INET6_ADDRSTRLEN] = "";
  if (family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&actual);
    inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
    // Appended, not "[" + ...: GCC 12 at -O3 reports a false -Wrestrict in
    // operator+(const char*, std::string&&) (GCC bug 105329).
    std::string b("[");
    b.append(text).append("]:").append(std::to_string(ntohs(a6->sin6_port)));
    *bound = std::move(b);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&actual);
    inet_ntop(AF_INET, &a4->sin_addr, text, sizeof text);
    *bound = std::string(text) + ":" + std::to_string(ntohs(a4->sin_port));
  }
  return fd;
}

RequestHead ParseRequestHead(std::string_view data) {
  RequestHead bad;
  bad.state = RequestHead::State::kBad;
  // RFC 9112 2.2: ignore empty lines before the request line.
  size_t start = 0;
  while (start < data.size() && (data[start] == '\r' || data[start] == '\n')) {
    if (data[start] == '\r' && start + 1 < data.size() && data[start + 1] != '\n') return bad;
    ++start;
  }
  // Lines end with LF, optionally preceded by CR; a CR anywhere else is malformed.
  auto next_line = [&](size_t from, std::string_view* line) -> size_t {
    size_t lf = data.find('\n', from);
    if (lf == std::string_view::npos) return std::string_view::npos;
    size_t end = lf > from && data[lf - 1] == '\r' ? lf - 1 : lf;
    *line = data.substr(from, end - from);
    return lf + 1;
  };
  std::string_view line;
  size_t pos = next_line(start, &line);
  if (pos == std::string_view::npos) {
    // No whole request line yet: refuse garbage as soon as it shows.
    for (unsigned char c : data.substr(start)) {
      if ((c < 0x20 && c != '\r') || c >= 0x7f) return bad;
    }
    return RequestHead{};
  }
  if (line.find('\r') != std::string_view::npos) return bad;
  RequestHead head = ParseRequestLine(line);
  if (head.state != RequestHead::State::kComplete) return head;

  int hosts = 0;
  for (;;) {
    size_t next = next_line(pos, &line);
    if (next == std::string_view::npos) {
      // The line in progress may still turn out well; the completed ones were checked.
      return RequestHead{};
    }
    pos = next;
    if (line.empty()) break;  // end of the head
    if (line.find('\r') != std::string_view::npos) return bad;
    if (line[0] == ' ' || line[0] == '\t') return bad;  // obsolete line folding
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) return bad;
    if (!IsFieldValue(line.substr(colon + 1))) return bad;
    if (EqualsIgnoreCase(line.substr(0, colon), "host")) ++hosts;
  }
  // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host.
  if (head.minor_version >= 1 && hosts != 1) return bad;
  if (hosts > 1) return bad;
  return head;
}

std::string BuildResponse(const RequestHead& head, const std::function<std::string()>& render) {
  using State = RequestHead::State;
  if (head.state == State::kBadVersion) {
    return Response(505, "HTTP Version Not Supported", kTextPlain, "HTTP/1.x only\n", false);
  }
  if (head.state != State::kComplete) {
    return Response(400, "Bad Request", kTextPlain, "bad request\n", false);
  }
  const bool is_head = head.method == "HEAD";
  if (head.method != "GET" && !is_head) {
    return Response(405, "Method Not Allowed", kTextPlain, "GET or HEAD /metrics\n", false,
                    "Allow: GET, HEAD\r\n");
  }
  if (TargetPath(head.target) != "/metrics") {
    return Response(404, "Not Found", kTextPlain, "poshd serves /metrics only\n", is_head);
  }
  return Response(200, "OK", kExposition, render(), is_head);
}

// ---- the server

struct MetricsServer::Connection {
  MetricsServer* server = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_write_t write{};
  uv_shutdown_t shutdown{};
  std::vector<char> head;  // the request head so far (max_head_bytes)
  size_t used = 0;
  std::string out;  // the response, alive until the write completes
  size_t drained = 0;
  bool admitted = false;
  bool line_seen = false;  // a line feed arrived (the request line may be complete)
  bool responded = false;
  bool closing = false;
  int open_handles = 2;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }

  void Close() {
    if (closing) return;
    closing = true;
    if (admitted) --server->active_;
    auto closed = [](uv_handle_t* h) {
      auto* c = static_cast<Connection*>(h->data);
      if (--c->open_handles == 0) c->server->Release(c);
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
  }

  void Respond(std::string response) {
    responded = true;
    out = std::move(response);
    uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
    write.data = this;
    int rc = uv_write(&write, stream(), &buf, 1, [](uv_write_t* req, int status) {
      auto* c = static_cast<Connection*>(req->data);
      if (c->closing) return;
      if (status < 0) {
        c->Close();
        return;
      }
      // Send FIN, then read what the client still sends until it closes (or the deadline):
      // closing with unread bytes would reset the connection and could lose the response.
      c->shutdown.data = c;
      if (uv_shutdown(&c->shutdown, c->stream(), [](uv_shutdown_t* sreq, int st) {
            auto* cc = static_cast<Connection*>(sreq->data);
            if (!cc->closing && st < 0) cc->Close();
          }) != 0) {
        c->Close();
      }
    });
    if (rc != 0) Close();
  }

  // `n` new bytes at head[used]. The head is parsed in full only when it may have become
  // decidable (the first line ended, an empty line arrived, or a byte no request line may
  // hold), so a client trickling bytes one by one costs one scan per line, not per byte.
  void OnData(size_t n) {
    if (responded) {
      drained += n;
      if (drained > server->limits_.max_drain_bytes) Close();
      return;
    }
    const size_t from = used;
    used += n;
    const std::string_view all(head.data(), used);
    const std::string_view fresh = all.substr(from);
    bool parse = false;
    if (!line_seen) {
      if (fresh.find('\n') != std::string_view::npos) {
        line_seen = true;
        parse = true;
      }
      for (unsigned char ch : fresh) {
        if ((ch < 0x20 && ch != '\r' && ch != '\n') || ch >= 0x7f) parse = true;
      }
    }
    if (!parse) {
      const std::string_view tail = all.substr(from >= 2 ? from - 2 : 0);
      parse = tail.find("\n\n") != std::string_view::npos ||
              tail.find("\n\r\n") != std::string_view::npos;
    }
    if (parse) {
      RequestHead parsed = ParseRequestHead(all);
      if (parsed.state != RequestHead::State::kIncomplete) {
        Respond(BuildResponse(parsed, server->render_));
        return;
      }
    }
    if (used >= head.size()) {
      Respond(Response(431, "Request Header Fields Too Large", kTextPlain,
                       "request head too large\n", false));
    }
  }
};

MetricsServer::MetricsServer(Render render, MetricsServerLimits limits)
    : render_(std::move(render)), limits_(limits), scratch_(16384) {}

MetricsServer::~MetricsServer() {
  // StopOnLoop and the loop's run have released every connection; anything left means the
  // loop was torn down without them, and freeing handles libuv may still hold is worse.
  if (!connections_.empty()) {
    POSH_LOG_ERROR("metrics: %zu connections not released", connections_.size());
  }
}

Result<bool> MetricsServer::StartOnLoop(uv_loop_t* loop, int listen_fd) {
  uv_tcp_init(loop, &listener_);
  listener_.data = this;
  listening_ = true;
  int rc = uv_tcp_open(&listener_, listen_fd);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, &OnConnection);
  if (rc != 0) {
    uv_os_fd_t owned = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&listener_), &owned) != 0) ::close(listen_fd);
    StopOnLoop();
    return Fail(Error{1, std::string("metrics: cannot listen: ") + uv_strerror(rc)});
  }
  return true;
}

void MetricsServer::StopOnLoop() {
  if (stopped_) return;
  stopped_ = true;
  if (listening_ && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  }
  // Close() does not remove from the set (Release does, later).
  for (Connection* c : connections_) c->Close();
}

void MetricsServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<MetricsServer*>(listener->data);
  if (status < 0) {
    POSH_LOG_DEBUG("metrics: accept: %s", uv_strerror(status));
    return;
  }
  self->Accept();
}

void MetricsServer::Accept() {
  uv_loop_t* loop = listener_.loop;
  auto* c = new Connection;
  c->server = this;
  uv_tcp_init(loop, &c->tcp);
  uv_timer_init(loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  connections_.insert(c);
  if (stopped_ || uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), c->stream()) != 0) {
    c->Close();
    return;
  }
  if (active_ >= limits_.max_connections) {
    // Accepted only to be closed: leaving it in the backlog would stall the listener.
    POSH_LOG_DEBUG("metrics: %zu connections open, refusing one more", active_);
    c->Close();
    return;
  }
  c->admitted = true;
  ++active_;
  c->head.resize(limits_.max_head_bytes);
  uv_timer_start(
      &c->timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->Close(); },
      limits_.deadline_ms, 0);
  uv_read_start(
      c->stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* cc = static_cast<Connection*>(h->data);
        if (cc->responded) {
          auto& s = cc->server->scratch_;
          *buf = uv_buf_init(s.data(), static_cast<unsigned>(s.size()));
        } else {
          *buf = uv_buf_init(cc->head.data() + cc->used,
                             static_cast<unsigned>(cc->head.size() - cc->used));
        }
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
        auto* cc = static_cast<Connection*>(s->data);
        if (cc->closing || nread == 0) return;
        if (nread < 0) {
          cc->Close();  // end of stream, a reset, or no buffer space: done either way
          return;
        }
        cc->OnData(static_cast<size_t>(nread));
      });
}

void MetricsServer::Release(Connection* c) {
  connections_.erase(c);
  delete c;
}

}  // namespace posh::server
