// make_snapshot: writes a valid poshd cache snapshot of N RFC 7711 entries (benchmarks 5-6 of
// issue 6), through the daemon's own code: core::ParseDocument + core::BuildRecord for each
// document, cache::Store::Put, cache::Store::Save.
//
//   make_snapshot --entries N --out PATH [--service S] [--measure]
//   make_snapshot --load-only PATH      (times Store::Load of an existing snapshot)
//
// Entry i: domain d<i>.bench.test, service xmpp-server (default), one descriptor with a
// sha-256 and a sha-512 fingerprint (distinct per entry), source_url
// https://DOMAIN/.well-known/posh/SERVICE.json, expires in 30 days (the entry's lifetime is
// capped by the store's max TTL, 24 h: a snapshot stays loadable for a day).
//
// --measure also reports the heap cost per entry in process (glibc mallinfo2, bytes in use):
// after the Puts, and after loading the written file into a fresh Store (the daemon's path).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "cache/store.h"
#include "core/base64.h"
#include "core/document.h"
#include "core/hash.h"
#include "core/record.h"

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t HeapInUse() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

int Usage() {
  std::fprintf(stderr,
               "usage: make_snapshot --entries N --out PATH [--service S] [--measure]\n"
               "       make_snapshot --load-only PATH\n");
  return 2;
}

// Loads `path` into a fresh Store as poshd does at start; reports heap per entry and time.
int LoadAndReport(const std::string& path, double put_bytes_per_entry) {
  using namespace posh;
  const size_t heap0 = HeapInUse();
  cache::Store loaded(400000);
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  auto r = loaded.Load(path, NowMs());
  const std::clock_t c1 = std::clock();
  const auto t1 = std::chrono::steady_clock::now();
  if (!r) {
    std::fprintf(stderr, "make_snapshot: load: %s\n", r.error().message.c_str());
    return 1;
  }
  const size_t heap1 = HeapInUse();
  std::printf(
      "STORE_MEMORY entries=%zu put_heap_bytes_per_entry=%.1f "
      "load_heap_bytes_per_entry=%.1f load_ms=%.1f load_cpu_ms=%.1f\n",
      *r, put_bytes_per_entry,
      static_cast<double>(heap1 - heap0) / static_cast<double>(std::max<size_t>(1, *r)),
      std::chrono::duration<double, std::milli>(t1 - t0).count(),
      1000.0 * static_cast<double>(c1 - c0) / CLOCKS_PER_SEC);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace posh;
  size_t n = 0;
  std::string out;
  std::string service = "xmpp-server";
  bool measure = false;
  bool load_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--entries" && i + 1 < argc) {
      n = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--service" && i + 1 < argc) {
      service = argv[++i];
    } else if (a == "--measure") {
      measure = true;
    } else if (a == "--load-only" && i + 1 < argc) {
      out = argv[++i];
      load_only = true;
    } else {
      return Usage();
    }
  }
  if (load_only) return LoadAndReport(out, 0);
  if (n == 0 || out.empty()) return Usage();

  const int64_t now_ms = NowMs();
  const int64_t expires = 30 * 86400;
  cache::Lifetimes lifetimes;
  const size_t heap0 = HeapInUse();
  size_t heap1 = 0;
  {
    cache::Store store(n + n / 2 + 64);
    for (size_t i = 0; i < n; ++i) {
      const std::string domain = "d" + std::to_string(i) + ".bench.test";
      const std::vector<uint8_t> seed(domain.begin(), domain.end());
      const std::string body = "{\"fingerprints\":[{\"sha-256\":\"" +
                               core::EncodeBase64(core::Digest(core::HashAlg::kSha256, seed)) +
                               "\",\"sha-512\":\"" +
                               core::EncodeBase64(core::Digest(core::HashAlg::kSha512, seed)) +
                               "\"}],\"expires\":" + std::to_string(expires) + "}";
      auto doc = core::ParseDocument(body, now_ms / 1000);
      if (!doc) {
        std::fprintf(stderr, "make_snapshot: parse: %s\n", doc.error().message.c_str());
        return 1;
      }
      auto rec = core::BuildRecord(*doc);
      if (!rec) {
        std::fprintf(stderr, "make_snapshot: record: %s\n", rec.error().message.c_str());
        return 1;
      }
      rec->source_url = "https://" + domain + "/.well-known/posh/" + service + ".json";
      auto entry = cache::MakePositiveEntry(
          std::make_shared<const core::PoshRecord>(std::move(*rec)), now_ms, lifetimes);
      if (!entry) {
        std::fprintf(stderr, "make_snapshot: entry has no lifetime\n");
        return 1;
      }
      store.Put(cache::Key{domain, service}, std::move(entry));
    }
    heap1 = HeapInUse();
    auto saved = store.Save(out, now_ms);
    if (!saved) {
      std::fprintf(stderr, "make_snapshot: %s\n", saved.error().message.c_str());
      return 1;
    }
    std::printf("SNAPSHOT entries=%zu path=%s\n", *saved, out.c_str());
  }
  if (measure) return LoadAndReport(out, (heap1 - heap0) / static_cast<double>(n));
  return 0;
}
