// The second tier on a real Redis (issue 16): Debian's redis-server, started by the test on a
// unix socket in its temp dir, shared by two daemons. The second daemon's lookup of a domain
// the first fetched reaches no origin; a Redis that goes away changes nothing but counters;
// an entry not written by the fleet (no MAC, wrong MAC, altered bytes) is never served.
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <thread>

#include "harness.h"
#include "l2/redis_tier.h"
#include "util/clock.h"

namespace posh_it {
namespace {

using namespace std::chrono_literals;

class L2 : public PoshTest {
 protected:
  void SetUp() override {
    PoshTest::SetUp();
    if (access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "redis-server not installed";
    redis_sock_ = dir() / "redis.sock";
    SpawnOptions so;
    so.stdout_path = dir() / "redis.log";
    so.stderr_path = dir() / "redis.log";
    redis_ = Spawn({"/usr/bin/redis-server", "--port", "0", "--unixsocket", redis_sock_.string(),
                    "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                    "--enable-debug-command", "local", "--dir", dir().string()},
                   so);
    for (int i = 0; i < 200 && !fs::exists(redis_sock_); ++i) std::this_thread::sleep_for(25ms);
    ASSERT_TRUE(fs::exists(redis_sock_)) << "redis-server did not start";
    key_file_ = dir() / "fleet.key";
    { std::ofstream(key_file_) << std::string(32, 'F') << "fleet"; }
    ::chmod(key_file_.c_str(), 0600);
  }
  void TearDown() override {
    if (second_.Running()) second_.Stop();
    PoshTest::TearDown();
    if (redis_.valid()) redis_.Terminate(5s);
  }
  std::vector<std::string> RedisFlags() const {
    return {"--redis", "unix:" + redis_sock_.string(), "--redis-key-file", key_file_.string()};
  }
  // Waits until `log` says the tier is connected.
  static bool WaitConnected(const std::function<std::string()>& log) {
    for (int i = 0; i < 200; ++i) {
      if (log().find("redis: connected") != std::string::npos) return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }
  void StartBoth() {
    ASSERT_NO_FATAL_FAILURE(StartDaemon(RedisFlags()));
    ASSERT_TRUE(WaitConnected([this] { return daemon_.Log(); })) << daemon_.Log();
    fs::create_directories(dir() / "b");
    std::string why;
    ASSERT_TRUE(second_.Start(dir() / "b", origin_, RedisFlags(), 3, &why)) << why;
    ASSERT_TRUE(WaitConnected([this] { return second_.Log(); })) << second_.Log();
  }
  CtlResult CtlB(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"--socket", second_.socket().string(), "--json"};
    a.insert(a.end(), args.begin(), args.end());
    return CtlRaw(a);
  }
  double Stat(const CtlResult& r, const char* name) {
    auto v = r.json.Num(name);
    EXPECT_TRUE(v) << "stats lacks " << name << ": " << r.Describe();
    return v.value_or(-1);
  }
  RunResult RedisCli(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"/usr/bin/redis-cli", "-s", redis_sock_.string()};
    a.insert(a.end(), cli_auth_.begin(), cli_auth_.end());
    a.insert(a.end(), args.begin(), args.end());
    return posh_it::Run(a, dir(), 10s);
  }
  // Replaces the stored value of `key` with `bytes` (binary-safe: redis-cli -x from a file).
  void RedisSetRaw(const std::string& key, const std::string& bytes) {
    const fs::path f = dir() / "value.bin";
    { std::ofstream(f, std::ios::binary) << bytes; }
    RunResult r = posh_it::Run({"/bin/sh", "-c",
                                "/usr/bin/redis-cli -s '" + redis_sock_.string() + "' -x SET '" +
                                    key + "' < '" + f.string() + "'"},
                               dir(), 10s);
    ASSERT_EQ(r.status, 0) << r.Describe();
  }
  std::string RedisGetRaw(const std::string& key) {
    RunResult r = RedisCli({"--raw", "GET", key});
    EXPECT_EQ(r.status, 0) << r.Describe();
    std::string v = r.out;
    if (!v.empty() && v.back() == '\n') v.pop_back();  // redis-cli --raw adds one
    return v;
  }

  // Redis with ACLs as the README tells operators: a user "poshd" that may only GET and SET
  // keys under poshd:v1:, an admin user for the test's own redis-cli, the default user off.
  // Returns the password file for poshd.
  fs::path LockDownRedis(const std::string& poshd_password) {
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ACL", "SETUSER", "poshd", "on", ">" + poshd_password, "~poshd:v1:*", "-@all", "+get",
              "+set"},
             {"ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all"},
             {"ACL", "SETUSER", "default", "off"}}) {
      RunResult r = RedisCli(cmd);
      EXPECT_EQ(r.out, "OK\n") << r.Describe();
    }
    cli_auth_ = {"--user", "admin", "--pass", "adminpw", "--no-auth-warning"};
    const fs::path f = dir() / "redis.password";
    { std::ofstream(f) << poshd_password << "\n"; }
    ::chmod(f.c_str(), 0600);
    return f;
  }
  std::vector<std::string> AuthFlags(const fs::path& password_file) const {
    std::vector<std::string> f = RedisFlags();
    f.insert(f.end(), {"--redis-user", "poshd", "--redis-password-file", password_file.string()});
    return f;
  }

