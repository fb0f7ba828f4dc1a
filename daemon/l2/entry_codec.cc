#include "l2/entry_codec.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <limits>

#include "cache/snapshot.h"
#include "l2/secret_file.h"

namespace posh::l2 {
namespace {

// A remote entry fetched "in the future" by more than this is refused (clock skew bound).
constexpr int64_t kMaxFutureSkewMs = 5 * 60 * 1000;

std::string Mac(std::string_view fleet_key, std::string_view redis_key,
                std::string_view serialized) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
  std::string result;
  if (ctx) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(fleet_key.data()),
                     fleet_key.size(), params) == 1 &&
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(redis_key.data()),
                       redis_key.size()) == 1 &&
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(serialized.data()),
                       serialized.size()) == 1 &&
        EVP_MAC_final(ctx, out, &outl, sizeof(out)) == 1) {
      len = static_cast<unsigned int>(outl);
      result.assign(reinterpret_cast<const char*>(out), len);
    }
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return result;
}

int64_t SecondsToMs(int64_t s) {
  return s > std::numeric_limits<int64_t>::max() / 1000 ? std::numeric_limits<int64_t>::max()
                                                        : s * 1000;
}

}  // namespace

std::string RedisKey(const cache::Key& key) {
  std::string k = "poshd:v1:";
  k.append(key.service).push_back(':');
  k.append(key.domain);
  return k;
}

Result<std::string> LoadFleetKey(const std::string& path) {
  auto key = LoadSecretFile(path, "redis key file");
  if (!key) return key;
  if (key->size() < kMinFleetKeySize) {
    OPENSSL_cleanse(key->data(), key->size());
    return Fail(Error{1, "redis key file " + path + " holds " + std::to_string(key->size()) +
                             " bytes: at least " + std::to_string(kMinFleetKeySize) +
                             " are needed (e.g. head -c 32 /dev/urandom)"});
  }
  return key;
}

std::string EncodeEntry(const cache::Key& key, const cache::Entry& entry,
                        std::string_view fleet_key) {
  const std::string serialized = cache::SerializeEntry(key, entry);
  std::string value = Mac(fleet_key, RedisKey(key), serialized);
  if (value.size() != kMacSize) return {};
  value += serialized;
  return value;
}

std::shared_ptr<const cache::Entry> JudgeRemoteEntry(const cache::Entry& remote, int64_t now_ms,
                                                     const cache::Lifetimes& lifetimes,
                                                     std::string* why) {
  auto refuse = [&](const char* reason) -> std::shared_ptr<const cache::Entry> {
    if (why) *why = reason;
    return nullptr;
  };
  if (remote.fetched_at_ms <= 0 || remote.fetched_at_ms > now_ms + kMaxFutureSkewMs) {
    return refuse("fetched_at out of range");
  }
  auto e = std::make_shared<cache::Entry>(remote);
  e->stale_until_ms = 0;  // never served stale from the second tier
  int64_t expires = remote.expires_at_ms;
  switch (remote.status) {
    case cache::EntryStatus::kError:
      return refuse("error entries are never shared");
    case cache::EntryStatus::kNotFound:
      if (remote.record) return refuse("record on a not-found entry");
      expires = std::min(expires, remote.fetched_at_ms + lifetimes.negative_ttl_ms);  // R17
      e->hard_limit_ms = 0;
      break;
    case cache::EntryStatus::kFound: {
      const core::PoshRecord* r = remote.record.get();
      if (!r || r->keys.empty()) return refuse("found entry without keys");
      // R16: local max-ttl and the document's own expires, from the time it was fetched.
      expires = std::min(expires, remote.fetched_at_ms + lifetimes.max_ttl_ms);
      if (r->expires_seconds > 0) {
        expires = std::min(expires, remote.fetched_at_ms + SecondsToMs(r->expires_seconds));
      }
      // Certificates: the latest notAfter of the record's keys bounds everything; the
      // record's own summary may not claim later than its keys do.
      int64_t latest = 0;
      for (const core::KeyMaterial& k : r->keys) {
        if (k.has_certificate && k.not_after > 0) latest = std::max(latest, k.not_after);
      }
      if (r->latest_not_after > 0 && (latest == 0 || r->latest_not_after < latest)) {
        latest = r->latest_not_after;
      }
      int64_t hard = remote.hard_limit_ms;
      if (latest > 0) {
        const int64_t cert_ms = SecondsToMs(latest);
        hard = hard > 0 ? std::min(hard, cert_ms) : cert_ms;
      }
      if (hard > 0) expires = std::min(expires, hard);
      e->hard_limit_ms = hard;
      break;
    }
    default:
      return refuse("unknown status");
  }
  if (now_ms >= expires) return refuse("expired");
  e->expires_at_ms = expires;
  const int64_t lifetime = expires - remote.fetched_at_ms;
  e->refresh_at_ms = remote.status == cache::EntryStatus::kFound
                         ? std::min(remote.refresh_at_ms, expires - lifetime / 10)
                         : expires;
  return e;
}

Decoded DecodeEntry(std::string_view value, const cache::Key& key, std::string_view fleet_key,
                    int64_t now_ms, const cache::Lifetimes& lifetimes) {
  Decoded d;
  if (value.size() <= kMacSize) {
    d.status = DecodeStatus::kBadMac;
    d.why = "no MAC";
    return d;
  }
  const std::string_view mac = value.substr(0, kMacSize);
  const std::string_view serialized = value.substr(kMacSize);
  const std::string expected = Mac(fleet_key, RedisKey(key), serialized);
  if (expected.size() != kMacSize || CRYPTO_memcmp(expected.data(), mac.data(), kMacSize) != 0) {
    d.status = DecodeStatus::kBadMac;
    d.why = "MAC mismatch";
    return d;
  }
  cache::Key got;
  std::shared_ptr<const cache::Entry> entry;
  if (std::string why = cache::ParseEntry(serialized, &got, &entry); !why.empty()) {
    d.why = why;
    return d;
  }
  if (!(got == key)) {
    d.why = "entry of another key";
    return d;
  }
  d.entry = JudgeRemoteEntry(*entry, now_ms, lifetimes, &d.why);
  d.status = d.entry ? DecodeStatus::kOk : DecodeStatus::kUnusable;
  return d;
}

}  // namespace posh::l2
