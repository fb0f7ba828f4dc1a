// Example: look up a domain's POSH record with the C++ client.
//   example_lookup_cpp DOMAIN [SOCKET]
#include <posh/client.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DOMAIN [SOCKET]\n", argv[0]);
    return 64;
  }
  posh::client::ClientOptions options;
  if (argc > 2) options.socket_path = argv[2];
  options.timeout = std::chrono::seconds(15);
  posh::client::Client client(options);

  posh::client::LookupRequest request;
  request.domain = argv[1];  // service defaults to xmpp-server
  posh::client::LookupResult result;
  posh::client::CallStatus status = client.Lookup(request, &result);
  if (!status.ok()) {
    std::fprintf(stderr, "lookup failed: %s\n", status.message.c_str());
    return status.unreachable() ? 69 : 64;
  }
  switch (result.status) {
    case posh::client::LookupStatus::kFound:
      std::printf("%s: POSH found, %zu key(s)%s%s\n", result.domain.c_str(), result.keys.size(),
                  result.delegated_to.empty() ? "" : ", delegated to ",
                  result.delegated_to.c_str());
      return 0;
    case posh::client::LookupStatus::kNotFound:
      std::printf("%s: no POSH published\n", result.domain.c_str());
      return 1;
    default:
      std::printf("%s: error: %s\n", result.domain.c_str(), result.error.c_str());
      return 2;
  }
}
