// POSH retrieval state machine (R3-R7, R11): URLs in order, status codes, redirects,
// reference following, limits. Runs on the loop thread over a Fetcher; parses with the
// protocol core. Knows nothing of gRPC or the cache.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/record.h"
#include "fetch/fetcher.h"
#include "util/clock.h"

namespace posh::resolve {

// Mirrors posh.v1.ErrorKind numbering.
enum class ErrorKind : uint8_t {
  kNone = 0,
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
};

struct Resolution {
  enum class Status : uint8_t { kFound = 1, kNotFound = 2, kError = 3 };
  Status status = Status::kError;
  core::PoshRecord record;  // kFound
  std::string error;        // kError: precise reason
  ErrorKind error_kind = ErrorKind::kNone;
  // R19: timeout, connection, TLS, 5xx are transient (stale entries may be kept);
  // documents that are invalid and 4xx are not.
  bool transient = false;
  uint32_t requests = 0;  // HTTP requests this resolution sent
  std::string final_url;
};

// R3 URL templates. "{domain}" and "{service}" are substituted.
inline const std::vector<std::string>& DefaultUrlTemplates() {
  static const std::vector<std::string> k = {
      "https://{domain}/.well-known/posh/{service}.json",        // RFC 7711
      "https://{domain}/.well-known/posh._{service}._tcp.json",  // seed draft
  };
  return k;
}

struct ResolverOptions {
  std::vector<std::string> url_templates = DefaultUrlTemplates();
  size_t max_body = 64 * 1024;
  std::chrono::milliseconds timeout{10000};  // whole resolution (R7)
  int max_redirects = 10;                    // R6
};

class Resolver {
 public:
  using Callback = std::function<void(Resolution)>;
  using Handle = uint64_t;

  Resolver(fetch::Fetcher& fetcher, const Clock& clock, ResolverOptions options);
  ~Resolver();  // cancels everything in flight without invoking callbacks

  // `domain` and `service` are already normalised (R1, R2). Callback runs on the loop
  // thread exactly once (never synchronously inside Resolve), unless cancelled.
  Handle Resolve(std::string domain, std::string service, Callback cb);
  void Cancel(Handle handle);
  size_t InFlight() const;
  void SetOptions(ResolverOptions options);  // applies to resolutions started afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace posh::resolve
