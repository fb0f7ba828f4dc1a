// CurlFetcher: libcurl multi driven by a libuv loop.
//
// Sockets: CURLMOPT_SOCKETFUNCTION creates one heap PollContext (uv_poll_t) per socket,
// attached with curl_multi_assign; CURL_POLL_REMOVE stops it and uv_close()s it, the close
// callback frees it (so a context stays valid until the loop's close phase even when curl
// drops the socket inside curl_multi_socket_action). Timer: one uv_timer_t driven by
// CURLMOPT_TIMERFUNCTION. Completions are read with curl_multi_info_read after every
// action; user callbacks run after curl returned, never from inside a curl callback.
//
// Handle memory: every uv handle is freed by its close callback, so after the fetcher is
// destroyed the loop must run once more (uv_run) before uv_loop_close().
#include <curl/curl.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "fetch/address_policy.h"
#include "fetch/fetcher.h"
#include "fetch/url.h"
#include "util/thread_checker.h"

// CURLOPT_PROTOCOLS_STR needs 7.85, CURLOPT_QUICK_EXIT 7.87 (the CMake requirement).
#if LIBCURL_VERSION_NUM < 0x075700
#error "libcurl 7.87 or newer is required"
#endif

namespace posh::fetch {
namespace internal {

std::string EasySetoptFailure(CURLcode code, std::string_view option) {
  if (code == CURLE_OK) return "";
  return "curl_easy_setopt(" + std::string(option) + ") failed: " + curl_easy_strerror(code);
}

std::string MultiSetoptFailure(CURLMcode code, std::string_view option) {
  if (code == CURLM_OK) return "";
  return "curl_multi_setopt(" + std::string(option) + ") failed: " + curl_multi_strerror(code);
}

}  // namespace internal

// Every setopt result is checked: an option the linked libcurl rejects (too old, built
// without it, out of memory, a string over CURL_MAX_INPUT_LENGTH) would otherwise leave a
// transfer running without a safeguard it relies on (R4, R7, R8). The call stays a direct
// curl_easy_setopt so curl's compile-time type checks still apply; `failure` keeps the first
// failure, naming the option.
#define POSH_EASY_SETOPT(failure, easy, option, value)                                         \
  do {                                                                                         \
    if ((failure).empty())                                                                     \
      (failure) = internal::EasySetoptFailure(curl_easy_setopt(easy, option, value), #option); \
  } while (0)
#define POSH_MULTI_SETOPT(failure, multi, option, value)                                          \
  do {                                                                                            \
    if ((failure).empty())                                                                        \
      (failure) = internal::MultiSetoptFailure(curl_multi_setopt(multi, option, value), #option); \
  } while (0)

namespace {

FetchError MakeError(FetchErrorKind kind, std::string message) {
  return FetchError{kind, std::move(message)};
}

FetchErrorKind KindFor(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return FetchErrorKind::kTimeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return FetchErrorKind::kConnect;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return FetchErrorKind::kTls;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_RANGE_ERROR:
      return FetchErrorKind::kProtocol;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
      return FetchErrorKind::kInternal;
    default:
      return FetchErrorKind::kConnect;
  }
}

std::string_view KindPrefix(FetchErrorKind kind) {
  switch (kind) {
    case FetchErrorKind::kTimeout:
      return "timeout: ";
    case FetchErrorKind::kConnect:
      return "connection: ";
    case FetchErrorKind::kTls:
      return "TLS: ";
    case FetchErrorKind::kProtocol:
      return "protocol: ";
    default:
      return "";
  }
}

class CurlFetcher;

struct PollContext {
  uv_poll_t poll;  // first member: uv_handle_t* <-> PollContext*
  CurlFetcher* owner = nullptr;
  curl_socket_t fd = CURL_SOCKET_BAD;
};

struct Transfer {
  Fetcher::Handle handle = 0;
  CURL* easy = nullptr;
  FetchCallback cb;
  std::string url;
  size_t max_body = 0;
  bool trusted = false;  // R8 lifted: allow_private_addresses or a connect-to rule matched
  bool too_large = false;
  std::string refused;  // R8 reason when a socket was refused
  // Candidate addresses the R8 policy let through (a socket was opened for them). When one
  // was and the transfer still failed to connect, that failure is what matters (transient,
  // R19), not the refusal of another candidate.
  int allowed_sockets = 0;
  FetchResponse response;
  char errbuf[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

struct Deferred {
  FetchCallback cb;
  FetchError error;
};

class CurlFetcher final : public Fetcher {
 public:
  CurlFetcher(uv_loop_t* loop, CurlFetcherOptions options)
      : loop_(loop), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
      init_failure_ = "curl_multi_init failed";
    } else {
      POSH_MULTI_SETOPT(init_failure_, multi_, CURLMOPT_SOCKETFUNCTION,
                        &CurlFetcher::SocketCallback);
      POSH_MULTI_SETOPT(init_failure_, multi_, CURLMOPT_SOCKETDATA, this);
      POSH_MULTI_SETOPT(init_failure_, multi_, CURLMOPT_TIMERFUNCTION, &CurlFetcher::TimerCallback);
      POSH_MULTI_SETOPT(init_failure_, multi_, CURLMOPT_TIMERDATA, this);
      // POSH origins are many and rarely revisited soon: keep a small idle connection cache
      // (otherwise a burst of cold lookups leaves thousands of idle TLS connections open).
      POSH_MULTI_SETOPT(init_failure_, multi_, CURLMOPT_MAXCONNECTS, 64L);
    }
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
    defer_timer_ = new uv_timer_t;
    uv_timer_init(loop_, defer_timer_);
    defer_timer_->data = this;
    for (const std::string& rule : options_.connect_to) {
      connect_to_ = curl_slist_append(connect_to_, rule.c_str());
    }
  }

  ~CurlFetcher() override {
    POSH_DCHECK_ON_THREAD(loop_thread_);
    alive_.reset();
    for (auto& [handle, transfer] : transfers_) {
      curl_multi_remove_handle(multi_, transfer->easy);
    }
    transfers_.clear();
    deferred_.clear();
    closing_ = true;
    if (multi_ != nullptr) curl_multi_cleanup(multi_);  // may report CURL_POLL_REMOVE
    multi_ = nullptr;
    for (PollContext* ctx : polls_) ClosePoll(ctx);
    polls_.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(defer_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    curl_slist_free_all(connect_to_);
  }

  Handle Fetch(FetchRequest request, FetchCallback cb) override {
    POSH_DCHECK_ON_THREAD(loop_thread_);
    Handle handle = next_handle_++;
    auto fail = [&](FetchErrorKind kind, std::string message) {
      deferred_.emplace(handle, Deferred{std::move(cb), MakeError(kind, std::move(message))});
      if (!uv_is_active(reinterpret_cast<uv_handle_t*>(defer_timer_))) {
        uv_timer_start(defer_timer_, &CurlFetcher::OnDeferTimer, 0, 0);
      }
      return handle;
    };

    // A multi handle that is not set up as designed would never drive a transfer.
    if (!init_failure_.empty()) return fail(FetchErrorKind::kInternal, init_failure_);

    auto parsed = ParseAbsoluteUrl(request.url);
    if (!parsed) return fail(FetchErrorKind::kProtocol, parsed.error().message);
    if (parsed->scheme != "https") {
      return fail(FetchErrorKind::kProtocol, "not an https URL (R4)");
    }
    if (request.time_left.count() <= 0) {
      return fail(FetchErrorKind::kTimeout, "timeout: deadline passed before the request started");
    }
    const int64_t remaining = request.time_left.count();
    // Connect timeout: the configured one (0 or less: none of its own), never past the deadline.
    int64_t connect_ms = options_.connect_timeout.count() > 0
                             ? std::min<int64_t>(options_.connect_timeout.count(), remaining)
                             : remaining;

    auto t = std::make_unique<Transfer>();
    t->handle = handle;
    t->cb = std::move(cb);
    t->url = std::move(request.url);
    t->max_body = request.max_body;
    t->trusted = options_.allow_private_addresses ||
                 MatchConnectTo(options_.connect_to, parsed->host, parsed->port).has_value();
    t->easy = curl_easy_init();
    if (t->easy == nullptr) {
      cb = std::move(t->cb);
      return fail(FetchErrorKind::kInternal, "curl_easy_init failed");
    }
    CURL* e = t->easy;
    std::string bad;  // first setopt failure
    POSH_EASY_SETOPT(bad, e, CURLOPT_URL, t->url.c_str());
    POSH_EASY_SETOPT(bad, e, CURLOPT_PRIVATE, t.get());
    POSH_EASY_SETOPT(bad, e, CURLOPT_ERRORBUFFER, t->errbuf);
    POSH_EASY_SETOPT(bad, e, CURLOPT_PROTOCOLS_STR, "https");
    POSH_EASY_SETOPT(bad, e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    POSH_EASY_SETOPT(bad, e, CURLOPT_FOLLOWLOCATION, 0L);
    POSH_EASY_SETOPT(bad, e, CURLOPT_PROXY, "");  // R8 judges the real peer, never a proxy
    POSH_EASY_SETOPT(bad, e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    POSH_EASY_SETOPT(bad, e, CURLOPT_SSL_VERIFYPEER, 1L);
    POSH_EASY_SETOPT(bad, e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty())
      POSH_EASY_SETOPT(bad, e, CURLOPT_CAINFO, options_.ca_file.c_str());
    if (connect_to_ != nullptr) POSH_EASY_SETOPT(bad, e, CURLOPT_CONNECT_TO, connect_to_);
    POSH_EASY_SETOPT(bad, e, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining));
    POSH_EASY_SETOPT(bad, e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_ms));
    POSH_EASY_SETOPT(bad, e, CURLOPT_NOSIGNAL, 1L);
    // Cancel/cleanup never waits for a threaded-resolver lookup still in progress.
    POSH_EASY_SETOPT(bad, e, CURLOPT_QUICK_EXIT, 1L);
    POSH_EASY_SETOPT(bad, e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t->max_body));
    POSH_EASY_SETOPT(bad, e, CURLOPT_WRITEFUNCTION, &CurlFetcher::WriteCallback);
    POSH_EASY_SETOPT(bad, e, CURLOPT_WRITEDATA, t.get());
    POSH_EASY_SETOPT(bad, e, CURLOPT_HEADERFUNCTION, &CurlFetcher::HeaderCallback);
    POSH_EASY_SETOPT(bad, e, CURLOPT_HEADERDATA, t.get());
    POSH_EASY_SETOPT(bad, e, CURLOPT_OPENSOCKETFUNCTION, &CurlFetcher::OpenSocketCallback);
    POSH_EASY_SETOPT(bad, e, CURLOPT_OPENSOCKETDATA, t.get());
    POSH_EASY_SETOPT(bad, e, CURLOPT_USERAGENT, options_.user_agent.c_str());
    POSH_EASY_SETOPT(bad, e, CURLOPT_HTTPGET, 1L);
    if (!bad.empty()) {
      cb = std::move(t->cb);
      return fail(FetchErrorKind::kInternal, std::move(bad));  // t (and its easy) freed here
    }

    CURLMcode mc = curl_multi_add_handle(multi_, e);
    if (mc != CURLM_OK) {
      cb = std::move(t->cb);
      return fail(FetchErrorKind::kInternal,
                  std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc));
    }
    transfers_.emplace(handle, std::move(t));
    ++requests_started_;
    return handle;
  }

  void Cancel(Handle handle) override {
    POSH_DCHECK_ON_THREAD(loop_thread_);
    if (deferred_.erase(handle) > 0) return;
    auto it = transfers_.find(handle);
    if (it == transfers_.end()) return;
    curl_multi_remove_handle(multi_, it->second->easy);
    transfers_.erase(it);
  }

  size_t InFlight() const override { return transfers_.size() + deferred_.size(); }
  uint64_t RequestsStarted() const override { return requests_started_; }

 private:
  // ---- curl callbacks (must not call back into the multi handle) ----

  static int SocketCallback(CURL* /*easy*/, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* self = static_cast<CurlFetcher*>(userp);
    auto* ctx = static_cast<PollContext*>(socketp);
    if (what == CURL_POLL_REMOVE) {
      if (ctx != nullptr) {
        self->polls_.erase(ctx);
        self->ClosePoll(ctx);
        if (!self->closing_) curl_multi_assign(self->multi_, s, nullptr);
      }
      return 0;
    }
    if (self->closing_) return 0;
    if (ctx == nullptr) {
      ctx = new PollContext;
      ctx->owner = self;
      ctx->fd = s;
      if (uv_poll_init_socket(self->loop_, &ctx->poll, s) != 0) {
        delete ctx;
        return -1;
      }
      ctx->poll.data = ctx;
      self->polls_.insert(ctx);
      curl_multi_assign(self->multi_, s, ctx);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
    uv_poll_start(&ctx->poll, events, &CurlFetcher::OnPoll);
    return 0;
  }

  static int TimerCallback(CURLM* /*multi*/, long timeout_ms, void* userp) {
    auto* self = static_cast<CurlFetcher*>(userp);
    if (timeout_ms < 0) {
      uv_timer_stop(self->timer_);
    } else {
      uv_timer_start(self->timer_, &CurlFetcher::OnTimer, static_cast<uint64_t>(timeout_ms), 0);
    }
    return 0;
  }

  static size_t WriteCallback(char* data, size_t size, size_t nmemb, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t n = size * nmemb;
    if (t->response.body.size() + n > t->max_body) {
      t->too_large = true;
      return 0;  // CURLE_WRITE_ERROR: transfer dropped at once (R7)
    }
    t->response.body.append(data, n);
    return n;
  }

  static size_t HeaderCallback(char* data, size_t size, size_t nmemb, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t n = size * nmemb;
    std::string_view line(data, n);
    if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
      t->response.location.clear();  // a new response (e.g. after 100 Continue)
      return n;
    }
    constexpr std::string_view kLocation = "location:";
    if (line.size() >= kLocation.size()) {
      bool match = true;
      for (size_t i = 0; i < kLocation.size() && match; ++i) {
        match = std::tolower(static_cast<unsigned char>(line[i])) == kLocation[i];
      }
      if (match) {
        std::string_view v = line.substr(kLocation.size());
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() &&
               (v.back() == '\r' || v.back() == '\n' || v.back() == ' ' || v.back() == '\t')) {
          v.remove_suffix(1);
        }
        t->response.location.assign(v);
      }
    }
    return n;
  }

  static curl_socket_t OpenSocketCallback(void* clientp, curlsocktype /*purpose*/,
                                          struct curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(clientp);
    if (!t->trusted) {
      AddressClass c = ClassifySockaddr(&address->addr, address->addrlen);
      if (!IsGlobal(c)) {
        t->refused = "address " + FormatSockaddr(&address->addr, address->addrlen) +
                     " is not a global address (R8)";
        return CURL_SOCKET_BAD;
      }
    }
    ++t->allowed_sockets;
    return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  }

  // ---- libuv callbacks ----

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* ctx = static_cast<PollContext*>(handle->data);
    CurlFetcher* self = ctx->owner;
    int flags = 0;
    if (status < 0) {
      flags = CURL_CSELECT_ERR;
    } else {
      if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
      if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    int running = 0;
    curl_multi_socket_action(self->multi_, ctx->fd, flags, &running);
    self->CheckMultiInfo();  // may destroy self: nothing after this
  }

  static void OnTimer(uv_timer_t* handle) {
    auto* self = static_cast<CurlFetcher*>(handle->data);
    int running = 0;
    curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    self->CheckMultiInfo();
  }

  static void OnDeferTimer(uv_timer_t* handle) {
    auto* self = static_cast<CurlFetcher*>(handle->data);
    std::vector<Handle> ids;
    ids.reserve(self->deferred_.size());
    for (const auto& [id, d] : self->deferred_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    std::weak_ptr<bool> alive = self->alive_;
    for (Handle id : ids) {
      auto it = self->deferred_.find(id);
      if (it == self->deferred_.end()) continue;  // cancelled by an earlier callback
      Deferred d = std::move(it->second);
      self->deferred_.erase(it);
      d.cb(FetchResult(Fail(std::move(d.error))));
      if (alive.expired()) return;
    }
  }

  void ClosePoll(PollContext* ctx) {
    uv_poll_stop(&ctx->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&ctx->poll),
             [](uv_handle_t* h) { delete static_cast<PollContext*>(h->data); });
  }

  void CheckMultiInfo() {
    std::vector<std::pair<Handle, CURLcode>> done;
    int pending = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &pending)) {
      if (msg->msg != CURLMSG_DONE) continue;
      void* priv = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
      if (priv != nullptr)
        done.emplace_back(static_cast<Transfer*>(priv)->handle, msg->data.result);
    }
    std::weak_ptr<bool> alive = alive_;
    for (auto [handle, code] : done) {
      auto it = transfers_.find(handle);
      if (it == transfers_.end()) continue;  // cancelled by an earlier callback
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers_.erase(it);
      curl_multi_remove_handle(multi_, t->easy);
      FetchResult result = Complete(*t, code);
      FetchCallback cb = std::move(t->cb);
      t.reset();
      cb(std::move(result));
      if (alive.expired()) return;
    }
  }

  static FetchResult Complete(Transfer& t, CURLcode code) {
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
      t.response.status = status;
      char* ip = nullptr;
      if (curl_easy_getinfo(t.easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) {
        t.response.primary_ip = ip;
      }
      return std::move(t.response);
    }
    if ((code == CURLE_WRITE_ERROR && t.too_large) || code == CURLE_FILESIZE_EXCEEDED) {
      return Fail(MakeError(FetchErrorKind::kTooLarge,
                            "body exceeds " + std::to_string(t.max_body) + " bytes (R7)"));
    }
    // "Refused" (permanent) only when the policy refused every candidate address; when one
    // was allowed and failed, the failure is that connection's (transient, R19).
    if (!t.refused.empty() && t.allowed_sockets == 0 &&
        (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST)) {
      return Fail(MakeError(FetchErrorKind::kAddressRefused, t.refused));
    }
    FetchErrorKind kind = KindFor(code);
    std::string detail = t.errbuf[0] != '\0' ? std::string(t.errbuf) : curl_easy_strerror(code);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    if (!t.refused.empty()) detail += " (another candidate: " + t.refused + ")";
    return Fail(MakeError(kind, std::string(KindPrefix(kind)) + detail));
  }

  uv_loop_t* loop_;
  CurlFetcherOptions options_;
  CURLM* multi_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uv_timer_t* defer_timer_ = nullptr;
  curl_slist* connect_to_ = nullptr;
  std::unordered_map<Handle, std::unique_ptr<Transfer>> transfers_;
  std::unordered_map<Handle, Deferred> deferred_;
  std::unordered_set<PollContext*> polls_;
  Handle next_handle_ = 1;
  uint64_t requests_started_ = 0;
  bool closing_ = false;
  std::string init_failure_;  // multi handle setup failed: every fetch fails with this
  std::shared_ptr<bool> alive_;
  // Debug builds: Fetch, Cancel and the destructor run on the loop thread (the first one
  // to call them), as fetcher.h requires.
  util::ThreadChecker loop_thread_;
};

}  // namespace

std::unique_ptr<Fetcher> MakeCurlFetcher(uv_loop_t* loop, CurlFetcherOptions options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<CurlFetcher>(loop, std::move(options));
}

}  // namespace posh::fetch
