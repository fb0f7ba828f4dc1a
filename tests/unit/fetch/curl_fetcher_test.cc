// CurlFetcher against a real local TLS server on 127.0.0.1, on a real libuv loop
// (R4 transport, R7 limits, R8 addresses).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "fetch/fetcher.h"
#include "support/tls_test_server.h"

// R8 with several candidate addresses needs a name that resolves to a refused and an allowed
// address, and an allowed (global) address that fails to connect at once, without touching
// the network. The test binary interposes getaddrinfo() and connect(): libcurl calls them
// through the dynamic linker, which finds the executable's definitions first. Everything
// but the names/addresses below goes to the real functions.
namespace {
constexpr const char* kMixedHost = "mixed.posh.test";  // -> 127.0.0.1 (refused), 1.2.3.4
constexpr const char* kGlobalDown = "1.2.3.4";         // global; connect() fails at once
std::atomic<int> g_global_down_connects{0};

template <class Fn>
Fn Real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}
}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) noexcept {
  using Fn = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const Fn real = Real<Fn>("getaddrinfo");
  if (node == nullptr || std::strcmp(node, kMixedHost) != 0) return real(node, service, hints, res);
  struct addrinfo h = {};
  if (hints != nullptr) h = *hints;
  h.ai_family = AF_INET;
  h.ai_flags |= AI_NUMERICHOST;
  struct addrinfo* refused = nullptr;
  if (int rc = real("127.0.0.1", service, &h, &refused); rc != 0) return rc;
  struct addrinfo* allowed = nullptr;
  if (int rc = real(kGlobalDown, service, &h, &allowed); rc != 0) {
    freeaddrinfo(refused);
    return rc;
  }
  // glibc frees an addrinfo list node by node, so two of its lists can be chained.
  struct addrinfo* tail = refused;
  while (tail->ai_next != nullptr) tail = tail->ai_next;
  tail->ai_next = allowed;
  *res = refused;
  return 0;
}

extern "C" int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  using Fn = int (*)(int, const struct sockaddr*, socklen_t);
  static const Fn real = Real<Fn>("connect");
  if (addr != nullptr && addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    in_addr down{};
    inet_pton(AF_INET, kGlobalDown, &down);
    if (reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr == down.s_addr) {
      ++g_global_down_connects;
      errno = ECONNREFUSED;
      return -1;
    }
  }
  return real(fd, addr, len);
}

namespace posh::fetch {
namespace internal {
// Defined in daemon/fetch/curl_fetcher.cc: the setopt result checks.
std::string EasySetoptFailure(CURLcode code, std::string_view option);
std::string MultiSetoptFailure(CURLMcode code, std::string_view option);
}  // namespace internal

namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

class CurlFetcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN);
    server_ = new posh::testing::TlsTestServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(server_->ok());
    ASSERT_EQ(uv_loop_init(&loop_), 0);
  }

  void TearDown() override {
    fetcher_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks free the handles
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  CurlFetcherOptions Options() {
    CurlFetcherOptions o;
    o.ca_file = server_->ca_file();
    return o;
  }

  std::string Url(const std::string& host, const std::string& path, int port = 0) {
    return "https://" + host + ":" + std::to_string(port == 0 ? server_->port() : port) + path;
  }

  std::string PinTo(const std::string& host, int port = 0) {
    int p = port == 0 ? server_->port() : port;
    return host + ":" + std::to_string(p) + ":127.0.0.1:" + std::to_string(p);
  }

  FetchRequest Request(std::string url, milliseconds timeout = milliseconds(5000),
                       size_t max_body = 64 * 1024) {
    FetchRequest r;
    r.url = std::move(url);
    r.max_body = max_body;
    r.time_left = timeout;
    return r;
  }

  // Runs the loop until `done` holds or 10 s pass. A prepare handle (runs before the loop
  // would block) stops the loop as soon as `done` holds.
  void RunUntil(const std::function<bool()>& done) {
    struct State {
      const std::function<bool()>* done;
      bool expired = false;
    } state{&done};
    uv_timer_t guard;
    uv_timer_init(&loop_, &guard);
    guard.data = &state;
    uv_timer_start(
        &guard,
        [](uv_timer_t* t) {
          static_cast<State*>(t->data)->expired = true;
          uv_stop(t->loop);
        },
        10000, 0);
    uv_prepare_t prepare;
    uv_prepare_init(&loop_, &prepare);
    prepare.data = &state;
    uv_prepare_start(&prepare, [](uv_prepare_t* p) {
      if ((*static_cast<State*>(p->data)->done)()) uv_stop(p->loop);
    });
    while (!done() && !state.expired) uv_run(&loop_, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_FALSE(state.expired) << "loop guard expired";
  }

  FetchResult FetchOne(FetchRequest request) {
    std::optional<FetchResult> out;
    fetcher_->Fetch(std::move(request), [&](FetchResult r) { out.emplace(std::move(r)); });
    EXPECT_FALSE(out.has_value()) << "callback must not run synchronously";
    RunUntil([&] { return out.has_value(); });
    if (!out) return Fail(FetchError{FetchErrorKind::kInternal, "no result"});
    return std::move(*out);
  }

  static posh::testing::TlsTestServer* server_;
  uv_loop_t loop_;
  std::unique_ptr<Fetcher> fetcher_;
};

posh::testing::TlsTestServer* CurlFetcherTest::server_ = nullptr;

TEST_F(CurlFetcherTest, R4FetchesA200OverTlsFromAPinnedHost) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/ok")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"hello\":\"posh\"}");
  EXPECT_EQ(r->primary_ip, "127.0.0.1");
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  EXPECT_EQ(fetcher_->InFlight(), 0u);
}

