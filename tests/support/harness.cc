#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

extern char** environ;

#ifndef POSHD_PATH
#error "POSHD_PATH must be defined"
#endif
#ifndef POSHCTL_PATH
#error "POSHCTL_PATH must be defined"
#endif
#ifndef ORIGIN_PY
#error "ORIGIN_PY must be defined"
#endif
#ifndef POSH_IT_PYTHON
#define POSH_IT_PYTHON "/usr/bin/python3"
#endif

namespace posh_it {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Small utilities

const char* PoshdPath() { return POSHD_PATH; }
const char* PoshctlPath() { return POSHCTL_PATH; }

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return {};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& data) {
  fs::path tmp = p;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << data;
    f.flush();
    if (!f) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, p);
}

std::string JsonEscape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

long long UnixNow() { return static_cast<long long>(std::time(nullptr)); }

namespace {
// s[pos, pos + n) as a decimal number; false unless those are n digits.
bool FixedDigits(const std::string& s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}
}  // namespace

// YYYY-MM-DD[Tt ]HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM), parsed by hand: GCC 12's <regex>
// raises -Wmaybe-uninitialized inside std::function under -O2 with the sanitizers.
std::optional<long long> ParseRfc3339(const std::string& s) {
  auto at = [&s](size_t i, char c) { return i < s.size() && s[i] == c; };
  struct tm tm {};
  int year = 0, mon = 0;
  if (!FixedDigits(s, 0, 4, &year) || !at(4, '-') || !FixedDigits(s, 5, 2, &mon) || !at(7, '-') ||
      !FixedDigits(s, 8, 2, &tm.tm_mday) || !(at(10, 'T') || at(10, 't') || at(10, ' ')) ||
      !FixedDigits(s, 11, 2, &tm.tm_hour) || !at(13, ':') || !FixedDigits(s, 14, 2, &tm.tm_min) ||
      !at(16, ':') || !FixedDigits(s, 17, 2, &tm.tm_sec))
    return std::nullopt;
  size_t i = 19;
  if (at(i, '.')) {
    size_t j = i + 1;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i + 1) return std::nullopt;
    i = j;
  }
  long long to_utc = 0;  // seconds to add to the local time to get UTC
  if (at(i, 'Z') || at(i, 'z')) {
    i += 1;
  } else if (at(i, '+') || at(i, '-')) {
    int oh = 0, om = 0;
    if (!FixedDigits(s, i + 1, 2, &oh) || !at(i + 3, ':') || !FixedDigits(s, i + 4, 2, &om))
      return std::nullopt;
    const long long off = oh * 3600LL + om * 60LL;
    to_utc = s[i] == '+' ? -off : off;
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  return static_cast<long long>(timegm(&tm)) + to_utc;
}

static std::string B64(const std::string& in, const char* alphabet, bool pad) {
  std::string out;
  size_t i = 0;
  auto u = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = u(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = (u(i) << 16) | (u(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += "=";
  }
  return out;
}

std::string Base64(const std::string& bytes) {
  return B64(bytes, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
}

std::string Base64Url(const std::string& bytes) {
  return B64(bytes, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false);
}

// ---------------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/posh-it-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  if (std::getenv("POSH_IT_KEEP")) {
    std::cerr << "[posh-it] kept " << path_ << "\n";
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---------------------------------------------------------------------------------------------
// Process

Process::Process(Process&& o) noexcept
    : pid_(o.pid_), name_(std::move(o.name_)), status_(o.status_) {
  o.pid_ = -1;
}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    pid_ = o.pid_;
    name_ = std::move(o.name_);
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
  }
}

static int DecodeStatus(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return -999;
}

bool Process::Running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = DecodeStatus(st);
    return false;
  }
  return r == 0;
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  auto nap = 2ms;
  while (true) {
    if (!Running()) return status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(nap);
    if (nap < 20ms) nap += 2ms;
  }
}

