// Cache, counters, concurrency, refresh, persistence and lifecycle (R16–R20).
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

#include "harness.h"

namespace posh_it {
namespace {

using namespace std::chrono_literals;

class Cache : public PoshTest {
 protected:
  Json Stats() {
    CtlResult r = Ctl({"stats"});
    EXPECT_EQ(r.status(), 0) << r.Describe();
    EXPECT_TRUE(r.json.ok()) << r.Describe();
    return r.json;
  }
  double Stat(const Json& j, const char* name) {
    auto v = j.Num(name);
    EXPECT_TRUE(v) << "stats lacks number " << name << ": " << j.Dump();
    return v.value_or(-1);
  }
  std::vector<std::string> ListedDomains() {
    CtlResult r = Ctl({"cache", "list"});
    EXPECT_EQ(r.status(), 0) << r.Describe();
    std::vector<std::string> out;
    auto entries = r.json.Arr("entries");
    EXPECT_TRUE(entries) << r.Describe();
    if (!entries) return out;
    for (auto e : *entries) {
      for (const char* m : {"domain", "service", "status", "expires_at"})
        EXPECT_FALSE(e[m].error()) << "cache list entry lacks " << m << ": " << simdjson::minify(e);
      out.push_back(StrOf(e, "domain").value_or(""));
    }
    return out;
  }
  static bool Contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
};

TEST_F(Cache, R16_SecondLookupFromCache) {
  ServeFingerprints("c.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult a = Lookup("c.example.test");
  POSH_EXPECT_STATUS(a, "found", 0);
  EXPECT_EQ(a.json.Bool("from_cache"), false);
  CtlResult b = Lookup("c.example.test");
  POSH_EXPECT_STATUS(b, "found", 0);
  EXPECT_EQ(b.json.Bool("from_cache"), true);
  EXPECT_EQ(b.json.Str("expires_at"), a.json.Str("expires_at"));
  EXPECT_EQ(origin_.Count("c.example.test", kRfcPath), 1);
  EXPECT_EQ(origin_.Total(), 1);
}

TEST_F(Cache, R16_VerifyUsesCachedRecord) {
  ServeFingerprints("c.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("c.example.test"), "found", 0);
  CtlResult v = Verify("c.example.test", origin_.Cert("xmpp").pem);
  EXPECT_EQ(v.status(), 0) << v.Describe();
  EXPECT_EQ(v.json.Str("verdict"), "verified");
  EXPECT_EQ(origin_.Total(), 1);
}

TEST_F(Cache, Stats_Members) {
  ServeFingerprints("c.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  Json s0 = Stats();
  for (const char* m : {"lookups", "cache_hits", "cache_misses", "fetches", "coalesced", "entries",
                        "in_flight", "errors"})
    EXPECT_TRUE(s0.Num(m)) << "stats lacks number " << m << ": " << s0.Dump();
  POSH_EXPECT_STATUS(Lookup("c.example.test"), "found", 0);
  POSH_EXPECT_STATUS(Lookup("c.example.test"), "found", 0);
  Json s = Stats();
  EXPECT_GE(Stat(s, "lookups"), 2);
  EXPECT_GE(Stat(s, "cache_hits"), 1);
  EXPECT_GE(Stat(s, "cache_misses"), 1);
  EXPECT_EQ(Stat(s, "fetches"), 1);
  EXPECT_EQ(Stat(s, "entries"), 1);
  EXPECT_EQ(Stat(s, "in_flight"), 0);
  EXPECT_EQ(Stat(s, "errors"), 0);
}

TEST_F(Cache, Stats_FetchesAndErrorsCount) {
  origin_.Set("e.example.test", kRfcPath, Route::Status(500));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("nf.example.test"), "not_found", 1);  // 2 HTTP requests
  POSH_EXPECT_STATUS(Lookup("e.example.test"), "error", 2);       // 1 HTTP request
  Json s = Stats();
  EXPECT_EQ(Stat(s, "fetches"), origin_.Total()) << "fetches counts HTTP requests sent";
  EXPECT_EQ(origin_.Total(), 3);
  EXPECT_GE(Stat(s, "errors"), 1);
  EXPECT_EQ(Stat(s, "entries"), 2);
}

TEST_F(Cache, Cli_ListShowEvictFlush) {
  ServeFingerprints("a.example.test", "xmpp");
  ServeFingerprints("b.example.test", "other");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("a.example.test"), "found", 0);
  POSH_EXPECT_STATUS(Lookup("b.example.test"), "found", 0);
  POSH_EXPECT_STATUS(Lookup("n.example.test"), "not_found", 1);
  auto listed = ListedDomains();
  EXPECT_TRUE(Contains(listed, "a.example.test"));
  EXPECT_TRUE(Contains(listed, "b.example.test"));
  EXPECT_TRUE(Contains(listed, "n.example.test"));

  CtlResult show = Ctl({"cache", "show", "a.example.test"});
  EXPECT_EQ(show.status(), 0) << show.Describe();
  EXPECT_TRUE(show.json.ok()) << show.Describe();
  EXPECT_NE(show.run.out.find(origin_.Cert("xmpp").hash.at("sha-256").substr(0, 40)),
            std::string::npos)
      << "cache show does not carry the key: " << show.run.out;

  CtlResult ev = Ctl({"cache", "evict", "a.example.test"});
  EXPECT_EQ(ev.status(), 0) << ev.Describe();
  listed = ListedDomains();
  EXPECT_FALSE(Contains(listed, "a.example.test"));
  EXPECT_TRUE(Contains(listed, "b.example.test"));
  // Evicted: the next lookup fetches again.
  CtlResult again = Lookup("a.example.test");
  POSH_EXPECT_STATUS(again, "found", 0);
  EXPECT_EQ(again.json.Bool("from_cache"), false);
  EXPECT_EQ(origin_.Count("a.example.test", kRfcPath), 2);

  CtlResult fl = Ctl({"cache", "flush"});
  EXPECT_EQ(fl.status(), 0) << fl.Describe();
  EXPECT_TRUE(ListedDomains().empty());
  EXPECT_EQ(Stat(Stats(), "entries"), 0);
  CtlResult b = Lookup("b.example.test");
  EXPECT_EQ(b.json.Bool("from_cache"), false);
  EXPECT_EQ(origin_.Count("b.example.test", kRfcPath), 2);
}

TEST_F(Cache, Cli_EvictKeyedByService) {
  ServeFingerprints("a.example.test", "xmpp");
  origin_.Set("a.example.test", "/.well-known/posh/xmpp-client.json",
              Route::Json(FingerprintsDoc("other")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("a.example.test"), "found", 0);
  POSH_EXPECT_STATUS(Lookup("a.example.test", {"--service", "xmpp-client"}), "found", 0);
  CtlResult ev = Ctl({"cache", "evict", "a.example.test", "--service", "xmpp-client"});
  EXPECT_EQ(ev.status(), 0) << ev.Describe();
  EXPECT_EQ(Lookup("a.example.test").json.Bool("from_cache"), true);
  EXPECT_EQ(Lookup("a.example.test", {"--service", "xmpp-client"}).json.Bool("from_cache"), false);
}

TEST_F(Cache, Cli_RefreshFlagForcesFetch) {
  ServeFingerprints("c.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("c.example.test"), "found", 0);
  ServeFingerprints("c.example.test", "other");
  CtlResult r = Lookup("c.example.test", {"--refresh"});
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Bool("from_cache"), false);
  EXPECT_EQ(origin_.Count("c.example.test", kRfcPath), 2);
  CtlResult v = Verify("c.example.test", origin_.Cert("other").pem);
  EXPECT_EQ(v.json.Str("verdict"), "verified") << v.Describe();
}

TEST_F(Cache, R16_MaxTtlCapsExpiry) {
  ServeFingerprints("c.example.test", "xmpp", 3600);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--max-ttl", "60"}));
  long long now = UnixNow();
  CtlResult r = Lookup("c.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  auto t = ParseRfc3339(r.json.Str("expires_at").value_or(""));
  ASSERT_TRUE(t);
  EXPECT_NEAR(static_cast<double>(*t), static_cast<double>(now + 60), 10.0);
}

// The lifetime rules over time (R16, R17, R19: expiry, back-off, refresh and stale windows)
// run on simulated time in ServiceTest (tests/unit/server); here only their wiring to the
// real daemon's flags and answers is checked, without sleeping.
TEST_F(Cache, R16_ShortExpiresIsTheReportedLifetime) {
  ServeFingerprints("c.example.test", "xmpp", 5);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("c.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  auto t = ParseRfc3339(r.json.Str("expires_at").value_or(""));
  ASSERT_TRUE(t) << r.Describe();
  EXPECT_NEAR(static_cast<double>(*t), static_cast<double>(now + 5), 3.0);
}

TEST_F(Cache, R17_NotFoundCachedNegatively) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("nf.example.test"), "not_found", 1);
  CtlResult r = Lookup("nf.example.test");
  POSH_EXPECT_STATUS(r, "not_found", 1);
  EXPECT_EQ(r.json.Bool("from_cache"), true);
  EXPECT_EQ(origin_.Total(), 2);
}

TEST_F(Cache, R17_NegativeTtlFlag) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--negative-ttl", "7"}));
  long long now = UnixNow();
  CtlResult r = Lookup("nf.example.test");
  POSH_EXPECT_STATUS(r, "not_found", 1);
  auto t = ParseRfc3339(r.json.Str("expires_at").value_or(""));
  ASSERT_TRUE(t) << r.Describe();
  EXPECT_NEAR(static_cast<double>(*t), static_cast<double>(now + 7), 3.0);
}

TEST_F(Cache, R17_ErrorCachedForErrorTtl) {
  origin_.Set("e.example.test", kRfcPath, Route::Status(500));
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--error-ttl", "9"}));
  long long now = UnixNow();
  POSH_EXPECT_STATUS(Lookup("e.example.test"), "error", 2);
  CtlResult r = Lookup("e.example.test");
  POSH_EXPECT_STATUS(r, "error", 2);
  EXPECT_EQ(r.json.Bool("from_cache"), true);
  EXPECT_EQ(origin_.Count("e.example.test", kRfcPath), 1);
  auto t = ParseRfc3339(r.json.Str("expires_at").value_or(""));
  ASSERT_TRUE(t) << r.Describe();
  EXPECT_NEAR(static_cast<double>(*t), static_cast<double>(now + 9), 3.0);
}

// R18: 200 concurrent poshctl lookups of one slow domain -> one request at the origin.
TEST_F(Cache, R18_ConcurrentLookupsCoalesce) {
  Route slow = Route::Json(FingerprintsDoc("xmpp"));
  slow.delay_before_headers = 2;
  origin_.Set("slow.example.test", kRfcPath, slow);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 10));
  const int n = 200;
  fs::path out = dir() / "concurrent";
  fs::create_directories(out);
  std::vector<Process> procs;
  procs.reserve(n);
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    SpawnOptions so;
    so.stdout_path = out / (std::to_string(i) + ".out");
    so.stderr_path = out / (std::to_string(i) + ".err");
    procs.push_back(Spawn({PoshctlPath(), "--socket", daemon_.socket().string(), "--json", "lookup",
                           "slow.example.test"},
                          so));
  }
  int found = 0, fails = 0;
  for (int i = 0; i < n; ++i) {
    auto st = procs[i].Wait(90s);
    Json j = Json::Parse(ReadFile(out / (std::to_string(i) + ".out")));
    if (st == std::optional<int>(0) && j.Str("status") == "found") {
      ++found;
    } else if (fails++ < 3) {
      ADD_FAILURE() << "client " << i << ": exit " << st.value_or(-1000) << " "
                    << ReadFile(out / (std::to_string(i) + ".out"))
                    << ReadFile(out / (std::to_string(i) + ".err"));
    }
  }
  double took = SecondsSince(t0);
  EXPECT_EQ(found, n);
  EXPECT_EQ(origin_.Count("slow.example.test", kRfcPath), 1);
  EXPECT_EQ(origin_.Total(), 1);
  Json s = Stats();
  EXPECT_GE(Stat(s, "coalesced"), 1)
      << "no caller joined the retrieval in flight (took " << took << " s to run all clients)";
  EXPECT_EQ(Stat(s, "fetches"), 1);
  EXPECT_EQ(Stat(s, "in_flight"), 0);
}

