#include "core/hash.h"

#include <openssl/evp.h>

namespace posh::core {

std::optional<HashAlg> HashAlgFromName(std::string_view name) {
  if (name == "sha-256") return HashAlg::kSha256;
  if (name == "sha-384") return HashAlg::kSha384;
  if (name == "sha-512") return HashAlg::kSha512;
  if (name == "sha-224") return HashAlg::kSha224;
  if (name == "sha-1") return HashAlg::kSha1;
  if (name == "md5") return HashAlg::kMd5;
  return std::nullopt;
}

std::string_view HashAlgName(HashAlg alg) {
  switch (alg) {
    case HashAlg::kMd5:
      return "md5";
    case HashAlg::kSha1:
      return "sha-1";
    case HashAlg::kSha224:
      return "sha-224";
    case HashAlg::kSha256:
      return "sha-256";
    case HashAlg::kSha384:
      return "sha-384";
    case HashAlg::kSha512:
      return "sha-512";
  }
  return "unknown";
}

size_t HashAlgDigestSize(HashAlg alg) {
  switch (alg) {
    case HashAlg::kMd5:
      return 16;
    case HashAlg::kSha1:
      return 20;
    case HashAlg::kSha224:
      return 28;
    case HashAlg::kSha256:
      return 32;
    case HashAlg::kSha384:
      return 48;
    case HashAlg::kSha512:
      return 64;
  }
  return 0;
}

bool HashAlgTrusted(HashAlg alg) {
  switch (alg) {
    case HashAlg::kSha224:
    case HashAlg::kSha256:
    case HashAlg::kSha384:
    case HashAlg::kSha512:
      return true;
    default:
      return false;
  }
}

int HashAlgStrength(HashAlg alg) {
  switch (alg) {
    case HashAlg::kMd5:
      return 1;
    case HashAlg::kSha1:
      return 2;
    case HashAlg::kSha224:
      return 3;
    case HashAlg::kSha256:
      return 4;
    case HashAlg::kSha384:
      return 5;
    case HashAlg::kSha512:
      return 6;
  }
  return 0;
}

std::vector<uint8_t> Digest(HashAlg alg, std::span<const uint8_t> data) {
  const EVP_MD* md = nullptr;
  switch (alg) {
    case HashAlg::kMd5:
      md = EVP_md5();
      break;
    case HashAlg::kSha1:
      md = EVP_sha1();
      break;
    case HashAlg::kSha224:
      md = EVP_sha224();
      break;
    case HashAlg::kSha256:
      md = EVP_sha256();
      break;
    case HashAlg::kSha384:
      md = EVP_sha384();
      break;
    case HashAlg::kSha512:
      md = EVP_sha512();
      break;
  }
  if (md == nullptr) return {};
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) return {};
  out.resize(len);
  return out;
}

}  // namespace posh::core
