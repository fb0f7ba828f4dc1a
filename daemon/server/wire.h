// Protobuf wire format for the two hot RPCs (Lookup and Verify are served as raw byte
// buffers, see grpc_service.h): reading the requests in place, without a message object
// or a copy of the strings, and writing the few fields of a Verify answer around a
// pre-serialised record. Pure: no gRPC, no I/O. The field numbers are those of
// proto/posh/v1/resolver.proto; tests/unit/server/wire_test.cc checks both directions
// against the generated code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace posh::server::wire {

// posh.v1.LookupRequest, fields pointing into the parsed bytes.
struct LookupRequestView {
  std::string_view domain;   // 1
  std::string_view service;  // 2
  bool refresh = false;      // 3
};

// posh.v1.VerifyRequest. Only the leaf (the first presented_chain element) is used.
struct VerifyRequestView {
  std::string_view domain;   // 1
  std::string_view service;  // 2
  std::string_view leaf;     // first occurrence of 3
  size_t chain_size = 0;     // occurrences of 3
};

// Proto3 parsing rules: the last occurrence of a singular field wins, unknown fields and
// known fields with another wire type are skipped, a bool is any non-zero varint.
// Returns "" on success, else why the bytes are not such a message (truncated field,
// over-long varint, length past the end, group or reserved wire type).
std::string ParseLookupRequest(std::string_view bytes, LookupRequestView* out);
std::string ParseVerifyRequest(std::string_view bytes, VerifyRequestView* out);

// Writers: append one field in canonical encoding. Appending nothing for a default value
// (0, false, "") is the caller's choice, as proto3 serialisers do.
void AppendVarintField(std::string* out, uint32_t field, uint64_t value);
void AppendInt32Field(std::string* out, uint32_t field, int32_t value);  // negative: 10 bytes
void AppendBytesField(std::string* out, uint32_t field, std::string_view value);
// Tag and length of a length-delimited field whose `length` bytes the caller sends next.
void AppendLengthPrefix(std::string* out, uint32_t field, size_t length);

}  // namespace posh::server::wire
