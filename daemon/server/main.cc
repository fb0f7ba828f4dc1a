// poshd: the POSH resolution daemon. Threads: main (signals, snapshots, lifecycle), the
// loop thread (all network I/O), gRPC's callback threads (validation, cache hits).
#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/server_posix.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "cache/store.h"
#include "l2/entry_codec.h"
#include "l2/redis_tier.h"
#include "l2/secret_file.h"
#include "posh/v1/prometheus.h"
#include "server/config_file.h"
#include "server/connection_limit.h"
#include "server/event_loop.h"
#include "server/grpc_service.h"
#include "server/metrics_http.h"
#include "server/notify.h"
#include "server/options.h"
#include "server/posh_service.h"
#include "server/process_setup.h"
#include "server/stats.h"
#include "util/log.h"

namespace {

using posh::server::BuildOptions;
using posh::server::DaemonOptions;

// Is some process accepting on this unix socket path?
bool SocketIsLive(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

// Holds an exclusive lock on `path` for the life of the process (the descriptor is never
// closed). Two daemons on one socket or one state directory would steal each other's
// socket file or snapshot; the lock makes the second one refuse to start, race-free.
bool LockForLifetime(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    *error = errno == EWOULDBLOCK ? "another poshd holds " + path
                                  : "cannot lock " + path + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  return true;
}

// Temporary snapshot files of writers that were killed mid-write (R20: the snapshot itself
// is only ever replaced by rename, so these are garbage).
void RemoveStaleSnapshotTemps(const std::string& state_dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("cache.snapshot.tmp.", 0) == 0) {
      std::filesystem::remove(e.path(), ec);
      POSH_LOG_WARN("snapshot: removed %s left by an interrupted write", name.c_str());
    }
  }
}

std::string SnapshotPath(const DaemonOptions& o) {
  return o.state_dir.empty() ? std::string() : o.state_dir + "/cache.snapshot";
}

void SaveSnapshot(const DaemonOptions& o, posh::cache::Store& store, const posh::Clock& clock) {
  std::string path = SnapshotPath(o);
  if (path.empty()) return;
  auto r = store.Save(path, clock.NowMs());
  if (r) {
    POSH_LOG_INFO("snapshot: wrote %zu entries to %s", *r, path.c_str());
  } else {
    POSH_LOG_ERROR("snapshot: cannot write %s: %s", path.c_str(), r.error().message.c_str());
  }
}

// Every client connection is a descriptor, and so is every retrieval (up to
// --max-concurrent-retrievals, plus the fetcher's idle connections) and a few dozen of
// poshd's own. When --max-connections does not fit under the open-files limit, accept(2)
// runs out of descriptors before the cap is reached (the gate then closes connections
// from the backlog, connection_limit.h): say so at start, with the fix.
void CheckConnectionsFitOpenFiles(const DaemonOptions& o, const posh::server::OpenFilesLimit& l) {
  if (l.after == RLIM_INFINITY) return;
  const unsigned long long own = 128;  // gRPC, libuv, the log, snapshots, idle retrievals
  const unsigned long long need = o.max_connections + o.service.max_concurrent_retrievals + own;
  if (need <= l.after) return;
  POSH_LOG_WARN(
      "open files limit %llu is too low for --max-connections %zu (with "
      "--max-concurrent-retrievals %zu and poshd's own descriptors, %llu are needed): raise "
      "LimitNOFILE= or lower --max-connections",
      static_cast<unsigned long long>(l.after), o.max_connections,
      o.service.max_concurrent_retrievals, need);
}

// The systemd STATUS= summary.
std::string StatusLine(posh::server::PoshService& service) {
  auto& s = service.stats();
  char buf[256];
  std::snprintf(buf, sizeof buf, "%llu entries, %llu lookups, %llu hits, %llu fetches",
                static_cast<unsigned long long>(service.store().Size()),
                static_cast<unsigned long long>(s.lookups.load()),
                static_cast<unsigned long long>(s.cache_hits.load()),
                static_cast<unsigned long long>(s.fetches.load()));
  return buf;
}

