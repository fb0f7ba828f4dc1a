#include "cache/snapshot.h"

#include <fcntl.h>
#include <google/protobuf/arena.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <string_view>

#include "cache/lifetime.h"
#include "posh/v1/snapshot.pb.h"

namespace posh::cache {
namespace {

namespace pb = ::posh::v1::snapshot;

constexpr char kMagic[8] = {'P', 'O', 'S', 'H', 'S', 'N', 'A', 'P'};
constexpr uint32_t kHeaderFormat = 1;
constexpr size_t kHeaderSize = 24;
constexpr uint32_t kSnapshotVersion = 1;

// CRC-32 (IEEE 802.3) from zlib: optimised even in sanitizer/debug builds.
uint32_t Crc32(std::string_view data) {
  uLong c = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  size_t n = data.size();
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(c);
}

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(std::string_view in, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[off + i])) << (8 * i);
  return v;
}

Unexpected<Error> SnapError(SnapshotErrorCode code, const std::string& path,
                            const std::string& what) {
  return Fail(Error{code, "snapshot " + path + ": " + what});
}

std::string ErrnoText(const char* op) { return std::string(op) + ": " + std::strerror(errno); }

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void EncodeEntry(const Key& key, const Entry& e, pb::SnapEntry* out) {
  out->set_domain(key.domain);
  out->set_service(key.service);
  out->set_status(static_cast<uint32_t>(e.status));
  out->set_expires_at_ms(e.expires_at_ms);
  out->set_fetched_at_ms(e.fetched_at_ms);
  out->set_refresh_at_ms(e.refresh_at_ms);
  out->set_hard_limit_ms(e.hard_limit_ms);
  out->set_stale_until_ms(e.stale_until_ms);
  out->set_error(e.error);
  out->set_error_kind(e.error_kind);
  if (const core::PoshRecord* r = e.record.get()) {
    out->set_format(static_cast<uint32_t>(r->format));
    out->set_delegated_to(r->delegated_to);
    out->set_source_url(r->source_url);
    out->set_expires_seconds(r->expires_seconds);
    out->set_latest_not_after(r->latest_not_after);
    out->mutable_keys()->Reserve(static_cast<int>(r->keys.size()));
    for (const core::KeyMaterial& k : r->keys) {
      pb::SnapKey* sk = out->add_keys();
      sk->set_kid(k.kid);
      sk->set_key_type(k.kty);
      sk->set_not_after(k.not_after);
      sk->set_not_before(k.not_before);
      sk->set_has_certificate(k.has_certificate);
      for (const core::Fingerprint& f : k.fingerprints) {
        pb::SnapFingerprint* sf = sk->add_fingerprints();
        sf->set_alg(static_cast<uint32_t>(f.alg));
        sf->set_value(f.value.data(), f.value.size());
      }
      if (k.public_key) {
        sk->set_has_public_key(true);
        sk->set_pk_type(static_cast<uint32_t>(k.public_key->type));
        sk->set_pk_curve(k.public_key->curve);
        sk->set_pk_a(k.public_key->a.data(), k.public_key->a.size());
        sk->set_pk_b(k.public_key->b.data(), k.public_key->b.size());
      }
    }
  }
}

