// The snapshot file format on its own (cache/snapshot.h, R20): what the store's Save/Load
// tests check through the Store, here without one.
#include "cache/snapshot.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cache/lifetime.h"
#include "test_util.h"

namespace posh::cache {
namespace {

using testing::FingerprintRecord;
using testing::K;
using testing::kT0;
using testing::TempDir;

TEST(SnapshotFormatTest, R20_WrittenItemsReadBackInOrder) {
  TempDir dir;
  const std::string path = (dir.path() / "snap").string();
  const Lifetimes lt;
  SnapshotItems items = {
      {K("a.example"), MakePositiveEntry(FingerprintRecord(3600), kT0, lt)},
      {K("b.example"), MakeNotFoundEntry(kT0, lt)},
      {K("c.example"), MakeErrorEntry("refused", 3, kT0, lt)},
  };
  auto written = WriteSnapshot(path, items, kT0);
  ASSERT_TRUE(written.ok()) << written.error().message;
  EXPECT_EQ(*written, 3u);
  auto read = ReadSnapshot(path, kT0);
  ASSERT_TRUE(read.ok()) << read.error().message;
  ASSERT_EQ(read->size(), 3u);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ((*read)[i].first, items[i].first);
    EXPECT_EQ((*read)[i].second->status, items[i].second->status);
    EXPECT_EQ((*read)[i].second->expires_at_ms, items[i].second->expires_at_ms);
    EXPECT_EQ((*read)[i].second->error, items[i].second->error);
  }
}

TEST(SnapshotFormatTest, R20_ExpiredEntriesAreDroppedOnRead) {
  TempDir dir;
  const std::string path = (dir.path() / "snap").string();
  const Lifetimes lt;
  SnapshotItems items = {{K("nf.example"), MakeNotFoundEntry(kT0, lt)}};
  ASSERT_TRUE(WriteSnapshot(path, items, kT0).ok());
  auto read = ReadSnapshot(path, kT0 + lt.negative_ttl_ms);  // the moment it expires
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->empty());
}

TEST(SnapshotFormatTest, R20_MissingFileIsEmptyAndAFlippedByteIsCorrupt) {
  TempDir dir;
  const std::string path = (dir.path() / "snap").string();
  auto none = ReadSnapshot(path, kT0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  const Lifetimes lt;
  ASSERT_TRUE(WriteSnapshot(path, {{K("a.example"), MakeNotFoundEntry(kT0, lt)}}, kT0).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 24u);
  bytes[bytes.size() - 1] ^= 0x01;  // in the payload: the CRC no longer matches
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto bad = ReadSnapshot(path, kT0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, kSnapChecksum) << bad.error().message;
}

}  // namespace
}  // namespace posh::cache
