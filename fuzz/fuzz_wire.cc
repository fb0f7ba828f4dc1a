// Fuzzes the raw Lookup/Verify request readers (daemon/server/wire.h) differentially
// against the generated protobuf parser: no crash, no read outside the input, and whenever
// both accept the bytes they read the same domain, service, refresh flag, leaf and chain
// length. (protobuf refuses some inputs we accept, invalid UTF-8 in a string field: the
// R1/R2 checks refuse those later; we refuse groups, which protobuf skips.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "posh/v1/resolver.pb.h"
#include "server/wire.h"

namespace {

bool Disagree(const std::string& ours, bool theirs) {
  // Refusing what protobuf accepts is allowed only for groups (wire types 3 and 4).
  return !ours.empty() && theirs && ours.find("wire type 3") == std::string::npos &&
         ours.find("wire type 4") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  posh::server::wire::LookupRequestView lookup;
  const std::string lookup_error = posh::server::wire::ParseLookupRequest(in, &lookup);
  posh::v1::LookupRequest lookup_pb;
  const bool lookup_ok = lookup_pb.ParseFromArray(data, static_cast<int>(size));
  if (Disagree(lookup_error, lookup_ok)) __builtin_trap();
  if (lookup_error.empty() && lookup_ok &&
      (lookup.domain != lookup_pb.domain() || lookup.service != lookup_pb.service() ||
       lookup.refresh != lookup_pb.refresh()))
    __builtin_trap();

  posh::server::wire::VerifyRequestView verify;
  const std::string verify_error = posh::server::wire::ParseVerifyRequest(in, &verify);
  posh::v1::VerifyRequest verify_pb;
  const bool verify_ok = verify_pb.ParseFromArray(data, static_cast<int>(size));
  if (Disagree(verify_error, verify_ok)) __builtin_trap();
  if (verify_error.empty() && verify_ok) {
    if (verify.domain != verify_pb.domain() || verify.service != verify_pb.service() ||
        verify.chain_size != static_cast<size_t>(verify_pb.presented_chain_size()))
      __builtin_trap();
    if (verify.chain_size > 0 && verify.leaf != verify_pb.presented_chain(0)) __builtin_trap();
  }
  return 0;
}