void Process::Signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Process::Terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  if (status_) return status_;
  Signal(SIGTERM);
  auto st = Wait(timeout);
  if (!st) {
    std::cerr << "[posh-it] " << name_ << " (pid " << pid_ << ") ignored SIGTERM; killing\n";
    Signal(SIGKILL);
    Wait(5s);
  }
  return st;
}

Process Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  std::map<std::string, std::optional<std::string>> changes = opts.env;
  if (!changes.count("POSHD_SOCKET")) changes["POSHD_SOCKET"] = std::nullopt;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string k = kv.substr(0, kv.find('='));
    if (changes.count(k)) continue;
    env.push_back(kv);
  }
  for (const auto& [k, v] : changes)
    if (v) env.push_back(k + "=" + *v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, opts.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&fa, 2, opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    return Process();
  }
  return Process(pid, fs::path(argv[0]).filename().string());
}

std::string RunResult::Describe() const {
  std::ostringstream ss;
  ss << (timed_out ? "TIMED OUT" : "exit " + std::to_string(status)) << " after " << seconds
     << " s\n--- stdout ---\n"
     << out.substr(0, 4000) << "\n--- stderr ---\n"
     << err.substr(0, 4000);
  return ss.str();
}

RunResult Run(const std::vector<std::string>& argv, const fs::path& scratch,
              std::chrono::milliseconds timeout,
              const std::map<std::string, std::optional<std::string>>& env) {
  static std::atomic<int> counter{0};
  int n = counter++;
  fs::path o = scratch / ("run-" + std::to_string(n) + ".out");
  fs::path e = scratch / ("run-" + std::to_string(n) + ".err");
  SpawnOptions so;
  so.stdout_path = o;
  so.stderr_path = e;
  so.env = env;
  RunResult r;
  auto t0 = Clock::now();
  Process p = Spawn(argv, so);
  if (!p.valid()) return r;
  auto st = p.Wait(timeout);
  if (!st) {
    r.timed_out = true;
    p.Signal(SIGKILL);
    p.Wait(5s);
    r.status = -1000;
  } else {
    r.status = *st;
  }
  r.seconds = SecondsSince(t0);
  r.out = ReadFile(o);
  r.err = ReadFile(e);
  std::error_code ec;
  fs::remove(o, ec);
  fs::remove(e, ec);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Json

Json Json::Parse(const std::string& text) {
  Json j;
  j.parser_ = std::make_shared<simdjson::dom::parser>();
  j.text_ = std::make_shared<std::string>(text);
  auto res = j.parser_->parse(*j.text_);
  if (res.error()) {
    j.error_ = simdjson::error_message(res.error());
    return j;
  }
  j.root_ = res.value_unsafe();
  j.ok_ = true;
  return j;
}

bool Json::Has(const char* key) const {
  if (!ok_ || !root_.is_object()) return false;
  return !root_[key].error();
}

bool Json::IsNull(const char* key) const {
  if (!Has(key)) return false;
  return root_[key].value_unsafe().is_null();
}

std::optional<std::string> StrOf(simdjson::dom::element e, const char* key) {
  if (!e.is_object()) return std::nullopt;
  auto v = e[key];
  if (v.error()) return std::nullopt;
  auto s = v.get_string();
  if (s.error()) return std::nullopt;
  return std::string(s.value_unsafe());
}

std::optional<double> NumOf(simdjson::dom::element e, const char* key) {
  if (!e.is_object()) return std::nullopt;
  auto v = e[key];
  if (v.error()) return std::nullopt;
  auto d = v.get_double();  // accepts integers too
  if (d.error()) return std::nullopt;
  return d.value_unsafe();
}

std::optional<std::string> Json::Str(const char* key) const {
  if (!ok_) return std::nullopt;
  return StrOf(root_, key);
}

std::optional<bool> Json::Bool(const char* key) const {
  if (!Has(key)) return std::nullopt;
  auto b = root_[key].get_bool();
  if (b.error()) return std::nullopt;
  return b.value_unsafe();
}

std::optional<double> Json::Num(const char* key) const {
  if (!ok_) return std::nullopt;
  return NumOf(root_, key);
}

std::optional<simdjson::dom::array> Json::Arr(const char* key) const {
  if (!Has(key)) return std::nullopt;
  auto a = root_[key].get_array();
  if (a.error()) return std::nullopt;
  return a.value_unsafe();
}

std::string Json::Dump() const {
  if (!ok_) return "<not JSON: " + error_ + ">";
  return simdjson::minify(root_);
}

// ---------------------------------------------------------------------------------------------
// Route

Route Route::Json(std::string body, int status) {
  Route r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Route Route::Status(int status) {
  Route r;
  r.status = status;
  r.body = "status " + std::to_string(status) + "\n";
  r.content_type = "text/plain";
  return r;
}

Route Route::Redirect(const std::string& location, int status) {
  Route r;
  r.status = status;
  r.headers["Location"] = location;
  r.body = "";
  r.content_type = "text/plain";
  return r;
}

Route Route::Bytes(const std::string& raw, int status) {
  Route r;
  r.status = status;
  r.body_b64 = Base64(raw);
  return r;
}

std::string Route::ToJson() const {
  std::ostringstream o;
  o << "{\"status\":" << status << ",\"content_type\":" << JsonEscape(content_type);
  if (!headers.empty()) {
    o << ",\"headers\":{";
    bool first = true;
    for (const auto& [k, v] : headers) {
      if (!first) o << ",";
      first = false;
      o << JsonEscape(k) << ":" << JsonEscape(v);
    }
    o << "}";
  }
  if (body) o << ",\"body\":" << JsonEscape(*body);
  if (body_b64) o << ",\"body_b64\":" << JsonEscape(*body_b64);
  if (body_size) o << ",\"body_size\":" << *body_size;
  if (delay_before_headers > 0) o << ",\"delay_before_headers\":" << delay_before_headers;
  if (trickle > 0) o << ",\"trickle\":" << trickle;
  if (close_mid_body) o << ",\"close_mid_body\":true";
  if (hang) o << ",\"hang\":true";
  if (no_content_length) o << ",\"no_content_length\":true";
  o << "}";
  return o.str();
}

// ---------------------------------------------------------------------------------------------
// Origin

static CertInfo CertFrom(simdjson::dom::element e) {
  CertInfo c;
  c.name = StrOf(e, "name").value_or("");
  c.pem = StrOf(e, "pem").value_or("");
  c.der = StrOf(e, "der").value_or("");
  c.key = StrOf(e, "key").value_or("");
  c.chain_pem = StrOf(e, "chain_pem")
                    .value_or(c.pem.string().substr(0, c.pem.string().size() - 4) + "-chain.pem");
  c.der_b64 = StrOf(e, "der_b64").value_or("");
  for (const char* h : {"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"})
    c.hash[h] = StrOf(e, h).value_or("");
  c.not_after = StrOf(e, "not_after").value_or("");
  c.not_after_unix = static_cast<long long>(NumOf(e, "not_after_unix").value_or(0));
  if (!e["jwk"].error()) c.jwk = simdjson::minify(e["jwk"].value_unsafe());
  if (!e["jwk_x5c"].error()) c.jwk_x5c = simdjson::minify(e["jwk_x5c"].value_unsafe());
  return c;
}

void Origin::Start(const fs::path& dir) {
  dir_ = dir;
  fs::remove(dir_ / "ports.json");
  WriteRoutes();
  SpawnOptions so;
  so.stdout_path = dir_ / "origin.log";
  so.stderr_path = dir_ / "origin.log";
  proc_ = Spawn({POSH_IT_PYTHON, ORIGIN_PY, "serve", "--dir", dir_.string()}, so);
  ASSERT_TRUE(proc_.valid());
  auto deadline = Clock::now() + 30s;
  while (!fs::exists(dir_ / "ports.json")) {
    ASSERT_TRUE(proc_.Running()) << "origin exited:\n" << ReadFile(dir_ / "origin.log");
    ASSERT_LT(Clock::now(), deadline) << "origin did not start:\n" << ReadFile(dir_ / "origin.log");
    std::this_thread::sleep_for(20ms);
  }
  Json ports = Json::Parse(ReadFile(dir_ / "ports.json"));
  ASSERT_TRUE(ports.ok()) << ports.error();
  https_ = static_cast<int>(ports.Num("https").value_or(0));
  silent_ = static_cast<int>(ports.Num("silent").value_or(0));
  reset_ = static_cast<int>(ports.Num("reset").value_or(0));
  http_ = static_cast<int>(ports.Num("http").value_or(0));
  ASSERT_GT(https_, 0);
  Json certs = Json::Parse(ReadFile(dir_ / "certs.json"));
  ASSERT_TRUE(certs.ok()) << certs.error();
  // Keep the object alive for the loop (a temporary simdjson_result would die first).
  simdjson::dom::object cert_map;
  ASSERT_EQ(certs.root().get_object().get(cert_map), simdjson::SUCCESS);
  for (auto [k, v] : cert_map) certs_[std::string(k)] = CertFrom(v);
}

std::optional<int> Origin::Stop() {
  if (!proc_.valid()) return std::nullopt;
  return proc_.Terminate(10s);
}

void Origin::WriteRoutes() {
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : routes_) {
    if (!first) s += ",\n";
    first = false;
    s += JsonEscape(k) + ":" + v;
  }
  s += "}\n";
  WriteFile(dir_ / "routes.json", s);
}

void Origin::Set(const std::string& host, const std::string& path, const Route& r) {
  routes_[host + path] = r.ToJson();
  WriteRoutes();
}

void Origin::Remove(const std::string& host, const std::string& path) {
  routes_.erase(host + path);
  WriteRoutes();
}

void Origin::Clear() {
  routes_.clear();
  WriteRoutes();
}

std::vector<OriginRequest> Origin::Requests() const {
  std::vector<OriginRequest> out;
  std::istringstream in(ReadFile(dir_ / "requests.jsonl"));
  std::string line;
  simdjson::dom::parser p;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto doc = p.parse(line);
    if (doc.error()) continue;
    auto e = doc.value_unsafe();
    OriginRequest r;
    r.host = StrOf(e, "host").value_or("");
    r.path = StrOf(e, "path").value_or("");
    r.sni = StrOf(e, "sni").value_or("");
    r.port = static_cast<int>(NumOf(e, "port").value_or(0));
    out.push_back(r);
  }
  return out;
}

