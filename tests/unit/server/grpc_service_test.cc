// ResolverGrpcService in process: a real gRPC server on a temporary unix socket in front of
// PoshService with a LoopFetcher and a FakeClock, called with the generated stubs and with
// raw bytes. Checks the raw Lookup/Verify methods: answers equal what the generated code
// would send, a hit's kept answer never outlives its entry, malformed requests are refused.
#include "server/grpc_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "core/base64.h"
#include "support/fake_clock.h"
#include "support/loop_fetcher.h"
#include "support/test_certs.h"

namespace posh::server {
namespace {

using posh::testing::LoopFetcher;

constexpr int64_t kT0 = posh::testing::kNow * 1000;

std::string DocFor(const core::Certificate& cert, int64_t expires) {
  return R"({"fingerprints":[{"sha-256":")" +
         core::EncodeBase64(core::Digest(core::HashAlg::kSha256, cert.der)) + R"("}],"expires":)" +
         std::to_string(expires) + "}";
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(kT0);
    service_ =
        std::make_unique<PoshService>(loop_, store_, clock_, ServiceOptions{}, [this](uv_loop_t*) {
          auto f = std::make_unique<LoopFetcher>(loop_);
          fetcher_ = f.get();
          return f;
        });
    loop_.Start([this] { service_->StartOnLoop(); }, [this] { service_->StopOnLoop(); });
    std::promise<void> ready;
    loop_.Post([&] { ready.set_value(); });
    ready.get_future().wait();

    dir_ = std::filesystem::temp_directory_path() /
           ("posh-grpc-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    const std::string address = "unix:" + (dir_ / "s.sock").string();
    rpc_ = std::make_unique<ResolverGrpcService>(*service_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(rpc_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = posh::v1::Resolver::NewStub(channel_);
  }
  void TearDown() override {
    server_->Shutdown();
    loop_.Stop();
    std::filesystem::remove_all(dir_);
  }

  // Lookup through the stub; a miss is answered by `body` (HTTP 200) when given.
  posh::v1::LookupResponse Lookup(const std::string& domain, const std::string* body = nullptr,
                                  uint64_t fetch_number = 0) {
    posh::v1::LookupRequest req;
    req.set_domain(domain);
    posh::v1::LookupResponse resp;
    auto done = std::async(std::launch::async, [&] {
      grpc::ClientContext ctx;
      return stub_->Lookup(&ctx, req, &resp);
    });
    if (body != nullptr) {
      EXPECT_TRUE(fetcher_->WaitStarted(fetch_number));
      fetcher_->AnswerStatus(200, *body);
    }
    grpc::Status st = done.get();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Raw(const std::string& method, const std::string& bytes, std::string* answer) {
    grpc::GenericStub generic(channel_);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext ctx;
    std::promise<grpc::Status> p;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status st) { p.set_value(std::move(st)); });
    grpc::Status st = p.get_future().get();
    std::vector<grpc::Slice> slices;
    answer->clear();
    if (st.ok() && response.Dump(&slices).ok()) {
      for (auto& s : slices) answer->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return st;
  }

  core::Certificate leaf_ =
      posh::testing::MakeCert(posh::testing::RsaKey(), posh::testing::kNow - posh::testing::kDay,
                              posh::testing::kNow + posh::testing::kYear, "xmpp.example", 21);
  FakeClock clock_;
  EventLoop loop_;
  cache::Store store_{1000};
  std::unique_ptr<PoshService> service_;
  LoopFetcher* fetcher_ = nullptr;
  std::filesystem::path dir_;
  std::unique_ptr<ResolverGrpcService> rpc_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<posh::v1::Resolver::Stub> stub_;
};

TEST_F(GrpcServiceTest, LookupHitIsTheGeneratedAnswerAndStaysTheSame) {
  const std::string doc = DocFor(leaf_, 3600);
  auto first = Lookup("a.example", &doc, 1);
  EXPECT_EQ(first.status(), posh::v1::LOOKUP_STATUS_FOUND);
  EXPECT_FALSE(first.from_cache());

  auto second = Lookup("A.Example");  // R1: the same key
  EXPECT_TRUE(second.from_cache());
  // Apart from from_cache, the hit says what the retrieval said.
  first.set_from_cache(true);
  EXPECT_EQ(second.SerializeAsString(), first.SerializeAsString());

  // Raw: byte-identical answers, and exactly what FillLookupResponse + protobuf would send.
  posh::v1::LookupRequest req;
  req.set_domain("a.example");
  std::string a1, a2;
  ASSERT_TRUE(Raw("/posh.v1.Resolver/Lookup", req.SerializeAsString(), &a1).ok());
  ASSERT_TRUE(Raw("/posh.v1.Resolver/Lookup", req.SerializeAsString(), &a2).ok());
  EXPECT_EQ(a1, a2);
  auto entry = store_.Peek(cache::Key{"a.example", "xmpp-server"});
  ASSERT_NE(entry, nullptr);
  posh::v1::LookupResponse expected;
  FillLookupResponse(cache::Key{"a.example", "xmpp-server"}, LookupAnswer{entry, true, false},
                     &expected);
  EXPECT_EQ(a1, expected.SerializeAsString());
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  EXPECT_EQ(service_->stats().cache_hits.load(), 3u);
  EXPECT_EQ(service_->stats().lookups.load(), 4u);
}

TEST_F(GrpcServiceTest, KeptAnswerNeverOutlivesItsEntry) {
  const std::string doc1 = DocFor(leaf_, 3600);
  Lookup("b.example", &doc1, 1);
  auto hit = Lookup("b.example");
  ASSERT_EQ(hit.keys_size(), 1);
  const std::string old_value = hit.keys(0).fingerprints(0).value();

  // The origin publishes another certificate; the entry is evicted and retrieved again.
  auto other = posh::testing::MakeCert(posh::testing::EcKey(), posh::testing::kNow - 10,
                                       posh::testing::kNow + 1000, "other", 22);
  const std::string doc2 = DocFor(other, 7200);
  {
    posh::v1::EvictRequest req;
    req.set_domain("b.example");
    posh::v1::EvictResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Evict(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.evicted());
  }
  auto fresh = Lookup("b.example", &doc2, 2);
  EXPECT_FALSE(fresh.from_cache());
  auto hit2 = Lookup("b.example");
  EXPECT_TRUE(hit2.from_cache());
  ASSERT_EQ(hit2.keys_size(), 1);
  EXPECT_NE(hit2.keys(0).fingerprints(0).value(), old_value);
  EXPECT_EQ(hit2.expires_at().seconds(), hit.expires_at().seconds() + 3600);

  // Past its lifetime the entry is not served at all (a new retrieval answers).
  clock_.Advance(7200 * 1000 + 1);
  auto after = Lookup("b.example", &doc2, 3);
  EXPECT_FALSE(after.from_cache());
}

TEST_F(GrpcServiceTest, VerifyHitAndMissAnswerTheSame) {
  const std::string doc = DocFor(leaf_, 3600);
  posh::v1::VerifyRequest req;
  req.set_domain("c.example");
  req.add_presented_chain(std::string(leaf_.der.begin(), leaf_.der.end()));
  req.add_presented_chain("the rest of the chain is not read");
  posh::v1::VerifyResponse miss;
  {
    auto done = std::async(std::launch::async, [&] {
      grpc::ClientContext ctx;
      return stub_->Verify(&ctx, req, &miss);
    });
    ASSERT_TRUE(fetcher_->WaitStarted(1));
    fetcher_->AnswerStatus(200, doc);
    ASSERT_TRUE(done.get().ok());
  }
  EXPECT_EQ(miss.verdict(), posh::v1::VERDICT_VERIFIED);
  EXPECT_FALSE(miss.from_cache());
  EXPECT_EQ(miss.matched_key_index(), 0);
  EXPECT_EQ(miss.record().status(), posh::v1::LOOKUP_STATUS_FOUND);

  posh::v1::VerifyResponse hit;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Verify(&ctx, req, &hit).ok());
  EXPECT_TRUE(hit.from_cache());
  miss.set_from_cache(true);
  miss.mutable_record()->set_from_cache(true);
  EXPECT_EQ(hit.SerializeAsString(), miss.SerializeAsString());

  // Another certificate against the same cached record.
  auto other = posh::testing::MakeCert(posh::testing::EcKey(), posh::testing::kNow - 10,
                                       posh::testing::kNow + 1000, "other", 23);
  req.set_presented_chain(0, std::string(other.der.begin(), other.der.end()));
  posh::v1::VerifyResponse no;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->Verify(&ctx2, req, &no).ok());
  EXPECT_EQ(no.verdict(), posh::v1::VERDICT_NOT_VERIFIED);
  EXPECT_EQ(no.matched_key_index(), -1);
  EXPECT_NE(no.reason().find("no descriptor matches"), std::string::npos) << no.reason();
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  EXPECT_EQ(service_->stats().verifies.load(), 3u);
}

