// Walking skeleton: the end-to-end paths every later test builds on.
#include <sys/stat.h>

#include "harness.h"

namespace posh_it {
namespace {

using namespace std::chrono_literals;

class Skeleton : public PoshTest {};

TEST_F(Skeleton, R3_R10_LookupFoundRfc7711) {
  ServeFingerprints("found.example.test", "xmpp", 3600);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long before = UnixNow();
  CtlResult r = Lookup("found.example.test");
  SCOPED_TRACE(r.Describe());
  POSH_EXPECT_STATUS(r, "found", 0);
  const Json& j = r.json;
  for (const char* m : {"domain", "service", "status", "delegated_to", "format", "keys",
                        "expires_at", "from_cache"})
    EXPECT_TRUE(j.Has(m)) << "missing member " << m;
  EXPECT_EQ(j.Str("domain"), "found.example.test");
  EXPECT_EQ(j.Str("service"), "xmpp-server");
  EXPECT_TRUE(j.IsNull("delegated_to"));
  EXPECT_EQ(j.Str("format"), "rfc7711");
  EXPECT_EQ(j.Bool("from_cache"), false);
  auto keys = j.Arr("keys");
  ASSERT_TRUE(keys);
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  std::string unpadded = fp.substr(0, fp.find('='));
  bool seen = false;
  for (auto k : *keys) {
    auto v = StrOf(k, "sha-256");
    if (v && (*v == fp || *v == unpadded)) seen = true;
  }
  EXPECT_TRUE(seen) << "keys lack sha-256 " << fp;
  auto exp = j.Str("expires_at");
  ASSERT_TRUE(exp);
  auto t = ParseRfc3339(*exp);
  ASSERT_TRUE(t) << "expires_at is not RFC 3339: " << *exp;
  EXPECT_NEAR(static_cast<double>(*t), static_cast<double>(before + 3600), 30.0);
  EXPECT_EQ(origin_.Count("found.example.test", kRfcPath), 1);
  EXPECT_EQ(origin_.Count("found.example.test", kDraftPath), 0) << "draft URL asked after a 200";
}

TEST_F(Skeleton, R3_R5_NotFoundOnBothUrls) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("nothing.example.test");
  POSH_EXPECT_STATUS(r, "not_found", 1);
  EXPECT_EQ(origin_.Count("nothing.example.test", kRfcPath), 1);
  EXPECT_EQ(origin_.Count("nothing.example.test", kDraftPath), 1);
}

TEST_F(Skeleton, R5_Status500IsError) {
  origin_.Set("broken.example.test", kRfcPath, Route::Status(500));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("broken.example.test");
  POSH_EXPECT_STATUS(r, "error", 2);
  EXPECT_EQ(origin_.Count("broken.example.test", kDraftPath), 0)
      << "a 500 must not fall back to the draft URL (only 404/410 do)";
}

TEST_F(Skeleton, R9_MalformedJsonIsError) {
  origin_.Set("malformed.example.test", kRfcPath, Route::Json("{\"fingerprints\": [ {\"sha-256\""));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("malformed.example.test"), "error", 2);
}

TEST_F(Skeleton, R4_WrongNameCertIsError) {
  ServeFingerprints("wrongname.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("wrongname.example.test"), "error", 2);
  EXPECT_EQ(origin_.CountHost("wrongname.example.test"), 0)
      << "an HTTP request was sent over a TLS session with the wrong certificate";
}

TEST_F(Skeleton, R7_SilentServerTimesOut) {
  const double timeout = 2;
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, timeout));
  auto t0 = Clock::now();
  CtlResult r = Lookup("never.example.test");
  double took = SecondsSince(t0);
  POSH_EXPECT_STATUS(r, "error", 2);
  EXPECT_LT(took, timeout + 3) << "the retrieval outlived --fetch-timeout";
  EXPECT_GE(origin_.CountPort(origin_.silent_port()), 1)
      << "connect-to rule for never.example.test";
}

TEST_F(Skeleton, Cli_NoDaemonExit69) {
  CtlResult r = CtlRaw({"--socket", (dir() / "none.sock").string(), "lookup", "x.example.test"});
  EXPECT_EQ(r.status(), 69) << r.Describe();
  r = CtlRaw({"--socket", (dir() / "none.sock").string(), "--json", "lookup", "x.example.test"});
  EXPECT_EQ(r.status(), 69) << r.Describe();
}

TEST_F(Skeleton, R1_BadDomainExit64) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("not a domain");
  EXPECT_EQ(r.status(), 64) << r.Describe();
  EXPECT_EQ(origin_.Total(), 0);
}

TEST_F(Skeleton, Cli_PoshdSocketEnvHonoured) {
  ServeFingerprints("env.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = CtlRaw({"--json", "lookup", "env.example.test"}, 30s,
                       {{"POSHD_SOCKET", daemon_.socket().string()}});
  POSH_EXPECT_STATUS(r, "found", 0);
  // Human output too.
  r = CtlRaw({"lookup", "env.example.test"}, 30s, {{"POSHD_SOCKET", daemon_.socket().string()}});
  EXPECT_EQ(r.status(), 0) << r.Describe();
  EXPECT_FALSE(r.run.out.empty());
}

TEST_F(Skeleton, Lifecycle_SigtermExit0RemovesSocket) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_TRUE(fs::is_socket(daemon_.socket()));
  auto st = daemon_.Stop(10s);
  EXPECT_EQ(st, std::optional<int>(0));
  EXPECT_FALSE(fs::exists(daemon_.socket()));
}

TEST_F(Skeleton, Lifecycle_SigintExit0) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  daemon_.Signal(SIGINT);
  auto st = daemon_.Wait(10s);
  EXPECT_EQ(st, std::optional<int>(0));
  EXPECT_FALSE(fs::exists(daemon_.socket()));
}

TEST_F(Skeleton, Lifecycle_SocketMode0660) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  struct stat st {};
  ASSERT_EQ(::stat(daemon_.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u) << std::oct << (st.st_mode & 07777);
}

TEST_F(Skeleton, Lifecycle_SocketModeFlag) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--socket-mode", "0600"}));
  struct stat st {};
  ASSERT_EQ(::stat(daemon_.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << (st.st_mode & 07777);
}

}  // namespace
}  // namespace posh_it
