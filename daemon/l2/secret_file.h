// Secrets poshd reads from files (the fleet key, the Redis password): a file others could
// read is refused, so a secret never sits where another user of the host can copy it.
#pragma once

#include <string>

#include "core/result.h"

namespace posh::l2 {

// The whole file: refused when it is not a regular file (symlinks are not followed), when
// its group or others have any access, or when it is larger than 64 KiB. `what` names the
// file in errors ("redis key file").
Result<std::string> LoadSecretFile(const std::string& path, const std::string& what);

// The Redis password (--redis-password-file): one line, its line ending dropped; empty or
// multi-line files are refused.
Result<std::string> LoadRedisPassword(const std::string& path);

}  // namespace posh::l2
