#include "server/options.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>

#include "l2/redis_tier.h"
#include "server/metrics_http.h"

namespace posh::server {
namespace {

Result<int64_t> ParseInt(const std::string& key, const std::string& v, int64_t min, int64_t max,
                         int base = 10) {
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) {
    return Fail(Error{64, "--" + key + ": \"" + v + "\" is not an integer"});
  }
  if (out < min || out > max) {
    return Fail(Error{64, "--" + key + ": " + v + " is out of range [" + std::to_string(min) +
                              ", " + std::to_string(max) + "]"});
  }
  return out;
}

bool IsBooleanFlag(const std::string& key) { return key == "allow-private-addresses"; }

}  // namespace

std::string DefaultSocketPath() {
  // Under systemd (RuntimeDirectory=poshd), $RUNTIME_DIRECTORY is /run/poshd.
  if (const char* rt = std::getenv("RUNTIME_DIRECTORY"); rt && *rt) {
    std::string dir(rt);
    if (auto colon = dir.find(':'); colon != std::string::npos) dir.resize(colon);
    return dir + "/poshd.sock";
  }
  if (geteuid() == 0) return "/run/poshd/poshd.sock";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    return std::string(xdg) + "/poshd/poshd.sock";
  }
  return "/tmp/poshd-" + std::to_string(geteuid()) + "/poshd.sock";
}

const char* UsageText() {
  return R"(usage: poshd [OPTIONS]
POSH (RFC 7711) resolution daemon for XMPP servers; gRPC API on a unix socket.

  --socket PATH                  unix socket to listen on (default: /run/poshd/poshd.sock
                                 for root, $XDG_RUNTIME_DIR/poshd/poshd.sock otherwise)
  --socket-mode OCTAL            socket permissions (default 0660)
  --config FILE                  configuration file (same keys as the flags)
  --state-dir DIR                keep the cache snapshot in DIR (default: no persistence)
  --ca-file PEM                  trust anchors for HTTPS retrievals (default: system store)
  --connect-to HOST:PORT:CHOST:CPORT
                                 repeatable; send requests for HOST:PORT to CHOST:CPORT
                                 (curl syntax; such targets are trusted, R8)
  --fetch-timeout SECONDS        whole-retrieval timeout (default 10)
  --max-body BYTES               body limit (default 65536)
  --max-ttl SECONDS              longest positive cache lifetime (default 86400)
  --negative-ttl SECONDS         cache lifetime of "not found" (default 300)
  --error-ttl SECONDS            cache lifetime of errors (default 30)
  --stale-ttl SECONDS            stale window after transient refresh failures (default 3600)
  --max-entries N                cache capacity (default 100000)
  --snapshot-interval SECONDS    periodic snapshot (default 300; 0 = only at shutdown)
  --max-concurrent-retrievals N  retrievals running at once; more wait their turn (default 256)
  --max-queued-retrievals N      retrievals waiting for a slot; over it the oldest waiting
                                 retrieval is dropped, its callers answered (default 10000)
  --jostle-timeout MS            when every slot is busy, a new retrieval may displace one
                                 that has run longer than this (default 5000; 0 = never)
  --loop-niceness N              niceness the retrieval loop adds to its own (0-19, default
                                 10): cold work yields to cached answers
  --max-connections N            client connections at once; more are closed at once with a
                                 log line (default 1024)
  --max-request-bytes BYTES      largest request accepted; larger ones get RESOURCE_EXHAUSTED
                                 (default 262144, room for a 32-certificate chain)
  --allow-private-addresses      allow loopback/private/link-local targets (lifts R8)
  --log-level LEVEL              error, warn, info (default), debug
  --metrics-listen ADDR:PORT     optional Prometheus endpoint (/metrics) on loopback
                                 (127.0.0.1:PORT or [::1]:PORT); off by default
  --redis URL                    optional second tier shared by a fleet of daemons:
                                 redis://HOST:PORT (HOST an IP address or localhost) or
                                 unix:PATH; asked on a local miss before fetching, fresh
                                 results written back; off by default
  --redis-key-file FILE          the fleet's key (32+ bytes, readable by poshd only) that
                                 authenticates entries in Redis; required with --redis
  --redis-user NAME              Redis ACL user poshd authenticates as (with
                                 --redis-password-file; default: Redis's default user)
  --redis-password-file FILE     Redis password (one line, readable by poshd only); poshd
                                 sends AUTH on every connection; off by default
  --help, --version
)";
}