// R18 with an error: every concurrent caller gets the error; one retrieval.
TEST_F(Cache, R18_ConcurrentLookupsShareError) {
  Route slow = Route::Status(503);
  slow.delay_before_headers = 1.5;
  origin_.Set("slow.example.test", kRfcPath, slow);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 10));
  const int n = 20;
  fs::path out = dir() / "concurrent";
  fs::create_directories(out);
  std::vector<Process> procs;
  for (int i = 0; i < n; ++i) {
    SpawnOptions so;
    so.stdout_path = out / (std::to_string(i) + ".out");
    procs.push_back(Spawn({PoshctlPath(), "--socket", daemon_.socket().string(), "--json", "lookup",
                           "slow.example.test"},
                          so));
  }
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(procs[i].Wait(60s), std::optional<int>(2)) << "client " << i;
  }
  EXPECT_EQ(origin_.Count("slow.example.test", kRfcPath), 1);
}

// R20: the cache survives a restart.
TEST_F(Cache, R20_RestartKeepsCache) {
  ServeFingerprints("p.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult a = Lookup("p.example.test");
  POSH_EXPECT_STATUS(a, "found", 0);
  StopDaemon();
  EXPECT_FALSE(fs::is_empty(daemon_.state_dir())) << "no snapshot written at shutdown";
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult b = Lookup("p.example.test");
  POSH_EXPECT_STATUS(b, "found", 0);
  EXPECT_EQ(b.json.Bool("from_cache"), true);
  EXPECT_EQ(b.json.Str("expires_at"), a.json.Str("expires_at"));
  EXPECT_EQ(origin_.Count("p.example.test", kRfcPath), 1);
  CtlResult v = Verify("p.example.test", origin_.Cert("xmpp").pem);
  EXPECT_EQ(v.json.Str("verdict"), "verified") << v.Describe();
  EXPECT_EQ(origin_.Total(), 1);
}

class CacheCorrupt : public Cache, public ::testing::WithParamInterface<const char*> {};

TEST_P(CacheCorrupt, R20_BadSnapshotIgnored) {
  ServeFingerprints("p.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("p.example.test"), "found", 0);
  StopDaemon();
  std::string how = GetParam();
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(daemon_.state_dir())) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::string content = ReadFile(e.path());
    if (how == "Truncated") {
      content.resize(content.size() / 2);
    } else if (how == "Empty") {
      content.clear();
    } else {
      content = std::string("\x00\xff garbage {{{ \n", 17) + content.substr(0, 10);
    }
    std::ofstream(e.path(), std::ios::binary | std::ios::trunc) << content;
  }
  EXPECT_GT(files, 0) << "no snapshot file";
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult b = Lookup("p.example.test");
  POSH_EXPECT_STATUS(b, "found", 0);
  EXPECT_EQ(b.json.Bool("from_cache"), false);
}

