// Process-wide setup for a real host: the open-files limit, and gRPC's own log lines
// through poshd's logger (so they carry a syslog priority and never block).
#pragma once

#include <sys/resource.h>

#include <string>

namespace posh::server {

struct OpenFilesLimit {
  rlim_t before = 0;  // the soft limit found at start
  rlim_t after = 0;   // the soft limit now
  int error = 0;      // errno of a failed raise (the limit stays `before`)
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit (systemd gives a service 1024 soft;
// every client connection and retrieval is a descriptor). An unlimited hard limit is read
// as the kernel's fs.nr_open.
OpenFilesLimit RaiseOpenFilesLimit();
// Logs the result: info, or a warning when the raise failed.
void LogOpenFilesLimit(const OpenFilesLimit& limit);

// Raises the calling thread's niceness by `increment` (Linux: niceness is per thread). A
// failure is logged, never fatal: it only costs latency under load.
void LowerThisThreadsPriority(int increment);

// gpr_log lines (gRPC's errors) go through posh::log with their priority.
void RouteGrpcLogs();

}  // namespace posh::server
