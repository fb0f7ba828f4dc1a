#include "server/config_file.h"

#include <toml++/toml.h>

#include <sstream>

namespace posh::server {
namespace {

std::string Where(const std::string& path, const toml::source_region& src) {
  return path + ":" + std::to_string(src.begin.line);
}

// A scalar TOML value as the flag parser's string form.
bool ScalarToString(const toml::node& node, std::string* out) {
  if (auto s = node.as_string()) {
    *out = s->get();
  } else if (auto i = node.as_integer()) {
    // An integer written in octal (socket-mode = 0o660) stays octal: the flag's form.
    if ((i->flags() & toml::value_flags::format_as_octal) != toml::value_flags::none) {
      std::ostringstream oct;
      oct << '0' << std::oct << i->get();
      *out = oct.str();
    } else {
      *out = std::to_string(i->get());
    }
  } else if (auto b = node.as_boolean()) {
    *out = b->get() ? "true" : "false";
  } else {
    return false;
  }
  return true;
}

}  // namespace

Result<bool> LoadConfigFile(const std::string& path, DaemonOptions* opts) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << path << ":" << e.source().begin.line << ": " << e.description();
    return Fail(Error{78, msg.str()});
  }
  for (auto&& [k, node] : table) {
    std::string key(k.str());
    std::string where = Where(path, node.source());
    if (key == "config") return Fail(Error{78, where + ": \"config\" cannot be set in a file"});
    if (key == "connect-to") {
      // An array of rules (or one string).
      if (auto arr = node.as_array()) {
        for (auto&& item : *arr) {
          auto s = item.as_string();
          if (!s) return Fail(Error{78, where + ": connect-to entries must be strings"});
          auto r = ApplySetting(key, s->get(), opts);
          if (!r) return Fail(Error{78, where + ": " + r.error().message});
        }
        continue;
      }
    }
    std::string value;
    if (!ScalarToString(node, &value)) {
      return Fail(Error{78, where + ": \"" + key + "\" must be a string, integer or boolean"});
    }
    auto r = ApplySetting(key, value, opts);
    if (!r) {
      std::string m = r.error().message;
      if (m.rfind("unknown setting", 0) == 0) m = "unknown key \"" + key + "\"";
      return Fail(Error{78, where + ": " + m});
    }
  }
  return true;
}

Result<DaemonOptions> BuildOptions(int argc, char** argv) {
  // A first pass finds --config (and rejects bad flags before the file is read).
  DaemonOptions probe;
  auto parsed = ParseFlags(argc, argv, &probe);
  if (!parsed) return Fail(parsed.error());
  DaemonOptions opts;
  opts.socket_path = DefaultSocketPath();
  if (!probe.config_file.empty()) {
    auto loaded = LoadConfigFile(probe.config_file, &opts);
    if (!loaded) return Fail(loaded.error());
  }
  auto again = ParseFlags(argc, argv, &opts);
  if (!again) return Fail(again.error());
  return opts;
}

std::vector<std::string> SettingsNeedingRestart(const DaemonOptions& running,
                                                const DaemonOptions& reloaded) {
  std::vector<std::string> out;
  auto check = [&](const char* key, bool changed) {
    if (changed) out.emplace_back(key);
  };
  const DaemonOptions& r = running;
  const DaemonOptions& n = reloaded;
  check("socket", n.socket_path != r.socket_path);
  check("socket-mode", n.socket_mode != r.socket_mode);
  check("state-dir", n.state_dir != r.state_dir);
  check("metrics-listen", n.metrics_listen != r.metrics_listen);
  check("redis", n.redis != r.redis);
  check("redis-key-file", n.redis_key_file != r.redis_key_file);
  check("redis-user", n.redis_user != r.redis_user);
  check("redis-password-file", n.redis_password_file != r.redis_password_file);
  check("loop-niceness", n.loop_niceness != r.loop_niceness);
  check("connect-to", n.fetcher.connect_to != r.fetcher.connect_to);
  check("allow-private-addresses",
        n.fetcher.allow_private_addresses != r.fetcher.allow_private_addresses);
  check("max-connections", n.max_connections != r.max_connections);
  check("max-request-bytes", n.max_request_bytes != r.max_request_bytes);
  return out;
}

}  // namespace posh::server
