// libposhclient: the C++ client of poshd's gRPC API (posh.v1.Resolver) over its unix
// socket. Thread-safe: one Client may be shared by many threads. Synchronous calls block
// the caller at most for the client's timeout; asynchronous ones return at once and call
// back on a gRPC thread (keep the callback short; never block it on another call).
// The channel reconnects by itself after a daemon restart (backoff capped at 1 s); a call
// made while the daemon is down fails fast with unreachable() instead of waiting.
//
// Stable ABI (docs/CLIENT_ABI.md): this header uses the standard library only, never
// protobuf or gRPC types, so a program may use any protobuf/gRPC version (or carry its own
// posh.v1 code) beside libposhclient.so.1. Answers are plain value types that mirror the
// posh.v1 messages (proto/posh/v1/resolver.proto); timestamps are system_clock time points.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// What libposhclient exports (it is built with -fvisibility=hidden and a version script).
#ifndef POSH_CLIENT_API
#if defined(__GNUC__)
#define POSH_CLIENT_API __attribute__((visibility("default")))
#else
#define POSH_CLIENT_API
#endif
#endif

namespace posh::client {

using TimePoint = std::chrono::system_clock::time_point;

struct ClientOptions {
  // Empty: $POSHD_SOCKET, else the daemon's default path (DefaultSocketPath()).
  std::string socket_path;
  std::chrono::milliseconds timeout{30000};
  // When the daemon is unreachable (e.g. restarting), a synchronous call waits up to this
  // long for the channel to reconnect before failing with unreachable(). 0: fail at once.
  std::chrono::milliseconds reconnect_wait{2000};
};

// The outcome of one call: ok, or a gRPC status code with the server's message.
struct POSH_CLIENT_API CallStatus {
  int code = 0;  // grpc::StatusCode value; 0 = OK
  std::string message;

  bool ok() const { return code == 0; }
  // The daemon cannot be reached (no socket, refused, shutting down, no answer in time).
  bool unreachable() const;
  // The request was rejected as invalid (bad domain, bad service, bad certificate chain).
  bool invalid_argument() const;
};

// The enumerations keep posh.v1's numbers.
enum class LookupStatus : int { kUnspecified = 0, kFound = 1, kNotFound = 2, kError = 3 };
enum class DocumentFormat : int { kUnspecified = 0, kRfc7711 = 1, kJwk = 2 };
// Why a retrieval failed (transient kinds are served stale, R19; kOverloaded: retry later).
enum class ErrorKind : int {
  kUnspecified = 0,
  kTimeout = 1,
  kConnect = 2,
  kTls = 3,
  kHttpStatus = 4,
  kRedirect = 5,
  kLimit = 6,
  kAddress = 7,
  kDocument = 8,
  kInternal = 9,
  kShuttingDown = 10,
  kOverloaded = 11,
};
enum class Verdict : int {
  kUnspecified = 0,
  kVerified = 1,
  kNotVerified = 2,
  kNoPosh = 3,
  kError = 4,
};

struct Fingerprint {
  std::string hash;   // "sha-256", "sha-384", "sha-512", ...
  std::string value;  // the raw digest bytes (not base64)
};

struct Key {
  std::string kid;  // JWK key id, empty for RFC 7711
  std::vector<Fingerprint> fingerprints;
  std::optional<TimePoint> not_after;  // certificate notAfter where known (JWK x5c)
  std::string key_type;                // JWK "kty", empty for RFC 7711
  bool has_certificate = false;        // JWK with x5c
};

// A POSH record as the daemon answers it (posh.v1.LookupResponse).
struct LookupResult {
  std::string domain;   // normalised
  std::string service;  // normalised
  LookupStatus status = LookupStatus::kUnspecified;
  std::string delegated_to;  // empty when not delegated
  DocumentFormat format = DocumentFormat::kUnspecified;
  std::vector<Key> keys;
  std::optional<TimePoint> expires_at;  // when this answer stops being valid
  bool from_cache = false;
  std::string error;  // status == kError: the reason
  ErrorKind error_kind = ErrorKind::kUnspecified;
  std::optional<TimePoint> fetched_at;
  bool stale = false;      // served past its lifetime while a refresh fails (R19)
  std::string source_url;  // the final URL the document came from
};

// posh.v1.VerifyResponse.
struct VerifyResult {
  Verdict verdict = Verdict::kUnspecified;
  std::string domain;
  std::string service;
  std::string delegated_to;
  std::string reason;          // mismatch or error reason; empty when verified
  std::string matched_kid;     // the JWK kid that matched, when any
  int matched_key_index = -1;  // index into record.keys of the match, -1 when none
  LookupResult record;         // the record the verdict was reached with
  bool from_cache = false;
};

// One cached entry (posh.v1.CacheEntry).
struct CacheEntry {
  std::string domain;
  std::string service;
  LookupStatus status = LookupStatus::kUnspecified;
  std::optional<TimePoint> expires_at;
  std::optional<TimePoint> fetched_at;
  LookupResult record;  // the full entry
  uint64_t hits = 0;
};

struct LatencyHistogram {
  std::vector<double> bucket_upper_ms;  // upper bounds; the last bucket (+inf) has none
  std::vector<uint64_t> counts;         // per bucket, not cumulative
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double sum_ms = 0;
};

// The daemon's counters (posh.v1.GetStatsResponse). Counters are named as in
// `poshctl stats --json` and kept in that order, so that a daemon's new counter reaches
// callers without changing this type.
struct POSH_CLIENT_API Stats {
  struct Counter {
    std::string name;
    uint64_t value = 0;
  };
  std::vector<Counter> counters;
  LatencyHistogram retrieval_latency;
  std::optional<TimePoint> started_at;