Result<bool> ApplySetting(const std::string& key, const std::string& value, DaemonOptions* o) {
  auto seconds = [&](int64_t max) { return ParseInt(key, value, 0, max); };
  if (key == "socket") {
    if (value.empty()) return Fail(Error{64, "--socket: empty path"});
    o->socket_path = value;
  } else if (key == "socket-mode") {
    auto m = ParseInt(key, value, 0, 0777, 8);
    if (!m) return Fail(m.error());
    o->socket_mode = static_cast<unsigned>(*m);
  } else if (key == "config") {
    o->config_file = value;
  } else if (key == "state-dir") {
    o->state_dir = value;
  } else if (key == "ca-file") {
    if (value.empty() || access(value.c_str(), R_OK) != 0) {
      return Fail(Error{64, "--ca-file: cannot read \"" + value + "\""});
    }
    o->fetcher.ca_file = value;
  } else if (key == "connect-to") {
    // HOST:PORT:CHOST:CPORT (CHOST may be a bracketed IPv6 literal).
    size_t colons = 0;
    bool in_bracket = false;
    for (char c : value) {
      if (c == '[') in_bracket = true;
      if (c == ']') in_bracket = false;
      if (c == ':' && !in_bracket) ++colons;
    }
    if (colons != 3) {
      return Fail(Error{64, "--connect-to: \"" + value + "\" is not HOST:PORT:CHOST:CPORT"});
    }
    o->fetcher.connect_to.push_back(value);
  } else if (key == "fetch-timeout") {
    auto s = ParseInt(key, value, 1, 3600);
    if (!s) return Fail(s.error());
    o->service.resolver.timeout = std::chrono::seconds(*s);
    o->fetcher.connect_timeout =
        std::min<std::chrono::milliseconds>(std::chrono::seconds(5), std::chrono::seconds(*s));
  } else if (key == "max-body") {
    auto b = ParseInt(key, value, 1, 64LL << 20);
    if (!b) return Fail(b.error());
    o->service.resolver.max_body = static_cast<size_t>(*b);
  } else if (key == "max-ttl") {
    auto s = seconds(365LL * 86400);
    if (!s) return Fail(s.error());
    o->service.lifetimes.max_ttl_ms = *s * 1000;
    // A shared reference target (R11) is kept no longer than any entry would be (R16).
    o->service.resolver.reference_cache_max_ttl = std::chrono::seconds(*s);
  } else if (key == "negative-ttl") {
    auto s = seconds(30LL * 86400);
    if (!s) return Fail(s.error());
    o->service.lifetimes.negative_ttl_ms = *s * 1000;
  } else if (key == "error-ttl") {
    auto s = seconds(86400);
    if (!s) return Fail(s.error());
    o->service.lifetimes.error_ttl_ms = *s * 1000;
  } else if (key == "stale-ttl") {
    auto s = seconds(30LL * 86400);
    if (!s) return Fail(s.error());
    o->service.lifetimes.stale_ttl_ms = *s * 1000;
  } else if (key == "max-entries") {
    auto n = ParseInt(key, value, 1, 100000000);
    if (!n) return Fail(n.error());
    o->max_entries = static_cast<size_t>(*n);
  } else if (key == "max-concurrent-retrievals") {
    auto n = ParseInt(key, value, 1, 100000);
    if (!n) return Fail(n.error());
    o->service.max_concurrent_retrievals = static_cast<size_t>(*n);
  } else if (key == "max-queued-retrievals") {
    auto n = ParseInt(key, value, 1, 10000000);
    if (!n) return Fail(n.error());
    o->service.max_queued_retrievals = static_cast<size_t>(*n);
  } else if (key == "jostle-timeout") {
    auto n = ParseInt(key, value, 0, 3600 * 1000);
    if (!n) return Fail(n.error());
    o->service.jostle_timeout_ms = *n;
  } else if (key == "loop-niceness") {
    auto n = ParseInt(key, value, 0, 19);
    if (!n) return Fail(n.error());
    o->loop_niceness = static_cast<int>(*n);
  } else if (key == "max-connections") {
    auto n = ParseInt(key, value, 1, 1000000);
    if (!n) return Fail(n.error());
    o->max_connections = static_cast<size_t>(*n);
  } else if (key == "max-request-bytes") {
    auto n = ParseInt(key, value, 4096, 64LL << 20);
    if (!n) return Fail(n.error());
    o->max_request_bytes = static_cast<size_t>(*n);
  } else if (key == "snapshot-interval") {
    auto s = seconds(86400);
    if (!s) return Fail(s.error());
    o->snapshot_interval_s = static_cast<int>(*s);
  } else if (key == "allow-private-addresses") {
    if (value == "true" || value == "1" || value == "yes" || value.empty()) {
      o->fetcher.allow_private_addresses = true;
    } else if (value == "false" || value == "0" || value == "no") {
      o->fetcher.allow_private_addresses = false;
    } else {
      return Fail(Error{64, "--allow-private-addresses: \"" + value + "\" is not a boolean"});
    }
  } else if (key == "metrics-listen") {
    if (!value.empty()) {  // empty: off (a config file's metrics-listen = "")
      auto ep = ParseMetricsListen(value);
      if (!ep) return Fail(ep.error());
    }
    o->metrics_listen = value;
  } else if (key == "redis") {
    if (!value.empty()) {  // empty: off
      auto a = l2::ParseRedisUrl(value);
      if (!a) return Fail(Error{64, a.error().message});
    }
    o->redis = value;
  } else if (key == "redis-key-file") {
    o->redis_key_file = value;
  } else if (key == "redis-user") {
    if (value.find_first_of(" \t\r\n") != std::string::npos) {
      return Fail(Error{64, "--redis-user: \"" + value + "\" contains white space"});
    }
    o->redis_user = value;
  } else if (key == "redis-password-file") {
    o->redis_password_file = value;
  } else if (key == "log-level") {
    if (!log::ParseLevel(value, &o->log_level)) {
      return Fail(Error{64, "--log-level: \"" + value + "\" is not error, warn, info or debug"});
    }
  } else {
    return Fail(Error{64, "unknown setting \"" + key + "\""});
  }
  return true;
}

Result<bool> ParseFlags(int argc, char** argv, DaemonOptions* o) {
  bool connect_to_seen = false;  // flags replace the config file's connect-to list
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o->show_help = true;
      continue;
    }
    if (arg == "--version") {
      o->show_version = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return Fail(Error{64, "unexpected argument \"" + arg + "\""});
    std::string key = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
      has_value = true;
    }
    if (!has_value && !IsBooleanFlag(key)) {
      if (i + 1 >= argc) {
        DaemonOptions probe;  // a known flag lacks its value; an unknown one is just unknown
        auto known = ApplySetting(key, "", &probe);
        if (!known && known.error().message.rfind("unknown setting", 0) == 0) {
          return Fail(Error{64, "unknown flag --" + key});
        }
        return Fail(Error{64, "--" + key + " needs a value"});
      }
      value = argv[++i];
    }
    if (key == "connect-to" && !connect_to_seen) {
      connect_to_seen = true;
      o->fetcher.connect_to.clear();
    }
    auto r = ApplySetting(key, value, o);
    if (!r) {
      Error e = r.error();
      if (e.message.rfind("unknown setting", 0) == 0) e.message = "unknown flag --" + key;
      return Fail(e);
    }
  }
  return true;
}

}  // namespace posh::server
