// The hot path (Store::Get) must not allocate: counts operator new calls on this thread.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "cache/store.h"
#include "test_util.h"

namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace

// Replacements for the whole test binary; they only count while g_counting is set.
// GCC 12 at -O2 pairs the inlined malloc/free wrongly and warns (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace posh::cache {
namespace {

using testing::FingerprintRecord;
using testing::K;
using testing::kT0;

TEST(CacheHotPathTest, GetDoesNotAllocate) {
  Store store;
  const Key hit_key = K("a-rather-long-domain-name-beyond-sso.example.com", "xmpp-client");
  const Key miss_key = K("another-rather-long-domain-name.example.org", "xmpp-server");
  store.Put(hit_key, MakePositiveEntry(FingerprintRecord(3600), kT0, Lifetimes{}));
  g_counting = true;
  g_allocations = 0;
  size_t found = 0;
  for (int i = 0; i < 1000; ++i) {
    auto hit = store.Get(hit_key, kT0 + i);
    found += hit.has_value();
    found += store.Get(miss_key, kT0).has_value();
  }
  const size_t allocations = g_allocations;
  g_counting = false;
  EXPECT_EQ(found, 1000u);
  EXPECT_EQ(allocations, 0u);
  // Sanity: the counter works.
  g_counting = true;
  g_allocations = 0;
  auto* p = new std::string(100, 'x');
  g_counting = false;
  EXPECT_GE(g_allocations, 1u);
  delete p;
}

}  // namespace
}  // namespace posh::cache