std::vector<uint8_t> ToBytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Returns an empty string on success, else why the entry is invalid.
std::string DecodeEntry(const pb::SnapEntry& in, Key* key, std::shared_ptr<const Entry>* out) {
  if (in.domain().empty()) return "empty domain";
  if (in.status() < 1 || in.status() > 3) return "unknown status " + std::to_string(in.status());
  if (in.error_kind() > 255) return "error_kind out of range";
  auto e = std::make_shared<Entry>();
  e->status = static_cast<EntryStatus>(in.status());
  e->error = in.error();
  e->error_kind = static_cast<uint8_t>(in.error_kind());
  e->fetched_at_ms = in.fetched_at_ms();
  e->expires_at_ms = in.expires_at_ms();
  e->refresh_at_ms = in.refresh_at_ms();
  e->hard_limit_ms = in.hard_limit_ms();
  e->stale_until_ms = in.stale_until_ms();
  if (e->status == EntryStatus::kFound) {
    if (in.format() > static_cast<uint32_t>(core::Format::kJwk)) {
      return "unknown format " + std::to_string(in.format());
    }
    auto r = std::make_shared<core::PoshRecord>();
    r->format = static_cast<core::Format>(in.format());
    r->delegated_to = in.delegated_to();
    r->source_url = in.source_url();
    r->expires_seconds = in.expires_seconds();
    r->latest_not_after = in.latest_not_after();
    r->keys.reserve(static_cast<size_t>(in.keys_size()));
    for (const pb::SnapKey& sk : in.keys()) {
      core::KeyMaterial& k = r->keys.emplace_back();
      k.kid = sk.kid();
      k.kty = sk.key_type();
      k.not_after = sk.not_after();
      k.not_before = sk.not_before();
      k.has_certificate = sk.has_certificate();
      k.fingerprints.reserve(static_cast<size_t>(sk.fingerprints_size()));
      for (const pb::SnapFingerprint& sf : sk.fingerprints()) {
        if (sf.alg() < static_cast<uint32_t>(core::HashAlg::kMd5) ||
            sf.alg() > static_cast<uint32_t>(core::HashAlg::kSha512)) {
          return "unknown hash algorithm " + std::to_string(sf.alg());
        }
        if (sf.value().size() > core::DigestValue::kMaxSize) {
          return "fingerprint value of " + std::to_string(sf.value().size()) + " bytes";
        }
        const auto* v = reinterpret_cast<const uint8_t*>(sf.value().data());
        k.fingerprints.push_back(
            core::Fingerprint{static_cast<core::HashAlg>(sf.alg()),
                              core::DigestValue(std::span<const uint8_t>(v, sf.value().size()))});
      }
      if (sk.has_public_key()) {
        if (sk.pk_type() > static_cast<uint32_t>(core::PublicKey::Type::kOther)) {
          return "unknown public key type " + std::to_string(sk.pk_type());
        }
        core::PublicKey pk;
        pk.type = static_cast<core::PublicKey::Type>(sk.pk_type());
        pk.curve = sk.pk_curve();
        pk.a = ToBytes(sk.pk_a());
        pk.b = ToBytes(sk.pk_b());
        k.public_key = std::make_shared<const core::PublicKey>(std::move(pk));
      }
    }
    e->record = std::move(r);
  } else if (in.keys_size() > 0) {
    return "keys on a non-found entry";
  }
  key->domain = in.domain();
  key->service = in.service();
  *out = std::move(e);
  return {};
}

}  // namespace

std::string SerializeEntry(const Key& key, const Entry& entry) {
  pb::SnapEntry msg;
  EncodeEntry(key, entry, &msg);
  std::string out;
  msg.SerializeToString(&out);
  return out;
}

std::string ParseEntry(std::string_view bytes, Key* key, std::shared_ptr<const Entry>* entry) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return "too large";
  pb::SnapEntry msg;
  if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return "not a SnapEntry message";
  }
  return DecodeEntry(msg, key, entry);
}

Result<size_t> WriteSnapshot(const std::string& path, const SnapshotItems& items,
                             int64_t written_at_ms) {
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 * 1024;
  arena_options.max_block_size = 4 * 1024 * 1024;
  google::protobuf::Arena arena(arena_options);
  pb::Snapshot& snap = *google::protobuf::Arena::CreateMessage<pb::Snapshot>(&arena);
  snap.set_version(kSnapshotVersion);
  snap.set_written_at_ms(written_at_ms);
  snap.mutable_entries()->Reserve(static_cast<int>(items.size()));
  for (const auto& [k, e] : items) EncodeEntry(k, *e, snap.add_entries());
  std::string payload;
  if (!snap.SerializeToString(&payload)) return SnapError(kSnapIo, path, "serialization failed");

  std::string file;
  file.reserve(kHeaderSize + payload.size());
  file.append(kMagic, sizeof(kMagic));
  PutLe(file, kHeaderFormat, 4);
  PutLe(file, Crc32(payload), 4);
  PutLe(file, payload.size(), 8);
  file += payload;

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return SnapError(kSnapIo, path, ErrnoText(("open " + tmp).c_str()));
  bool ok = WriteAll(fd, file);
  std::string why = ok ? "" : ErrnoText("write");
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    why = ErrnoText("fsync");
  }
  if (::close(fd) != 0 && ok) {
    ok = false;
    why = ErrnoText("close");
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    why = ErrnoText("rename");
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return SnapError(kSnapIo, path, why);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir.push_back('.');  // not `= "."`: GCC 12 false -Wrestrict (bug 105329)
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return SnapError(kSnapIo, path, ErrnoText(("open directory " + dir).c_str()));
  const bool dir_ok = ::fsync(dfd) == 0;
  const std::string dir_why = dir_ok ? "" : ErrnoText("fsync directory");
  ::close(dfd);
  if (!dir_ok) return SnapError(kSnapIo, path, dir_why);
  return items.size();
}

