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

  posh::v1::LookupRequest request;
  request.set_domain(argv[1]);  // service defaults to xmpp-server
  posh::v1::LookupResponse response;
  posh::client::CallStatus status = client.Lookup(request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "lookup failed: %s\n", status.message.c_str());
    return status.unreachable() ? 69 : 64;
  }
  switch (response.status()) {
    case posh::v1::LOOKUP_STATUS_FOUND:
      std::printf("%s: POSH found, %d key(s)%s%s\n", response.domain().c_str(),
                  response.keys_size(), response.delegated_to().empty() ? "" : ", delegated to ",
                  response.delegated_to().c_str());
      return 0;
    case posh::v1::LOOKUP_STATUS_NOT_FOUND:
      std::printf("%s: no POSH published\n", response.domain().c_str());
      return 1;
    default:
      std::printf("%s: error: %s\n", response.domain().c_str(), response.error().c_str());
      return 2;
  }
}
