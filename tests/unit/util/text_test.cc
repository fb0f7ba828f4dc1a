// SanitizeUtf8: what reaches a protobuf `string` field (error reasons quoting network bytes)
// must be valid UTF-8 without control characters, and bounded.
#include "util/text.h"

#include <gtest/gtest.h>

#include <string>

namespace posh {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Sanitized text is a fixed point: valid, control-free, and (under the bound) unchanged
// by a second pass. Holds however an invalid sequence is split into U+FFFDs.
void ExpectClean(const std::string& out) {
  EXPECT_EQ(SanitizeUtf8(out, out.size()), out);
  for (unsigned char c : out) EXPECT_FALSE(c < 0x20 || c == 0x7f) << int(c);
}

TEST(SanitizeUtf8, ValidTextPassesUnchanged) {
  EXPECT_EQ(SanitizeUtf8(""), "");
  EXPECT_EQ(SanitizeUtf8("example.com"), "example.com");
  // 2-, 3- and 4-byte characters, and the highest code point U+10FFFF.
  const std::string mixed = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  EXPECT_EQ(SanitizeUtf8(mixed), mixed);
  // Internationalised domain names in their Unicode form.
  EXPECT_EQ(SanitizeUtf8("b\xC3\xBC\x63her.example"), "b\xC3\xBC\x63her.example");
}

TEST(SanitizeUtf8, ControlCharactersBecomeQuestionMarks) {
  // No log or terminal injection through a quoted network string.
  EXPECT_EQ(SanitizeUtf8("a\nb\rc\td"), "a?b?c?d");
  EXPECT_EQ(SanitizeUtf8(std::string("x\0y", 3)), "x?y");
  EXPECT_EQ(SanitizeUtf8("\x1b[31mred\x7f"), "?[31mred?");
}

TEST(SanitizeUtf8, AStrayByteBecomesOneReplacementCharacter) {
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a" + kReplacement + "b");
  EXPECT_EQ(SanitizeUtf8("a\x80"
                         "b"),
            "a" + kReplacement + "b");  // lone continuation byte
  EXPECT_EQ(SanitizeUtf8("\xFE"), kReplacement);
}

TEST(SanitizeUtf8, OverlongSurrogateAndOutOfRangeFormsAreReplaced) {
  // Each byte of these is an invalid sequence of its own (no valid prefix of 2+ bytes):
  // overlong '/', the surrogate U+D800, and U+110000.
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), kReplacement + kReplacement);
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(SanitizeUtf8("\xF4\x90\x80\x80"),
            kReplacement + kReplacement + kReplacement + kReplacement);
  // Overlong forms of NUL and of U+20AC (3- and 4-byte encodings of smaller values).
  for (const char* bad : {"\xC0\x80", "\xE0\x82\xAC", "\xF0\x82\x82\xAC"}) {
    std::string out = SanitizeUtf8(bad);
    EXPECT_NE(out.find(kReplacement), std::string::npos) << out;
    EXPECT_EQ(out.find('\0'), std::string::npos);
    ExpectClean(out);
  }
}

TEST(SanitizeUtf8, TruncatedSequencesAreReplacedAndTheRestKept) {
  for (const std::string& in : {std::string("ab\xE2\x82"), std::string("ab\xE2\x82xy"),
                                std::string("ab\xF0\x9F\x98"), std::string("ab\xC3")}) {
    std::string out = SanitizeUtf8(in);
    EXPECT_EQ(out.rfind("ab", 0), 0u) << out;
    EXPECT_NE(out.find(kReplacement), std::string::npos) << out;
    EXPECT_EQ(out.find("\xE2\x82x"), std::string::npos);
    ExpectClean(out);
  }
  EXPECT_EQ(SanitizeUtf8("ab\xE2\x82xy").substr(SanitizeUtf8("ab\xE2\x82xy").size() - 2), "xy");
}

TEST(SanitizeUtf8, IsBoundedOnACharacterBoundary) {
  EXPECT_EQ(SanitizeUtf8("abcdef", 3), "abc");
  EXPECT_EQ(SanitizeUtf8("abc", 0), "");
  // "a" + U+00E9 (2 bytes): a 2-byte bound cannot hold the whole character, so it is left out.
  EXPECT_EQ(SanitizeUtf8("a\xC3\xA9", 2), "a");
  EXPECT_EQ(SanitizeUtf8("a\xC3\xA9", 3), "a\xC3\xA9");
  // U+FFFD takes 3 bytes of the bound, never a part of it.
  EXPECT_EQ(SanitizeUtf8("a\xFF", 3), "a");
  EXPECT_EQ(SanitizeUtf8("a\xFF", 4), "a" + kReplacement);
}

TEST(SanitizeUtf8, DefaultBoundIs1024Bytes) {
  EXPECT_EQ(SanitizeUtf8(std::string(5000, 'x')), std::string(1024, 'x'));
  EXPECT_EQ(SanitizeUtf8(std::string(1024, 'x')).size(), 1024u);
  // 1023 ASCII bytes and a 2-byte character: the character does not fit.
  EXPECT_EQ(SanitizeUtf8(std::string(1023, 'x') + "\xC3\xA9"), std::string(1023, 'x'));
}

}  // namespace
}  // namespace posh
