// poshd's flags (INTERFACE.md "poshd flags"): defaults, every flag's valid and invalid
// values, the error messages a user reads, and the default socket path.
#include "server/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "options_test_support.h"

namespace posh::server {
namespace {

using namespace std::chrono_literals;
using testing::Argv;
using testing::ScopedEnv;
using testing::TempDir;

Result<bool> Parse(std::initializer_list<std::string> args, DaemonOptions* o) {
  Argv argv(args);
  return ParseFlags(argv.argc(), argv.argv(), o);
}

DaemonOptions ParseOk(std::initializer_list<std::string> args) {
  DaemonOptions o;
  auto r = Parse(args, &o);
  EXPECT_TRUE(r) << r.error().message;
  return o;
}

// The message of a refused command line; exit code 64 (EX_USAGE) for every flag error.
std::string ParseError(std::initializer_list<std::string> args) {
  DaemonOptions o;
  auto r = Parse(args, &o);
  EXPECT_FALSE(r);
  if (r) return "(accepted)";
  EXPECT_EQ(r.error().code, 64) << r.error().message;
  return r.error().message;
}

TEST(Options, Defaults) {
  DaemonOptions o;
  EXPECT_EQ(o.socket_mode, 0660u);
  EXPECT_EQ(o.config_file, "");
  EXPECT_EQ(o.state_dir, "");        // no persistence
  EXPECT_EQ(o.metrics_listen, "");   // no metrics endpoint
  EXPECT_EQ(o.fetcher.ca_file, "");  // system trust store
  EXPECT_TRUE(o.fetcher.connect_to.empty());
  EXPECT_FALSE(o.fetcher.allow_private_addresses);  // R8 holds
  EXPECT_EQ(o.fetcher.connect_timeout, 5s);
  EXPECT_EQ(o.service.resolver.timeout, 10s);  // R7
  EXPECT_EQ(o.service.resolver.max_body, 65536u);
  EXPECT_EQ(o.service.resolver.reference_cache_max_ttl, 86400s);
  EXPECT_EQ(o.service.lifetimes.max_ttl_ms, 86400 * 1000LL);     // R16
  EXPECT_EQ(o.service.lifetimes.negative_ttl_ms, 300 * 1000LL);  // R17
  EXPECT_EQ(o.service.lifetimes.error_ttl_ms, 30 * 1000LL);      // R17
  EXPECT_EQ(o.service.lifetimes.stale_ttl_ms, 3600 * 1000LL);    // R19
  EXPECT_EQ(o.max_entries, 100000u);
  EXPECT_EQ(o.snapshot_interval_s, 300);
  EXPECT_EQ(o.service.max_concurrent_retrievals, 256u);
  EXPECT_EQ(o.service.max_queued_retrievals, 10000u);
  EXPECT_EQ(o.service.jostle_timeout_ms, 5000);
  EXPECT_EQ(o.loop_niceness, 10);
  EXPECT_EQ(o.max_connections, 1024u);
  EXPECT_EQ(o.max_request_bytes, 262144u);
  EXPECT_EQ(o.log_level, log::Level::kInfo);
  EXPECT_FALSE(o.show_help);
  EXPECT_FALSE(o.show_version);

  // No flag: nothing changes.
  DaemonOptions parsed = ParseOk({});
  EXPECT_EQ(parsed.socket_path, "");
  EXPECT_EQ(parsed.max_entries, 100000u);
}

TEST(Options, UsageNamesEveryFlagOfTheInterface) {
  const std::string usage = UsageText();
  for (const char* flag : {"--socket PATH",
                           "--socket-mode OCTAL",
                           "--config FILE",
                           "--state-dir DIR",
                           "--ca-file PEM",
                           "--connect-to HOST:PORT:CHOST:CPORT",
                           "--fetch-timeout SECONDS",
                           "--max-body BYTES",
                           "--max-ttl SECONDS",
                           "--negative-ttl SECONDS",
                           "--error-ttl SECONDS",
                           "--stale-ttl SECONDS",
                           "--allow-private-addresses",
                           "--log-level LEVEL",
                           "--metrics-listen ADDR:PORT",
                           "--max-entries N",
                           "--snapshot-interval SECONDS",
                           "--max-concurrent-retrievals N",
                           "--max-queued-retrievals N",
                           "--jostle-timeout MS",
                           "--loop-niceness N",
                           "--max-connections N",
                           "--max-request-bytes BYTES",
                           "--help, --version"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

TEST(Options, EveryFlagTakesAValidValue) {
  TempDir dir;
  const std::string ca = dir.Write("ca.pem", "not parsed here\n");
  DaemonOptions o = ParseOk({"--socket",
                             "/run/x/poshd.sock",
                             "--socket-mode",
                             "0600",
                             "--config",
                             "/etc/poshd/poshd.toml",
                             "--state-dir",
                             "/var/lib/poshd",
                             "--ca-file",
                             ca,
                             "--connect-to",
                             "a.example:443:127.0.0.1:8443",
                             "--fetch-timeout",
                             "7",
                             "--max-body",
                             "1000",
                             "--max-ttl",
                             "3600",
                             "--negative-ttl",
                             "60",
                             "--error-ttl",
                             "5",
                             "--stale-ttl",
                             "120",
                             "--max-entries",
                             "50",
                             "--snapshot-interval",
                             "0",
                             "--max-concurrent-retrievals",
                             "8",
                             "--max-queued-retrievals",
                             "16",
                             "--jostle-timeout",
                             "0",
                             "--loop-niceness",
                             "19",
                             "--max-connections",
                             "2",
                             "--max-request-bytes",
                             "4096",
                             "--allow-private-addresses",
                             "--log-level",
                             "debug",
                             "--metrics-listen",
                             "127.0.0.1:9464"});
  EXPECT_EQ(o.socket_path, "/run/x/poshd.sock");
  EXPECT_EQ(o.socket_mode, 0600u);
  EXPECT_EQ(o.config_file, "/etc/poshd/poshd.toml");
  EXPECT_EQ(o.state_dir, "/var/lib/poshd");
  EXPECT_EQ(o.fetcher.ca_file, ca);
  EXPECT_EQ(o.fetcher.connect_to, std::vector<std::string>{"a.example:443:127.0.0.1:8443"});
  EXPECT_EQ(o.service.resolver.timeout, 7s);
  EXPECT_EQ(o.service.resolver.max_body, 1000u);
  EXPECT_EQ(o.service.lifetimes.max_ttl_ms, 3600 * 1000LL);
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
  EXPECT_EQ(o.metrics_listen, "127.0.0.1:9464");
}

TEST(Options, FlagEqualsValueIsTheSameAsTwoArguments) {
  DaemonOptions o = ParseOk({"--max-entries=7", "--log-level=warn", "--socket=/s.sock"});
  EXPECT_EQ(o.max_entries, 7u);
  EXPECT_EQ(o.log_level, log::Level::kWarn);
  EXPECT_EQ(o.socket_path, "/s.sock");
  // An empty value after '=' is a value (here refused), not a missing one.
  EXPECT_EQ(ParseError({"--socket="}), "--socket: empty path");
}

TEST(Options, LaterFlagsWin) {
  DaemonOptions o = ParseOk({"--max-entries", "1", "--max-entries", "2"});
  EXPECT_EQ(o.max_entries, 2u);
}

TEST(Options, FetchTimeoutAlsoBoundsTheConnectTimeout) {
  // R7: the connect phase never outlasts the whole retrieval; otherwise 5 s.
  EXPECT_EQ(ParseOk({"--fetch-timeout", "2"}).fetcher.connect_timeout, 2s);
  EXPECT_EQ(ParseOk({"--fetch-timeout", "30"}).fetcher.connect_timeout, 5s);
}

TEST(Options, MaxTtlAlsoBoundsSharedReferenceTargets) {
  // R11/R16: a shared reference target is kept no longer than any entry would be.
  EXPECT_EQ(ParseOk({"--max-ttl", "600"}).service.resolver.reference_cache_max_ttl, 600s);
}

TEST(Options, ConnectToIsRepeatableAndChecked) {
  DaemonOptions o = ParseOk({"--connect-to", "a.example:443:127.0.0.1:8443", "--connect-to",
                             "::[::1]:8444", "--connect-to=b.example:443:[::1]:8445"});
  EXPECT_EQ(o.fetcher.connect_to,
            (std::vector<std::string>{"a.example:443:127.0.0.1:8443", "::[::1]:8444",
                                      "b.example:443:[::1]:8445"}));
  EXPECT_EQ(ParseError({"--connect-to", "a.example:443:127.0.0.1"}),
            "--connect-to: \"a.example:443:127.0.0.1\" is not HOST:PORT:CHOST:CPORT");
  EXPECT_EQ(ParseError({"--connect-to", "a:1:b:2:3"}),
            "--connect-to: \"a:1:b:2:3\" is not HOST:PORT:CHOST:CPORT");
}

TEST(Options, AllowPrivateAddressesIsABooleanFlag) {
  EXPECT_TRUE(ParseOk({"--allow-private-addresses"}).fetcher.allow_private_addresses);
  for (const char* yes : {"true", "1", "yes", ""}) {
    EXPECT_TRUE(
        ParseOk({std::string("--allow-private-addresses=") + yes}).fetcher.allow_private_addresses)
        << yes;
  }
  for (const char* no : {"false", "0", "no"}) {
    EXPECT_FALSE(
        ParseOk({"--allow-private-addresses", std::string("--allow-private-addresses=") + no})
            .fetcher.allow_private_addresses)
        << no;
  }
  EXPECT_EQ(ParseError({"--allow-private-addresses=maybe"}),
            "--allow-private-addresses: \"maybe\" is not a boolean");
  // It takes no separate value: the next word is a stray argument.
  EXPECT_EQ(ParseError({"--allow-private-addresses", "false"}), "unexpected argument \"false\"");
}

TEST(Options, LogLevels) {
  EXPECT_EQ(ParseOk({"--log-level", "error"}).log_level, log::Level::kError);
  EXPECT_EQ(ParseOk({"--log-level", "warn"}).log_level, log::Level::kWarn);
  EXPECT_EQ(ParseOk({"--log-level", "warning"}).log_level, log::Level::kWarn);
  EXPECT_EQ(ParseOk({"--log-level", "info"}).log_level, log::Level::kInfo);
  EXPECT_EQ(ParseOk({"--log-level", "debug"}).log_level, log::Level::kDebug);
  EXPECT_EQ(ParseError({"--log-level", "verbose"}),
            "--log-level: \"verbose\" is not error, warn, info or debug");
  EXPECT_EQ(ParseError({"--log-level", "DEBUG"}),
            "--log-level: \"DEBUG\" is not error, warn, info or debug");
}

TEST(Options, SocketModeIsOctal) {
  EXPECT_EQ(ParseOk({"--socket-mode", "0660"}).socket_mode, 0660u);
  EXPECT_EQ(ParseOk({"--socket-mode", "777"}).socket_mode, 0777u);
  EXPECT_EQ(ParseOk({"--socket-mode", "0"}).socket_mode, 0u);
  EXPECT_EQ(ParseError({"--socket-mode", "0680"}), "--socket-mode: \"0680\" is not an integer");
  EXPECT_EQ(ParseError({"--socket-mode", "1000"}), "--socket-mode: 1000 is out of range [0, 511]");
  EXPECT_EQ(ParseError({"--socket-mode", "rw-rw----"}),
            "--socket-mode: \"rw-rw----\" is not an integer");
}

TEST(Options, CaFileMustBeReadable) {
  EXPECT_EQ(ParseError({"--ca-file", "/nonexistent/ca.pem"}),
            "--ca-file: cannot read \"/nonexistent/ca.pem\"");
  EXPECT_EQ(ParseError({"--ca-file", ""}), "--ca-file: cannot read \"\"");
}

TEST(Options, MetricsListenIsLoopbackOnly) {
  EXPECT_EQ(ParseOk({"--metrics-listen", "[::1]:9464"}).metrics_listen, "[::1]:9464");
  EXPECT_EQ(ParseOk({"--metrics-listen", "127.0.0.2:0"}).metrics_listen, "127.0.0.2:0");
  // Empty: off (a config file's `metrics-listen = ""` turns it off too).
  EXPECT_EQ(ParseOk({"--metrics-listen="}).metrics_listen, "");
  std::string e = ParseError({"--metrics-listen", "0.0.0.0:9464"});
  EXPECT_EQ(e.rfind("--metrics-listen: \"0.0.0.0:9464\" is not a loopback address", 0), 0u) << e;
  EXPECT_EQ(ParseError({"--metrics-listen", "127.0.0.1"}),
            "--metrics-listen: \"127.0.0.1\" is not ADDR:PORT (e.g. 127.0.0.1:9464 or "
            "[::1]:9464)");
  EXPECT_EQ(ParseError({"--metrics-listen", "127.0.0.1:70000"}),
            "--metrics-listen: \"127.0.0.1:70000\" has no valid PORT (0 to 65535)");
}

TEST(Options, IntegerFlagsRejectNonIntegersAndOutOfRangeValues) {
  struct Case {
    const char* flag;
    const char* low;   // first value below the range
    const char* high;  // first value above it
    const char* range;
  };
  for (const Case& c : {
           Case{"fetch-timeout", "0", "3601", "[1, 3600]"},
           Case{"max-body", "0", "67108865", "[1, 67108864]"},
           Case{"max-ttl", "-1", "31536001", "[0, 31536000]"},
           Case{"negative-ttl", "-1", "2592001", "[0, 2592000]"},
           Case{"error-ttl", "-1", "86401", "[0, 86400]"},
           Case{"stale-ttl", "-1", "2592001", "[0, 2592000]"},
           Case{"max-entries", "0", "100000001", "[1, 100000000]"},
           Case{"snapshot-interval", "-1", "86401", "[0, 86400]"},
           Case{"max-concurrent-retrievals", "0", "100001", "[1, 100000]"},
           Case{"max-queued-retrievals", "0", "10000001", "[1, 10000000]"},
           Case{"jostle-timeout", "-1", "3600001", "[0, 3600000]"},
           Case{"loop-niceness", "-1", "20", "[0, 19]"},
           Case{"max-connections", "0", "1000001", "[1, 1000000]"},
           Case{"max-request-bytes", "4095", "67108865", "[4096, 67108864]"},
       }) {
    const std::string flag = std::string("--") + c.flag;
    EXPECT_EQ(ParseError({flag, c.low}), flag + ": " + c.low + " is out of range " + c.range);
    EXPECT_EQ(ParseError({flag, c.high}), flag + ": " + c.high + " is out of range " + c.range);
    for (const char* bad : {"ten", "10s", " 10", "1.5", "0x10", ""}) {
      EXPECT_EQ(ParseError({flag, bad}), flag + ": \"" + bad + "\" is not an integer");
    }
  }
}

TEST(Options, AFlagWithoutItsValueIsRefused) {
  EXPECT_EQ(ParseError({"--socket"}), "--socket needs a value");
  EXPECT_EQ(ParseError({"--max-entries"}), "--max-entries needs a value");
  EXPECT_EQ(ParseError({"--log-level", "debug", "--fetch-timeout"}),
            "--fetch-timeout needs a value");
  // An unknown flag at the end is unknown, not a known one missing its value.
  EXPECT_EQ(ParseError({"--frobnicate"}), "unknown flag --frobnicate");
}

TEST(Options, UnknownFlagsAndStrayArgumentsAreRefused) {
  EXPECT_EQ(ParseError({"--frobnicate", "1"}), "unknown flag --frobnicate");
  EXPECT_EQ(ParseError({"--frobnicate=1"}), "unknown flag --frobnicate");
  EXPECT_EQ(ParseError({"-v"}), "unexpected argument \"-v\"");
  EXPECT_EQ(ParseError({"example.com"}), "unexpected argument \"example.com\"");
  // The first error is reported, and nothing after it is applied.
  DaemonOptions o;
  EXPECT_FALSE(Parse({"--bogus", "1", "--max-entries", "5"}, &o));
  EXPECT_EQ(o.max_entries, 100000u);
}

TEST(Options, RedisSecondTierIsOffByDefaultAndChecked) {
  EXPECT_TRUE(ParseOk({}).redis.empty());
  const DaemonOptions o = ParseOk(
      {"--redis", "unix:/run/redis/redis.sock", "--redis-key-file", "/etc/poshd/fleet.key"});
  EXPECT_EQ(o.redis, "unix:/run/redis/redis.sock");
  EXPECT_EQ(o.redis_key_file, "/etc/poshd/fleet.key");
  EXPECT_EQ(ParseOk({"--redis=redis://127.0.0.1:6380"}).redis, "redis://127.0.0.1:6380");
  // No name resolution on the loop: HOST is an address (or localhost).
  EXPECT_NE(ParseError({"--redis", "redis://cache.example.net:6379"}), "(accepted)");
  EXPECT_NE(ParseError({"--redis", "memcached://127.0.0.1"}), "(accepted)");
  const DaemonOptions a =
      ParseOk({"--redis-user", "poshd", "--redis-password-file", "/etc/poshd/redis.password"});
  EXPECT_EQ(a.redis_user, "poshd");
  EXPECT_EQ(a.redis_password_file, "/etc/poshd/redis.password");
  EXPECT_NE(ParseError({"--redis-user", "two words"}), "(accepted)");
}

TEST(Options, HelpAndVersionAreNotedForMain) {
  EXPECT_TRUE(ParseOk({"--help"}).show_help);
  EXPECT_TRUE(ParseOk({"-h"}).show_help);
  EXPECT_TRUE(ParseOk({"--version"}).show_version);
  DaemonOptions both = ParseOk({"--version", "--max-entries", "3", "--help"});
  EXPECT_TRUE(both.show_help);
  EXPECT_TRUE(both.show_version);
  EXPECT_EQ(both.max_entries, 3u);
  // Other flags are still checked.
  EXPECT_EQ(ParseError({"--help", "--max-entries", "x"}), "--max-entries: \"x\" is not an integer");
}

TEST(Options, ApplySettingIsSharedWithTheConfigFile) {
  DaemonOptions o;
  ASSERT_TRUE(ApplySetting("max-entries", "9", &o));
  EXPECT_EQ(o.max_entries, 9u);
  auto r = ApplySetting("nope", "1", &o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "unknown setting \"nope\"");
}

TEST(DefaultSocketPath, SystemdRuntimeDirectoryComesFirst) {
  ScopedEnv rt("RUNTIME_DIRECTORY", "/run/poshd");
  EXPECT_EQ(DefaultSocketPath(), "/run/poshd/poshd.sock");
  ScopedEnv several("RUNTIME_DIRECTORY", "/run/poshd:/run/other");
  EXPECT_EQ(DefaultSocketPath(), "/run/poshd/poshd.sock");
}

TEST(DefaultSocketPath, RootUsesRunOtherwiseTheUsersRuntimeDirectory) {
  ScopedEnv rt("RUNTIME_DIRECTORY", std::nullopt);
  {
    ScopedEnv xdg("XDG_RUNTIME_DIR", "/run/user/1234");
    EXPECT_EQ(DefaultSocketPath(),
              geteuid() == 0 ? "/run/poshd/poshd.sock" : "/run/user/1234/poshd/poshd.sock");
  }
  ScopedEnv no_xdg("XDG_RUNTIME_DIR", std::nullopt);
  EXPECT_EQ(DefaultSocketPath(), geteuid() == 0
                                     ? std::string("/run/poshd/poshd.sock")
                                     : "/tmp/poshd-" + std::to_string(geteuid()) + "/poshd.sock");
}

}  // namespace
}  // namespace posh::server
