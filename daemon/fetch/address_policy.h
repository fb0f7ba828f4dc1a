// R8: which addresses a POSH retrieval may connect to. Pure functions, no I/O.
// Follows the IANA IPv4/IPv6 Special-Purpose Address Registries: anything not globally
// reachable (loopback, RFC 1918, RFC 4193, link-local, unspecified, multicast, CGNAT,
// documentation, benchmarking, reserved, ...) is refused unless the operator allows it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace posh::fetch {

enum class AddressClass : uint8_t {
  kGlobal = 0,
  kUnspecified,    // 0.0.0.0, ::
  kThisNetwork,    // 0.0.0.0/8
  kLoopback,       // 127/8, ::1
  kPrivate,        // RFC 1918, RFC 4193 fc00::/7, fec0::/10 (site-local), 64:ff9b:1::/48
  kSharedCgnat,    // 100.64/10 (RFC 6598)
  kLinkLocal,      // 169.254/16, fe80::/10
  kMulticast,      // 224/4, ff00::/8
  kBroadcast,      // 255.255.255.255
  kDocumentation,  // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  kBenchmarking,   // 198.18/15, 2001:2::/48
  kReserved,       // 240/4, 192.0.0/24, 192.88.99/24, 100::/64, 2001::/23, outside 2000::/3
};

// Human name, e.g. "loopback".
std::string_view AddressClassName(AddressClass c);

// `addr` in host byte order (0x7f000001 is 127.0.0.1).
AddressClass ClassifyIPv4(uint32_t addr);
// `addr` in network byte order (as in in6_addr). IPv4-mapped (::ffff:0:0/96),
// IPv4-compatible (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged
// by the IPv4 address they embed.
AddressClass ClassifyIPv6(const std::array<uint8_t, 16>& addr);

// Textual address ("127.0.0.1", "::1", "[::1]"). nullopt when not an IP literal.
std::optional<AddressClass> ClassifyAddressString(std::string_view text);

// A socket address (AF_INET / AF_INET6); anything else is kReserved.
AddressClass ClassifySockaddr(const struct sockaddr* sa, size_t len);
// "127.0.0.1", "::1" (no port); empty for unknown families.
std::string FormatSockaddr(const struct sockaddr* sa, size_t len);

inline bool IsGlobal(AddressClass c) { return c == AddressClass::kGlobal; }

}  // namespace posh::fetch
