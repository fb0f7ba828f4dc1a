// core/utf8: the daemon's one UTF-8 validator (simdjson's), used by R1 domain checks,
// publish (kid text) and util/text (API strings).
#include "core/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace posh::core {
namespace {

TEST(Utf8, ValidText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("example.com"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));            // U+0000 is a character
  EXPECT_TRUE(IsValidUtf8("\xC2\x80 \xDF\xBF"));                       // 2-byte range ends
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80"));  // around surrogates
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80 \xF4\x8F\xBF\xBF"));       // U+10000, U+10FFFF
}

TEST(Utf8, InvalidText) {
  for (std::string s :
       {"\x80", "\xBF", "\xC3", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xE0\x9F\xBF",
        "\xED\xA0\x80", "\xED\xBF\xBF", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
        "\xF8\x88\x80\x80\x80", "\xFF", "\xE2\x82", "ok\xC3(", "\xF0\x9F\x98"}) {
    EXPECT_FALSE(IsValidUtf8(s)) << ::testing::PrintToString(s);
  }
}

TEST(Utf8, CharLength) {
  EXPECT_EQ(Utf8CharLength(""), 0u);
  EXPECT_EQ(Utf8CharLength("ab"), 1u);
  EXPECT_EQ(Utf8CharLength("\xC3\xA9x"), 2u);
  EXPECT_EQ(Utf8CharLength("\xE2\x82\xACx"), 3u);
  EXPECT_EQ(Utf8CharLength("\xF0\x9F\x98\x80x"), 4u);
  EXPECT_EQ(Utf8CharLength("\xC3"), 0u);              // truncated
  EXPECT_EQ(Utf8CharLength("\xC3x"), 0u);             // not a continuation byte
  EXPECT_EQ(Utf8CharLength("\xA9"), 0u);              // a continuation byte first
  EXPECT_EQ(Utf8CharLength("\xE0\x80\xAF"), 0u);      // overlong
  EXPECT_EQ(Utf8CharLength("\xED\xA0\x80"), 0u);      // surrogate
  EXPECT_EQ(Utf8CharLength("\xF4\x90\x80\x80"), 0u);  // past U+10FFFF
}

TEST(Utf8, ReplaceInvalid) {
  EXPECT_EQ(ReplaceInvalidUtf8("caf\xC3\xA9", "?"), "caf\xC3\xA9");
  EXPECT_EQ(ReplaceInvalidUtf8("a\xC0\xAF"
                               "b",
                               "?"),
            "a??b");
  EXPECT_EQ(ReplaceInvalidUtf8("a\xED\xA0\x80"
                               "b",
                               "<>"),
            "a<><><>b");
  EXPECT_EQ(ReplaceInvalidUtf8("\xC3\xC3\xA9", "?"), "?\xC3\xA9");  // resynchronises
  EXPECT_EQ(ReplaceInvalidUtf8("", "?"), "");
}

}  // namespace
}  // namespace posh::core
