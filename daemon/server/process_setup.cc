#include "server/process_setup.h"

#include <grpc/support/log.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "util/log.h"

namespace posh::server {
namespace {

rlim_t KernelMaxOpenFiles() {
  unsigned long long v = 0;
  if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
    if (std::fscanf(f, "%llu", &v) != 1) v = 0;
    std::fclose(f);
  }
  return v > 0 ? static_cast<rlim_t>(v) : 1048576;  // the kernel's default nr_open
}

void GrpcLog(gpr_log_func_args* args) {
  posh::log::Level level = posh::log::Level::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    level = posh::log::Level::kError;
  } else if (args->severity == GPR_LOG_SEVERITY_INFO) {
    level = posh::log::Level::kInfo;
  }
  if (!posh::log::Enabled(level)) return;
  const char* file = args->file != nullptr ? args->file : "?";
  if (const char* slash = std::strrchr(file, '/')) file = slash + 1;
  char line[2048];
  int n = std::snprintf(line, sizeof line, "grpc: %s (%s:%d)",
                        args->message != nullptr ? args->message : "", file, args->line);
  if (n < 0) return;
  std::string_view text(line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
  // gRPC aborts right after logging a failed assertion: write that one at once.
  if (args->message != nullptr && std::strncmp(args->message, "assertion failed", 16) == 0) {
    posh::log::Direct(level, text);
  } else {
    posh::log::Write(level, text);
  }
}

}  // namespace

OpenFilesLimit RaiseOpenFilesLimit() {
  OpenFilesLimit out;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = errno;
    return out;
  }
  out.before = out.after = rl.rlim_cur;
  if (rl.rlim_cur == RLIM_INFINITY) return out;
  rlim_t target = rl.rlim_max == RLIM_INFINITY ? KernelMaxOpenFiles() : rl.rlim_max;
  if (rl.rlim_cur >= target) return out;
  rlimit raised{target, rl.rlim_max};
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    out.error = errno;
    return out;
  }
  out.after = target;
  return out;
}

void LogOpenFilesLimit(const OpenFilesLimit& limit) {
  auto n = [](rlim_t v) { return static_cast<unsigned long long>(v); };
  if (limit.error != 0) {
    POSH_LOG_WARN("open files limit: %llu (cannot raise it: %s)", n(limit.after),
                  std::strerror(limit.error));
  } else if (limit.after != limit.before) {
    POSH_LOG_INFO("open files limit: %llu (raised from %llu)", n(limit.after), n(limit.before));
  } else {
    POSH_LOG_INFO("open files limit: %llu", n(limit.after));
  }
}

void RouteGrpcLogs() { gpr_set_log_function(&GrpcLog); }

void LowerThisThreadsPriority(int increment) {
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int now = getpriority(PRIO_PROCESS, tid);
  if (now == -1 && errno != 0) {
    POSH_LOG_WARN("cannot read this thread's priority: %s", std::strerror(errno));
    return;
  }
  if (setpriority(PRIO_PROCESS, tid, std::min(19, now + increment)) != 0) {
    POSH_LOG_WARN("cannot lower the loop thread's priority: %s", std::strerror(errno));
  }
}

}  // namespace posh::server
