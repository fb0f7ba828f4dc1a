// The configuration file (TOML, parsed with toml++): the same keys as poshd's flags,
// e.g. `fetch-timeout = 10`, `connect-to = ["a.example:443:127.0.0.1:8443"]`.
// Unknown keys and bad values are rejected with the file, line and reason.
#pragma once

#include <string>

#include "core/result.h"
#include "server/options.h"

namespace posh::server {

// Applies the file's settings over `opts`. Error message: "FILE:LINE: reason".
Result<bool> LoadConfigFile(const std::string& path, DaemonOptions* opts);

// Settings SIGHUP can change at run time; the rest need a restart.
bool IsReloadableSetting(const std::string& key);

}  // namespace posh::server
