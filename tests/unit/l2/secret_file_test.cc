// Secrets read from files (l2/secret_file.h): the Redis password is one line, its line
// ending dropped; a file others could read, a symlink, an empty or multi-line file is
// refused with a message naming the file.
#include "l2/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "test_util.h"

namespace posh::l2 {
namespace {

using cache::testing::TempDir;

std::string Write(const TempDir& dir, const std::string& name, const std::string& text,
                  mode_t mode) {
  const std::string path = (dir.path() / name).string();
  { std::ofstream(path, std::ios::binary | std::ios::trunc) << text; }
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(L2SecretFileTest, PasswordIsTheFirstLineWithoutItsEnding) {
  TempDir dir;
  auto p = LoadRedisPassword(Write(dir, "a", "s3cret pass\n", 0600));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(*p, "s3cret pass");
  auto crlf = LoadRedisPassword(Write(dir, "b", "pw\r\n", 0400));
  ASSERT_TRUE(crlf.ok()) << crlf.error().message;
  EXPECT_EQ(*crlf, "pw");
  auto bare = LoadRedisPassword(Write(dir, "c", "pw", 0600));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(*bare, "pw");
}

TEST(L2SecretFileTest, RefusesEmptyMultiLineAndShareableFiles) {
  TempDir dir;
  EXPECT_FALSE(LoadRedisPassword(Write(dir, "empty", "\n", 0600)).ok());
  EXPECT_FALSE(LoadRedisPassword(Write(dir, "two", "a\nb\n", 0600)).ok());
  auto shared = LoadRedisPassword(Write(dir, "shared", "pw\n", 0640));
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.error().message.find("0640"), std::string::npos) << shared.error().message;
  EXPECT_NE(shared.error().message.find("redis password file"), std::string::npos);
  EXPECT_FALSE(LoadRedisPassword(Write(dir, "world", "pw\n", 0604)).ok());
  EXPECT_FALSE(LoadRedisPassword((dir.path() / "absent").string()).ok());
  const std::string target = Write(dir, "target", "pw\n", 0600);
  const std::string link = (dir.path() / "link").string();
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_FALSE(LoadRedisPassword(link).ok());                   // not followed
  EXPECT_FALSE(LoadSecretFile(dir.path().string(), "x").ok());  // a directory
  EXPECT_FALSE(LoadSecretFile(Write(dir, "big", std::string(65 * 1024, 'x'), 0600), "x").ok());
}

}  // namespace
}  // namespace posh::l2
