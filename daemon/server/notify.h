// systemd service notification (sd_notify): READY/RELOADING/STOPPING/STATUS and the
// watchdog. All calls are no-ops when not started by systemd ($NOTIFY_SOCKET unset).
#pragma once

#include <uv.h>

#include <string>

namespace posh::server {

// Main thread: waits (at most 1 s) until the lines logged before it are written.
void NotifyReady(const std::string& status);
void NotifyReloading();
void NotifyStopping();
void NotifyStatus(const std::string& status);

// Starts a uv timer on `loop` sending WATCHDOG=1 at half of WatchdogSec when systemd asked
// for it. Runs on the loop thread, so a stuck loop stops the pings: that is the point.
// `timer` is caller-owned storage that outlives the loop (the loop's teardown closes it).
// Returns false when systemd set no watchdog.
bool StartWatchdog(uv_loop_t* loop, uv_timer_t* timer);

}  // namespace posh::server
