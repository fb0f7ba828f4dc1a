// The configuration file (TOML, the flags' keys), how it combines with the flags
// (defaults < file < flags), and which settings a SIGHUP reload applies.
#include "server/config_file.h"

#include <gtest/gtest.h>

#include <string>

#include "options_test_support.h"

namespace posh::server {
namespace {

using namespace std::chrono_literals;
using testing::Argv;
using testing::TempDir;

// The message of a refused file; exit code 78 (EX_CONFIG) for every file error.
std::string LoadError(const std::string& path, DaemonOptions* o) {
  auto r = LoadConfigFile(path, o);
  EXPECT_FALSE(r);
  if (r) return "(accepted)";
  EXPECT_EQ(r.error().code, 78) << r.error().message;
  return r.error().message;
}
std::string LoadError(const std::string& path) {
  DaemonOptions o;
  return LoadError(path, &o);
}

Result<DaemonOptions> Build(std::initializer_list<std::string> args) {
  Argv argv(args);
  return BuildOptions(argv.argc(), argv.argv());
}

TEST(ConfigFile, EveryKeyOfTheFlags) {
  TempDir dir;
  const std::string ca = dir.Write("ca.pem", "not parsed here\n");
  const std::string path = dir.Write("poshd.toml", R"(# poshd configuration
socket = "/run/f/poshd.sock"
socket-mode = "0600"
state-dir = "/var/lib/poshd"
ca-file = ")" + ca + R"("
connect-to = ["a.example:443:127.0.0.1:8443", "b.example:443:[::1]:8444"]
fetch-timeout = 7
max-body = 1000
max-ttl = 3600
negative-ttl = 60
error-ttl = 5
stale-ttl = 120
max-entries = 50
snapshot-interval = 0
max-concurrent-retrievals = 8
max-queued-retrievals = 16
jostle-timeout = 0
loop-niceness = 19
max-connections = 2
max-request-bytes = 4096
allow-private-addresses = true
log-level = "debug"
metrics-listen = "[::1]:9464"
)");
  DaemonOptions o;
  auto r = LoadConfigFile(path, &o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(o.socket_path, "/run/f/poshd.sock");
  EXPECT_EQ(o.socket_mode, 0600u);
  EXPECT_EQ(o.state_dir, "/var/lib/poshd");
  EXPECT_EQ(o.fetcher.ca_file, ca);
  EXPECT_EQ(o.fetcher.connect_to,
            (std::vector<std::string>{"a.example:443:127.0.0.1:8443", "b.example:443:[::1]:8444"}));
  EXPECT_EQ(o.service.resolver.timeout, 7s);
  EXPECT_EQ(o.fetcher.connect_timeout, 5s);
  EXPECT_EQ(o.service.resolver.max_body, 1000u);
  EXPECT_EQ(o.service.lifetimes.max_ttl_ms, 3600 * 1000LL);
  EXPECT_EQ(o.service.resolver.reference_cache_max_ttl, 3600s);
  EXPECT_EQ(o.service.lifetimes.negative_ttl_ms, 60 * 1000LL);
  EXPECT_EQ(o.service.lifetimes.error_ttl_ms, 5 * 1000LL);
  EXPECT_EQ(o.service.lifetimes.stale_ttl_ms, 120 * 1000LL);
  EXPECT_EQ(o.max_entries, 50u);
  EXPECT_EQ(o.snapshot_interval_s, 0);
  EXPECT_EQ(o.service.max_concurrent_retrievals, 8u);
  EXPECT_EQ(o.service.max_queued_retrievals, 16u);
  EXPECT_EQ(o.service.jostle_timeout_ms, 0);
  EXPECT_EQ(o.loop_niceness, 19);
  EXPECT_EQ(o.max_connections, 2u);
  EXPECT_EQ(o.max_request_bytes, 4096u);
  EXPECT_TRUE(o.fetcher.allow_private_addresses);
  EXPECT_EQ(o.log_level, log::Level::kDebug);
  EXPECT_EQ(o.metrics_listen, "[::1]:9464");
}

TEST(ConfigFile, ScalarsInAnyTomlTypeTheFlagParserAccepts) {
  TempDir dir;
  DaemonOptions o;
  o.fetcher.allow_private_addresses = true;
  o.metrics_listen = "127.0.0.1:9464";
  auto r = LoadConfigFile(dir.Write("a.toml", R"(fetch-timeout = "9"
connect-to = "a.example:443:127.0.0.1:8443"
allow-private-addresses = false
socket-mode = 640
metrics-listen = ""
)"),
                          &o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(o.service.resolver.timeout, 9s);
  EXPECT_EQ(o.fetcher.connect_to, std::vector<std::string>{"a.example:443:127.0.0.1:8443"});
  EXPECT_FALSE(o.fetcher.allow_private_addresses);
  EXPECT_EQ(o.socket_mode, 0640u);  // the digits are read as octal, as on the command line
  EXPECT_EQ(o.metrics_listen, "");  // empty: off
}

TEST(ConfigFile, AnOctalTomlIntegerIsTheModeItSpells) {
  TempDir dir;
  DaemonOptions o;
  auto r = LoadConfigFile(dir.Write("a.toml", "socket-mode = 0o600\n"), &o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(o.socket_mode, 0600u);
}

TEST(ConfigFile, AnEmptyFileChangesNothing) {
  TempDir dir;
  DaemonOptions o;
  ASSERT_TRUE(LoadConfigFile(dir.Write("empty.toml", "# nothing\n"), &o));
  EXPECT_EQ(o.max_entries, 100000u);
  EXPECT_EQ(o.log_level, log::Level::kInfo);
}

TEST(ConfigFile, ErrorsNameTheFileAndTheLine) {
  TempDir dir;
  std::string p = dir.Write("unknown.toml", "max-entries = 5\n\nfrobnicate = 1\n");
  EXPECT_EQ(LoadError(p), p + ":3: unknown key \"frobnicate\"");

  p = dir.Write("range.toml", "# comment\nfetch-timeout = 0\n");
  EXPECT_EQ(LoadError(p), p + ":2: --fetch-timeout: 0 is out of range [1, 3600]");

  p = dir.Write("level.toml", "log-level = \"loud\"\n");
  EXPECT_EQ(LoadError(p), p + ":1: --log-level: \"loud\" is not error, warn, info or debug");

  p = dir.Write("config.toml", "max-entries = 5\nconfig = \"/etc/other.toml\"\n");
  EXPECT_EQ(LoadError(p), p + ":2: \"config\" cannot be set in a file");

  p = dir.Write("connect.toml", "connect-to = [\"a:1:b:2\", 3]\n");
  EXPECT_EQ(LoadError(p), p + ":1: connect-to entries must be strings");

  p = dir.Write("connect2.toml", "\nconnect-to = [\"a:1:b\"]\n");
  EXPECT_EQ(LoadError(p), p + ":2: --connect-to: \"a:1:b\" is not HOST:PORT:CHOST:CPORT");

  p = dir.Write("float.toml", "max-body = 1.5\n");
  EXPECT_EQ(LoadError(p), p + ":1: \"max-body\" must be a string, integer or boolean");

  p = dir.Write("array.toml", "\n\nlog-level = [\"debug\"]\n");
  EXPECT_EQ(LoadError(p), p + ":3: \"log-level\" must be a string, integer or boolean");

  p = dir.Write("bool.toml", "allow-private-addresses = \"sometimes\"\n");
  EXPECT_EQ(LoadError(p), p + ":1: --allow-private-addresses: \"sometimes\" is not a boolean");
}

TEST(ConfigFile, SyntaxErrorsNameTheFileAndTheLine) {
  TempDir dir;
  std::string p = dir.Write("syntax.toml", "max-entries = 5\nfetch-timeout = \n");
  std::string e = LoadError(p);
  EXPECT_EQ(e.rfind(p + ":2: ", 0), 0u) << e;

  p = dir.Write("twice.toml", "max-entries = 5\n\nmax-entries = 6\n");
  e = LoadError(p);
  EXPECT_EQ(e.rfind(p + ":3: ", 0), 0u) << e;  // TOML forbids a key set twice
}

TEST(ConfigFile, AMissingFileIsAConfigurationError) {
  TempDir dir;
  const std::string p = dir.path() + "/absent.toml";
  std::string e = LoadError(p);
  EXPECT_EQ(e.rfind(p + ":", 0), 0u) << e;
}

TEST(BuildOptions, WithoutAFileTheDefaultsAndTheFlags) {
  auto o = Build({"--max-entries", "7"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->socket_path, DefaultSocketPath());
  EXPECT_EQ(o->max_entries, 7u);
  EXPECT_EQ(o->log_level, log::Level::kInfo);
}

TEST(BuildOptions, FlagsWinOverTheFileWhereverTheyStand) {
  TempDir dir;
  const std::string p = dir.Write("poshd.toml", R"(socket = "/run/file/poshd.sock"
max-entries = 5
log-level = "debug"
max-ttl = 600
connect-to = ["a.example:443:127.0.0.1:1", "b.example:443:127.0.0.1:2"]
)");
  // A flag before --config still wins: the file is read first, the flags applied after.
  auto o = Build({"--max-entries", "9", "--config", p, "--socket", "/run/flag/poshd.sock"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->config_file, p);
  EXPECT_EQ(o->socket_path, "/run/flag/poshd.sock");
  EXPECT_EQ(o->max_entries, 9u);
  EXPECT_EQ(o->log_level, log::Level::kDebug);               // from the file
  EXPECT_EQ(o->service.lifetimes.max_ttl_ms, 600 * 1000LL);  // from the file
  EXPECT_EQ(o->fetcher.connect_to.size(), 2u);               // the file's list, no flag

  auto only_file = Build({"--config", p});
  ASSERT_TRUE(only_file) << only_file.error().message;
  EXPECT_EQ(only_file->socket_path, "/run/file/poshd.sock");  // the file over the default
  EXPECT_EQ(only_file->max_entries, 5u);
}

TEST(BuildOptions, ConnectToFlagsReplaceTheFilesList) {
  TempDir dir;
  const std::string p = dir.Write("poshd.toml", R"(connect-to = ["a.example:443:127.0.0.1:1"]
)");
  auto o = Build({"--config", p, "--connect-to", "c.example:443:127.0.0.1:3", "--connect-to",
                  "d.example:443:127.0.0.1:4"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->fetcher.connect_to,
            (std::vector<std::string>{"c.example:443:127.0.0.1:3", "d.example:443:127.0.0.1:4"}));
}

TEST(BuildOptions, ErrorsKeepTheirExitCodes) {
  TempDir dir;
  // A bad flag is reported (64) before the file is read.
  auto bad_flag = Build({"--config", dir.path() + "/absent.toml", "--max-entries", "x"});
  ASSERT_FALSE(bad_flag);
  EXPECT_EQ(bad_flag.error().code, 64);
  EXPECT_EQ(bad_flag.error().message, "--max-entries: \"x\" is not an integer");

  auto absent = Build({"--config", dir.path() + "/absent.toml"});
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, 78);

  const std::string p = dir.Write("bad.toml", "max-entries = 0\n");
  auto bad_value = Build({"--config", p});
  ASSERT_FALSE(bad_value);
  EXPECT_EQ(bad_value.error().code, 78);
  EXPECT_EQ(bad_value.error().message, p + ":1: --max-entries: 0 is out of range [1, 100000000]");
}

TEST(BuildOptions, AReloadReadsTheFileAgain) {
  // SIGHUP runs BuildOptions again with the same command line.
  TempDir dir;
  const std::string p = dir.Write("poshd.toml", "max-entries = 5\n");
  Argv argv({"--config", p});
  auto first = BuildOptions(argv.argc(), argv.argv());
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->max_entries, 5u);
  dir.Write("poshd.toml", "max-entries = 6\nlog-level = \"warn\"\n");
  auto second = BuildOptions(argv.argc(), argv.argv());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->max_entries, 6u);
  EXPECT_EQ(second->log_level, log::Level::kWarn);
}

// One changed setting, by its key (the flag name), over the defaults.
DaemonOptions With(const std::string& key, const std::string& value) {
  DaemonOptions o;
  auto r = ApplySetting(key, value, &o);
  EXPECT_TRUE(r) << key << ": " << r.error().message;
  return o;
}

TEST(SettingsNeedingRestart, NothingChangedNothingToSay) {
  EXPECT_TRUE(SettingsNeedingRestart(DaemonOptions{}, DaemonOptions{}).empty());
}

TEST(SettingsNeedingRestart, TheSocketTheFetchersRoutingAndTheGrpcLimits) {
  const DaemonOptions running;
  for (auto [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"socket", "/run/other.sock"},
           {"socket-mode", "0600"},
           {"state-dir", "/var/lib/other"},
           {"metrics-listen", "127.0.0.1:9464"},
           {"loop-niceness", "0"},
           {"connect-to", "a.example:443:127.0.0.1:1"},
           {"allow-private-addresses", "true"},
           {"max-connections", "10"},
           {"max-request-bytes", "8192"},
       }) {
    EXPECT_EQ(SettingsNeedingRestart(running, With(key, value)), std::vector<std::string>{key})
        << key;
  }
  DaemonOptions several = With("socket", "/run/other.sock");
  several.max_connections = 3;
  EXPECT_EQ(SettingsNeedingRestart(running, several),
            (std::vector<std::string>{"socket", "max-connections"}));
}

TEST(SettingsNeedingRestart, EverythingElseIsAppliedByAReload) {
  TempDir dir;
  const std::string ca = dir.Write("ca.pem", "x\n");
  const DaemonOptions running;
  for (auto [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"fetch-timeout", "3"},
           {"max-body", "100"},
           {"max-ttl", "60"},
           {"negative-ttl", "60"},
           {"error-ttl", "60"},
           {"stale-ttl", "60"},
           {"log-level", "debug"},
           {"ca-file", ca},
           {"max-entries", "10"},
           {"snapshot-interval", "10"},
           {"max-concurrent-retrievals", "10"},
           {"max-queued-retrievals", "10"},
           {"jostle-timeout", "10"},
       }) {
    EXPECT_TRUE(SettingsNeedingRestart(running, With(key, value)).empty()) << key;
  }
}

}  // namespace
}  // namespace posh::server
