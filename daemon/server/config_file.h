// The configuration file (TOML, parsed with toml++): the same keys as poshd's flags,
// e.g. `fetch-timeout = 10`, `connect-to = ["a.example:443:127.0.0.1:8443"]`.
// Unknown keys and bad values are rejected with the file, line and reason.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "server/options.h"

namespace posh::server {

// Applies the file's settings over `opts`. Error message: "FILE:LINE: reason".
Result<bool> LoadConfigFile(const std::string& path, DaemonOptions* opts);

// poshd's settings from its command line: the defaults, then the file named by --config,
// then the flags (flags win; a --connect-to flag replaces the file's whole list). Run at
// start and again on SIGHUP. Exit code in Error::code (64 usage, 78 configuration file).
Result<DaemonOptions> BuildOptions(int argc, char** argv);

// The settings (by key name) that differ between the running options and reloaded ones but
// only take effect after a restart: the socket, what the fetcher was built with but for its
// trust anchors and connect timeout, the gRPC limits. Every other setting is applied by
// SIGHUP (log level, the service's lifetimes, limits and resolver options, cache capacity,
// snapshot interval, ca-file, fetch-timeout).
std::vector<std::string> SettingsNeedingRestart(const DaemonOptions& running,
                                                const DaemonOptions& reloaded);

}  // namespace posh::server
