// In-process micro-benchmarks (Google Benchmark): the pieces of poshd's hot paths without
// gRPC or the network. Run: build-bench/bench/micro_bench (bench/run.sh does it too).
//
//   BM_ParseRfc7711        core::ParseDocument on an RFC 7711 fingerprints document (2 keys)
//   BM_ParseSeedJwkSet     core::ParseDocument on the seed draft's JWK Sets (x5c + RSA n/e)
//   BM_BuildRecord         core::BuildRecord from the parsed RFC 7711 document
//   BM_Match*              core::Match of a presented leaf against a cached record
//   BM_StoreGetHit         cache::Store::Get hit, 1..N threads, one hot key / 100 000 keys
//   BM_ServiceLookupHit    PoshService::Lookup hit (+ FillLookupResponse, as the RPC does)
//   BM_ServiceVerifyHit    PoshService::Verify hit (Match included)
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/store.h"
#include "core/certificate.h"
#include "core/document.h"
#include "core/domain.h"
#include "core/matcher.h"
#include "core/publish.h"
#include "core/record.h"
#include "server/answer_cache.h"
#include "server/event_loop.h"
#include "server/grpc_service.h"
#include "server/posh_service.h"
#include "server/wire.h"
#include "util/clock.h"

namespace {

using namespace posh;

// A fresh self-signed EC P-256 certificate (DER), valid from yesterday for a year.
std::vector<uint8_t> MakeCertDer(const std::string& cn) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x),
                   static_cast<long>(std::hash<std::string>{}(cn)&0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(x), -86400);
  X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  unsigned char* buf = nullptr;
  int n = i2d_X509(x, &buf);
  std::vector<uint8_t> der(buf, buf + n);
  OPENSSL_free(buf);
  X509_free(x);
  EVP_PKEY_free(key);
  return der;
}

core::Certificate Parse(const std::vector<uint8_t>& der) {
  auto c = core::ParseCertificateDer(der);
  if (!c) throw std::runtime_error("cannot parse generated certificate");
  return std::move(c).value();
}

struct Fixture {
  core::Certificate leaf = Parse(MakeCertDer("xmpp.bench.test"));
  core::Certificate next = Parse(MakeCertDer("next.bench.test"));
  core::Certificate other = Parse(MakeCertDer("other.bench.test"));
  // RFC 7711 document with two fingerprints (current and next certificate), as published.
  std::string rfc7711 = core::PublishFingerprints({leaf, next}, 86400);
  std::vector<std::string> seed_sets;
  std::shared_ptr<const core::PoshRecord> record;

  Fixture() {
    auto doc = core::ParseDocument(rfc7711, time(nullptr));
    if (!doc) throw std::runtime_error("rfc7711 document does not parse");
    auto rec = core::BuildRecord(*doc);
    if (!rec) throw std::runtime_error("cannot build record");
    record = std::make_shared<const core::PoshRecord>(std::move(rec).value());
    // Each seed JWK Set as its own body (the file is a JSON array of three sets).
    std::ifstream in(POSH_SEED_EXAMPLES);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string all = ss.str();
    int depth = 0;
    size_t start = 0;
    bool in_str = false;
    for (size_t i = 1; i < all.size(); ++i) {  // skip the array's '['
      char c = all[i];
      if (in_str) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_str = false;
        continue;
      }
      if (c == '"')
        in_str = true;
      else if (c == '{' && depth++ == 0)
        start = i;
      else if (c == '}' && --depth == 0)
        seed_sets.push_back(all.substr(start, i - start + 1));
    }
    if (seed_sets.empty()) throw std::runtime_error("no seed JWK Sets");
  }
};

Fixture& F() {
  static Fixture f;
  return f;
}

// 2012-06-01: every seed key is valid then (tests/unit/core/seed_vectors_test.cc).
constexpr int64_t kSeedNow = 1338508800;

void BM_ParseRfc7711(benchmark::State& state) {
  const auto& f = F();
  const int64_t now = time(nullptr);
  for (auto _ : state) {
    auto doc = core::ParseDocument(f.rfc7711, now);
    benchmark::DoNotOptimize(doc);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(f.rfc7711.size()));
}
BENCHMARK(BM_ParseRfc7711);