INSTANTIATE_TEST_SUITE_P(Cases, CacheCorrupt, ::testing::Values("Garbage", "Truncated", "Empty"),
                         [](const auto& i) { return std::string(i.param); });

TEST_F(Cache, R20_MissingStateDirContentIsFine) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Ctl({"cache", "list"});
  EXPECT_EQ(r.status(), 0) << r.Describe();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle with work in flight

TEST_F(Cache, Lifecycle_SigtermWithFetchInFlight) {
  Route hang;
  hang.hang = true;
  origin_.Set("hang.example.test", kRfcPath, hang);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 20));
  SpawnOptions so;
  so.stdout_path = dir() / "inflight.out";
  Process client = Spawn({PoshctlPath(), "--socket", daemon_.socket().string(), "--json", "lookup",
                          "hang.example.test"},
                         so);
  for (int i = 0; i < 100 && origin_.CountHost("hang.example.test") == 0; ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(origin_.CountHost("hang.example.test"), 1);
  auto t0 = Clock::now();
  auto st = daemon_.Stop(10s);
  EXPECT_EQ(st, std::optional<int>(0));
  EXPECT_LT(SecondsSince(t0), 6.0) << "SIGTERM waited for the 20 s fetch";
  EXPECT_FALSE(fs::exists(daemon_.socket()));
  auto cst = client.Wait(10s);
  EXPECT_TRUE(cst) << "the client hung after the daemon stopped";
  EXPECT_NE(cst.value_or(0), 0);
}

