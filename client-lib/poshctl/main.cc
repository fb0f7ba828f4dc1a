// poshctl: command-line client of poshd (lookups, verification, cache inspection) and the
// POSH document publisher. Formats only: the work is done by the daemon, reached through
// libposhclient's internal, protobuf-typed client (it needs every field of every answer, and
// the Prometheus formatter takes GetStatsResponse), linked statically: poshctl does not use
// the installed library's stable C++ API.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/base64.h"
#include "core/certificate.h"
#include "core/domain.h"
#include "core/publish.h"
#include "json_writer.h"
#include "posh/v1/prometheus.h"
#include "probe.h"
#include "rpc_client.h"
#include "stats_counters.h"
#include "verdict_name.h"

namespace {

using posh::ctl::JsonWriter;

constexpr int kExitOk = 0;
constexpr int kExitNegative = 1;      // no POSH / not verified
constexpr int kExitUndetermined = 2;  // retrieval or document error
constexpr int kExitUsage = 64;
constexpr int kExitDataErr = 65;
constexpr int kExitUnavailable = 69;

const char* kUsage = R"(usage: poshctl [--socket PATH] [--json] COMMAND [ARGS]

commands:
  lookup DOMAIN [--service S] [--refresh]    the POSH record for DOMAIN
  verify DOMAIN --cert FILE [--service S]    verify a certificate (PEM chain, leaf first, or DER)
  cache list [--domain D]                    the cached entries
  cache show DOMAIN [--service S]            one entry in full
  cache evict DOMAIN [--service S]           drop one entry
  cache flush                                drop every entry
  stats [--prometheus]                       the daemon's counters (--prometheus: the text
                                             exposition format, for node_exporter's textfile
                                             collector)
  publish CERT... [--format rfc7711|jwk] [--expires SECONDS]
                                             print the POSH document for these certificates
  probe DOMAIN [--service S] [--connect-to HOST:PORT [--direct-tls]]
               [--dns-server ADDR[:PORT]] [--ca-file PEM] [--timeout SECS]
                                             check a live XMPP domain end to end: SRV,
                                             connect, STARTTLS or direct TLS, the chain,
                                             PKIX, then POSH through the daemon (--timeout
                                             bounds the whole probe, default 15)

options:
  --socket PATH   the daemon's socket (default: $POSHD_SOCKET, else the daemon's default)
  --json          one JSON object on standard output
  --timeout SECS  RPC timeout (default 30; probe: the whole probe, default 15)

exit status: 0 found/verified/done, 1 no POSH or not verified, 2 undetermined (error),
             64 usage, 69 daemon unreachable
)";

struct Args {
  std::string socket;
  bool json = false;
  int timeout_s = 30;
  bool timeout_set = false;
  std::vector<std::string> positional;
  std::string service;
  bool refresh = false;
  bool prometheus = false;
  std::string cert;
  std::string format = "rfc7711";
  int64_t expires = 86400;
  bool expires_set = false;
  std::string domain_filter;
  std::string connect_to;
  bool direct_tls = false;
  std::string dns_server;
  std::string ca_file;
};

int Usage(const std::string& msg) {
  if (!msg.empty()) std::fprintf(stderr, "poshctl: %s\n", msg.c_str());
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  return posh::core::FormatTime(ts.seconds());
}

