// Integration-test harness for poshd/poshctl: temp dirs, the scriptable HTTPS origin
// (tests/origin/posh_origin.py), the daemon, poshctl runs, JSON parsing (simdjson).
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace posh_it {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Well-known paths (R3).
inline constexpr const char* kRfcPath = "/.well-known/posh/xmpp-server.json";
inline constexpr const char* kDraftPath = "/.well-known/posh._xmpp-server._tcp.json";

const char* PoshdPath();    // the poshd binary under test
const char* PoshctlPath();  // the poshctl binary under test
std::string ReadFile(const fs::path& p);
void WriteFile(const fs::path& p, const std::string& data);  // atomic (temp + rename)
std::string JsonEscape(const std::string& s);                // returns a quoted JSON string
double SecondsSince(Clock::time_point t);
// Parses an RFC 3339 timestamp (UTC "Z" or an offset); nullopt when malformed.
std::optional<long long> ParseRfc3339(const std::string& s);
long long UnixNow();
std::string Base64(const std::string& bytes);
std::string Base64Url(const std::string& bytes);  // unpadded

// ---------------------------------------------------------------------------------------------
// Temporary directory, removed at destruction unless POSH_IT_KEEP is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------------------------
// Processes.
struct SpawnOptions {
  fs::path stdout_path = "/dev/null";
  fs::path stderr_path = "/dev/null";
  // Environment changes: value nullopt unsets. POSHD_SOCKET is always unset unless given.
  std::map<std::string, std::optional<std::string>> env;
};

class Process {
 public:
  Process() = default;
  Process(pid_t pid, std::string name) : pid_(pid), name_(std::move(name)) {}
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  ~Process();  // kills (SIGKILL) and reaps a process still running

  pid_t pid() const { return pid_; }
  bool valid() const { return pid_ > 0; }
  // True while the process has not exited (reaps it when it has).
  bool Running();
  // Waits up to `timeout`; returns the exit status (>= 0), -signal when killed by a signal,
  // or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  void Signal(int sig);
  // SIGTERM, wait up to `timeout`, then SIGKILL. Returns what Wait returned (nullopt = had
  // to be killed).
  std::optional<int> Terminate(std::chrono::milliseconds timeout);
  std::optional<int> exit_status() const { return status_; }

 private:
  pid_t pid_ = -1;
  std::string name_;
  std::optional<int> status_;
};

Process Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts);

struct RunResult {
  int status = -1000;  // exit status, -signal, or -1000 when timed out (then killed)
  bool timed_out = false;
  std::string out;
  std::string err;
  double seconds = 0;
  std::string Describe() const;  // "exit N, stdout ..., stderr ..." for failure messages
};

// Runs argv to completion (killed after `timeout`), capturing stdout/stderr via files in
// `scratch`.
RunResult Run(const std::vector<std::string>& argv, const fs::path& scratch,
              std::chrono::milliseconds timeout,
              const std::map<std::string, std::optional<std::string>>& env = {});

// ---------------------------------------------------------------------------------------------
// JSON (simdjson DOM). A Json keeps its parser alive.
class Json {
 public:
  static Json Parse(const std::string& text);
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  simdjson::dom::element root() const { return root_; }

  bool Has(const char* key) const;
  bool IsNull(const char* key) const;
  std::optional<std::string> Str(const char* key) const;
  std::optional<bool> Bool(const char* key) const;
  std::optional<double> Num(const char* key) const;
  std::optional<simdjson::dom::array> Arr(const char* key) const;
  std::string Dump() const;

 private:
  std::shared_ptr<simdjson::dom::parser> parser_;
  std::shared_ptr<std::string> text_;
  simdjson::dom::element root_;
  bool ok_ = false;
  std::string error_;
};

std::optional<std::string> StrOf(simdjson::dom::element e, const char* key);
std::optional<double> NumOf(simdjson::dom::element e, const char* key);

// ---------------------------------------------------------------------------------------------
// The origin. A route is serialised into the origin's routes.json.
struct Route {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::optional<std::string> body;      // text (UTF-8)
  std::optional<std::string> body_b64;  // raw bytes (base64)
  std::optional<long long> body_size;   // generated filler bytes
  double delay_before_headers = 0;
  long long trickle = 0;  // bytes per second, 0 = off
  bool close_mid_body = false;
  bool hang = false;
  bool no_content_length = false;  // close-delimited body
  std::string content_type = "application/json";

  static Route Json(std::string body, int status = 200);
  static Route Status(int status);
  static Route Redirect(const std::string& location, int status = 302);
  static Route Bytes(const std::string& raw, int status = 200);
  std::string ToJson() const;
};

struct CertInfo {
  std::string name;
  fs::path pem, der, key, chain_pem;
  std::string der_b64;
  std::map<std::string, std::string> hash;  // "sha-256" -> base64
  std::string not_after;
  long long not_after_unix = 0;
  std::string jwk;      // JSON object text, no x5c
  std::string jwk_x5c;  // JSON object text, with x5c [der_b64]
};

struct OriginRequest {
  std::string host, path, sni;
  int port = 0;
};

class Origin {
 public:
  // Starts posh_origin.py serving from `dir` (certificates generated there).
  void Start(const fs::path& dir);
  std::optional<int> Stop();  // SIGTERM; exit status
  bool Running() { return proc_.Running(); }