TEST_F(Cache, Lifecycle_SighupKeepsCache) {
  ServeFingerprints("h.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("h.example.test"), "found", 0);
  daemon_.Signal(SIGHUP);
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(daemon_.Running()) << "SIGHUP killed the daemon";
  CtlResult r = Lookup("h.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Bool("from_cache"), true);
  EXPECT_EQ(origin_.Total(), 1);
}

// Delegation fan-in (issue 13): 50 domains referencing one hosting provider's document
// (R11) cost a handful of fetches of it, not 50; once retrieved it is reused while fresh.
// A cold burst may fetch it more than once: a lookup never waits on a retrieval started
// under a later deadline than its own (R7).
TEST_F(Cache, R11_DelegatingDomainsShareTheReferenceTarget) {
  const std::string target_path = "/posh/shared.json";
  const std::string target = "https://hosting.example.test" + target_path;
  Route slow = Route::Json(FingerprintsDoc("xmpp", 3600));
  slow.delay_before_headers = 1;  // every lookup reaches the reference while it is in flight
  origin_.Set("hosting.example.test", target_path, slow);
  // Appended, not "tenant" + ...: GCC 12 -O2 may report a false -Wrestrict (GCC bug 105329).
  auto domain = [](int i) {
    return std::string("tenant").append(std::to_string(i)).append(".example.test");
  };
  const int n = 50;
  for (int i = 0; i < 2 * n; ++i) {
    origin_.Set(domain(i), kRfcPath,
                Route::Json(R"({"url":)" + JsonEscape(target) + R"(,"expires":600})"));
  }
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 10));
  fs::path out = dir() / "fanin";
  fs::create_directories(out);
  auto burst = [&](int from, int to) {
    std::vector<Process> procs;
    for (int i = from; i < to; ++i) {
      SpawnOptions so;
      so.stdout_path = out / (std::to_string(i) + ".out");
      procs.push_back(Spawn(
          {PoshctlPath(), "--socket", daemon_.socket().string(), "--json", "lookup", domain(i)},
          so));
    }
    for (int i = from; i < to; ++i) {
      auto st = procs[i - from].Wait(60s);
      Json j = Json::Parse(ReadFile(out / (std::to_string(i) + ".out")));
      EXPECT_EQ(st, std::optional<int>(0)) << domain(i) << ": " << j.Dump();
      EXPECT_EQ(j.Str("status"), "found") << domain(i);
      EXPECT_EQ(j.Str("delegated_to"), "hosting.example.test") << domain(i);
    }
  };
  burst(0, n);
  const int target_fetches = origin_.Count("hosting.example.test", target_path);
  RecordProperty("target_fetches", target_fetches);
  EXPECT_GE(target_fetches, 1);
  EXPECT_LE(target_fetches, 10) << "the shared target was not shared";
  Json s = Stats();
  EXPECT_EQ(Stat(s, "reference_fetches"), target_fetches);
  EXPECT_EQ(Stat(s, "reference_shared"), n - target_fetches);
  EXPECT_EQ(Stat(s, "fetches"), origin_.Total()) << "fetches counts HTTP requests sent";

  burst(n, 2 * n);  // fresh: no new fetch of the target
  EXPECT_EQ(origin_.Count("hosting.example.test", target_path), target_fetches);
  Json s2 = Stats();
  EXPECT_EQ(Stat(s2, "reference_shared"), 2 * n - target_fetches);
  EXPECT_EQ(Stat(s2, "fetches"), origin_.Total());
  EXPECT_EQ(origin_.Total(), 2 * n + target_fetches);
}

}  // namespace
}  // namespace posh_it