  // The counter called `name` ("lookups", "cache_hits", ...); 0 when there is none.
  uint64_t Get(std::string_view name) const;
};

struct LookupRequest {
  std::string domain;    // R1: normalised by the daemon
  std::string service;   // R2: empty means "xmpp-server"
  bool refresh = false;  // bypass the cache and retrieve again
};

struct VerifyRequest {
  std::string domain;
  std::string service;                 // empty means "xmpp-server"
  std::vector<std::string> chain_der;  // DER certificates, leaf first
};

class POSH_CLIENT_API Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& socket_path() const;

  CallStatus Lookup(const LookupRequest& request, LookupResult* result);
  CallStatus Verify(const VerifyRequest& request, VerifyResult* result);
  // Every cached entry (of `domain` only, when not empty), all pages.
  CallStatus ListEntries(const std::string& domain, std::vector<CacheEntry>* entries);
  // Drops the entry of (domain, service); *evicted tells whether there was one.
  CallStatus Evict(const std::string& domain, const std::string& service, bool* evicted);
  // Drops every entry; *flushed is how many there were.
  CallStatus Flush(uint64_t* flushed);
  CallStatus GetStats(Stats* stats);

  // Asynchronous Lookup and Verify: `done` runs exactly once, on a gRPC thread, with the
  // status and (when ok) the result. The Client must outlive pending calls.
  using LookupDone = std::function<void(CallStatus, LookupResult)>;
  using VerifyDone = std::function<void(CallStatus, VerifyResult)>;
  void LookupAsync(const LookupRequest& request, LookupDone done);
  void VerifyAsync(const VerifyRequest& request, VerifyDone done);

  // Convenience forms of the common calls.
  CallStatus Lookup(const std::string& domain, const std::string& service, LookupResult* result);
  // `chain_der`: DER certificates, leaf first.
  CallStatus Verify(const std::string& domain, const std::string& service,
                    const std::vector<std::string>& chain_der, VerifyResult* result);

  // The socket path the daemon uses by default for this user (see poshd --help).
  static std::string DefaultSocketPath();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace posh::client
