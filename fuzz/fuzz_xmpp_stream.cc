// poshctl probe's STARTTLS parser (client-lib/poshctl/xmpp_stream_parser) fed hostile server
// bytes, in chunks of fuzzer-chosen sizes (a stream arrives in arbitrary reads). It must
// never crash, and once it reached a terminal state it must stay there.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "xmpp_stream_parser.h"

using posh::ctl::probe::XmppStreamParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  XmppStreamParser parser;
  bool terminal = false;
  while (!rest.empty()) {
    const size_t n = rest.size() < chunk ? rest.size() : chunk;
    const XmppStreamParser::State before = parser.state();
    const XmppStreamParser::State s = parser.Feed(rest.substr(0, n));
    if (terminal && s != before) __builtin_trap();  // a terminal state is final
    terminal = XmppStreamParser::Terminal(s);
    (void)parser.error();
    (void)posh::ctl::probe::StateName(s);
    rest.remove_prefix(n);
  }
  return 0;
}
