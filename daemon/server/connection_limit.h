// The client socket's front door (issue 13): poshd accepts on its unix socket itself and
// hands a connection to gRPC only once it has sent the HTTP/2 client preface (the magic and
// a SETTINGS frame header), so that thousands of idle or half-open connections can neither
// hold gRPC's memory nor lock other clients out.
//
// Why poshd accepts instead of gRPC: gRPC 1.51 has no cap on incoming connections
// (GRPC_ARG_MAX_ALLOWED_INCOMING_CONNECTIONS came later), and its handshake timeout holds a
// silent connection for the whole timeout, counted against any cap we could build around it.
// Here every connection is either
//   - pending: accepted, owned by the gate, waiting for its preface (at most
//     `preface_timeout`, then closed). When the cap is reached, the oldest pending
//     connection is closed to make room for the new one: a flood of silent connections
//     cannot keep a real client (which sends its preface at once) out;
//   - established: handed to gRPC (grpc::AddInsecureChannelFromFd), which owns and closes
//     the descriptor (GOAWAY on idle, peer gone, shutdown).
// Over the cap with nothing pending, a new connection is closed at once and counted.
//
// Counting closes of established connections: gRPC offers no per-connection hook for
// channels made from a descriptor (no channelz socket node, no callback). The gate keeps,
// for each descriptor it handed over, the socket's identity (st_dev, st_ino from fstat(2))
// and sweeps them once a second (and before refusing anyone): a descriptor that no longer
// exists or now names another file was closed by gRPC. This observes the descriptor table
// only, so it cannot change a socket's life. The alternative, a dup(2) watched for
// EPOLLHUP, works only while gRPC calls shutdown(2) before close(2) (its epoll poller
// does; nothing promises it), and when it does not, the dup keeps the socket open: the
// client never sees EOF and the slot is never freed. Socket inode numbers are not reused
// while the counter (get_next_ino) has not wrapped, and a descriptor number the kernel
// gives the gate's accept(2) again is known closed at once.
//
// One thread of its own (epoll), never the libuv loop: no work of the gate can delay a
// retrieval, and a stalled loop cannot stop admissions.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/result.h"

namespace posh::server {

struct ConnectionGateOptions {
  size_t max_connections = 1024;  // pending + established
  // From accept to a complete preface (magic + SETTINGS frame header); then closed.
  std::chrono::milliseconds preface_timeout{5000};
  // How often established descriptors are checked for closes (the `connections` gauge's
  // staleness).
  std::chrono::milliseconds sweep_interval{1000};
  // At most one "connection limit reached" warning per interval (with the count since).
  std::chrono::milliseconds warn_interval{10000};
};

// The counters the gate keeps current (ServiceStats' in poshd).
struct ConnectionCounters {
  std::atomic<uint64_t>* open = nullptr;     // gauge: pending + established
  std::atomic<uint64_t>* refused = nullptr;  // closed because of the cap
};

// Creates the unix socket at `path` with `mode` from the start (umask set around bind(2);
// the umask is process-wide, so call it before other threads create files), listening,
// non-blocking, close-on-exec. The caller has removed any stale file. Error message says why.
Result<int> OpenUnixListener(const std::string& path, unsigned mode);

class ConnectionGate {
 public:
  // Gives an established connection's descriptor to its new owner (gRPC). Runs on the
  // gate's thread.
  using Handoff = std::function<void(int fd)>;

  // Owns `listen_fd` from here on.
  ConnectionGate(int listen_fd, ConnectionGateOptions options, ConnectionCounters counters,
                 Handoff handoff);
  ~ConnectionGate();  // Stop()
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  Result<bool> Start();
  // Stops accepting (new connects are refused by the kernel once the listener is closed),
  // closes pending connections, joins the thread. Established ones stay gRPC's.
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
  };
  struct Pending {
    int fd = -1;
    Clock::time_point deadline;
    FileId id;
  };

  void Run();
  void AcceptAll(Clock::time_point now);
  void Admit(int fd, Clock::time_point now);
  void Examine(uint64_t tag);
  void ClosePending(std::map<uint64_t, Pending>::iterator it);
  void HandOff(std::map<uint64_t, Pending>::iterator it);
  void ExpirePending(Clock::time_point now);
  void Sweep(Clock::time_point now);
  void Refused();
  void MaybeWarn(Clock::time_point now);
  void PauseAccepting(Clock::time_point now);
  void Publish();
  size_t Open() const { return pending_.size() + established_.size(); }

  int listen_fd_;
  ConnectionGateOptions options_;
  ConnectionCounters counters_;
  Handoff handoff_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;     // eventfd: Stop() wakes the thread
  int reserve_fd_ = -1;  // /dev/null, given up to accept-and-close when out of descriptors
  std::thread thread_;

  // The gate's thread only.
  uint64_t next_tag_ = 2;  // epoll tags: 0 the listener, 1 stop_fd_, then pending ones
  std::map<uint64_t, Pending> pending_;  // by tag = accept order = deadline order
  std::unordered_map<int, FileId> established_;
  Clock::time_point last_sweep_{};
  Clock::time_point last_warn_{};
  Clock::time_point last_fd_warn_{};
  Clock::time_point accept_paused_until_{};
  bool accept_paused_ = false;
  uint64_t refused_unreported_ = 0;
};

}  // namespace posh::server