// SIGHUP: re-read the file and apply what can change at run time.
void Reload(int argc, char** argv, DaemonOptions& current, posh::server::PoshService& service,
            posh::cache::Store& store) {
  posh::server::NotifyReloading();
  auto next = BuildOptions(argc, argv);
  if (!next) {
    POSH_LOG_ERROR("reload failed, keeping the running configuration: %s",
                   next.error().message.c_str());
    posh::server::NotifyReady("reload failed: " + next.error().message);
    return;
  }
  DaemonOptions& n = *next;
  for (const std::string& key : posh::server::SettingsNeedingRestart(current, n)) {
    POSH_LOG_WARN("reload: %s changed; it takes effect after a restart", key.c_str());
  }
  posh::log::SetLevel(n.log_level);
  service.UpdateOptions(n.service);
  store.SetMaxEntries(n.max_entries);
  if (n.fetcher.ca_file != current.fetcher.ca_file ||
      n.fetcher.connect_timeout != current.fetcher.connect_timeout) {
    auto fo = current.fetcher;
    fo.ca_file = n.fetcher.ca_file;
    fo.connect_timeout = n.fetcher.connect_timeout;
    service.ReplaceFetcher([fo](uv_loop_t* uv) { return posh::fetch::MakeCurlFetcher(uv, fo); });
    current.fetcher.ca_file = fo.ca_file;
    current.fetcher.connect_timeout = fo.connect_timeout;
  }
  current.service = n.service;
  current.max_entries = n.max_entries;
  current.log_level = n.log_level;
  current.snapshot_interval_s = n.snapshot_interval_s;
  POSH_LOG_INFO("configuration reloaded");
  posh::server::NotifyReady(StatusLine(service));
}

