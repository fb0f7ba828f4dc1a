// A host program that carries posh.v1 itself (the full generated code, registered in
// protobuf's global descriptor pool) and uses libposhclient.so beside it (issue 14). The
// library must neither export its posh.v1 code (the program's symbols would interpose, or
// clash with, the library's) nor register the same .proto in the same pool: protobuf would
// abort at load with "File already exists in database: posh/v1/resolver.proto".
#include <cstdio>
#include <string>

#include "posh/client.h"
#include "posh/posh_client.h"
#include "posh/v1/resolver.pb.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s NONEXISTENT_SOCKET\n", argv[0]);
    return 64;
  }
  // The program's own posh.v1, with its descriptor.
  posh::v1::LookupResponse own;
  own.set_domain("example.com");
  if (own.GetDescriptor()->full_name() != "posh.v1.LookupResponse") return 1;
  std::string bytes = own.SerializeAsString();

  // The library's C++ and C APIs, against a socket nobody listens on: unreachable.
  posh::client::ClientOptions o;
  o.socket_path = argv[1];
  o.timeout = std::chrono::milliseconds(2000);
  o.reconnect_wait = std::chrono::milliseconds(0);
  posh::client::Client client(o);
  posh::client::LookupResult result;
  posh::client::CallStatus st = client.Lookup("example.com", "", &result);
  if (st.ok() || !st.unreachable()) {
    std::fprintf(stderr, "C++ lookup: code %d (%s), want unreachable\n", st.code,
                 st.message.c_str());
    return 1;
  }
  posh_client* c = posh_client_open(argv[1], 500);  // bounds the reconnect wait too
  if (!c) return 1;
  posh_lookup_result* r = nullptr;
  int rc = posh_lookup(c, "example.com", nullptr, 0, &r);
  posh_client_close(c);
  if (rc != POSH_EUNAVAILABLE) {
    std::fprintf(stderr, "C lookup: %d, want POSH_EUNAVAILABLE\n", rc);
    return 1;
  }
  // The program's messages still work after the library's ran.
  posh::v1::LookupResponse parsed;
  if (!parsed.ParseFromString(bytes) || parsed.domain() != "example.com") return 1;
  std::puts("ok: posh.v1 in the program and libposhclient.so side by side");
  return 0;
}
