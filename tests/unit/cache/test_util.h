// Helpers shared by the cache unit tests: records, keys and temporary directories.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "cache/store.h"
#include "core/record.h"
#include "support/fake_clock.h"

namespace posh::cache::testing {

// 2026-01-01T00:00:00Z in milliseconds: a fixed "now" for FakeClock-based tests.
inline constexpr int64_t kT0 = 1767225600000LL;

inline Key K(std::string domain, std::string service = "xmpp-client") {
  return Key{std::move(domain), std::move(service)};
}

// An RFC 7711 fingerprints record (expires in seconds, no certificates).
inline std::shared_ptr<const core::PoshRecord> FingerprintRecord(int64_t expires_seconds) {
  auto r = std::make_shared<core::PoshRecord>();
  r->format = core::Format::kRfc7711;
  r->expires_seconds = expires_seconds;
  r->source_url = "https://example.com/.well-known/posh/xmpp-client.json";
  core::KeyMaterial k;
  k.fingerprints.push_back({core::HashAlg::kSha256, std::vector<uint8_t>(32, 0xab)});
  k.fingerprints.push_back({core::HashAlg::kSha512, std::vector<uint8_t>(64, 0xcd)});
  r->keys.push_back(std::move(k));
  return r;
}

// A JWK record whose keys expire at the given notAfter values (unix seconds).
inline std::shared_ptr<const core::PoshRecord> JwkRecord(int64_t expires_seconds,
                                                         std::vector<int64_t> not_afters) {
  auto r = std::make_shared<core::PoshRecord>();
  r->format = core::Format::kJwk;
  r->expires_seconds = expires_seconds;
  r->delegated_to = "hosting.example.net";
  r->source_url = "https://hosting.example.net/.well-known/posh/xmpp-server.json";
  int i = 0;
  for (int64_t na : not_afters) {
    core::KeyMaterial k;
    k.kid = "key-" + std::to_string(i);
    k.kty = (i % 2 == 0) ? "EC" : "RSA";
    k.fingerprints.push_back({core::HashAlg::kSha256, std::vector<uint8_t>(32, uint8_t(i))});
    core::PublicKey pk;
    if (i % 2 == 0) {
      pk.type = core::PublicKey::Type::kEc;
      pk.curve = "P-256";
      pk.a = std::vector<uint8_t>(32, uint8_t(0x10 + i));
      pk.b = std::vector<uint8_t>(32, uint8_t(0x20 + i));
    } else {
      pk.type = core::PublicKey::Type::kRsa;
      pk.a = std::vector<uint8_t>(256, uint8_t(0x30 + i));
      pk.b = {0x01, 0x00, 0x01};
    }
    k.public_key = std::make_shared<const core::PublicKey>(pk);
    k.has_certificate = true;
    k.not_before = na - 90 * 86400;
    k.not_after = na;
    r->latest_not_after = std::max(r->latest_not_after, na);
    r->keys.push_back(std::move(k));
    ++i;
  }
  return r;
}

// A fresh empty directory removed at destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("posh-cache-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace posh::cache::testing
