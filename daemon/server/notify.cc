#include "server/notify.h"

#include <systemd/sd-daemon.h>

#include <chrono>

#include "util/log.h"

namespace posh::server {

void NotifyReady(const std::string& status) {
  // READY=1 (at start, after a reload) follows the lines logged before it: whoever waits
  // for it finds them written (the writer thread may be behind by a few lines).
  log::Flush(std::chrono::seconds(1));
  sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", status.c_str(),
             static_cast<unsigned long>(getpid()));
}
void NotifyReloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading configuration"); }
void NotifyStopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }
void NotifyStatus(const std::string& status) { sd_notifyf(0, "STATUS=%s", status.c_str()); }

bool StartWatchdog(uv_loop_t* loop, uv_timer_t* timer) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return false;
  uv_timer_init(loop, timer);
  uint64_t period_ms = usec / 2000;
  if (period_ms == 0) period_ms = 1;
  uv_timer_start(
      timer, [](uv_timer_t*) { sd_notify(0, "WATCHDOG=1"); }, 0, period_ms);
  return true;
}

}  // namespace posh::server
