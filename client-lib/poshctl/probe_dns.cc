// poshctl probe: DNS through c-ares (Debian 12's 1.18 API), driven by a poll loop bounded by
// the probe's deadline: SRV for the targets, A and AAAA for their addresses.
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "probe.h"

namespace posh::ctl::probe {

struct Resolver::Impl {
  ares_channel channel = nullptr;
  int pending = 0;
  ~Impl() {
    if (channel) ares_destroy(channel);
  }
};

Resolver::Resolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Resolver::~Resolver() = default;

namespace {

// "ADDR", "ADDR:PORT", "[V6]:PORT" or a bare IPv6 address -> c-ares' "servers" CSV entry.
Result<std::string> ServerCsv(const std::string& spec) {
  in6_addr v6{};
  in_addr v4{};
  if (::inet_pton(AF_INET6, spec.c_str(), &v6) == 1) return "[" + spec + "]";
  if (::inet_pton(AF_INET, spec.c_str(), &v4) == 1) return spec;
  auto hp = ParseHostPort(spec);
  if (!hp) return Fail(Error{0, "--dns-server: " + hp.error().message});
  const auto& [host, port] = *hp;
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return "[" + host + "]:" + std::to_string(port);
  }
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return host + ":" + std::to_string(port);
  return Fail(Error{0, "--dns-server: \"" + host + "\" is not an IP address"});
}

struct SrvQuery {
  SrvAnswer* answer;
  int* pending;
  Clock::time_point started;
};

void OnSrv(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* q = static_cast<SrvQuery*>(arg);
  --*q->pending;
  SrvAnswer& a = *q->answer;
  a.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - q->started).count();
  if (status == ARES_ENODATA || status == ARES_ENOTFOUND) return;  // no records
  if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
    a.failed = true;
    a.error = "no answer within the timeout";
    return;
  }
  if (status != ARES_SUCCESS) {
    a.failed = true;
    a.error = ares_strerror(status);
    return;
  }
  ares_srv_reply* replies = nullptr;
  const int rc = ares_parse_srv_reply(abuf, alen, &replies);
  if (rc == ARES_ENODATA) return;
  if (rc != ARES_SUCCESS) {
    a.failed = true;
    a.error = std::string("unparsable SRV answer: ") + ares_strerror(rc);
    return;
  }
  for (auto* r = replies; r != nullptr; r = r->next) {
    SrvRecord rec;
    std::string target(r->host ? r->host : "");
    if (target.size() > 1 && target.back() == '.') target.pop_back();
    // c-ares gives the root as "" (or "."); RFC 2782's "not offered" target is ".". (Built
    // with append, not assignment from a literal: GCC 12 reports a false -Wrestrict on the
    // latter at -O2 with Debian's hardening flags, GCC bug 105329.)
    if (target.empty()) target.push_back('.');
    rec.target = std::move(target);
    rec.port = r->port;
    rec.priority = r->priority;
    rec.weight = r->weight;
    rec.direct_tls = a.direct_tls;
    a.records.push_back(std::move(rec));
  }
  ares_free_data(replies);
}

struct AddrQuery {
  int* pending = nullptr;
  int status = ARES_SUCCESS;
  std::vector<Address> out;
};

void OnAddr(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
  auto* q = static_cast<AddrQuery*>(arg);
  --*q->pending;
  q->status = status;
  if (status == ARES_SUCCESS && res) {
    for (auto* n = res->nodes; n != nullptr; n = n->ai_next) {
      if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
      Address a;
      const size_t len = std::min<size_t>(n->ai_addrlen, sizeof a.addr);
      std::memcpy(&a.addr, n->ai_addr, len);
      a.len = static_cast<socklen_t>(len);
      char buf[INET6_ADDRSTRLEN] = {};
      const void* src = n->ai_family == AF_INET
                            ? static_cast<const void*>(
                                  &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr)
                            : static_cast<const void*>(
                                  &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr);
      ::inet_ntop(n->ai_family, src, buf, sizeof buf);
      a.text = buf;
      q->out.push_back(std::move(a));
    }
  }
  if (res) ares_freeaddrinfo(res);
}

}  // namespace

