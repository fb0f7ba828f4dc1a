// Building blocks of R10/R12: base64 (both alphabets) and hash names/digests.
#include <gtest/gtest.h>

#include <string>

#include "core/base64.h"
#include "core/hash.h"

namespace posh::core {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(R10Base64, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {{"", ""},
                                                                   {"f", "Zg=="},
                                                                   {"fo", "Zm8="},
                                                                   {"foo", "Zm9v"},
                                                                   {"foob", "Zm9vYg=="},
                                                                   {"fooba", "Zm9vYmE="},
                                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, enc] : vectors) {
    EXPECT_EQ(EncodeBase64(Bytes(plain)), enc);
    auto d = DecodeBase64(enc);
    ASSERT_TRUE(d.has_value()) << enc;
    EXPECT_EQ(*d, Bytes(plain));
  }
}

TEST(R10Base64, PaddingOptionalButCorrectWhenPresent) {
  EXPECT_EQ(DecodeBase64("Zg"), Bytes("f"));
  EXPECT_EQ(DecodeBase64("Zm8"), Bytes("fo"));
  EXPECT_FALSE(DecodeBase64("Zg=").has_value());
  EXPECT_FALSE(DecodeBase64("Zm8==").has_value());
  EXPECT_FALSE(DecodeBase64("Zm9v=").has_value());
  EXPECT_FALSE(DecodeBase64("Zg===").has_value());
  EXPECT_FALSE(DecodeBase64("====").has_value());
}

TEST(R10Base64, StrictOtherwise) {
  EXPECT_FALSE(DecodeBase64("Z").has_value());      // len % 4 == 1
  EXPECT_FALSE(DecodeBase64("Zh==").has_value());   // non-zero trailing bits
  EXPECT_FALSE(DecodeBase64("Zm 9v").has_value());  // whitespace
  EXPECT_FALSE(DecodeBase64("Zm9v\n").has_value());
  EXPECT_FALSE(DecodeBase64("Z=g=").has_value());                       // padding in the middle
  EXPECT_FALSE(DecodeBase64("-_8=").has_value());                       // URL chars in standard
  EXPECT_FALSE(DecodeBase64("+/8", Base64Alphabet::kUrl).has_value());  // standard in URL
}

TEST(R12Base64, UrlAlphabetUnpadded) {
  std::vector<uint8_t> data = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(EncodeBase64(data), "+/+/");
  EXPECT_EQ(EncodeBase64(data, Base64Alphabet::kUrl), "-_-_");
  EXPECT_EQ(EncodeBase64(Bytes("f"), Base64Alphabet::kUrl), "Zg");
  EXPECT_EQ(DecodeBase64("-_-_", Base64Alphabet::kUrl), data);
  EXPECT_EQ(DecodeBase64("AQAB", Base64Alphabet::kUrl), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(DecodeBase64("Zg==", Base64Alphabet::kUrl), Bytes("f"));  // padding tolerated
}

TEST(R10HashNames, KnownUnknownTrusted) {
  EXPECT_EQ(HashAlgFromName("sha-256"), HashAlg::kSha256);
  EXPECT_EQ(HashAlgFromName("sha-384"), HashAlg::kSha384);
  EXPECT_EQ(HashAlgFromName("sha-512"), HashAlg::kSha512);
  EXPECT_EQ(HashAlgFromName("sha-224"), HashAlg::kSha224);
  EXPECT_EQ(HashAlgFromName("sha-1"), HashAlg::kSha1);
  EXPECT_EQ(HashAlgFromName("md5"), HashAlg::kMd5);
  EXPECT_FALSE(HashAlgFromName("SHA-256").has_value());
  EXPECT_FALSE(HashAlgFromName("sha256").has_value());
  EXPECT_FALSE(HashAlgFromName("sha3-256").has_value());
  EXPECT_FALSE(HashAlgTrusted(HashAlg::kSha1));
  EXPECT_FALSE(HashAlgTrusted(HashAlg::kMd5));
  EXPECT_TRUE(HashAlgTrusted(HashAlg::kSha224));
  EXPECT_TRUE(HashAlgTrusted(HashAlg::kSha256));
  for (auto alg : {HashAlg::kMd5, HashAlg::kSha1, HashAlg::kSha224, HashAlg::kSha256,
                   HashAlg::kSha384, HashAlg::kSha512}) {
    EXPECT_EQ(HashAlgFromName(HashAlgName(alg)), alg);
    EXPECT_EQ(Digest(alg, Bytes("abc")).size(), HashAlgDigestSize(alg));
  }
}

TEST(R13HashStrength, Order) {
  EXPECT_GT(HashAlgStrength(HashAlg::kSha512), HashAlgStrength(HashAlg::kSha384));
  EXPECT_GT(HashAlgStrength(HashAlg::kSha384), HashAlgStrength(HashAlg::kSha256));
  EXPECT_GT(HashAlgStrength(HashAlg::kSha256), HashAlgStrength(HashAlg::kSha224));
}

TEST(R10Digest, KnownAnswer) {
  EXPECT_EQ(EncodeBase64(Digest(HashAlg::kSha256, Bytes("abc"))),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  EXPECT_EQ(EncodeBase64(Digest(HashAlg::kSha1, Bytes("abc"))), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
}

}  // namespace
}  // namespace posh::core
