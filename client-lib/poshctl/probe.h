// poshctl probe (issue 15): checks a live XMPP domain the way its peers do (SRV, connect,
// STARTTLS or direct TLS, the presented chain, PKIX, POSH through poshd) and reports each
// step. Blocking code (a command-line tool), but every wait is a poll bounded by what is left
// of --timeout: every network input is hostile.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "probe_srv.h"

struct x509_store_st;  // OpenSSL's X509_STORE, global as OpenSSL declares it

namespace posh::ctl::probe {

using Clock = std::chrono::steady_clock;

// The probe's single clock: the whole run shares one deadline, each step gets what is left.
class Deadline {
 public:
  explicit Deadline(std::chrono::milliseconds budget) : at_(Clock::now() + budget) {}
  // Milliseconds left, never negative; rounded up so that a poll does not spin at 0.
  int RemainingMs() const;
  bool Expired() const { return Clock::now() >= at_; }

 private:
  Clock::time_point at_;
};

struct Ok {};

// ---- DNS (c-ares)
struct SrvAnswer {
  std::string name;  // the query, e.g. _xmpp-server._tcp.example.com
  bool direct_tls = false;
  bool failed = false;  // a DNS error (not "no records"): see error
  std::string error;
  std::vector<SrvRecord> records;  // empty: NXDOMAIN or no SRV data
  int64_t ms = 0;
};

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // "192.0.2.10", "2001:db8::1"
};

class Resolver {
 public:
  // dns_server: "ADDR[:PORT]" or "[V6]:PORT"; empty: the system's resolv.conf.
  static Result<std::unique_ptr<Resolver>> Create(const std::string& dns_server);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Both SRV queries at once (STARTTLS and direct TLS names).
  std::vector<SrvAnswer> QuerySrv(const std::vector<std::pair<std::string, bool>>& names,
                                  const Deadline& deadline);
  // A and AAAA of `host` (an IP literal is returned as is).
  Result<std::vector<Address>> ResolveHost(const std::string& host, uint16_t port,
                                           const Deadline& deadline);

 private:
  struct Impl;
  explicit Resolver(std::unique_ptr<Impl> impl);
  // Drives c-ares until every query has answered or the deadline passes (queries left
  // are cancelled: their callbacks see ARES_ECANCELLED).
  void Run(const Deadline& deadline);
  std::unique_ptr<Impl> impl_;
};

// ---- sockets
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

Result<Socket> ConnectTcp(const Address& address, const Deadline& deadline);
Result<Ok> SendAll(int fd, std::string_view data, const Deadline& deadline);
// Reads what is available (at most max bytes), waiting for the first byte; 0 = EOF.
Result<size_t> RecvSome(int fd, char* buf, size_t max, const Deadline& deadline);

// ---- XMPP
inline constexpr size_t kMaxPreTlsBytes = 64 * 1024;

// Opens the stream to `domain`, reads the features, asks for STARTTLS and waits for
// <proceed/>. Success: a description of what the server offered.
Result<std::string> NegotiateStartTls(int fd, const std::string& domain, const std::string& service,
                                      const Deadline& deadline);

// ---- TLS and PKIX (OpenSSL)
inline constexpr size_t kMaxChainCerts = 16;
inline constexpr size_t kMaxChainBytes = 256 * 1024;

struct TlsOutcome {
  std::string version;                      // "TLSv1.3"
  std::string alpn;                         // the protocol the server selected, if any
  std::vector<std::vector<uint8_t>> chain;  // DER, leaf first
};

// The handshake with SNI = domain, no verification (the chain is judged afterwards).
// alpn: "xmpp-server"/"xmpp-client" for direct TLS, empty after STARTTLS.
Result<TlsOutcome> HandshakeTls(int fd, const std::string& domain, const std::string& alpn,
                                const Deadline& deadline);

struct CertSummary {
  std::string subject;  // RFC 2253
  std::string issuer;
  std::string common_name;
  int64_t not_after = 0;  // unix seconds
  std::string sha256_b64;
};
std::vector<CertSummary> SummarizeChain(const std::vector<std::vector<uint8_t>>& chain);

struct StoreDeleter {
  void operator()(x509_store_st* s) const;
};
using TrustStore = std::unique_ptr<x509_store_st, StoreDeleter>;

// The system's trust store, or only the certificates of ca_file when it is given.
Result<TrustStore> LoadTrustStore(const std::string& ca_file);

struct PkixOutcome {
  bool valid = false;
  std::string reason;  // OpenSSL's, or "certificate is not valid for D"; empty when valid
};
PkixOutcome CheckPkix(x509_store_st* store, const std::vector<std::vector<uint8_t>>& chain,
                      const std::string& domain);

// ---- the command
struct ProbeOptions {
  std::string domain;
  std::string service;  // "xmpp-server" or "xmpp-client"
  bool connect_to = false;
  std::string connect_host;
  uint16_t connect_port = 0;
  bool direct_tls = false;
  std::string dns_server;
  std::string ca_file;
  int timeout_s = 15;
  std::string socket;
  bool json = false;
};

// Parses "HOST:PORT" or "[V6]:PORT".
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s);

// Runs the probe and prints the report; returns the exit status.
int RunProbe(const ProbeOptions& options);

}  // namespace posh::ctl::probe