int Origin::Count(const std::string& host, const std::string& path) const {
  int n = 0;
  for (const auto& r : Requests())
    if (r.host == host && r.path == path) ++n;
  return n;
}

int Origin::CountHost(const std::string& host) const {
  int n = 0;
  for (const auto& r : Requests())
    if (r.host == host) ++n;
  return n;
}

int Origin::CountPort(int port) const {
  int n = 0;
  for (const auto& r : Requests())
    if (r.port == port) ++n;
  return n;
}

int Origin::Total() const { return static_cast<int>(Requests().size()); }

const CertInfo& Origin::Cert(const std::string& name) const {
  static const CertInfo empty;
  auto it = certs_.find(name);
  if (it == certs_.end()) {
    ADD_FAILURE() << "no test certificate named " << name;
    return empty;
  }
  return it->second;
}

CertInfo Origin::MakeCert(const std::string& cn, const std::string& file_stem,
                          const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {POSH_IT_PYTHON,
                                   ORIGIN_PY,
                                   "make-cert",
                                   "--dir",
                                   dir_.string(),
                                   cn,
                                   (dir_ / "certs" / (file_stem + ".pem")).string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  RunResult r = Run(argv, dir_, 60s);
  EXPECT_EQ(r.status, 0) << r.Describe();
  Json j = Json::Parse(r.out);
  EXPECT_TRUE(j.ok()) << r.Describe();
  if (!j.ok()) return {};
  return CertFrom(j.root());
}

std::string Origin::Log() const {
  return ReadFile(dir_ / "origin.log") + "--- requests ---\n" + ReadFile(dir_ / "requests.jsonl") +
         "--- routes ---\n" + ReadFile(dir_ / "routes.json");
}

// ---------------------------------------------------------------------------------------------
// Daemon

static std::string Num(double v) {
  if (v == static_cast<long long>(v)) return std::to_string(static_cast<long long>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

std::vector<std::string> Daemon::Argv(const fs::path& dir, const Origin& origin,
                                      const std::vector<std::string>& extra, double fetch_timeout,
                                      bool catch_all, const std::optional<fs::path>& ca_file) {
  std::vector<std::string> a = {
      POSHD_PATH,
      "--socket",
      (dir / "poshd.sock").string(),
      "--state-dir",
      (dir / "state").string(),
      "--ca-file",
      ca_file.value_or(origin.ca_file()).string(),
      "--connect-to",
      "never.example.test:443:127.0.0.1:" + std::to_string(origin.silent_port()),
      "--connect-to",
      "reset.example.test:443:127.0.0.1:" + std::to_string(origin.reset_port()),
  };
  if (catch_all) {
    // Plain http: (port 80) goes to the origin's plain-HTTP port, so that a client following
    // an http: URL is seen there (tests assert it never is).
    a.push_back("--connect-to");
    a.push_back(":80:127.0.0.1:" + std::to_string(origin.http_port()));
    a.push_back("--connect-to");
    a.push_back("::127.0.0.1:" + std::to_string(origin.https_port()));
  }
  a.insert(a.end(), {"--fetch-timeout", Num(fetch_timeout), "--log-level", "debug"});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

static bool SocketAccepts(const fs::path& p) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, p.c_str(), sizeof(sa.sun_path) - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

bool Daemon::Start(const fs::path& dir, const Origin& origin, const std::vector<std::string>& extra,
                   double fetch_timeout, std::string* why) {
  dir_ = dir;
  socket_ = dir / "poshd.sock";
  state_dir_ = dir / "state";
  std::error_code ec;
  fs::create_directories(state_dir_, ec);
  ++generation_;
  log_ = dir / ("poshd-" + std::to_string(generation_) + ".log");
  SpawnOptions so;
  so.stdout_path = log_;
  so.stderr_path = log_;
  proc_ = Spawn(Argv(dir, origin, extra, fetch_timeout, catch_all_connect_to, ca_file), so);
  if (!proc_.valid()) {
    if (why) *why = "spawn failed";
    return false;
  }
  auto deadline = Clock::now() + 15s;
  while (true) {
    if (!proc_.Running()) {
      if (why)
        *why = "poshd exited with " + std::to_string(proc_.exit_status().value_or(-999)) +
               " before listening";
      return false;
    }
    if (fs::is_socket(socket_, ec) && SocketAccepts(socket_)) return true;
    if (Clock::now() > deadline) {
      if (why) *why = "poshd did not listen on " + socket_.string() + " within 15 s";
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::optional<int> Daemon::Stop(std::chrono::milliseconds timeout) {
  if (!proc_.valid()) return std::nullopt;
  return proc_.Terminate(timeout);
}

std::string Daemon::Log() const {
  std::string out;
  for (int g = 1; g <= generation_; ++g) {
    fs::path p = dir_ / ("poshd-" + std::to_string(g) + ".log");
    out += "--- " + p.filename().string() + " ---\n" + ReadFile(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fixture

std::string CtlResult::Describe() const {
  return "poshctl " + run.Describe() +
         (json.ok() ? "" : "\n(stdout is not JSON: " + json.error() + ")");
}

void PoshTest::SetUp() {
  tmp_ = std::make_unique<TempDir>();
  ASSERT_NO_FATAL_FAILURE(origin_.Start(dir()));
}

void PoshTest::TearDown() {
  if (daemon_started_ && daemon_.Running() && !skip_stop_check_) {
    StopDaemon();
  } else if (daemon_started_) {
    daemon_.Stop(10s);
  }
  if (HasFailure()) {
    std::cerr << "\n======== poshd log (" << dir() << ") ========\n"
              << daemon_.Log() << "\n======== origin ========\n"
              << origin_.Log() << "\n========================\n";
  }
  auto st = origin_.Stop();
  EXPECT_EQ(st, std::optional<int>(0)) << "origin did not exit 0 on SIGTERM";
  tmp_.reset();
}

void PoshTest::StartDaemon(const std::vector<std::string>& extra, double fetch_timeout) {
  std::string why;
  daemon_started_ = true;
  bool ok = daemon_.Start(dir(), origin_, extra, fetch_timeout, &why);
  ASSERT_TRUE(ok) << why << "\n" << daemon_.Log();
}

void PoshTest::StopDaemon() {
  auto st = daemon_.Stop(15s);
  EXPECT_EQ(st, std::optional<int>(0)) << "poshd exit status after SIGTERM";
  EXPECT_FALSE(fs::exists(daemon_.socket())) << "socket not removed at exit";
}

CtlResult PoshTest::Ctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                        const std::map<std::string, std::optional<std::string>>& env) {
  std::vector<std::string> a = {"--socket", (dir() / "poshd.sock").string(), "--json"};
  a.insert(a.end(), args.begin(), args.end());
  return CtlRaw(a, timeout, env);
}

CtlResult PoshTest::CtlRaw(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                           const std::map<std::string, std::optional<std::string>>& env) {
  std::vector<std::string> a = {POSHCTL_PATH};
  a.insert(a.end(), args.begin(), args.end());
  CtlResult r;
  r.run = posh_it::Run(a, dir(), timeout, env);
  r.json = Json::Parse(r.run.out);
  return r;
}

CtlResult PoshTest::Lookup(const std::string& domain, const std::vector<std::string>& more) {
  std::vector<std::string> a = {"lookup", domain};
  a.insert(a.end(), more.begin(), more.end());
  return Ctl(a);
}

CtlResult PoshTest::Verify(const std::string& domain, const fs::path& cert,
                           const std::vector<std::string>& more) {
  std::vector<std::string> a = {"verify", domain, "--cert", cert.string()};
  a.insert(a.end(), more.begin(), more.end());
  return Ctl(a);
}

std::string PoshTest::FingerprintsDoc(const std::string& cert_name, long long expires,
                                      const std::string& hash) {
  return "{\"fingerprints\":[{" + JsonEscape(hash) + ":" +
         JsonEscape(origin_.Cert(cert_name).hash.at(hash)) +
         "}],\"expires\":" + std::to_string(expires) + "}";
}

void PoshTest::ServeFingerprints(const std::string& host, const std::string& cert_name,
                                 long long expires) {
  origin_.Set(host, kRfcPath, Route::Json(FingerprintsDoc(cert_name, expires)));
}

void ExpectLookupStatus(const CtlResult& r, const std::string& status, int exit_code) {
  EXPECT_FALSE(r.run.timed_out);
  ASSERT_TRUE(r.json.ok()) << "stdout is not JSON";
  EXPECT_EQ(r.json.Str("status").value_or("<missing>"), status);
  EXPECT_EQ(r.status(), exit_code);
  if (status == "error") {
    auto e = r.json.Str("error");
    EXPECT_TRUE(e && !e->empty()) << "status error without an `error` string";
  }
}

}  // namespace posh_it
