#include "fetch/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace posh::fetch {
namespace {

bool InV4(uint32_t addr, uint32_t net, int prefix) {
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (addr & mask) == (net & mask);
}

constexpr uint32_t V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | uint32_t{d};
}

bool PrefixEq(const std::array<uint8_t, 16>& a, std::initializer_list<uint8_t> bytes, int bits) {
  int i = 0;
  for (uint8_t b : bytes) {
    int remaining = bits - i * 8;
    if (remaining <= 0) break;
    uint8_t mask = remaining >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - remaining));
    if ((a[i] & mask) != (b & mask)) return false;
    ++i;
  }
  return true;
}

uint32_t V4At(const std::array<uint8_t, 16>& a, int offset) {
  return (uint32_t{a[offset]} << 24) | (uint32_t{a[offset + 1]} << 16) |
         (uint32_t{a[offset + 2]} << 8) | uint32_t{a[offset + 3]};
}

}  // namespace

std::string_view AddressClassName(AddressClass c) {
  switch (c) {
    case AddressClass::kGlobal:
      return "global";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kThisNetwork:
      return "this-network";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kSharedCgnat:
      return "shared (CGNAT)";
    case AddressClass::kLinkLocal:
      return "link-local";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kDocumentation:
      return "documentation";
    case AddressClass::kBenchmarking:
      return "benchmarking";
    case AddressClass::kReserved:
      return "reserved";
  }
  return "reserved";
}

AddressClass ClassifyIPv4(uint32_t a) {
  if (a == 0) return AddressClass::kUnspecified;
  if (a == V4(255, 255, 255, 255)) return AddressClass::kBroadcast;
  if (InV4(a, V4(0, 0, 0, 0), 8)) return AddressClass::kThisNetwork;
  if (InV4(a, V4(10, 0, 0, 0), 8)) return AddressClass::kPrivate;
  if (InV4(a, V4(100, 64, 0, 0), 10)) return AddressClass::kSharedCgnat;
  if (InV4(a, V4(127, 0, 0, 0), 8)) return AddressClass::kLoopback;
  if (InV4(a, V4(169, 254, 0, 0), 16)) return AddressClass::kLinkLocal;
  if (InV4(a, V4(172, 16, 0, 0), 12)) return AddressClass::kPrivate;
  if (InV4(a, V4(192, 0, 0, 0), 24)) return AddressClass::kReserved;  // IETF assignments
  if (InV4(a, V4(192, 0, 2, 0), 24)) return AddressClass::kDocumentation;
  if (InV4(a, V4(192, 88, 99, 0), 24)) return AddressClass::kReserved;  // 6to4 relay
  if (InV4(a, V4(192, 168, 0, 0), 16)) return AddressClass::kPrivate;
  if (InV4(a, V4(198, 18, 0, 0), 15)) return AddressClass::kBenchmarking;
  if (InV4(a, V4(198, 51, 100, 0), 24)) return AddressClass::kDocumentation;
  if (InV4(a, V4(203, 0, 113, 0), 24)) return AddressClass::kDocumentation;
  if (InV4(a, V4(224, 0, 0, 0), 4)) return AddressClass::kMulticast;
  if (InV4(a, V4(240, 0, 0, 0), 4)) return AddressClass::kReserved;
  return AddressClass::kGlobal;
}

AddressClass ClassifyIPv6(const std::array<uint8_t, 16>& a) {
  bool first12_zero = true;
  for (int i = 0; i < 12; ++i) first12_zero = first12_zero && a[i] == 0;
  if (first12_zero) {
    uint32_t tail = V4At(a, 12);
    if (tail == 0) return AddressClass::kUnspecified;
    if (tail == 1) return AddressClass::kLoopback;
    return ClassifyIPv4(tail);  // IPv4-compatible (deprecated)
  }
  // ::ffff:0:0/96 IPv4-mapped
  if (PrefixEq(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96)) return ClassifyIPv4(V4At(a, 12));
  // 64:ff9b::/96 NAT64 well-known prefix
  if (PrefixEq(a, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}, 96)) {
    return ClassifyIPv4(V4At(a, 12));
  }
  if (PrefixEq(a, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) return AddressClass::kPrivate;
  if (PrefixEq(a, {0xff}, 8)) return AddressClass::kMulticast;
  if (PrefixEq(a, {0xfe, 0x80}, 10)) return AddressClass::kLinkLocal;
  if (PrefixEq(a, {0xfe, 0xc0}, 10)) return AddressClass::kPrivate;  // site-local
  if (PrefixEq(a, {0xfc}, 7)) return AddressClass::kPrivate;         // RFC 4193 ULA
  if (PrefixEq(a, {0x20, 0x01, 0x0d, 0xb8}, 32)) return AddressClass::kDocumentation;
  if (PrefixEq(a, {0x3f, 0xff}, 20)) return AddressClass::kDocumentation;  // RFC 9637
  if (PrefixEq(a, {0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48)) return AddressClass::kBenchmarking;
  if (PrefixEq(a, {0x20, 0x01, 0x00}, 23)) return AddressClass::kReserved;  // IETF, Teredo
  if (PrefixEq(a, {0x20, 0x02}, 16)) return ClassifyIPv4(V4At(a, 2));       // 6to4
  if (PrefixEq(a, {0x5f, 0x00}, 16)) return AddressClass::kReserved;        // SRv6 SIDs
  if (!PrefixEq(a, {0x20}, 3)) return AddressClass::kReserved;  // not global unicast space
  return AddressClass::kGlobal;
}

std::optional<AddressClass> ClassifyAddressString(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string s(text);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return ClassifyIPv4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::array<uint8_t, 16> bytes;
    std::memcpy(bytes.data(), &v6, 16);
    return ClassifyIPv6(bytes);
  }
  return std::nullopt;
}

AddressClass ClassifySockaddr(const struct sockaddr* sa, size_t len) {
  if (sa == nullptr) return AddressClass::kReserved;
  sockaddr_storage ss{};
  std::memcpy(&ss, sa, len < sizeof(ss) ? len : sizeof(ss));
  if (ss.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, &ss, sizeof(in));
    return ClassifyIPv4(ntohl(in.sin_addr.s_addr));
  }
  if (ss.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &ss, sizeof(in6));
    std::array<uint8_t, 16> bytes;
    std::memcpy(bytes.data(), &in6.sin6_addr, 16);
    return ClassifyIPv6(bytes);
  }
  return AddressClass::kReserved;
}

std::string FormatSockaddr(const struct sockaddr* sa, size_t len) {
  if (sa == nullptr) return {};
  sockaddr_storage ss{};
  std::memcpy(&ss, sa, len < sizeof(ss) ? len : sizeof(ss));
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, &ss, sizeof(in));
    if (inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf)) != nullptr) return buf;
  } else if (ss.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &ss, sizeof(in6));
    if (inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf)) != nullptr) return buf;
  }
  return {};
}

}  // namespace posh::fetch
