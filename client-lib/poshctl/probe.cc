// poshctl probe: the steps in order, the conclusion and the report (human or --json).
#include "probe.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <random>
#include <string>

#include "core/certificate.h"
#include "core/utf8.h"
#include "json_writer.h"
#include "rpc_client.h"
#include "verdict_name.h"

namespace posh::ctl::probe {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitNegative = 1;
constexpr int kExitUndetermined = 2;
constexpr int kExitUnavailable = 69;

struct Step {
  std::string step;
  bool ok = false;
  int64_t ms = 0;
  std::string target;  // "host:port" or empty
  std::string detail;
};

struct Target {
  std::string host;
  uint16_t port = 0;
  bool direct_tls = false;
};

struct PoshOutcome {
  std::string verdict;  // "verified", "not_verified", "no_posh", "error"
  std::string delegated_to;
  std::string reason;
};

struct Report {
  std::string domain;
  std::string service;
  std::vector<Step> steps;
  std::vector<CertSummary> chain;
  bool have_chain = false;
  PkixOutcome pkix;
  bool have_posh = false;
  PoshOutcome posh;
  bool authenticated = false;
  std::string method;  // "pkix", "posh" or empty
  std::string conclusion;
};

// Server-provided text (names, reasons) goes to a terminal and into JSON: printable, valid
// UTF-8, bounded.
std::string Clean(std::string_view in) {
  std::string out;
  out.reserve(std::min<size_t>(in.size(), 512));
  for (unsigned char c : in) {
    if (out.size() >= 512) {
      out += "...";
      break;
    }
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (!posh::core::IsValidUtf8(out)) {
    for (char& c : out) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
  }
  return out;
}

int64_t MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

std::string HostPort(const std::string& host, uint16_t port) {
  std::string s = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ':';
  s += std::to_string(port);
  return s;
}

std::string Day(int64_t unix_seconds) { return posh::core::FormatTime(unix_seconds).substr(0, 10); }

std::string SrvDetail(const SrvAnswer& a) {
  std::string d = a.name;
  d += ": ";
  if (a.failed) return d + a.error;
  if (a.records.empty()) return d + "no records";
  if (SaysNotOffered(a.records)) return d + "service not offered (single SRV record \".\")";
  // Listed by priority (the order they are tried in, weights aside), not as DNS sent them.
  std::vector<SrvRecord> records = a.records;
  std::stable_sort(records.begin(), records.end(),
                   [](const SrvRecord& x, const SrvRecord& y) { return x.priority < y.priority; });
  bool first = true;
  for (const auto& r : records) {
    if (!first) d += ", ";
    first = false;
    d += HostPort(r.target, r.port) + " (prio " + std::to_string(r.priority) + ", weight " +
         std::to_string(r.weight) + ")";
  }
  return d;
}

// DNS: the ordered targets, or the reason there are none.
Result<std::vector<Target>> FindTargets(const ProbeOptions& o, Resolver& resolver,
                                        const Deadline& deadline, Report& r) {
  const bool client = o.service == "xmpp-client";
  const std::string starttls_name =
      (client ? "_xmpp-client._tcp." : "_xmpp-server._tcp.") + o.domain;
  const std::string direct_name =
      (client ? "_xmpps-client._tcp." : "_xmpps-server._tcp.") + o.domain;
  auto answers = resolver.QuerySrv({{starttls_name, false}, {direct_name, true}}, deadline);
  std::vector<SrvRecord> starttls, direct;
  bool not_offered = false;
  for (auto& a : answers) {
    const bool refused = !a.failed && SaysNotOffered(a.records);
    not_offered = not_offered || refused;
    r.steps.push_back(Step{"dns", !a.failed, a.ms, "", Clean(SrvDetail(a))});
    (a.direct_tls ? direct : starttls) = a.records;
  }
  std::random_device rd;
  std::mt19937 gen(rd());
  auto ordered = OrderSrv(starttls, direct, [&gen](uint32_t max) {
    return std::uniform_int_distribution<uint32_t>(0, max)(gen);
  });
  std::vector<Target> targets;
  for (const auto& s : ordered) targets.push_back(Target{s.target, s.port, s.direct_tls});
  if (!targets.empty()) return targets;
  if (not_offered) {
    for (auto& s : r.steps) {
      if (s.detail.find("service not offered") != std::string::npos) {
        s.ok = false;
        return Fail(Error{0, "dns: " + s.detail});
      }
    }
  }
  // A failed query is recorded (its step is not ok) but, as a peer does, the probe goes on
  // with the domain itself: if DNS is broken, resolving that fails too and says so.
  // DNS used up the time: say so rather than "no target could be tried".
  if (deadline.Expired()) {
    for (const auto& s : r.steps) {
      if (!s.ok) return Fail(Error{0, "dns: " + s.detail});
    }
  }
  // RFC 6120 3.2.2: no SRV records, the domain itself at the default port.
  const uint16_t port = client ? 5222 : 5269;
  r.steps.back().detail +=
      "; no usable SRV records: falling back to " + HostPort(o.domain, port) + " (STARTTLS)";
  targets.push_back(Target{o.domain, port, false});
  return targets;
}

// Every address of every target in turn until one yields a chain. Error: the first failure.
Result<TlsOutcome> ObtainChain(const ProbeOptions& o, Resolver& resolver,
                               const std::vector<Target>& targets, const Deadline& deadline,
                               Report& r) {
  std::string first_failure;
  auto failed = [&](Step s) {
    s.ok = false;
    s.detail = Clean(s.detail);
    if (first_failure.empty()) first_failure = s.step + ": " + s.detail;
    r.steps.push_back(std::move(s));
  };
  for (const auto& t : targets) {
    if (deadline.Expired()) break;
    const std::string where = HostPort(t.host, t.port);
    auto t0 = Clock::now();
    auto addresses = resolver.ResolveHost(t.host, t.port, deadline);
    if (!addresses) {
      failed(Step{"connect", false, MsSince(t0), where, addresses.error().message});
      continue;
    }
    for (const auto& addr : *addresses) {
      if (deadline.Expired()) break;
      t0 = Clock::now();
      auto sock = ConnectTcp(addr, deadline);
      if (!sock) {
        failed(Step{"connect", false, MsSince(t0), where,
                    where + " (" + addr.text + "): " + sock.error().message});
        continue;
      }
      r.steps.push_back(Step{"connect", true, MsSince(t0), where, where + " (" + addr.text + ")"});
      if (!t.direct_tls) {
        t0 = Clock::now();
        auto st = NegotiateStartTls(sock->fd(), o.domain, o.service, deadline);
        if (!st) {
          failed(Step{"starttls", false, MsSince(t0), where, st.error().message});
          continue;
        }
        r.steps.push_back(Step{"starttls", true, MsSince(t0), where, *st});
      }
      t0 = Clock::now();
      auto tls = HandshakeTls(sock->fd(), o.domain, t.direct_tls ? o.service : "", deadline);
      if (!tls) {
        std::string d = t.direct_tls ? "direct TLS: " : "";
        failed(Step{"tls", false, MsSince(t0), where, d + tls.error().message});
        continue;
      }
      r.chain = SummarizeChain(tls->chain);
      const CertSummary& leaf = r.chain.front();
      std::string d = tls->version;
      if (t.direct_tls)
        d += tls->alpn.empty() ? " (direct, no ALPN)" : " (direct, ALPN " + tls->alpn + ")";
      d += ", chain of " + std::to_string(r.chain.size()) + ": ";
      d += leaf.common_name.empty() ? leaf.subject : "CN=" + leaf.common_name;
      d += " (expires " + Day(leaf.not_after) + ")";
      r.steps.push_back(Step{"tls", true, MsSince(t0), where, Clean(d)});
      return std::move(tls).value();
    }
  }
  if (first_failure.empty()) first_failure = "no target could be tried within the timeout";
  return Fail(Error{0, first_failure});
}

using posh::ctl::VerdictName;

std::string MatchedKey(const posh::v1::VerifyResponse& v) {
  std::string what;
  const auto& rec = v.record();
  if (v.matched_key_index() >= 0 && v.matched_key_index() < rec.keys_size()) {
    const auto& key = rec.keys(v.matched_key_index());
    for (const auto& fp : key.fingerprints()) {
      if (!what.empty()) what += "/";
      what += fp.hash();
    }
  }
  if (!v.matched_kid().empty()) {
    what += what.empty() ? "" : " ";
    what += "key \"" + v.matched_kid() + "\"";
  } else {
    what += what.empty() ? "a key" : " key";
  }
  what += " of ";
  what += rec.source_url().empty() ? "the POSH document" : rec.source_url();
  return what;
}

// POSH through the daemon. Returns false when the daemon could not be reached.
bool CheckPosh(const ProbeOptions& o, const TlsOutcome& tls, const Deadline& deadline, Report& r,
               std::string* failure, bool* unreachable) {
  posh::client::ClientOptions co;
  co.socket_path = o.socket;
  co.timeout = std::chrono::milliseconds(std::max(deadline.RemainingMs(), 200));
  co.reconnect_wait = std::chrono::milliseconds(0);  // one-shot: report at once
  posh::client_rpc::RpcClient client(co);
  posh::v1::VerifyRequest req;
  req.set_domain(o.domain);
  req.set_service(o.service);
  for (const auto& der : tls.chain) req.add_presented_chain(der.data(), der.size());
  posh::v1::VerifyResponse resp;
  const auto t0 = Clock::now();
  const auto st = client.Verify(req, &resp);
  if (!st.ok()) {
    *unreachable = st.unreachable();
    std::string d = st.unreachable()
                        ? "cannot reach poshd at " + client.socket_path() + ": " + st.message
                        : "poshd answered error " + std::to_string(st.code) + ": " + st.message;
    r.steps.push_back(Step{"posh", false, MsSince(t0), "", Clean(d)});
    *failure = "posh: " + r.steps.back().detail;
    return false;
  }
  r.have_posh = true;
  r.posh.verdict = VerdictName(resp.verdict());
  r.posh.delegated_to = Clean(resp.delegated_to());
  r.posh.reason = Clean(resp.reason());
  const std::string delegated =
      r.posh.delegated_to.empty() ? "" : " (delegated to " + r.posh.delegated_to + ")";
  std::string d;
  bool ok = true;
  switch (resp.verdict()) {
    case posh::v1::VERDICT_VERIFIED:
      d = "verified: matches " + MatchedKey(resp) + delegated;
      break;
    case posh::v1::VERDICT_NOT_VERIFIED:
      d = "not verified: " + (r.posh.reason.empty() ? "no key matches" : r.posh.reason) + delegated;
      break;
    case posh::v1::VERDICT_NO_POSH:
      // The daemon's reason usually says it all ("no POSH document published").
      if (r.posh.reason.rfind("no POSH", 0) == 0) {
        d = r.posh.reason;
      } else {
        d = "no POSH document" + (r.posh.reason.empty() ? "" : ": " + r.posh.reason);
      }
      break;
    default:
      ok = false;
      d = "error: " + (r.posh.reason.empty() ? "unknown error" : r.posh.reason);
  }
  r.steps.push_back(Step{"posh", ok, MsSince(t0), "", Clean(d)});
  if (!ok) *failure = "posh: " + r.steps.back().detail;
  return true;
}

void PrintHuman(const Report& r) {
  for (const auto& s : r.steps) {
    std::printf("%-8s %2lld ms  %s\n", s.step.c_str(), static_cast<long long>(s.ms),
                s.detail.c_str());
  }
  std::printf("%s\n", r.conclusion.c_str());
}

void PrintJson(const Report& r) {
  JsonWriter w;
  w.BeginObject();
  w.Key("domain").String(r.domain);
  w.Key("service").String(r.service);
  w.Key("authenticated").Bool(r.authenticated);
  w.Key("method").StringOrNull(r.method);
  w.Key("conclusion").String(r.conclusion);
  w.Key("steps").BeginArray();
  for (const auto& s : r.steps) {
    w.BeginObject();
    w.Key("step").String(s.step);
    w.Key("ok").Bool(s.ok);
    w.Key("ms").Int(s.ms);
    w.Key("target").StringOrNull(s.target);
    w.Key("detail").String(s.detail);
    w.EndObject();
  }
  w.EndArray();
  w.Key("chain").BeginArray();
  for (const auto& c : r.chain) {
    w.BeginObject();
    w.Key("subject").String(Clean(c.subject));
    w.Key("issuer").String(Clean(c.issuer));
    w.Key("not_after").String(posh::core::FormatTime(c.not_after));
    w.Key("sha-256").String(c.sha256_b64);
    w.EndObject();
  }
  w.EndArray();
  if (r.have_chain) {
    w.Key("pkix").BeginObject();
    w.Key("valid").Bool(r.pkix.valid);
    w.Key("reason").StringOrNull(r.pkix.reason);
    w.EndObject();
  } else {
    w.Key("pkix").Null();
  }
  if (r.have_posh) {
    w.Key("posh").BeginObject();
    w.Key("verdict").String(r.posh.verdict);
    w.Key("verified").Bool(r.posh.verdict == "verified");
    w.Key("delegated_to").StringOrNull(r.posh.delegated_to);
    w.Key("reason").StringOrNull(r.posh.reason);
    w.EndObject();
  } else {
    w.Key("posh").Null();
  }
  w.EndObject();
  std::puts(w.str().c_str());
}

}  // namespace

int RunProbe(const ProbeOptions& o) {
  // OpenSSL writes to the socket with write(2): a server that hangs up mid-handshake must
  // give an error, not kill poshctl with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  Deadline deadline(std::chrono::seconds(o.timeout_s));
  Report r;
  r.domain = o.domain;
  r.service = o.service;
  auto undetermined = [&](const std::string& why) {
    r.conclusion = "could not determine whether " + o.domain + " is authenticated: " + why;
    return kExitUndetermined;
  };
  auto finish = [&](int rc) {
    if (o.json) {
      PrintJson(r);
    } else {
      PrintHuman(r);
    }
    std::fflush(stdout);
    return rc;
  };

  auto store = LoadTrustStore(o.ca_file);
  if (!store) {
    std::fprintf(stderr, "poshctl: %s\n", store.error().message.c_str());
    return 64;
  }
  auto resolver = Resolver::Create(o.dns_server);
  if (!resolver) {
    std::fprintf(stderr, "poshctl: %s\n", resolver.error().message.c_str());
    return 64;
  }

  std::vector<Target> targets;
  if (o.connect_to) {
    targets.push_back(Target{o.connect_host, o.connect_port, o.direct_tls});
  } else {
    auto found = FindTargets(o, **resolver, deadline, r);
    if (!found) return finish(undetermined(found.error().message));
    targets = std::move(found).value();
  }

  auto tls = ObtainChain(o, **resolver, targets, deadline, r);
  if (!tls) return finish(undetermined(tls.error().message));
  r.have_chain = true;

  auto t0 = Clock::now();
  r.pkix = CheckPkix(store->get(), tls->chain, o.domain);
  r.steps.push_back(
      Step{"pkix", r.pkix.valid, MsSince(t0), "",
           r.pkix.valid ? "valid for " + o.domain : Clean("not valid: " + r.pkix.reason)});

  std::string posh_failure;
  bool unreachable = false;
  CheckPosh(o, *tls, deadline, r, &posh_failure, &unreachable);

  if (r.pkix.valid) {
    r.authenticated = true;
    r.method = "pkix";
    r.conclusion = o.domain + " is authenticated by PKIX";
    return finish(kExitOk);
  }
  if (r.have_posh && r.posh.verdict == "verified") {
    r.authenticated = true;
    r.method = "posh";
    r.conclusion = o.domain + " is authenticated by POSH";
    if (!r.posh.delegated_to.empty()) r.conclusion += " (delegated to " + r.posh.delegated_to + ")";
    return finish(kExitOk);
  }
  if (r.have_posh && r.posh.verdict == "not_verified") {
    r.conclusion = o.domain + " is not authenticated: " +
                   (r.posh.reason.empty() ? "the certificate matches no key of the POSH document"
                                          : r.posh.reason);
    return finish(kExitNegative);
  }
  if (r.have_posh && r.posh.verdict == "no_posh") {
    r.conclusion = o.domain +
                   " is not authenticated: it publishes no POSH document and its certificate is "
                   "not valid for it by PKIX";
    return finish(kExitNegative);
  }
  const int rc = undetermined(posh_failure);
  return finish(unreachable ? kExitUnavailable : rc);
}

}  // namespace posh::ctl::probe
