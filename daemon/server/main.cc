// poshd: the POSH resolution daemon. Threads: main (signals, snapshots, lifecycle), the
// loop thread (all network I/O), gRPC's callback threads (validation, cache hits).
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "cache/store.h"
#include "server/event_loop.h"
#include "server/grpc_service.h"
#include "server/options.h"
#include "server/posh_service.h"
#include "util/log.h"

namespace {

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

int Run(DaemonOptions opts) {
  posh::log::SetLevel(opts.log_level);
  const size_t sun_max = sizeof(sockaddr_un{}.sun_path) - 1;
  if (opts.socket_path.size() > sun_max) {
    std::fprintf(stderr, "poshd: --socket: path longer than %zu bytes\n", sun_max);
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

  posh::SystemClock clock;
  posh::cache::Store store(opts.max_entries);
  if (!opts.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opts.state_dir, ec);
    auto loaded = store.Load(SnapshotPath(opts), clock.NowMs());
    if (loaded) {
      POSH_LOG_INFO("snapshot: loaded %zu entries from %s", *loaded, SnapshotPath(opts).c_str());
    } else {
      POSH_LOG_ERROR("snapshot: ignoring %s: %s", SnapshotPath(opts).c_str(),
                     loaded.error().message.c_str());
    }
  }

  posh::server::EventLoop loop;
  auto fetcher_options = opts.fetcher;
  posh::server::PoshService service(
      loop, store, clock, opts.service, [fetcher_options](uv_loop_t* uv) {
        return posh::fetch::MakeCurlFetcher(uv, fetcher_options);
      });
  loop.Start([&] { service.StartOnLoop(); }, [&] { service.StopOnLoop(); });

  // The socket: refuse to steal a live one, replace a stale one.
  std::filesystem::path sock(opts.socket_path);
  if (sock.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(sock.parent_path(), ec);
  }
  if (access(opts.socket_path.c_str(), F_OK) == 0) {
    if (SocketIsLive(opts.socket_path)) {
      std::fprintf(stderr, "poshd: another process is listening on %s\n",
                   opts.socket_path.c_str());
      loop.Stop();
      return 1;
    }
    ::unlink(opts.socket_path.c_str());
  }

  posh::server::ResolverGrpcService grpc_service(service);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + opts.socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&grpc_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "poshd: cannot listen on %s\n", opts.socket_path.c_str());
    loop.Stop();
    return 1;
  }
  if (::chmod(opts.socket_path.c_str(), opts.socket_mode) != 0) {
    POSH_LOG_WARN("chmod %s: %s", opts.socket_path.c_str(), std::strerror(errno));
  }
  std::printf("poshd: listening on %s\n", opts.socket_path.c_str());
  std::fflush(stdout);
  POSH_LOG_INFO("listening on unix:%s (mode %04o)", opts.socket_path.c_str(), opts.socket_mode);

  // Main thread: signals and periodic snapshots.
  auto next_snapshot = std::chrono::steady_clock::now() + std::chrono::seconds(opts.snapshot_interval_s);
  for (;;) {
    timespec wait{1, 0};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      POSH_LOG_INFO("signal %d: shutting down", sig);
      break;
    }
    if (sig == SIGHUP) {
      POSH_LOG_INFO("SIGHUP: nothing to reload (no --config)");
      continue;
    }
    if (opts.snapshot_interval_s > 0 && std::chrono::steady_clock::now() >= next_snapshot) {
      SaveSnapshot(opts, store, clock);
      next_snapshot = std::chrono::steady_clock::now() + std::chrono::seconds(opts.snapshot_interval_s);
    }
  }

  // Stop accepting, let in-flight RPCs finish within the grace period, then cancel what
  // is left (the loop answers every waiter) and write the snapshot.
  grpc_service.StopAccepting();
  if (auto* health = server->GetHealthCheckService()) health->Shutdown();
  std::thread shutdown_thread([&] {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(opts.shutdown_grace_ms + 2000));
  });
  auto grace_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.shutdown_grace_ms);
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
  DaemonOptions opts;
  opts.socket_path = posh::server::DefaultSocketPath();
  auto parsed = posh::server::ParseFlags(argc, argv, &opts);
  if (!parsed) {
    std::fprintf(stderr, "poshd: %s\n%s", parsed.error().message.c_str(),
                 posh::server::UsageText());
    return 64;
  }
  if (opts.show_help) {
    std::fputs(posh::server::UsageText(), stdout);
    return 0;
  }
  if (opts.show_version) {
    std::puts("poshd " POSHD_VERSION);
    return 0;
  }
  return Run(std::move(opts));
}