TEST_F(CurlFetcherTest, R5OtherStatusesAndLocationAreReturnedNotFollowed) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/redirect")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->location, "https://posh.test/elsewhere.json");
  auto s = FetchOne(Request(Url("posh.test", "/unavailable")));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->status, 503);
  EXPECT_EQ(s->body, "busy");
  auto n = FetchOne(Request(Url("posh.test", "/missing")));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->status, 404);
  EXPECT_EQ(fetcher_->RequestsStarted(), 3u);
}

TEST_F(CurlFetcherTest, R7BodyAtTheLimitIsAccepted) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/exact"), milliseconds(5000), 100));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.size(), 100u);
}

TEST_F(CurlFetcherTest, R7BodyOverTheLimitIsAbortedWithoutContentLength) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/big"), milliseconds(5000), 1000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTooLarge);
  EXPECT_EQ(r.error().message, "body exceeds 1000 bytes (R7)");
}

TEST_F(CurlFetcherTest, R7BodyOverTheLimitIsRejectedByContentLength) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/big-cl"), milliseconds(5000), 1000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTooLarge);
  EXPECT_EQ(r.error().message, "body exceeds 1000 bytes (R7)");
}

TEST_F(CurlFetcherTest, R7DeadlineAgainstASilentServerTimesOut) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test", server_->silent_port())};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto start = SteadyClock::now();
  auto r = FetchOne(Request(Url("posh.test", "/ok", server_->silent_port()), milliseconds(300)));
  auto elapsed = SteadyClock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTimeout) << r.error().message;
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(3000));
}

TEST_F(CurlFetcherTest, R7NoTimeLeftFailsAsynchronously) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  FetchRequest req = Request(Url("posh.test", "/ok"));
  req.time_left = milliseconds(0);
  auto r = FetchOne(std::move(req));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTimeout);
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);
}