Result<std::unique_ptr<Resolver>> Resolver::Create(const std::string& dns_server) {
  static const int init = ares_library_init(ARES_LIB_INIT_ALL);
  if (init != ARES_SUCCESS) {
    return Fail(Error{init, std::string("c-ares: ") + ares_strerror(init)});
  }
  auto impl = std::make_unique<Impl>();
  ares_options opts{};
  // Per-try timeout; c-ares doubles it on each retry. The probe's deadline caps it all.
  opts.timeout = 2000;
  opts.tries = 3;
  // Absolute names only: no search list.
  opts.flags = ARES_FLAG_NOSEARCH;
  const int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  if (int rc = ares_init_options(&impl->channel, &opts, mask); rc != ARES_SUCCESS) {
    return Fail(Error{rc, std::string("c-ares: ") + ares_strerror(rc)});
  }
  if (!dns_server.empty()) {
    auto csv = ServerCsv(dns_server);
    if (!csv) return Fail(csv.error());
    if (int rc = ares_set_servers_ports_csv(impl->channel, csv->c_str()); rc != ARES_SUCCESS) {
      return Fail(Error{rc, "--dns-server " + dns_server + ": " + ares_strerror(rc)});
    }
  }
  return std::unique_ptr<Resolver>(new Resolver(std::move(impl)));
}

void Resolver::Run(const Deadline& deadline) {
  while (impl_->pending > 0) {
    const int left = deadline.RemainingMs();
    if (left <= 0) {
      ares_cancel(impl_->channel);  // every callback runs with ARES_ECANCELLED
      return;
    }
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(impl_->channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t nfds = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events == 0) continue;
      fds[nfds++] = pollfd{socks[i], events, 0};
    }
    timeval max_tv{left / 1000, (left % 1000) * 1000};
    timeval tv{};
    const timeval* t = ares_timeout(impl_->channel, &max_tv, &tv);
    const int wait_ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    const int n = ::poll(fds, nfds, std::min(wait_ms, left));
    if (n < 0 && errno != EINTR) {
      ares_cancel(impl_->channel);
      return;
    }
    bool any = false;
    for (nfds_t i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      any = true;
      const bool readable = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
      const bool writable = (fds[i].revents & POLLOUT) != 0;
      ares_process_fd(impl_->channel, readable ? fds[i].fd : ARES_SOCKET_BAD,
                      writable ? fds[i].fd : ARES_SOCKET_BAD);
    }
    // Nothing ready: let c-ares handle its own timeouts (retries, next server).
    if (!any) ares_process_fd(impl_->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
}

std::vector<SrvAnswer> Resolver::QuerySrv(const std::vector<std::pair<std::string, bool>>& names,
                                          const Deadline& deadline) {
  std::vector<SrvAnswer> answers(names.size());
  std::vector<SrvQuery> queries(names.size());
  const auto started = Clock::now();
  for (size_t i = 0; i < names.size(); ++i) {
    answers[i].name = names[i].first;
    answers[i].direct_tls = names[i].second;
    queries[i] = SrvQuery{&answers[i], &impl_->pending, started};
    ++impl_->pending;
    ares_query(impl_->channel, names[i].first.c_str(), ns_c_in, ns_t_srv, OnSrv, &queries[i]);
  }
  Run(deadline);
  return answers;
}

Result<std::vector<Address>> Resolver::ResolveHost(const std::string& host, uint16_t port,
                                                   const Deadline& deadline) {
  // An IP literal needs no resolver (and must not depend on the system's).
  Address literal;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&literal.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&literal.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    literal.len = sizeof(sockaddr_in);
    literal.text = host;
    return std::vector<Address>{literal};
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    literal.len = sizeof(sockaddr_in6);
    literal.text = host;
    return std::vector<Address>{literal};
  }
  AddrQuery q;
  q.pending = &impl_->pending;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  const std::string service = std::to_string(port);
  ++impl_->pending;
  ares_getaddrinfo(impl_->channel, host.c_str(), service.c_str(), &hints, OnAddr, &q);
  Run(deadline);
  if (q.status == ARES_ECANCELLED || q.status == ARES_EDESTRUCTION) {
    return Fail(Error{ETIMEDOUT, "cannot resolve " + host + ": no answer within the timeout"});
  }
  if (q.status != ARES_SUCCESS) {
    return Fail(Error{q.status, "cannot resolve " + host + ": " + ares_strerror(q.status)});
  }
  if (q.out.empty()) return Fail(Error{0, "cannot resolve " + host + ": no A or AAAA record"});
  return std::move(q.out);
}

}  // namespace posh::ctl::probe