int Run(int argc, char** argv, DaemonOptions opts) {
  posh::log::SetLevel(opts.log_level);
  const size_t sun_max = sizeof(sockaddr_un{}.sun_path) - 1;
  if (opts.socket_path.size() > sun_max) {
    posh::log::Direct(posh::log::Level::kError,
                      "poshd: --socket: path longer than " + std::to_string(sun_max) + " bytes");
    return 64;
  }

  // The second tier (issue 16): the fleet key is read once, here; a key file others can
  // read, or a short one, stops the start (entries would be forgeable).
  std::string fleet_key;
  std::string redis_password;
  posh::l2::RedisAddress redis_address;
  if (!opts.redis.empty()) {
    if (opts.redis_key_file.empty()) {
      posh::log::Direct(posh::log::Level::kError,
                        "poshd: --redis needs --redis-key-file (the fleet's key)");
      return 64;
    }
    auto address = posh::l2::ParseRedisUrl(opts.redis);
    auto key = posh::l2::LoadFleetKey(opts.redis_key_file);
    if (!address || !key) {
      posh::log::Direct(posh::log::Level::kError,
                        "poshd: " + (address ? key.error() : address.error()).message);
      return 64;
    }
    redis_address = *address;
    fleet_key = std::move(*key);
    if (!opts.redis_password_file.empty()) {
      auto password = posh::l2::LoadRedisPassword(opts.redis_password_file);
      if (!password) {
        posh::log::Direct(posh::log::Level::kError, "poshd: " + password.error().message);
        return 64;
      }
      redis_password = std::move(*password);
    }
  }
  if (!opts.redis_user.empty() && opts.redis_password_file.empty()) {
    posh::log::Direct(posh::log::Level::kError, "poshd: --redis-user needs --redis-password-file");
    return 64;
  }

  // Signals are taken synchronously by the main thread; block them before any thread
  // starts so that no other thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // From here on log lines are queued for a writer thread (a stalled journal never blocks
  // the loop); leaving Run writes what is left.
  posh::log::WriterScope log_writer;
  posh::server::RouteGrpcLogs();
  const posh::server::OpenFilesLimit files = posh::server::RaiseOpenFilesLimit();
  posh::server::LogOpenFilesLimit(files);
  CheckConnectionsFitOpenFiles(opts, files);

  {
    std::error_code ec;
    std::filesystem::path sock_path(opts.socket_path);
    if (sock_path.has_parent_path())
      std::filesystem::create_directories(sock_path.parent_path(), ec);
    if (!opts.state_dir.empty()) std::filesystem::create_directories(opts.state_dir, ec);
    std::string error;
    if (!LockForLifetime(opts.socket_path + ".lock", &error) ||
        (!opts.state_dir.empty() && !LockForLifetime(opts.state_dir + "/poshd.lock", &error))) {
      posh::log::Direct(posh::log::Level::kError, "poshd: " + error);
      return 1;
    }
  }

  // The metrics endpoint is bound here, on the main thread, so that a busy port stops poshd
  // before it reports ready; the loop serves it (MetricsServer below).
  int metrics_fd = -1;
  if (!opts.metrics_listen.empty()) {
    auto endpoint = posh::server::ParseMetricsListen(opts.metrics_listen);  // checked already
    std::string bound;
    auto fd = endpoint ? posh::server::OpenMetricsListener(*endpoint, &bound)
                       : posh::Result<int>(posh::Fail(endpoint.error()));
    if (!fd) {
      const std::string why = fd.error().message;
      posh::log::Direct(posh::log::Level::kError,
                        "poshd: --metrics-listen " + opts.metrics_listen + ": " + why);
      return 1;
    }
    metrics_fd = *fd;
    POSH_LOG_INFO("metrics: serving http://%s/metrics", bound.c_str());
  }

  posh::SystemClock clock;
  posh::cache::Store store(opts.max_entries);
  if (!opts.state_dir.empty()) {
    RemoveStaleSnapshotTemps(opts.state_dir);
    auto loaded = store.Load(SnapshotPath(opts), clock.NowMs());
    if (loaded) {
      POSH_LOG_INFO("snapshot: loaded %zu entries from %s", *loaded, SnapshotPath(opts).c_str());
    } else {
      POSH_LOG_ERROR("snapshot: ignoring %s: %s", SnapshotPath(opts).c_str(),
                     loaded.error().message.c_str());
    }
    // The load's file buffer and parse arena are freed by now, but glibc keeps the freed
    // heap pages: give them back (a 100 000-entry load leaves tens of MiB otherwise).
    ::malloc_trim(0);
  }

  std::unique_ptr<posh::server::MetricsServer> metrics;  // outlives the loop's run
  posh::server::EventLoop loop;
  auto fetcher_options = opts.fetcher;
  posh::server::PoshService service(loop, store, clock, opts.service,
                                    [fetcher_options](uv_loop_t* uv) {
                                      return posh::fetch::MakeCurlFetcher(uv, fetcher_options);
                                    });
  if (!opts.redis.empty()) {
    posh::l2::RedisTierOptions tier;
    tier.address = redis_address;
    tier.fleet_key = fleet_key;
    tier.user = opts.redis_user;
    tier.password = redis_password;
    tier.lifetimes = opts.service.lifetimes;
    service.SetSecondTierFactory([tier, &clock](uv_loop_t* uv, posh::l2::L2Stats* l2_stats) {
      return std::make_unique<posh::l2::RedisTier>(uv, clock, tier, l2_stats);
    });
    POSH_LOG_INFO("second tier: Redis at %s", opts.redis.c_str());
  }
  if (metrics_fd >= 0) {
    // The same snapshot as GetStats, built and formatted on the loop thread per scrape.
    metrics = std::make_unique<posh::server::MetricsServer>([&service] {
      posh::v1::GetStatsResponse stats;
      posh::server::FillStats(service, &stats);
      return posh::metrics::FormatPrometheus(stats);
    });
  }
  uv_timer_t watchdog{};
  loop.Start(
      [&] {
        // Cold work yields to cached answers: the loop thread (TLS handshakes, parsing of
        // retrieved documents) runs at a lower priority than gRPC's threads, which answer
        // cache hits, so a storm of cold lookups does not stall the hot path on a busy
        // machine (docs/BENCHMARKS.md, section 7). Raising one's niceness needs no privilege.
        if (opts.loop_niceness > 0) posh::server::LowerThisThreadsPriority(opts.loop_niceness);
        service.StartOnLoop();
        posh::server::StartWatchdog(loop.uv(), &watchdog);
        if (metrics) {
          auto started = metrics->StartOnLoop(loop.uv(), metrics_fd);
          if (!started) POSH_LOG_ERROR("%s", started.error().message.c_str());
        }
      },
      [&] {
        if (metrics) metrics->StopOnLoop();
        service.StopOnLoop();
      });

  // The socket: refuse to steal a live one, replace a stale one.
  std::filesystem::path sock(opts.socket_path);
  if (sock.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(sock.parent_path(), ec);
  }
  if (access(opts.socket_path.c_str(), F_OK) == 0) {
    if (SocketIsLive(opts.socket_path)) {
      posh::log::Direct(posh::log::Level::kError,
                        "poshd: another process is listening on " + opts.socket_path);
      loop.Stop();
      return 1;
    }
    ::unlink(opts.socket_path.c_str());
  }

  posh::server::ResolverGrpcService grpc_service(service);
  grpc_service.SetMaxRequestBytes(opts.max_request_bytes);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // No listening port: poshd accepts on the socket itself and hands gRPC only connections
  // that have sent the HTTP/2 preface, under --max-connections (server/connection_limit.h).
  builder.RegisterService(&grpc_service);
  // Lookup and Verify refuse (and count) requests over --max-request-bytes themselves; this
  // is the backstop above it for every method: a larger request is refused with
  // RESOURCE_EXHAUSTED before any method sees it. gRPC 1.51 compares the size once the
  // whole message is in: an oversized request is held until then and freed when refused
  // (no growth over repeated ones: test_limits.py).
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      posh::server::ResolverGrpcService::GrpcReceiveLimit(opts.max_request_bytes)));
  // Requests at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): a client
  // sending more waits for a stream to finish instead of piling calls on the server. An
  // XMPP server multiplexes every peer's verification on one connection: a cold start of a
  // busy server is hundreds of misses at once, so the bound is generous; the memory quota
  // below bounds what they may hold.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  // A connection with no call for 10 minutes gets a GOAWAY and is closed (its client
  // reconnects on its next call, which costs little on a unix socket). Idle XMPP servers
  // hold a connection each; this returns abandoned ones. No keepalive pings: a unix
  // socket's peer cannot vanish without the kernel closing it. No
  // GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS: it applies to gRPC's own listeners only; the
  // gate's preface timeout takes its place.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 10 * 60 * 1000);
  // gRPC's buffers (reads, HTTP/2 frames, messages being received) are accounted against
  // this quota; under pressure gRPC shrinks its reads and reclaims memory from idle
  // connections. Room for 64 requests of the largest size at once plus the connections'
  // buffers. In 1.51 it is a pressure signal, not a hard cap on one message.
  grpc::ResourceQuota quota("poshd");
  quota.Resize((64u << 20) + 64 * opts.max_request_bytes);
  // gRPC 1.51 counts only threads of synchronous methods (server reflection's) against
  // this; poshd's own methods are callback ones, run by gRPC's executor, sized to the
  // cores. A backstop, not a tuning knob.
  quota.SetMaxThreads(static_cast<int>(std::max(8u, 4 * std::thread::hardware_concurrency())));
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    posh::log::Direct(posh::log::Level::kError, "poshd: cannot start the gRPC server");
    loop.Stop();
    return 1;
  }
  // Create the socket with its final mode (no window with the process umask's mode);
  // the chmod below stays for umasks that cannot express it.
  auto listen_fd = posh::server::OpenUnixListener(opts.socket_path, opts.socket_mode);
  if (!listen_fd) {
    posh::log::Direct(posh::log::Level::kError, "poshd: cannot listen on " + opts.socket_path +
                                                    ": " + listen_fd.error().message);
    server->Shutdown();
    loop.Stop();
    return 1;
  }
  posh::server::ConnectionGateOptions gate_options;
  gate_options.max_connections = opts.max_connections;
  auto& stats = service.stats();
  // Declared after `server`, so destroyed (stopped) before it: no hand-off to a freed server.
  posh::server::ConnectionGate gate(
      *listen_fd, gate_options, {&stats.connections, &stats.connections_refused},
      [&server](int fd) { grpc::AddInsecureChannelFromFd(server.get(), fd); });
  if (auto started = gate.Start(); !started) {
    posh::log::Direct(posh::log::Level::kError, "poshd: cannot accept on " + opts.socket_path +
                                                    ": " + started.error().message);
    ::unlink(opts.socket_path.c_str());
    server->Shutdown();
    loop.Stop();
    return 1;
  }
  // The health service answers for "" (the server) and for each service by name.
  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus(posh::v1::Resolver::service_full_name(), true);
  }
  if (::chmod(opts.socket_path.c_str(), opts.socket_mode) != 0) {
    POSH_LOG_WARN("chmod %s: %s", opts.socket_path.c_str(), std::strerror(errno));
  }
  posh::log::Flush(std::chrono::seconds(1));  // the lines logged so far come first
  std::printf("%sposhd: listening on %s\n", posh::log::IsJournalStream(STDOUT_FILENO) ? "<6>" : "",
              opts.socket_path.c_str());
  std::fflush(stdout);
  POSH_LOG_INFO("listening on unix:%s (mode %04o)", opts.socket_path.c_str(), opts.socket_mode);
  posh::server::NotifyReady("listening on " + opts.socket_path);

  // Main thread: signals and periodic snapshots.
  auto last_snapshot = std::chrono::steady_clock::now();  // the last snapshot, or the start
  auto next_snapshot = last_snapshot + std::chrono::seconds(opts.snapshot_interval_s);
  for (;;) {
    timespec wait{1, 0};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      POSH_LOG_INFO("signal %d: shutting down", sig);
      break;
    }
    if (sig == SIGHUP) {
      const int old_interval = opts.snapshot_interval_s;
      Reload(argc, argv, opts, service, store);
      // A new interval counts from the last snapshot (or the start), not from the next one
      // due under the old interval: shortened from an hour to a minute, the snapshot an
      // hour's worth overdue is written now; lengthened, the next one moves out.
      if (opts.snapshot_interval_s != old_interval) {
        next_snapshot = last_snapshot + std::chrono::seconds(opts.snapshot_interval_s);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (opts.snapshot_interval_s > 0 && now >= next_snapshot) {
      SaveSnapshot(opts, store, clock);
      posh::server::NotifyStatus(StatusLine(service));
      last_snapshot = std::chrono::steady_clock::now();
      next_snapshot = last_snapshot + std::chrono::seconds(opts.snapshot_interval_s);
    }
  }

  // Stop accepting, let in-flight RPCs finish within the grace period, then cancel what
  // is left (the loop answers every waiter) and write the snapshot.
  posh::server::NotifyStopping();
  grpc_service.StopAccepting();
  if (auto* health = server->GetHealthCheckService()) health->Shutdown();
  // No new connections from here (connects are refused once the listener is closed), as
  // gRPC's own listener would stop in Shutdown; connections without a preface are closed.
  gate.Stop();
  std::thread shutdown_thread([&] {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(opts.shutdown_grace_ms + 2000));
  });
  auto grace_end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.shutdown_grace_ms);
  while (grpc_service.Active() > 0 && std::chrono::steady_clock::now() < grace_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  loop.Stop();
  shutdown_thread.join();
  server.reset();
  SaveSnapshot(opts, store, clock);
  ::unlink(opts.socket_path.c_str());
  POSH_LOG_INFO("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil tracks lock order for every absl::Mutex (gRPC's locks): ~3 % of the CPU
  // of each RPC in GraphCycles bookkeeping (docs/BENCHMARKS.md). poshd's own locks are std::.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto built = BuildOptions(argc, argv);
  if (!built) {
    posh::log::Direct(posh::log::Level::kError, "poshd: " + built.error().message);
    if (built.error().code == 64) std::fputs(posh::server::UsageText(), stderr);
    return built.error().code;
  }
  DaemonOptions opts = std::move(built).value();
  if (opts.show_help) {
    std::fputs(posh::server::UsageText(), stdout);
    return 0;
  }
  if (opts.show_version) {
    std::puts("poshd " POSHD_VERSION);
    return 0;
  }
  return Run(argc, argv, std::move(opts));
}
