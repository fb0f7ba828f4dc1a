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
    *out = std::to_string(i->get());
  } else if (auto b = node.as_boolean()) {
    *out = b->get() ? "true" : "false";
  } else {
    return false;
  }
  return true;
}

}  // namespace

bool IsReloadableSetting(const std::string& key) {
  return key == "fetch-timeout" || key == "max-body" || key == "max-ttl" || key == "negative-ttl" ||
         key == "error-ttl" || key == "stale-ttl" || key == "log-level" || key == "ca-file" ||
         key == "max-entries" || key == "snapshot-interval" || key == "max-concurrent-retrievals" ||
         key == "max-queued-retrievals" || key == "jostle-timeout";
}

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

}  // namespace posh::server