Result<SnapshotItems> ReadSnapshot(const std::string& path, int64_t now_ms) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return SnapshotItems{};
    return SnapError(kSnapIo, path, ErrnoText("open"));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = ErrnoText("fstat");
    ::close(fd);
    return SnapError(kSnapIo, path, why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return SnapError(kSnapIo, path, "not a regular file");
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = ErrnoText("read");
      ::close(fd);
      return SnapError(kSnapIo, path, why);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(got);

  if (std::memcmp(data.data(), kMagic, std::min(data.size(), sizeof(kMagic))) != 0) {
    return SnapError(kSnapBadMagic, path, "not a poshd snapshot (bad magic)");
  }
  if (data.size() < kHeaderSize) {
    return SnapError(kSnapTruncated, path,
                     "truncated header (" + std::to_string(data.size()) + " bytes)");
  }
  const uint64_t format = GetLe(data, 8, 4);
  if (format != kHeaderFormat) {
    return SnapError(kSnapBadMagic, path, "unknown header format " + std::to_string(format));
  }
  const uint32_t crc = static_cast<uint32_t>(GetLe(data, 12, 4));
  const uint64_t length = GetLe(data, 16, 8);
  const uint64_t have = data.size() - kHeaderSize;
  if (have < length) {
    return SnapError(kSnapTruncated, path,
                     "truncated: header says " + std::to_string(length) +
                         " payload bytes, file has " + std::to_string(have));
  }
  if (have > length) {
    return SnapError(kSnapChecksum, path,
                     std::to_string(have - length) + " trailing bytes after the payload");
  }
  const std::string_view payload = std::string_view(data).substr(kHeaderSize);
  if (Crc32(payload) != crc)
    return SnapError(kSnapChecksum, path, "checksum mismatch (corrupt file)");

  if (payload.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return SnapError(kSnapParse, path,
                     "payload too large (" + std::to_string(payload.size()) + " bytes)");
  }
  // An arena: parsing and, above all, freeing 100 000 nested messages is much faster.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 * 1024;
  arena_options.max_block_size = 4 * 1024 * 1024;
  google::protobuf::Arena arena(arena_options);
  pb::Snapshot& snap = *google::protobuf::Arena::CreateMessage<pb::Snapshot>(&arena);
  if (!snap.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return SnapError(kSnapParse, path, "payload is not a valid Snapshot message");
  }
  if (snap.version() != kSnapshotVersion) {
    return SnapError(kSnapVersion, path,
                     "unsupported snapshot version " + std::to_string(snap.version()) +
                         " (expected " + std::to_string(kSnapshotVersion) + ")");
  }
  SnapshotItems items;
  items.reserve(static_cast<size_t>(snap.entries_size()));
  for (int i = 0; i < snap.entries_size(); ++i) {
    Key key;
    std::shared_ptr<const Entry> entry;
    const std::string why = DecodeEntry(snap.entries(i), &key, &entry);
    if (!why.empty()) {
      return SnapError(kSnapBadEntry, path, "entry " + std::to_string(i) + ": " + why);
    }
    if (now_ms >= ServableUntilMs(*entry)) continue;  // expired: dropped (R20)
    items.emplace_back(std::move(key), std::move(entry));
  }
  return items;
}

}  // namespace posh::cache