std::string B64(const std::string& raw) {
  return posh::core::EncodeBase64(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
}

const char* StatusName(posh::v1::LookupStatus s) {
  switch (s) {
    case posh::v1::LOOKUP_STATUS_FOUND:
      return "found";
    case posh::v1::LOOKUP_STATUS_NOT_FOUND:
      return "not_found";
    default:
      return "error";
  }
}

using posh::ctl::VerdictName;

const char* FormatName(posh::v1::DocumentFormat f) {
  switch (f) {
    case posh::v1::DOCUMENT_FORMAT_RFC7711:
      return "rfc7711";
    case posh::v1::DOCUMENT_FORMAT_JWK:
      return "jwk";
    default:
      return nullptr;
  }
}

void WriteLookupJson(JsonWriter& w, const posh::v1::LookupResponse& r) {
  w.Key("domain").String(r.domain());
  w.Key("service").String(r.service());
  w.Key("status").String(StatusName(r.status()));
  w.Key("delegated_to").StringOrNull(r.delegated_to());
  if (const char* f = FormatName(r.format()); f && r.status() == posh::v1::LOOKUP_STATUS_FOUND) {
    w.Key("format").String(f);
  } else {
    w.Key("format").Null();
  }
  w.Key("keys").BeginArray();
  for (const auto& k : r.keys()) {
    w.BeginObject();
    for (const auto& fp : k.fingerprints()) w.Key(fp.hash()).String(B64(fp.value()));
    w.Key("kid").StringOrNull(k.kid());
    if (k.has_not_after()) {
      w.Key("not_after").String(Rfc3339(k.not_after()));
    } else {
      w.Key("not_after").Null();
    }
    if (!k.key_type().empty()) w.Key("kty").String(k.key_type());
    w.EndObject();
  }
  w.EndArray();
  if (r.has_expires_at()) {
    w.Key("expires_at").String(Rfc3339(r.expires_at()));
  } else {
    w.Key("expires_at").Null();
  }
  w.Key("from_cache").Bool(r.from_cache());
  w.Key("stale").Bool(r.stale());
  if (r.has_fetched_at()) w.Key("fetched_at").String(Rfc3339(r.fetched_at()));
  if (!r.source_url().empty()) w.Key("source_url").String(r.source_url());
  if (r.status() == posh::v1::LOOKUP_STATUS_ERROR) {
    w.Key("error").String(r.error().empty() ? "unknown error" : r.error());
  }
}

void PrintLookupHuman(const posh::v1::LookupResponse& r) {
  std::printf("%s (%s): %s\n", r.domain().c_str(), r.service().c_str(), StatusName(r.status()));
  if (r.status() == posh::v1::LOOKUP_STATUS_ERROR) std::printf("  error: %s\n", r.error().c_str());
  if (r.status() == posh::v1::LOOKUP_STATUS_FOUND) {
    const char* f = FormatName(r.format());
    std::printf("  format:       %s\n", f ? f : "?");
    std::printf("  delegated to: %s\n", r.delegated_to().empty() ? "-" : r.delegated_to().c_str());
    if (!r.source_url().empty()) std::printf("  source:       %s\n", r.source_url().c_str());
    int i = 0;
    for (const auto& k : r.keys()) {
      std::printf("  key %d:%s%s\n", ++i, k.kid().empty() ? "" : " kid ", k.kid().c_str());
      for (const auto& fp : k.fingerprints()) {
        std::printf("    %-8s %s\n", fp.hash().c_str(), B64(fp.value()).c_str());
      }
      if (k.has_not_after()) std::printf("    notAfter %s\n", Rfc3339(k.not_after()).c_str());
    }
  }
  if (r.has_expires_at()) {
    std::printf("  expires:      %s%s\n", Rfc3339(r.expires_at()).c_str(),
                r.stale() ? " (stale)" : "");
  }
  std::printf("  from cache:   %s\n", r.from_cache() ? "yes" : "no");
}

int LookupExit(posh::v1::LookupStatus s) {
  switch (s) {
    case posh::v1::LOOKUP_STATUS_FOUND:
      return kExitOk;
    case posh::v1::LOOKUP_STATUS_NOT_FOUND:
      return kExitNegative;
    default:
      return kExitUndetermined;
  }
}

int RpcFailure(const posh::client::CallStatus& st, const posh::client_rpc::RpcClient& c) {
  if (st.invalid_argument()) {
    std::fprintf(stderr, "poshctl: %s\n", st.message.c_str());
    return kExitUsage;
  }
  if (st.unreachable()) {
    std::fprintf(stderr, "poshctl: cannot reach poshd at %s: %s\n", c.socket_path().c_str(),
                 st.message.c_str());
    return kExitUnavailable;
  }
  std::fprintf(stderr, "poshctl: poshd answered error %d: %s\n", st.code, st.message.c_str());
  return kExitUndetermined;
}

bool ReadFile(const std::string& path, std::string* out, std::string* err) {
  struct stat sb;
  if (::stat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    *err = "cannot read \"" + path + "\": not a readable file";
    return false;
  }
  if (sb.st_size > (16 << 20)) {
    *err = "\"" + path + "\" is too large for a certificate file";
    return false;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = "cannot open \"" + path + "\"";
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Bad input is a usage error even when the daemon is down (the daemon checks again).
int CheckKey(const std::string& domain, const std::string& service) {
  if (auto d = posh::core::NormalizeDomain(domain); !d) {
    std::fprintf(stderr, "poshctl: %s\n", d.error().message.c_str());
    return kExitUsage;
  }
  if (auto s = posh::core::NormalizeService(service); !s) {
    std::fprintf(stderr, "poshctl: %s\n", s.error().message.c_str());
    return kExitUsage;
  }
  return kExitOk;
}

int CmdLookup(const Args& a, posh::client_rpc::RpcClient& c) {
  if (a.positional.size() != 2) return Usage("lookup takes exactly one DOMAIN");
  if (int rc = CheckKey(a.positional[1], a.service); rc != kExitOk) return rc;
  posh::v1::LookupRequest req;
  req.set_domain(a.positional[1]);
  req.set_service(a.service);
  req.set_refresh(a.refresh);
  posh::v1::LookupResponse resp;
  auto st = c.Lookup(req, &resp);
  if (!st.ok()) return RpcFailure(st, c);
  if (a.json) {
    JsonWriter w;
    w.BeginObject();
    WriteLookupJson(w, resp);
    w.EndObject();
    std::puts(w.str().c_str());
  } else {
    PrintLookupHuman(resp);
  }
  return LookupExit(resp.status());
}

int CmdVerify(const Args& a, posh::client_rpc::RpcClient& c) {
  if (a.positional.size() != 2) return Usage("verify takes exactly one DOMAIN");
  if (a.cert.empty()) return Usage("verify needs --cert FILE");
  if (int rc = CheckKey(a.positional[1], a.service); rc != kExitOk) return rc;
  std::string content, err;
  if (!ReadFile(a.cert, &content, &err)) return Usage(err);
  auto chain = posh::core::ParseChainFile(content);
  if (!chain) return Usage("--cert " + a.cert + ": " + chain.error().message);
  posh::v1::VerifyRequest req;
  req.set_domain(a.positional[1]);
  req.set_service(a.service);
  for (const auto& der : *chain) req.add_presented_chain(der.data(), der.size());
  posh::v1::VerifyResponse resp;
  auto st = c.Verify(req, &resp);
  if (!st.ok()) return RpcFailure(st, c);
  if (a.json) {
    JsonWriter w;
    w.BeginObject();
    w.Key("verified").Bool(resp.verdict() == posh::v1::VERDICT_VERIFIED);
    w.Key("verdict").String(VerdictName(resp.verdict()));
    w.Key("domain").String(resp.domain());
    w.Key("service").String(resp.service());
    w.Key("delegated_to").StringOrNull(resp.delegated_to());
    w.Key("reason").StringOrNull(resp.reason());
    w.Key("matched_kid").StringOrNull(resp.matched_kid());
    w.Key("from_cache").Bool(resp.from_cache());
    w.Key("record").BeginObject();
    WriteLookupJson(w, resp.record());
    w.EndObject();
    w.EndObject();
    std::puts(w.str().c_str());
  } else {
    std::printf("%s (%s): %s\n", resp.domain().c_str(), resp.service().c_str(),
                VerdictName(resp.verdict()));
    if (!resp.delegated_to().empty())
      std::printf("  delegated to: %s\n", resp.delegated_to().c_str());
    if (!resp.matched_kid().empty())
      std::printf("  matched key:  %s\n", resp.matched_kid().c_str());
    if (!resp.reason().empty()) std::printf("  reason:       %s\n", resp.reason().c_str());
  }
  switch (resp.verdict()) {
    case posh::v1::VERDICT_VERIFIED:
      return kExitOk;
    case posh::v1::VERDICT_NOT_VERIFIED:
    case posh::v1::VERDICT_NO_POSH:
      return kExitNegative;
    default:
      return kExitUndetermined;
  }
}

void WriteEntryJson(JsonWriter& w, const posh::v1::CacheEntry& e) {
  w.Key("domain").String(e.domain());
  w.Key("service").String(e.service());
  w.Key("status").String(StatusName(e.status()));
  if (e.has_expires_at()) {
    w.Key("expires_at").String(Rfc3339(e.expires_at()));
  } else {
    w.Key("expires_at").Null();
  }
  w.Key("hits").Uint(e.hits());
}

int CmdCache(const Args& a, posh::client_rpc::RpcClient& c) {
  if (a.positional.size() < 2) return Usage("cache needs list, show, evict or flush");
  const std::string& sub = a.positional[1];
  if (sub == "list" || sub == "show") {
    std::string domain = a.domain_filter;
    if (sub == "show") {
      if (a.positional.size() != 3) return Usage("cache show takes exactly one DOMAIN");
      domain = a.positional[2];
    } else if (a.positional.size() != 2) {
      return Usage("cache list takes no arguments (use --domain D to filter)");
    }
    posh::v1::ListEntriesRequest req;
    req.set_domain(domain);
    req.set_page_size(1000);
    std::vector<posh::v1::CacheEntry> all;
    for (;;) {
      posh::v1::ListEntriesResponse resp;
      auto st = c.ListEntries(req, &resp);
      if (!st.ok()) return RpcFailure(st, c);
      for (auto& e : *resp.mutable_entries()) all.push_back(std::move(e));
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    if (sub == "show") {
      // The service filter is applied here: ListEntries filters by domain.
      std::string service = a.service.empty() ? "xmpp-server" : a.service;
      const posh::v1::CacheEntry* found = nullptr;
      for (const auto& e : all) {
        if (e.service() == service) found = &e;
      }
      if (!found) {
        if (a.json) {
          JsonWriter w;
          w.BeginObject().Key("domain").String(domain).Key("service").String(service);
          w.Key("cached").Bool(false).EndObject();
          std::puts(w.str().c_str());
        } else {
          std::printf("%s (%s): not in cache\n", domain.c_str(), service.c_str());
        }
        return kExitNegative;
      }
      if (a.json) {
        JsonWriter w;
        w.BeginObject();
        WriteLookupJson(w, found->record());
        w.Key("cached").Bool(true);
        w.Key("hits").Uint(found->hits());
        w.EndObject();
        std::puts(w.str().c_str());
      } else {
        PrintLookupHuman(found->record());
        std::printf("  hits:         %llu\n", static_cast<unsigned long long>(found->hits()));
      }
      return kExitOk;
    }
    if (a.json) {
      JsonWriter w;
      w.BeginObject().Key("entries").BeginArray();
      for (const auto& e : all) {
        w.BeginObject();
        WriteEntryJson(w, e);
        w.EndObject();
      }
      w.EndArray().Key("count").Uint(all.size()).EndObject();
      std::puts(w.str().c_str());
    } else {
      std::printf("%-40s %-14s %-10s %s\n", "DOMAIN", "SERVICE", "STATUS", "EXPIRES");
      for (const auto& e : all) {
        std::printf("%-40s %-14s %-10s %s\n", e.domain().c_str(), e.service().c_str(),
                    StatusName(e.status()),
                    e.has_expires_at() ? Rfc3339(e.expires_at()).c_str() : "-");
      }
      std::printf("%zu entries\n", all.size());
    }
    return kExitOk;
  }
  if (sub == "evict") {
    if (a.positional.size() != 3) return Usage("cache evict takes exactly one DOMAIN");
    posh::v1::EvictRequest req;
    req.set_domain(a.positional[2]);
    req.set_service(a.service);
    posh::v1::EvictResponse resp;
    auto st = c.Evict(req, &resp);
    if (!st.ok()) return RpcFailure(st, c);
    if (a.json) {
      JsonWriter w;
      w.BeginObject().Key("evicted").Bool(resp.evicted()).EndObject();
      std::puts(w.str().c_str());
    } else {
      std::printf("%s\n", resp.evicted() ? "evicted" : "not in cache");
    }
    return kExitOk;
  }
  if (sub == "flush") {
    if (a.positional.size() != 2) return Usage("cache flush takes no arguments");
    posh::v1::FlushResponse resp;
    auto st = c.Flush(&resp);
    if (!st.ok()) return RpcFailure(st, c);
    if (a.json) {
      JsonWriter w;
      w.BeginObject().Key("flushed").Uint(resp.flushed()).EndObject();
      std::puts(w.str().c_str());
    } else {
      std::printf("flushed %llu entries\n", static_cast<unsigned long long>(resp.flushed()));
    }
    return kExitOk;
  }
  return Usage("unknown cache command \"" + sub + "\"");
}

int CmdStats(const Args& a, posh::client_rpc::RpcClient& c) {
  if (a.positional.size() != 1) return Usage("stats takes no arguments");
  posh::v1::GetStatsResponse s;
  auto st = c.GetStats(&s);
  if (!st.ok()) return RpcFailure(st, c);
  const auto counters = posh::client_rpc::StatsCounters(s);
  const auto& h = s.retrieval_latency();
  if (a.prometheus) {
    // The same formatter as poshd's --metrics-listen endpoint.
    std::fputs(posh::metrics::FormatPrometheus(s).c_str(), stdout);
    return std::fflush(stdout) == 0 ? kExitOk : kExitUndetermined;
  }
  if (a.json) {
    JsonWriter w;
    w.BeginObject();
    for (const auto& [k, v] : counters) w.Key(k).Uint(v);
    w.Key("retrieval_latency_ms").BeginObject();
    w.Key("p50").Double(h.p50_ms()).Key("p90").Double(h.p90_ms()).Key("p99").Double(h.p99_ms());
    w.Key("sum").Double(h.sum_ms());
    w.Key("buckets").BeginArray();
    for (int i = 0; i < h.counts_size(); ++i) {
      w.BeginObject();
      if (i < h.bucket_upper_ms_size()) {
        w.Key("le").Double(h.bucket_upper_ms(i));
      } else {
        w.Key("le").String("+Inf");
      }
      w.Key("count").Uint(h.counts(i)).EndObject();
    }
    w.EndArray().EndObject();
    w.EndObject();
    std::puts(w.str().c_str());
  } else {
    for (const auto& [k, v] : counters) {
      std::printf("%-20s %llu\n", k, static_cast<unsigned long long>(v));
    }
    std::printf("%-20s p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n", "retrieval_latency", h.p50_ms(),
                h.p90_ms(), h.p99_ms());
  }
  return kExitOk;
}

int CmdPublish(const Args& a) {
  if (a.positional.size() < 2) return Usage("publish needs at least one CERT file");
  if (a.expires <= 0) return Usage("--expires must be a positive number of seconds");
  std::vector<posh::core::Certificate> certs;
  for (size_t i = 1; i < a.positional.size(); ++i) {
    std::string content, err;
    if (!ReadFile(a.positional[i], &content, &err)) return Usage(err);
    auto chain = posh::core::ParseChainFile(content);
    if (!chain) return Usage(a.positional[i] + ": " + chain.error().message);
    // The leaf is what the server presents; the rest of a chain file is not published.
    auto cert = posh::core::ParseCertificateDer((*chain)[0]);
    if (!cert) return Usage(a.positional[i] + ": " + cert.error().message);
    certs.push_back(std::move(cert).value());
  }
  if (a.format == "rfc7711") {
    std::puts(posh::core::PublishFingerprints(certs, a.expires).c_str());
    return kExitOk;
  }
  if (a.format == "jwk") {
    auto doc = posh::core::PublishJwkSet(certs, a.expires_set ? a.expires : 0);
    if (!doc) {
      std::fprintf(stderr, "poshctl: %s\n", doc.error().message.c_str());
      return kExitDataErr;
    }
    std::puts(doc->c_str());
    return kExitOk;
  }
  return Usage("--format must be rfc7711 or jwk");
}

int CmdProbe(const Args& a) {
  if (a.positional.size() != 2) return Usage("probe takes exactly one DOMAIN");
  posh::ctl::probe::ProbeOptions o;
  auto domain = posh::core::NormalizeDomain(a.positional[1]);
  if (!domain) return Usage(domain.error().message);
  o.domain = *domain;
  o.service = a.service.empty() ? "xmpp-server" : a.service;
  if (o.service != "xmpp-server" && o.service != "xmpp-client") {
    return Usage("--service must be xmpp-server or xmpp-client for probe");
  }
  if (!a.connect_to.empty()) {
    auto hp = posh::ctl::probe::ParseHostPort(a.connect_to);
    if (!hp) return Usage("--connect-to: " + hp.error().message);
    o.connect_to = true;
    o.connect_host = hp->first;
    o.connect_port = hp->second;
  } else if (a.direct_tls) {
    return Usage("--direct-tls applies to --connect-to");
  }
  o.direct_tls = a.direct_tls;
  o.dns_server = a.dns_server;
  o.ca_file = a.ca_file;
  o.timeout_s = a.timeout_set ? a.timeout_s : 15;
  o.socket = a.socket;
  o.json = a.json;
  return posh::ctl::probe::RunProbe(o);
}

bool ParseInt64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (const char* env = std::getenv("POSHD_SOCKET"); env && *env) a.socket = env;
  auto need = [&](int& i, const char* flag, std::string* out) {
    if (i + 1 >= argc) return false;
    (void)flag;
    *out = argv[++i];
    return true;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    std::string key = arg;
    bool inline_value = false;
    if (arg.rfind("--", 0) == 0) {
      if (auto eq = arg.find('='); eq != std::string::npos) {
        key = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        inline_value = true;
      }
    }
    auto take = [&](std::string* out) {
      if (inline_value) {
        *out = value;
        return true;
      }
      return need(i, key.c_str(), out);
    };
    if (key == "--help" || key == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (key == "--json") {
      a.json = true;
    } else if (key == "--refresh") {
      a.refresh = true;
    } else if (key == "--prometheus") {
      a.prometheus = true;
    } else if (key == "--socket") {
      if (!take(&a.socket)) return Usage("--socket needs a PATH");
    } else if (key == "--service") {
      if (!take(&a.service)) return Usage("--service needs a name");
    } else if (key == "--cert") {
      if (!take(&a.cert)) return Usage("--cert needs a FILE");
    } else if (key == "--connect-to") {
      if (!take(&a.connect_to) || a.connect_to.empty()) {
        return Usage("--connect-to needs HOST:PORT");
      }
    } else if (key == "--dns-server") {
      if (!take(&a.dns_server) || a.dns_server.empty()) {
        return Usage("--dns-server needs ADDR[:PORT]");
      }
    } else if (key == "--ca-file") {
      if (!take(&a.ca_file) || a.ca_file.empty()) return Usage("--ca-file needs a PEM file");
    } else if (key == "--direct-tls") {
      a.direct_tls = true;
    } else if (key == "--domain") {
      if (!take(&a.domain_filter)) return Usage("--domain needs a DOMAIN");
    } else if (key == "--format") {
      if (!take(&a.format)) return Usage("--format needs rfc7711 or jwk");
    } else if (key == "--expires") {
      std::string v;
      if (!take(&v) || !ParseInt64(v, &a.expires)) return Usage("--expires needs SECONDS");
      a.expires_set = true;
    } else if (key == "--timeout") {
      std::string v;
      int64_t t = 0;
      if (!take(&v) || !ParseInt64(v, &t) || t <= 0 || t > 3600) {
        return Usage("--timeout needs SECONDS (1..3600)");
      }
      a.timeout_s = static_cast<int>(t);
      a.timeout_set = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return Usage("unknown option " + arg);
    } else {
      a.positional.push_back(arg);
    }
  }
  if (a.positional.empty()) return Usage("no command given");
  const std::string& cmd = a.positional[0];
  const bool probe_flags =
      !a.connect_to.empty() || a.direct_tls || !a.dns_server.empty() || !a.ca_file.empty();
  if (probe_flags && cmd != "probe") {
    return Usage("--connect-to, --direct-tls, --dns-server and --ca-file are options of probe");
  }
  if (cmd == "publish") return CmdPublish(a);
  if (cmd == "probe") return CmdProbe(a);

  posh::client::ClientOptions co;
  co.socket_path = a.socket;
  co.timeout = std::chrono::seconds(a.timeout_s);
  co.reconnect_wait = std::chrono::milliseconds(0);  // one-shot: report 69 at once
  if (cmd != "lookup" && cmd != "verify" && cmd != "cache" && cmd != "stats") {
    return Usage("unknown command \"" + cmd + "\"");
  }
  if (a.prometheus && cmd != "stats") return Usage("--prometheus is an option of stats");
  if (a.prometheus && a.json) return Usage("stats takes --json or --prometheus, not both");
  posh::client_rpc::RpcClient client(co);
  if (cmd == "lookup") return CmdLookup(a, client);
  if (cmd == "verify") return CmdVerify(a, client);
  if (cmd == "cache") return CmdCache(a, client);
  return CmdStats(a, client);
}
