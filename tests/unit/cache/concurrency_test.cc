// The store under concurrent readers and writers on overlapping keys (run under TSan too).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "cache/store.h"
#include "test_util.h"

namespace posh::cache {
namespace {

using testing::FingerprintRecord;
using testing::K;
using testing::kT0;

constexpr int kKeys = 64;

Key KeyOf(int i) {
  return K("host" + std::to_string(i % 16) + ".example", "svc" + std::to_string(i / 16));
}

// Every entry carries its key in `error`, so a reader can check it got the right one.
std::shared_ptr<const Entry> EntryFor(int i, bool positive) {
  const Key k = KeyOf(i);
  if (positive) {
    auto e = MakePositiveEntry(FingerprintRecord(3600), kT0, Lifetimes{});
    auto copy = std::make_shared<Entry>(*e);
    copy->error = k.domain + "/" + k.service;
    return copy;
  }
  return MakeErrorEntry(k.domain + "/" + k.service, 1, kT0, Lifetimes{});
}

TEST(CacheConcurrencyTest, R16_R19_ConcurrentGetPutEvict) {
  Store store(48, 4);  // smaller than the key set: capacity evictions happen too
  std::atomic<uint64_t> hits{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  const int kThreads = 8;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      for (int iter = 0; iter < 20000; ++iter) {
        const int i = static_cast<int>(rng() % kKeys);
        const Key key = KeyOf(i);
        const std::string expect = key.domain + "/" + key.service;
        const int op = static_cast<int>(rng() % 100);
        if (op < 60) {
          if (auto hit = store.Get(key, kT0 + static_cast<int64_t>(rng() % 40000))) {
            hits.fetch_add(1, std::memory_order_relaxed);
            if (hit->entry == nullptr || hit->entry->error != expect) wrong.fetch_add(1);
          }
        } else if (op < 85) {
          store.Put(key, EntryFor(i, rng() % 2 == 0));
        } else if (op < 93) {
          store.Evict(key);
        } else if (op < 97) {
          if (auto e = store.Peek(key); e && e->error != expect) wrong.fetch_add(1);
        } else if (op < 99) {
          std::string next;
          auto page = store.List(t % 2 ? "" : key.domain, "", 5, &next);
          for (const auto& le : page) {
            if (le.entry->error != le.key.domain + "/" + le.key.service) wrong.fetch_add(1);
          }
          (void)store.Size();
          (void)store.Stats();
        } else if (t == 0 && iter % 1000 == 0) {
          store.Flush();
        } else if (t == 1 && iter % 1000 == 0) {
          store.SetMaxEntries(24 + static_cast<size_t>(rng() % 48));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits.load(), 0u);
  store.SetMaxEntries(48);
  EXPECT_LE(store.Size(), 48u);
  const StoreStats st = store.Stats();
  EXPECT_EQ(st.entries, store.Size());
}

TEST(CacheConcurrencyTest, R20_SaveWhileWriting) {
  testing::TempDir dir;
  const std::string path = dir.File("snap");
  Store store(1000, 8);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop.load()) {
      store.Put(KeyOf(i % kKeys), EntryFor(i % kKeys, i % 3 != 0));
      if (i % 7 == 0) store.Evict(KeyOf((i * 5) % kKeys));
      ++i;
    }
  });
  for (int round = 0; round < 20; ++round) {
    auto saved = store.Save(path, kT0);
    ASSERT_TRUE(saved.ok()) << saved.error().message;
    Store loaded;
    auto n = loaded.Load(path, kT0);
    ASSERT_TRUE(n.ok()) << n.error().message;
    EXPECT_EQ(*n, *saved);
  }
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace posh::cache