  std::vector<std::string> cli_auth_;
  fs::path redis_sock_;
  fs::path key_file_;
  Process redis_;
  Daemon second_;
};

TEST_F(L2, SecondDaemonIsAnsweredFromRedisWithoutFetching) {
  ServeFingerprints("l2.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartBoth());
  POSH_EXPECT_STATUS(Lookup("l2.example.test"), "found", 0);
  EXPECT_EQ(origin_.Count("l2.example.test", kRfcPath), 1);
  // The write is fire and forget: wait for it to land.
  for (int i = 0; i < 100 && Stat(Ctl({"stats"}), "l2_writes") < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Stat(Ctl({"stats"}), "l2_writes"), 1);
  EXPECT_EQ(RedisCli({"EXISTS", "poshd:v1:xmpp-server:l2.example.test"}).out, "1\n");

  CtlResult b = CtlB({"lookup", "l2.example.test"});
  POSH_EXPECT_STATUS(b, "found", 0);
  EXPECT_EQ(origin_.Count("l2.example.test", kRfcPath), 1) << "the second daemon fetched";
  CtlResult v = CtlB({"verify", "l2.example.test", "--cert", origin_.Cert("xmpp").pem.string()});
  EXPECT_EQ(v.json.Str("verdict"), "verified") << v.Describe();
  CtlResult s = CtlB({"stats"});
  EXPECT_EQ(Stat(s, "l2_hits"), 1);
  EXPECT_EQ(Stat(s, "l2_bad_macs"), 0);
  EXPECT_EQ(origin_.Total(), 1);
}

TEST_F(L2, PoisonedEntriesAreNeverServed) {
  ServeFingerprints("p.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartBoth());
  POSH_EXPECT_STATUS(Lookup("p.example.test"), "found", 0);
  const std::string key = "poshd:v1:xmpp-server:p.example.test";
  std::string good;
  for (int i = 0; i < 100 && good.empty(); ++i) {
    good = RedisGetRaw(key);
    if (good.empty()) std::this_thread::sleep_for(20ms);
  }
  ASSERT_GT(good.size(), 32u);
  // An altered byte in the serialized entry (a fingerprint, a lifetime): the MAC fails.
  std::string altered = good;
  altered[altered.size() - 40] ^= 0x01;
  ASSERT_NO_FATAL_FAILURE(RedisSetRaw(key, altered));
  POSH_EXPECT_STATUS(CtlB({"lookup", "p.example.test"}), "found", 0);
  EXPECT_EQ(origin_.Count("p.example.test", kRfcPath), 2) << "a poisoned entry was served";
  CtlResult s = CtlB({"stats"});
  EXPECT_EQ(Stat(s, "l2_bad_macs"), 1);
  EXPECT_EQ(Stat(s, "l2_hits"), 0);

  // No MAC at all, for a domain the origin does not know: still fetched (not found).
  ASSERT_NO_FATAL_FAILURE(RedisSetRaw("poshd:v1:xmpp-server:q.example.test", "forged"));
  CtlResult q = CtlB({"lookup", "q.example.test"});
  EXPECT_NE(q.json.Str("status"), "found") << q.Describe();
  EXPECT_EQ(Stat(CtlB({"stats"}), "l2_bad_macs"), 2);
}

TEST_F(L2, AnEntryKeptAliveInRedisPastItsCertificateIsNeverServed) {
  // A JWK document whose only certificate expires in a few seconds: daemon A caches it until
  // the notAfter and writes it to Redis with that expiry. Someone with write access to Redis
  // (but not the fleet key) keeps the authenticated value alive (PERSIST). Once the
  // certificate has expired, daemon B reads it, judges it by its own clock and refuses it.
  ASSERT_NO_FATAL_FAILURE(StartBoth());  // first: starting two daemons is slow under ASan
  const CertInfo brief = origin_.MakeCert("xmpp.example.test", "brief", {"--valid-seconds", "8"});
  origin_.Set("x.example.test", kRfcPath, Route::Status(404));
  origin_.Set("x.example.test", kDraftPath, Route::Json("{\"keys\":[" + brief.jwk_x5c + "]}"));
  POSH_EXPECT_STATUS(Lookup("x.example.test"), "found", 0);
  const std::string key = "poshd:v1:xmpp-server:x.example.test";
  for (int i = 0; i < 100 && RedisCli({"EXISTS", key}).out != "1\n"; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  const long long ttl = std::stoll(RedisCli({"PTTL", key}).out);
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 8000) << "written with an expiry past the certificate's notAfter";
  EXPECT_EQ(RedisCli({"PERSIST", key}).out, "1\n");
  while (std::chrono::system_clock::now() <
         std::chrono::system_clock::from_time_t(brief.not_after_unix + 1)) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(RedisCli({"EXISTS", key}).out, "1\n") << "the kept-alive entry is gone";
  const int fetched = origin_.Count("x.example.test", kDraftPath);
  CtlResult v = CtlB({"verify", "x.example.test", "--cert", brief.pem.string()});
  EXPECT_NE(v.json.Str("verdict"), "verified") << v.Describe();
  CtlResult s = CtlB({"stats"});
  EXPECT_EQ(Stat(s, "l2_hits"), 0);
  EXPECT_EQ(Stat(s, "l2_misses"), 1);
  EXPECT_EQ(Stat(s, "l2_bad_macs"), 0);  // authentic, and refused all the same
  EXPECT_EQ(origin_.Count("x.example.test", kDraftPath), fetched + 1) << "B did not fetch";
}

TEST_F(L2, LookupsKeepWorkingWhenRedisStops) {
  ServeFingerprints("a.example.test", "xmpp");
  ServeFingerprints("b.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartBoth());
  POSH_EXPECT_STATUS(Lookup("a.example.test"), "found", 0);
  ASSERT_TRUE(redis_.Terminate(5s).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  POSH_EXPECT_STATUS(Lookup("b.example.test"), "found", 0);
  POSH_EXPECT_STATUS(CtlB({"lookup", "a.example.test"}), "found", 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(origin_.Count("b.example.test", kRfcPath), 1);
  EXPECT_GE(Stat(Ctl({"stats"}), "l2_errors"), 1);
  EXPECT_TRUE(daemon_.Running());
  EXPECT_TRUE(second_.Running());
}

TEST_F(L2, ASlowRedisCostsAtMostTheReadBudget) {
  ServeFingerprints("slow.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartBoth());
  // Redis stops answering for 3 s (it is single-threaded: DEBUG SLEEP blocks it).
  Process sleeper = Spawn({"/usr/bin/redis-cli", "-s", redis_sock_.string(), "DEBUG", "SLEEP", "3"},
                          SpawnOptions{});
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  POSH_EXPECT_STATUS(Lookup("slow.example.test"), "found", 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "the lookup waited for Redis";
  EXPECT_EQ(origin_.Count("slow.example.test", kRfcPath), 1);
  EXPECT_GE(Stat(Ctl({"stats"}), "l2_errors"), 1);  // the read over its budget
  sleeper.Wait(10s);
}

TEST_F(L2, AFullRedisChangesNothingButTheCounters) {
  ServeFingerprints("full.example.test", "xmpp");
  ServeFingerprints("full2.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartBoth());
  // maxmemory below what Redis already uses, no eviction: every write is refused (OOM).
  EXPECT_EQ(RedisCli({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).out, "OK\n");
  EXPECT_EQ(RedisCli({"CONFIG", "SET", "maxmemory", "1"}).out, "OK\n");
  POSH_EXPECT_STATUS(Lookup("full.example.test"), "found", 0);
  std::string log;
  for (int i = 0; i < 100 && log.find("SET refused") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
    log = daemon_.Log();
  }
  EXPECT_NE(log.find("redis: SET refused: OOM"), std::string::npos) << log;
  CtlResult s = Ctl({"stats"});
  EXPECT_EQ(Stat(s, "l2_writes"), 0);
  EXPECT_GE(Stat(s, "l2_errors"), 1);
  // Reads still work on a full Redis; the other daemon fetches what was not written.
  POSH_EXPECT_STATUS(CtlB({"lookup", "full.example.test"}), "found", 0);
  EXPECT_EQ(origin_.Count("full.example.test", kRfcPath), 2);
  EXPECT_EQ(Stat(CtlB({"stats"}), "l2_misses"), 1);
  // Room again: writes resume without a restart.
  EXPECT_EQ(RedisCli({"CONFIG", "SET", "maxmemory", "0"}).out, "OK\n");
  POSH_EXPECT_STATUS(Lookup("full2.example.test"), "found", 0);
  for (int i = 0; i < 100 && Stat(Ctl({"stats"}), "l2_writes") < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Stat(Ctl({"stats"}), "l2_writes"), 1);
  EXPECT_TRUE(daemon_.Running());
}

TEST_F(L2, KeyFileReadableByOthersStopsTheStart) {
  ::chmod(key_file_.c_str(), 0644);
  std::string why;
  Daemon d;
  fs::create_directories(dir() / "c");
  EXPECT_FALSE(d.Start(dir() / "c", origin_, RedisFlags(), 3, &why));
  EXPECT_NE(d.Log().find("readable by poshd only"), std::string::npos) << d.Log();
}

TEST_F(L2, AclUserWithOnlyGetAndSetIsEnough) {
  ServeFingerprints("acl.example.test", "xmpp");
  const fs::path password = LockDownRedis("s3cret-poshd");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(AuthFlags(password)));
  ASSERT_TRUE(WaitConnected([this] { return daemon_.Log(); })) << daemon_.Log();
  fs::create_directories(dir() / "b");
  std::string why;
  ASSERT_TRUE(second_.Start(dir() / "b", origin_, AuthFlags(password), 3, &why)) << why;
  ASSERT_TRUE(WaitConnected([this] { return second_.Log(); })) << second_.Log();
  POSH_EXPECT_STATUS(Lookup("acl.example.test"), "found", 0);
  for (int i = 0; i < 100 && Stat(Ctl({"stats"}), "l2_writes") < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Stat(Ctl({"stats"}), "l2_writes"), 1) << daemon_.Log();
  POSH_EXPECT_STATUS(CtlB({"lookup", "acl.example.test"}), "found", 0);
  EXPECT_EQ(origin_.Count("acl.example.test", kRfcPath), 1) << "the second daemon fetched";
  EXPECT_EQ(Stat(CtlB({"stats"}), "l2_hits"), 1);
  EXPECT_EQ(Stat(CtlB({"stats"}), "l2_errors"), 0) << second_.Log();
  // The password is never logged.
  EXPECT_EQ(daemon_.Log().find("s3cret-poshd"), std::string::npos);
}

TEST_F(L2, RefusedAuthIsLoggedAndLookupsGoOn) {
  ServeFingerprints("wrongpw.example.test", "xmpp");
  LockDownRedis("right-password");
  const fs::path wrong = dir() / "wrong.password";
  { std::ofstream(wrong) << "wrong-password\n"; }
  ::chmod(wrong.c_str(), 0600);
  ASSERT_NO_FATAL_FAILURE(StartDaemon(AuthFlags(wrong)));
  std::string log;
  for (int i = 0; i < 200 && log.find("AUTH as poshd refused") == std::string::npos; ++i) {
    std::this_thread::sleep_for(25ms);
    log = daemon_.Log();
  }
  EXPECT_NE(log.find("AUTH as poshd refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong-password"), std::string::npos) << "the password was logged";
  const auto t0 = std::chrono::steady_clock::now();
  POSH_EXPECT_STATUS(Lookup("wrongpw.example.test"), "found", 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(origin_.Count("wrongpw.example.test", kRfcPath), 1);
  EXPECT_GE(Stat(Ctl({"stats"}), "l2_errors"), 1);  // not asked: not connected
  EXPECT_EQ(Stat(Ctl({"stats"}), "l2_writes"), 0);
  EXPECT_TRUE(daemon_.Running());
}

TEST_F(L2, PasswordFileReadableByOthersStopsTheStart) {
  const fs::path pw = dir() / "open.password";
  { std::ofstream(pw) << "pw\n"; }
  ::chmod(pw.c_str(), 0644);
  std::string why;
  Daemon d;
  fs::create_directories(dir() / "c");
  EXPECT_FALSE(d.Start(dir() / "c", origin_, AuthFlags(pw), 3, &why));
  EXPECT_NE(d.Log().find("redis password file"), std::string::npos) << d.Log();
}

// The tier itself on a loop of the test's own (no daemon): the read budget is Redis's, not
// the loop's. A read queued just before the loop stalls (a long iteration: a burst of
// lookups, TLS handshakes on a saturated machine) is answered by Redis, not expired: its
// command still sat in hiredis's buffer when the timer came due. A Redis that does not
// answer still costs at most the budget.
TEST_F(L2, TierBudgetIsRedisTimeNotTheLoopsLateness) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  posh::SystemClock clock;
  posh::l2::L2Stats stats;
  posh::l2::RedisTierOptions o;
  o.address.unix_socket = true;
  o.address.host = redis_sock_.string();
  o.fleet_key = std::string(32, 'k');
  auto tier = std::make_unique<posh::l2::RedisTier>(&loop, clock, o, &stats);
  const auto run_until = [&](const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) uv_run(&loop, UV_RUN_NOWAIT);
    return done();
  };
  ASSERT_TRUE(run_until([&] { return tier->connected(); }, 5000ms));

  for (int round = 0; round < 3; ++round) {
    bool answered = false;
    ASSERT_TRUE(
        tier->Get(posh::cache::Key{"lag" + std::to_string(round) + ".example", "xmpp-server"},
                  [&](std::shared_ptr<const posh::cache::Entry>) { answered = true; }));
    std::this_thread::sleep_for(150ms);  // the loop is late: 3 budgets, command not yet sent
    ASSERT_TRUE(run_until([&] { return answered; }, 5000ms));
  }
  EXPECT_EQ(stats.misses.load(), 3u);  // Redis answered (nothing there) ...
  EXPECT_EQ(stats.errors.load(), 0u);  // ... and no read was declared over budget

  // Redis itself stalls: the read ends within its budget (plus the loop's own latency).
  Process sleeper = Spawn({"/usr/bin/redis-cli", "-s", redis_sock_.string(), "DEBUG", "SLEEP", "2"},
                          SpawnOptions{});
  std::this_thread::sleep_for(200ms);
  bool answered = false;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(tier->Get(posh::cache::Key{"stalled.example", "xmpp-server"},
                        [&](std::shared_ptr<const posh::cache::Entry>) { answered = true; }));
  ASSERT_TRUE(run_until([&] { return answered; }, 5000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(stats.errors.load(), 1u);
  sleeper.Wait(10s);

  tier.reset();
  uv_run(&loop, UV_RUN_NOWAIT);  // the tier's handles close
  run_until([&] { return uv_loop_alive(&loop) == 0; }, 2000ms);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace posh_it