  int https_port() const { return https_; }
  int silent_port() const { return silent_; }
  int reset_port() const { return reset_; }
  int http_port() const { return http_; }  // plain HTTP, same routes
  fs::path ca_file() const { return dir_ / "ca.pem"; }
  const fs::path& dir() const { return dir_; }

  // Routes: key is HOST + PATH ("*" host = any). Rewritten atomically on every change.
  void Set(const std::string& host, const std::string& path, const Route& r);
  void Remove(const std::string& host, const std::string& path);
  void Clear();

  std::vector<OriginRequest> Requests() const;
  int Count(const std::string& host, const std::string& path) const;
  int CountHost(const std::string& host) const;
  int CountPort(int port) const;  // raw connections/requests seen on that port
  int Total() const;

  const CertInfo& Cert(const std::string& name) const;  // xmpp, other, expired-leaf, rsa, ...
  // Generates an extra leaf certificate DIR/certs/STEM.pem (make-cert mode). Flags:
  // --expired, --self-signed, --rsa, --key KEY.pem (reuse a key), --valid-seconds N.
  CertInfo MakeCert(const std::string& cn, const std::string& file_stem,
                    const std::vector<std::string>& flags = {});
  std::string Log() const;

 private:
  void WriteRoutes();
  fs::path dir_;
  Process proc_;
  int https_ = 0, silent_ = 0, reset_ = 0, http_ = 0;
  std::map<std::string, std::string> routes_;  // key -> route JSON
  std::map<std::string, CertInfo> certs_;
};

// ---------------------------------------------------------------------------------------------
// The daemon.
class Daemon {
 public:
  // Builds the argv (see Argv) and starts poshd; waits for the socket (up to 15 s).
  // Returns false (with a message in `why`) when the daemon did not come up.
  bool Start(const fs::path& dir, const Origin& origin, const std::vector<std::string>& extra,
             double fetch_timeout = 3, std::string* why = nullptr);
  static std::vector<std::string> Argv(const fs::path& dir, const Origin& origin,
                                       const std::vector<std::string>& extra, double fetch_timeout,
                                       bool catch_all = true,
                                       const std::optional<fs::path>& ca_file = std::nullopt);
  std::optional<int> Stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // When false, Argv omits the catch-all `--connect-to ::127.0.0.1:PORT` (R8 tests).
  bool catch_all_connect_to = true;
  // When set, replaces the origin's CA as --ca-file.
  std::optional<fs::path> ca_file;
  bool Running() { return proc_.valid() && proc_.Running(); }
  void Signal(int sig) { proc_.Signal(sig); }
  std::optional<int> Wait(std::chrono::milliseconds timeout) { return proc_.Wait(timeout); }
  const fs::path& socket() const { return socket_; }
  const fs::path& state_dir() const { return state_dir_; }
  std::string Log() const;
  pid_t pid() const { return proc_.pid(); }

 private:
  fs::path dir_;
  fs::path socket_;
  fs::path state_dir_;
  fs::path log_;
  Process proc_;
  int generation_ = 0;
};

// ---------------------------------------------------------------------------------------------
// poshctl runs.
struct CtlResult {
  RunResult run;
  Json json;
  int status() const { return run.status; }
  std::string Describe() const;
};

// ---------------------------------------------------------------------------------------------
// Fixture: own temp dir, own origin, own daemon (started lazily by StartDaemon).
class PoshTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts the daemon with the standard flags plus `extra`. Fails the test (fatal) when it
  // does not come up: call through ASSERT_NO_FATAL_FAILURE or check HasFatalFailure.
  void StartDaemon(const std::vector<std::string>& extra = {}, double fetch_timeout = 3);
  // Stops the daemon, expecting exit 0 and the socket removed.
  void StopDaemon();

  // poshctl --socket SOCK --json ARGS...
  CtlResult Ctl(const std::vector<std::string>& args,
                std::chrono::milliseconds timeout = std::chrono::seconds(30),
                const std::map<std::string, std::optional<std::string>>& env = {});
  // poshctl ARGS... exactly as given (no --socket/--json added).
  CtlResult CtlRaw(const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30),
                   const std::map<std::string, std::optional<std::string>>& env = {});
  CtlResult Lookup(const std::string& domain, const std::vector<std::string>& more = {});
  CtlResult Verify(const std::string& domain, const fs::path& cert,
                   const std::vector<std::string>& more = {});

  // Serves an RFC 7711 fingerprints document for `host` with the sha-256 of cert `name`.
  void ServeFingerprints(const std::string& host, const std::string& cert_name,
                         long long expires = 3600);
  std::string FingerprintsDoc(const std::string& cert_name, long long expires = 3600,
                              const std::string& hash = "sha-256");

  fs::path dir() const { return tmp_->path(); }

  std::unique_ptr<TempDir> tmp_;
  Origin origin_;
  Daemon daemon_;
  bool daemon_started_ = false;
  bool skip_stop_check_ = false;
};

// Expectation helpers (use inside tests).
void ExpectLookupStatus(const CtlResult& r, const std::string& status, int exit_code);

}  // namespace posh_it

#define POSH_EXPECT_STATUS(r, st, code)               \
  do {                                                \
    SCOPED_TRACE((r).Describe());                     \
    ::posh_it::ExpectLookupStatus((r), (st), (code)); \
  } while (0)
