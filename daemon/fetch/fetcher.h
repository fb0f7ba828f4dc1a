// The HTTPS fetcher: one GET, no redirects followed, body bounded. Knows nothing about
// POSH documents. Implementations run on the loop thread; callbacks fire there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

typedef struct uv_loop_s uv_loop_t;

namespace posh::fetch {

enum class FetchErrorKind : uint8_t {
  kTimeout = 1,         // deadline passed (connect, TLS, headers or body)
  kConnect = 2,         // DNS failure, refused, reset, closed mid-body
  kTls = 3,             // handshake failure, certificate not trusted / wrong name / expired
  kTooLarge = 4,        // body over max_body (R7): transfer dropped at once
  kAddressRefused = 5,  // R8: address not global and not allowed
  kProtocol = 6,        // malformed HTTP, non-https URL, bad URL
  kCancelled = 7,
  kInternal = 8,
};

struct FetchError {
  FetchErrorKind kind = FetchErrorKind::kInternal;
  std::string message;  // precise, for logs and API ("TLS: certificate has expired", ...)
};

struct FetchRequest {
  std::string url;              // absolute https URL
  size_t max_body = 64 * 1024;  // R7
  // What is left of the whole-retrieval deadline (R7). The caller keeps the deadline on its
  // injected Clock; the fetcher only needs the budget, measured from when Fetch() is called.
  std::chrono::milliseconds time_left{10000};
};

struct FetchResponse {
  long status = 0;
  std::string body;        // complete body (<= max_body); any status
  std::string location;    // Location header, raw, when present
  std::string primary_ip;  // address actually connected to
};

using FetchResult = Result<FetchResponse, FetchError>;
// Invoked exactly once on the loop thread, unless the fetch was cancelled first.
using FetchCallback = std::function<void(FetchResult)>;

class Fetcher {
 public:
  using Handle = uint64_t;
  virtual ~Fetcher() = default;
  // Starts a GET. Never invokes `cb` synchronously from inside Fetch().
  virtual Handle Fetch(FetchRequest request, FetchCallback cb) = 0;
  // Drops a transfer at once; its callback is not invoked afterwards. Unknown handle: no-op.
  virtual void Cancel(Handle handle) = 0;
  virtual size_t InFlight() const = 0;
  // Total HTTP requests started since creation (stats: "fetches").
  virtual uint64_t RequestsStarted() const = 0;
};

struct CurlFetcherOptions {
  std::string ca_file;                   // empty: system trust store
  std::vector<std::string> connect_to;   // curl CURLOPT_CONNECT_TO syntax HOST:PORT:CHOST:CPORT
  bool allow_private_addresses = false;  // lifts R8
  std::chrono::milliseconds connect_timeout{5000};
  std::string user_agent = "poshd/0.1";
};

// libcurl multi driven by the given libuv loop (uv_poll_t per socket, one uv_timer_t).
// Must be created, used and destroyed on the loop thread.
std::unique_ptr<Fetcher> MakeCurlFetcher(uv_loop_t* loop, CurlFetcherOptions options);

}  // namespace posh::fetch
