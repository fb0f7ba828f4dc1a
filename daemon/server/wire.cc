#include "server/wire.h"

namespace posh::server::wire {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// A cursor over one message's bytes. Every read checks the bounds; a failed read leaves
// `error` set and the cursor unusable.
class Reader {
 public:
  explicit Reader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool AtEnd() const { return p_ == end_; }
  const std::string& error() const { return error_; }

  bool ReadVarint(uint64_t* value) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p_ == end_) return Fail("truncated varint");
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *value = v;
        return true;
      }
    }
    return Fail("varint longer than 10 bytes");
  }

  // Field number and wire type of the next field. As protobuf reads a tag: at most five
  // bytes, bits beyond 32 dropped.
  bool ReadTag(uint32_t* field, uint32_t* type) {
    uint32_t tag = 0;
    for (int i = 0;; ++i) {
      if (i == 5) return Fail("field tag longer than 5 bytes");
      if (p_ == end_) return Fail("truncated field tag");
      const uint8_t b = *p_++;
      tag |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) break;
    }
    *field = tag >> 3;
    *type = static_cast<uint32_t>(tag & 7);
    if (*field == 0) return Fail("field number 0");
    return true;
  }

  bool ReadBytes(std::string_view* value) {
    uint64_t len = 0;
    if (!ReadVarint(&len)) return false;
    if (len > static_cast<uint64_t>(end_ - p_)) return Fail("length-delimited field past the end");
    *value = std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
    p_ += len;
    return true;
  }

  bool Skip(uint32_t type) {
    switch (type) {
      case kVarint: {
        uint64_t ignored = 0;
        return ReadVarint(&ignored);
      }
      case kFixed64:
        return Advance(8);
      case kLen: {
        std::string_view ignored;
        return ReadBytes(&ignored);
      }
      case kFixed32:
        return Advance(4);
      default:
        return Fail("unsupported wire type " + std::to_string(type));
    }
  }

 private:
  bool Advance(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return Fail("truncated fixed-width field");
    p_ += n;
    return true;
  }
  bool Fail(std::string why) {
    error_ = std::move(why);
    p_ = end_;
    return false;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  std::string error_;
};

// Walks every field; `on_field(field, type, reader)` consumes the ones it knows and returns
// false when it did not (they are skipped).
template <typename OnField>
std::string Walk(std::string_view bytes, OnField on_field) {
  Reader r(bytes);
  while (!r.AtEnd()) {
    uint32_t field = 0, type = 0;
    if (!r.ReadTag(&field, &type)) break;
    bool consumed = false;
    if (!on_field(field, type, r, &consumed)) break;
    if (!consumed && !r.Skip(type)) break;
  }
  return r.error();
}

}  // namespace

std::string ParseLookupRequest(std::string_view bytes, LookupRequestView* out) {
  *out = LookupRequestView{};
  return Walk(bytes, [out](uint32_t field, uint32_t type, Reader& r, bool* consumed) {
    if ((field == 1 || field == 2) && type == kLen) {
      *consumed = true;
      return r.ReadBytes(field == 1 ? &out->domain : &out->service);
    }
    if (field == 3 && type == kVarint) {
      *consumed = true;
      uint64_t v = 0;
      if (!r.ReadVarint(&v)) return false;
      out->refresh = v != 0;
    }
    return true;
  });
}

std::string ParseVerifyRequest(std::string_view bytes, VerifyRequestView* out) {
  *out = VerifyRequestView{};
  return Walk(bytes, [out](uint32_t field, uint32_t type, Reader& r, bool* consumed) {
    if ((field == 1 || field == 2) && type == kLen) {
      *consumed = true;
      return r.ReadBytes(field == 1 ? &out->domain : &out->service);
    }
    if (field == 3 && type == kLen) {
      *consumed = true;
      std::string_view element;
      if (!r.ReadBytes(&element)) return false;
      if (out->chain_size++ == 0) out->leaf = element;
    }
    return true;
  });
}

namespace {

void AppendVarint(std::string* out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

void AppendTag(std::string* out, uint32_t field, uint32_t type) {
  AppendVarint(out, (static_cast<uint64_t>(field) << 3) | type);
}

}  // namespace

void AppendVarintField(std::string* out, uint32_t field, uint64_t value) {
  AppendTag(out, field, kVarint);
  AppendVarint(out, value);
}

void AppendInt32Field(std::string* out, uint32_t field, int32_t value) {
  // int32 is sign-extended to 64 bits on the wire (a negative value takes 10 bytes).
  AppendVarintField(out, field, static_cast<uint64_t>(static_cast<int64_t>(value)));
}

void AppendBytesField(std::string* out, uint32_t field, std::string_view value) {
  AppendLengthPrefix(out, field, value.size());
  out->append(value);
}

void AppendLengthPrefix(std::string* out, uint32_t field, size_t length) {
  AppendTag(out, field, kLen);
  AppendVarint(out, length);
}

}  // namespace posh::server::wire
