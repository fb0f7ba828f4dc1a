// How an entry is stored in the second tier, and how one read from it is judged.
//   value = HMAC-SHA256(fleet key, redis key || serialized) (32 bytes) || serialized
// where serialized is the snapshot's SnapEntry message (cache/snapshot.h). The MAC binds
// the entry to its Redis key, so an entry cannot be replayed under another domain. Anyone
// who can write to Redis but has no fleet key cannot make a daemon trust a certificate.
// An entry read back is judged again by the local clock (DecodeEntry): its own expiry, the
// R16/R17 lifetimes capped by the local settings, the certificates' notAfter; it is never
// served stale and error entries are never accepted. Pure: time is a parameter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cache/entry.h"
#include "cache/lifetime.h"
#include "core/result.h"

namespace posh::l2 {

inline constexpr size_t kMacSize = 32;
inline constexpr size_t kMinFleetKeySize = 32;

// "poshd:v1:" + service + ":" + domain.
std::string RedisKey(const cache::Key& key);

// Reads the fleet key file: refused when group- or world-readable (or -writable), not a
// regular file, or shorter than kMinFleetKeySize bytes. The whole file is the key.
Result<std::string> LoadFleetKey(const std::string& path);

// The value stored under RedisKey(key).
std::string EncodeEntry(const cache::Key& key, const cache::Entry& entry,
                        std::string_view fleet_key);

enum class DecodeStatus {
  kOk,         // authenticated and servable now: `entry` set
  kBadMac,     // MAC missing (value too short) or wrong: ignored and counted
  kMalformed,  // authenticated but not a valid entry, or another key's entry
  kUnusable,   // authenticated but expired / not servable by the local rules
};
struct Decoded {
  DecodeStatus status = DecodeStatus::kMalformed;
  std::shared_ptr<const cache::Entry> entry;
  std::string why;
};
Decoded DecodeEntry(std::string_view value, const cache::Key& key, std::string_view fleet_key,
                    int64_t now_ms, const cache::Lifetimes& lifetimes);

// The local judgement alone (exposed for tests): a copy of `remote` whose lifetimes are
// capped by the local rules, or nullptr when it must not be served at `now_ms`.
std::shared_ptr<const cache::Entry> JudgeRemoteEntry(const cache::Entry& remote, int64_t now_ms,
                                                     const cache::Lifetimes& lifetimes,
                                                     std::string* why);

}  // namespace posh::l2