TEST_F(GrpcServiceTest, MalformedRequestsAreInvalidArgument) {
  std::string answer;
  struct Case {
    const char* method;
    std::string bytes;
    const char* says;
  } cases[] = {
      {"/posh.v1.Resolver/Lookup",
       std::string("\x0a\x09"
                   "short",
                   7),
       "malformed LookupRequest"},
      {"/posh.v1.Resolver/Lookup", std::string("\x0b", 1), "malformed LookupRequest"},
      {"/posh.v1.Resolver/Lookup", "", "empty"},
      {"/posh.v1.Resolver/Lookup", std::string("\x0a\x03\xff\xfe\xfd", 5), "UTF-8"},
      {"/posh.v1.Resolver/Verify", std::string("\x1a\x7f", 2), "malformed VerifyRequest"},
      {"/posh.v1.Resolver/Verify", std::string("\x0a\x01x", 3), "presented_chain is empty"},
      {"/posh.v1.Resolver/Verify",
       std::string("\x0a\x01x\x1a\x03"
                   "abc",
                   8),
       "not a DER certificate"},
  };
  for (const auto& c : cases) {
    grpc::Status st = Raw(c.method, c.bytes, &answer);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.says;
    EXPECT_NE(st.error_message().find(c.says), std::string::npos) << st.error_message();
  }
  EXPECT_EQ(service_->stats().invalid_requests.load(), std::size(cases));
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);
}

}  // namespace
}  // namespace posh::server
