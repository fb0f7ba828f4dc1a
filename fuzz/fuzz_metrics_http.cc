// Fuzzes the --metrics-listen request-head parser (daemon/server/metrics_http.h): no crash,
// no read outside the input, and the verdict never changes as bytes arrive. The server
// decides on a prefix (it parses again only when a line may have ended), so for every split
// the prefix must be undecided or decided exactly as the whole input is; a response is
// always a status line of a known code.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/metrics_http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using posh::server::ParseRequestHead;
  using State = posh::server::RequestHead::State;
  const std::string whole(reinterpret_cast<const char*>(data), size);
  const auto full = ParseRequestHead(whole);
  for (size_t cut = 0; cut < size; cut += 1 + cut / 8) {
    const auto part = ParseRequestHead(std::string_view(whole).substr(0, cut));
    if (part.state == State::kIncomplete) continue;
    if (part.state != full.state) __builtin_trap();
    if (part.state == State::kComplete &&
        (part.method != full.method || part.target != full.target ||
         part.minor_version != full.minor_version))
      __builtin_trap();
  }
  if (full.state != State::kIncomplete) {
    const std::string response =
        posh::server::BuildResponse(full, [] { return std::string("x 1\n"); });
    static const char* const kLines[] = {"HTTP/1.1 200 ", "HTTP/1.1 400 ", "HTTP/1.1 404 ",
                                         "HTTP/1.1 405 ", "HTTP/1.1 505 "};
    bool known = false;
    for (const char* l : kLines) known = known || response.rfind(l, 0) == 0;
    if (!known || response.find("\r\n\r\n") == std::string::npos) __builtin_trap();
  }
  return 0;
}