TEST_F(CurlFetcherTest, R4NonHttpsUrlIsAProtocolError) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  auto r = FetchOne(Request("http://posh.test/ok"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kProtocol);
  auto m = FetchOne(Request("not a url"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().kind, FetchErrorKind::kProtocol);
}

TEST_F(CurlFetcherTest, R4WrongCertificateNameIsATlsError) {
  auto o = Options();
  o.connect_to = {PinTo("wrong.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("wrong.test", "/ok")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTls) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("TLS: ", 0), 0u) << r.error().message;
}

TEST_F(CurlFetcherTest, R4UntrustedCaIsATlsError) {
  auto o = Options();
  o.ca_file.clear();  // system store: the test CA is unknown there
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("posh.test", "/ok")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kTls) << r.error().message;
}

TEST_F(CurlFetcherTest, R8LoopbackLiteralIsRefused) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  int before = server_->connections();
  auto r = FetchOne(Request(Url("127.0.0.1", "/ok")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kAddressRefused);
  EXPECT_EQ(r.error().message, "address 127.0.0.1 is not a global address (R8)");
  EXPECT_EQ(server_->connections(), before);
}

TEST_F(CurlFetcherTest, R8LocalhostNameIsRefused) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  auto r = FetchOne(Request(Url("localhost", "/ok")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kAddressRefused) << r.error().message;
}

TEST_F(CurlFetcherTest, R8NonMatchingConnectToRuleDoesNotTrust) {
  auto o = Options();
  o.connect_to = {"other.test:443:127.0.0.1:443"};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("127.0.0.1", "/ok")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kAddressRefused);
}

TEST_F(CurlFetcherTest, R8AllowPrivateAddressesLiftsThePolicy) {
  auto o = Options();
  o.allow_private_addresses = true;
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request(Url("127.0.0.1", "/ok")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

TEST_F(CurlFetcherTest, R8ConnectToRuleWithAnyHostTrustsTheTarget) {
  auto o = Options();
  o.connect_to = {"::127.0.0.1:" + std::to_string(server_->port())};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto r = FetchOne(Request("https://posh.test/ok"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

// R8 + R19: one candidate refused by the policy, the allowed one unreachable. That is a
// connection failure (transient: a stale copy may be served), not "address refused".
TEST_F(CurlFetcherTest, R8RefusedCandidateAndUnreachableAllowedOneIsAConnectError) {
  auto o = Options();
  o.connect_timeout = milliseconds(2000);
  fetcher_ = MakeCurlFetcher(&loop_, o);
  int before = server_->connections();
  int down_before = g_global_down_connects.load();
  auto r = FetchOne(Request(Url(kMixedHost, "/ok")));
  ASSERT_GT(g_global_down_connects.load(), down_before)
      << "the allowed candidate was never tried (interposed connect() not reached)";
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kConnect) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("connection: ", 0), 0u) << r.error().message;
  // The refusal is still told, as context.
  EXPECT_NE(r.error().message.find("address 127.0.0.1 is not a global address (R8)"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(server_->connections(), before);
}

// R8: when the policy refuses every candidate, the error stays "address refused" (permanent).
TEST_F(CurlFetcherTest, R8EveryCandidateRefusedIsAddressRefused) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  auto r = FetchOne(Request(Url("localhost", "/ok")));  // 127.0.0.1 and ::1
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, FetchErrorKind::kAddressRefused) << r.error().message;
  EXPECT_NE(r.error().message.find("(R8)"), std::string::npos) << r.error().message;
}

// A setopt that libcurl rejects fails the fetch (kInternal, naming the option), once and
// asynchronously, instead of running a transfer without that option. A string option over
// CURL_MAX_INPUT_LENGTH (8 MB) is a real rejection.
TEST_F(CurlFetcherTest, RejectedSetoptFailsTheFetchAsInternal) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  o.user_agent = std::string(9'000'000, 'u');
  fetcher_ = MakeCurlFetcher(&loop_, o);
  int calls = 0;
  std::optional<FetchResult> out;
  fetcher_->Fetch(Request(Url("posh.test", "/ok")), [&](FetchResult r) {
    ++calls;
    out.emplace(std::move(r));
  });
  EXPECT_EQ(calls, 0) << "callback must not run synchronously";
  RunUntil([&] { return out.has_value(); });
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->error().kind, FetchErrorKind::kInternal);
  EXPECT_EQ(out->error().message, std::string("curl_easy_setopt(CURLOPT_USERAGENT) failed: ") +
                                      curl_easy_strerror(CURLE_BAD_FUNCTION_ARGUMENT));
  EXPECT_EQ(fetcher_->InFlight(), 0u);
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);
  // The fetcher stays usable.
  fetcher_.reset();
  o.user_agent = "poshd-test";
  fetcher_ = MakeCurlFetcher(&loop_, o);
  auto ok = FetchOne(Request(Url("posh.test", "/ok")));
  EXPECT_TRUE(ok.ok()) << ok.error().message;
}

TEST(CurlSetoptCheck, NamesTheOptionAndCurlsReason) {
  EXPECT_EQ(internal::EasySetoptFailure(CURLE_OK, "CURLOPT_URL"), "");
  EXPECT_EQ(internal::EasySetoptFailure(CURLE_UNKNOWN_OPTION, "CURLOPT_QUICK_EXIT"),
            std::string("curl_easy_setopt(CURLOPT_QUICK_EXIT) failed: ") +
                curl_easy_strerror(CURLE_UNKNOWN_OPTION));
  EXPECT_EQ(internal::EasySetoptFailure(CURLE_NOT_BUILT_IN, "CURLOPT_PROTOCOLS_STR"),
            std::string("curl_easy_setopt(CURLOPT_PROTOCOLS_STR) failed: ") +
                curl_easy_strerror(CURLE_NOT_BUILT_IN));
  EXPECT_EQ(internal::MultiSetoptFailure(CURLM_OK, "CURLMOPT_MAXCONNECTS"), "");
  EXPECT_EQ(internal::MultiSetoptFailure(CURLM_UNKNOWN_OPTION, "CURLMOPT_MAXCONNECTS"),
            std::string("curl_multi_setopt(CURLMOPT_MAXCONNECTS) failed: ") +
                curl_multi_strerror(CURLM_UNKNOWN_OPTION));
}

TEST_F(CurlFetcherTest, CancelDropsTheTransferWithoutCallback) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test", server_->silent_port())};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  bool called = false;
  auto h = fetcher_->Fetch(Request(Url("posh.test", "/ok", server_->silent_port())),
                           [&](FetchResult) { called = true; });
  EXPECT_EQ(fetcher_->InFlight(), 1u);
  // Let it connect, then cancel.
  uv_timer_t t;
  uv_timer_init(&loop_, &t);
  uv_timer_start(
      &t, [](uv_timer_t*) {}, 50, 0);
  uv_run(&loop_, UV_RUN_ONCE);
  fetcher_->Cancel(h);
  fetcher_->Cancel(h);     // unknown handle: no-op
  fetcher_->Cancel(9999);  // unknown handle: no-op
  EXPECT_EQ(fetcher_->InFlight(), 0u);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(CurlFetcherTest, CancelOfAnImmediateErrorSuppressesTheCallback) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  bool called = false;
  auto h = fetcher_->Fetch(Request("http://posh.test/"), [&](FetchResult) { called = true; });
  fetcher_->Cancel(h);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(CurlFetcherTest, DestroyingWithTransfersInFlightIsClean) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test", server_->silent_port()), PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  bool called = false;
  fetcher_->Fetch(Request(Url("posh.test", "/ok", server_->silent_port())),
                  [&](FetchResult) { called = true; });
  fetcher_->Fetch(Request(Url("posh.test", "/ok")), [&](FetchResult) { called = true; });
  uv_timer_t t;
  uv_timer_init(&loop_, &t);
  uv_timer_start(
      &t, [](uv_timer_t*) {}, 20, 0);
  uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  fetcher_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(CurlFetcherTest, ConcurrentTransfersAndDestroyFromCallback) {
  auto o = Options();
  o.connect_to = {PinTo("posh.test")};
  fetcher_ = MakeCurlFetcher(&loop_, o);
  int done = 0;
  for (int i = 0; i < 4; ++i) {
    fetcher_->Fetch(Request(Url("posh.test", "/ok")), [&](FetchResult r) {
      EXPECT_TRUE(r.ok());
      ++done;
    });
  }
  RunUntil([&] { return done == 4; });
  EXPECT_EQ(fetcher_->RequestsStarted(), 4u);
  // A callback may destroy the fetcher.
  bool destroyed = false;
  fetcher_->Fetch(Request(Url("posh.test", "/ok")), [&](FetchResult) {
    fetcher_.reset();
    destroyed = true;
  });
  RunUntil([&] { return destroyed; });
}

}  // namespace
}  // namespace posh::fetch
