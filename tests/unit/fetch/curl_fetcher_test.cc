// CurlFetcher against a real local TLS server on 127.0.0.1, on a real libuv loop
// (R4 transport, R7 limits, R8 addresses).
#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <optional>

#include "fetch/fetcher.h"
#include "tls_test_server.h"

namespace posh::fetch {
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
    r.deadline = SteadyClock::now() + timeout;
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

TEST_F(CurlFetcherTest, R7DeadlineAlreadyPassedFailsAsynchronously) {
  fetcher_ = MakeCurlFetcher(&loop_, Options());
  FetchRequest req = Request(Url("posh.test", "/ok"));
  req.deadline = SteadyClock::now() - milliseconds(1);
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
