// poshd's settings: defaults, command-line flags (INTERFACE.md), and the config file.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "fetch/fetcher.h"
#include "server/posh_service.h"
#include "util/log.h"

namespace posh::server {

struct DaemonOptions {
  std::string socket_path;  // default: DefaultSocketPath()
  unsigned socket_mode = 0660;
  std::string config_file;
  std::string state_dir;       // empty: no persistence
  std::string metrics_listen;  // loopback ADDR:PORT of the Prometheus endpoint; empty: off
  // The second tier shared by a fleet (issue 16): redis://HOST:PORT or unix:PATH; empty: off.
  std::string redis;
  std::string redis_key_file;       // the fleet's HMAC key (required with redis)
  std::string redis_user;           // ACL user for AUTH (needs redis_password_file)
  std::string redis_password_file;  // AUTH's password; empty: no AUTH
  fetch::CurlFetcherOptions fetcher;
  ServiceOptions service;
  size_t max_entries = 100000;
  int snapshot_interval_s = 300;
  // gRPC resource limits (issue 13): connections at once, largest request message.
  size_t max_connections = 1024;
  // Added to the loop thread's niceness: TLS handshakes and parsing of cold retrievals yield
  // to gRPC's threads, which answer cache hits (bench/run.sh section 7).
  int loop_niceness = 10;
  size_t max_request_bytes = 256 * 1024;
  int shutdown_grace_ms = 3000;
  log::Level log_level = log::Level::kInfo;
  bool show_help = false;
  bool show_version = false;
};

// /run/poshd/poshd.sock for root; $XDG_RUNTIME_DIR/poshd/poshd.sock or
// /tmp/poshd-UID/poshd.sock otherwise. Shared with poshctl.
std::string DefaultSocketPath();

// Parses argv over `opts` (which holds defaults, or the config file's values).
// Error message is ready to print.
Result<bool> ParseFlags(int argc, char** argv, DaemonOptions* opts);

// Applies one setting by its key name (flag name without "--"), shared by the flag parser
// and the config file. Error message says why.
Result<bool> ApplySetting(const std::string& key, const std::string& value, DaemonOptions* opts);

const char* UsageText();

}  // namespace posh::server