void BM_ParseSeedJwkSet(benchmark::State& state) {
  const auto& f = F();
  const std::string& body = f.seed_sets[static_cast<size_t>(state.range(0)) % f.seed_sets.size()];
  for (auto _ : state) {
    auto doc = core::ParseDocument(body, kSeedNow);
    if (!doc) state.SkipWithError("seed JWK Set does not parse");
    benchmark::DoNotOptimize(doc);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ParseSeedJwkSet)->DenseRange(0, 2);

void BM_BuildRecord(benchmark::State& state) {
  const auto& f = F();
  auto doc = core::ParseDocument(f.rfc7711, time(nullptr));
  for (auto _ : state) {
    auto rec = core::BuildRecord(*doc);
    benchmark::DoNotOptimize(rec);
  }
}
BENCHMARK(BM_BuildRecord);

void BM_MatchFirstKey(benchmark::State& state) {
  const auto& f = F();
  const int64_t now = time(nullptr);
  for (auto _ : state) {
    auto m = core::Match(*f.record, f.leaf, now);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_MatchFirstKey);

void BM_MatchNoMatch(benchmark::State& state) {
  const auto& f = F();
  const int64_t now = time(nullptr);
  for (auto _ : state) {
    auto m = core::Match(*f.record, f.other, now);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_MatchNoMatch);

void BM_ParseLeafDer(benchmark::State& state) {
  const auto& f = F();
  for (auto _ : state) {
    auto c = core::ParseCertificateDer(f.leaf.der);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_ParseLeafDer);

// ---- cache::Store::Get

cache::Key DomainKey(size_t i) {
  return cache::Key{"host" + std::to_string(i) + ".bench.test", "xmpp-server"};
}

struct StoreFixture {
  SystemClock clock;
  cache::Store store{200000};
  std::shared_ptr<const cache::Entry> entry;
  StoreFixture() {
    entry = cache::MakePositiveEntry(F().record, clock.NowMs(), cache::Lifetimes{});
    for (size_t i = 0; i < 100000; ++i) store.Put(DomainKey(i), entry);
  }
};

StoreFixture& SF() {
  static StoreFixture f;
  return f;
}

// range(0) == 1: every thread reads the same hot key; 0: keys spread over 100 000 entries.
void BM_StoreGetHit(benchmark::State& state) {
  auto& sf = SF();
  const bool hot = state.range(0) == 1;
  std::vector<cache::Key> keys;
  for (size_t i = 0; i < 1024; ++i)
    keys.push_back(
        DomainKey(hot ? 0 : (i * 97 + static_cast<size_t>(state.thread_index()) * 7919) % 100000));
  const int64_t now = sf.clock.NowMs();
  size_t i = 0;
  for (auto _ : state) {
    auto hit = sf.store.Get(keys[i++ & 1023], now);
    benchmark::DoNotOptimize(hit);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreGetHit)->Arg(1)->Arg(0)->ThreadRange(1, 4)->UseRealTime();

// ---- PoshService hit path (the loop is never started: hits never touch it).

struct ServiceFixture {
  SystemClock clock;
  cache::Store store{1000};
  server::EventLoop loop;
  server::PoshService service{loop, store, clock, server::ServiceOptions{},
                              [](uv_loop_t*) { return std::unique_ptr<fetch::Fetcher>(); }};
  cache::Key key{"xmpp.bench.test", "xmpp-server"};
  std::shared_ptr<const core::Certificate> leaf = std::make_shared<core::Certificate>(F().leaf);
  ServiceFixture() {
    store.Put(key, cache::MakePositiveEntry(F().record, clock.NowMs(), cache::Lifetimes{}));
  }
};

ServiceFixture& SvcF() {
  static ServiceFixture f;
  return f;
}

void BM_ServiceLookupHit(benchmark::State& state) {
  auto& sf = SvcF();
  for (auto _ : state) {
    bool answered = false;
    sf.service.Lookup(sf.key, false, [&](server::LookupAnswer a) {
      answered = a.from_cache;
      benchmark::DoNotOptimize(a);
    });
    if (!answered) state.SkipWithError("not a cache hit");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServiceLookupHit)->ThreadRange(1, 4)->UseRealTime();

// A cached Lookup as an RPC handler with generated messages answers it: parse the request
// message, normalise the key, look up, fill a LookupResponse, serialise it into a slice.
void BM_RpcLookupHitMessages(benchmark::State& state) {
  auto& sf = SvcF();
  posh::v1::LookupRequest request;
  request.set_domain("xmpp.bench.test");
  const std::string bytes = request.SerializeAsString();
  for (auto _ : state) {
    posh::v1::LookupRequest req;
    if (!req.ParseFromString(bytes)) state.SkipWithError("parse");
    cache::Key key{core::NormalizeDomain(req.domain()).value(),
                   core::NormalizeService(req.service()).value()};
    server::LookupAnswer a;
    if (!sf.service.LookupCached(key, &a)) state.SkipWithError("not a cache hit");
    posh::v1::LookupResponse resp;
    server::FillLookupResponse(key, a, &resp);
    grpc::Slice out = server::SerializeToSlice(resp);
    grpc::ByteBuffer buffer(&out, 1);
    benchmark::DoNotOptimize(buffer);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RpcLookupHitMessages);

// The same as poshd's raw Lookup handler does it: the request read in place (wire.h), the
// kept answer's bytes referenced (AnswerCache).
void BM_RpcLookupHitRaw(benchmark::State& state) {
  auto& sf = SvcF();
  static server::AnswerCache answers;
  posh::v1::LookupRequest request;
  request.set_domain("xmpp.bench.test");
  const std::string bytes = request.SerializeAsString();
  for (auto _ : state) {
    server::wire::LookupRequestView req;
    if (!server::wire::ParseLookupRequest(bytes, &req).empty()) state.SkipWithError("parse");
    cache::Key key{core::NormalizeDomain(req.domain).value(),
                   core::NormalizeService(req.service).value()};
    server::LookupAnswer a;
    if (!sf.service.LookupCached(key, &a)) state.SkipWithError("not a cache hit");
    grpc::Slice out;
    if (!answers.Get(key, a.entry, &out)) {
      posh::v1::LookupResponse resp;
      server::FillLookupResponse(key, a, &resp);
      out = server::SerializeToSlice(resp);
      answers.Put(key, a.entry, out);
    }
    grpc::ByteBuffer buffer(&out, 1);
    benchmark::DoNotOptimize(buffer);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RpcLookupHitRaw)->ThreadRange(1, 2)->UseRealTime();

void BM_ServiceVerifyHit(benchmark::State& state) {
  auto& sf = SvcF();
  for (auto _ : state) {
    bool ok = false;
    sf.service.Verify(sf.key, sf.leaf,
                      [&](server::VerifyAnswer v) { ok = v.verdict == core::Verdict::kVerified; });
    if (!ok) state.SkipWithError("not verified");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ServiceVerifyHit)->ThreadRange(1, 2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
