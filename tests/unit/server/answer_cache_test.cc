// AnswerCache: kept answers are found only for the same entry under the same key, and the
// cache stays within its byte budget.
#include "server/answer_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace posh::server {
namespace {

std::shared_ptr<const cache::Entry> NewEntry() {
  auto e = std::make_shared<cache::Entry>();
  e->status = cache::EntryStatus::kNotFound;
  return e;
}

// "d" + std::to_string(i) + suffix, by appending: GCC 12 at -O3 reports a false -Wrestrict in
// operator+(const char*, std::string&&) (GCC bug 105329).
std::string Numbered(const char* prefix, size_t i, const char* suffix = "") {
  std::string s(prefix);
  s.append(std::to_string(i)).append(suffix);
  return s;
}

std::string Str(const grpc::Slice& s) {
  return std::string(reinterpret_cast<const char*>(s.begin()), s.size());
}

TEST(AnswerCache, HitOnlyForTheSameEntryAndKey) {
  AnswerCache answers;
  const cache::Key key{"example.com", "xmpp-server"};
  auto entry = NewEntry();
  grpc::Slice out;
  EXPECT_FALSE(answers.Get(key, entry, &out));
  answers.Put(key, entry, grpc::Slice(std::string("answer-1")));
  ASSERT_TRUE(answers.Get(key, entry, &out));
  EXPECT_EQ(Str(out), "answer-1");

  // Another key holding the same entry object is not given this key's answer.
  EXPECT_FALSE(answers.Get(cache::Key{"other.example", "xmpp-server"}, entry, &out));
  EXPECT_FALSE(answers.Get(cache::Key{"example.com", "xmpp-client"}, entry, &out));
  // A refreshed record is a new entry: no kept answer until one is put.
  auto refreshed = NewEntry();
  EXPECT_FALSE(answers.Get(key, refreshed, &out));
  answers.Put(key, refreshed, grpc::Slice(std::string("answer-2")));
  ASSERT_TRUE(answers.Get(key, refreshed, &out));
  EXPECT_EQ(Str(out), "answer-2");
  // Replacing the answer of the same entry keeps one.
  answers.Put(key, refreshed, grpc::Slice(std::string("answer-3")));
  ASSERT_TRUE(answers.Get(key, refreshed, &out));
  EXPECT_EQ(Str(out), "answer-3");
  EXPECT_EQ(answers.Size(), 2u);
}

TEST(AnswerCache, DoesNotKeepDroppedEntriesAlive) {
  AnswerCache answers;
  const cache::Key key{"example.com", "xmpp-server"};
  auto entry = NewEntry();
  std::weak_ptr<const cache::Entry> weak = entry;
  answers.Put(key, entry, grpc::Slice(std::string("a")));
  entry.reset();  // the store dropped it: its record is freed, the answer is never served
  EXPECT_TRUE(weak.expired());
}

// An entry allocated apart from its control block can be freed and its address reused by
// the next entry; the kept answer must not be served for that new entry.
TEST(AnswerCache, RecycledAddressGetsNoOldAnswer) {
  AnswerCache answers;
  const cache::Key key{"example.com", "xmpp-server"};
  alignas(cache::Entry) static unsigned char storage[sizeof(cache::Entry)];
  auto placed = [](const char* error) {
    auto* e = new (storage) cache::Entry();
    e->status = cache::EntryStatus::kError;
    e->error = error;
    return std::shared_ptr<const cache::Entry>(e, [](const cache::Entry* p) { p->~Entry(); });
  };
  auto first = placed("first");
  answers.Put(key, first, grpc::Slice(std::string("answer for first")));
  first.reset();
  auto second = placed("second");  // the same address
  grpc::Slice out;
  EXPECT_FALSE(answers.Get(key, second, &out));
}

TEST(AnswerCache, BoundedInBytes) {
  AnswerCache answers;
  const std::string big(4000, 'x');
  std::vector<std::shared_ptr<const cache::Entry>> entries;
  for (int i = 0; i < 10000; ++i) {
    entries.push_back(NewEntry());
    answers.Put(cache::Key{Numbered("d", i, ".example"), "xmpp-server"}, entries.back(),
                grpc::Slice(big));
  }
  const size_t budget = AnswerCache::kShards * AnswerCache::kBytesPerShard;
  EXPECT_LE(answers.Size() * big.size(), budget);
  EXPECT_GT(answers.Size(), budget / (big.size() + 400) / 2);  // most of the budget is used
  // The newest answer is always kept.
  grpc::Slice out;
  EXPECT_TRUE(answers.Get(cache::Key{"d9999.example", "xmpp-server"}, entries.back(), &out));
}

TEST(AnswerCache, OversizedAnswersAreNotKept) {
  AnswerCache answers;
  const cache::Key key{"example.com", "xmpp-server"};
  auto entry = NewEntry();
  answers.Put(key, entry, grpc::Slice(std::string(AnswerCache::kMaxAnswerBytes + 1, 'x')));
  grpc::Slice out;
  EXPECT_FALSE(answers.Get(key, entry, &out));
  EXPECT_EQ(answers.Size(), 0u);
}

TEST(AnswerCache, ConcurrentReadersAndWriters) {
  AnswerCache answers;
  std::vector<std::shared_ptr<const cache::Entry>> entries;
  for (int i = 0; i < 64; ++i) entries.push_back(NewEntry());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      grpc::Slice out;
      for (int i = 0; i < 20000; ++i) {
        const size_t n = static_cast<size_t>(i * 7 + t) % entries.size();
        const cache::Key key{Numbered("d", n), "xmpp-server"};
        if (answers.Get(key, entries[n], &out)) {
          ASSERT_EQ(Str(out), key.domain);
        } else {
          answers.Put(key, entries[n], grpc::Slice(key.domain));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(answers.Size(), entries.size());
}

}  // namespace
}  // namespace posh::server
