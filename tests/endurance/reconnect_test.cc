// libposhclient reconnects when the daemon restarts (issue 5 item 5, issue 6 "Faults").
//
//   posh_reconnect_test --socket PATH --domain DOMAIN [--rounds N] -- POSHD ARGS...
//
// Starts POSHD ARGS... itself (the arguments must make it listen on PATH), then with ONE
// posh::client::Client: Lookup ok; stop the daemon (SIGTERM, then SIGKILL in the next round,
// which leaves a stale socket file behind), check that calls while it is down fail fast as
// unreachable() within about ClientOptions::reconnect_wait (no hang); start it again on the same
// socket and require a successful Lookup within a few seconds of retries. Exit 0 when every round
// passed, 1 otherwise (the reason on stderr).
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "posh/client.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Args {
  std::string socket;
  std::string domain;
  int rounds = 2;
  std::vector<std::string> poshd;
};

int Fail(const std::string& why) {
  std::fprintf(stderr, "FAIL: %s\n", why.c_str());
  return 1;
}

pid_t Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> v;
  for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, v[0], nullptr, nullptr, v.data(), environ) != 0) return -1;
  return pid;
}

// Waits for the child to exit; returns its wait status, or -1 on timeout.
int WaitExit(pid_t pid, milliseconds limit) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return -1;
}

bool SocketExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Lookup until ok or the deadline; returns the time it took, or -1.
long LookupUntilOk(posh::client::Client& client, const std::string& domain, milliseconds limit,
                   std::string* last_error, int* attempts) {
  auto start = Clock::now();
  posh::client::LookupRequest req;
  req.domain = domain;
  while (Clock::now() - start < limit) {
    posh::client::LookupResult resp;
    ++*attempts;
    auto s = client.Lookup(req, &resp);
    if (s.ok()) {
      if (resp.status != posh::client::LookupStatus::kFound) {
        *last_error = "lookup answered, status ";
        *last_error += std::to_string(static_cast<int>(resp.status));
        *last_error += " ";
        *last_error += resp.error;
        return -1;
      }
      return static_cast<long>(
          std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
    }
    *last_error = "code " + std::to_string(s.code) + ": " + s.message;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  int i = 1;
  for (; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) return Fail("missing value for " + k);
    if (k == "--socket")
      a.socket = argv[++i];
    else if (k == "--domain")
      a.domain = argv[++i];
    else if (k == "--rounds")
      a.rounds = std::atoi(argv[++i]);
    else
      return Fail("unknown option " + k);
  }
  for (; i < argc; ++i) a.poshd.push_back(argv[i]);
  if (a.socket.empty() || a.domain.empty() || a.poshd.empty()) {
    std::fprintf(stderr, "usage: %s --socket PATH --domain DOMAIN [--rounds N] -- POSHD ARGS...\n",
                 argv[0]);
    return 64;
  }

  pid_t pid = Spawn(a.poshd);
  if (pid < 0) return Fail("cannot start " + a.poshd[0]);
  auto cleanup = [&] {
    if (pid > 0) {
      kill(pid, SIGTERM);
      if (WaitExit(pid, milliseconds(10000)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      pid = -1;
    }
  };

  posh::client::ClientOptions opts;
  opts.socket_path = a.socket;
  opts.timeout = milliseconds(2000);
  opts.reconnect_wait = milliseconds(1000);
  posh::client::Client client(opts);  // ONE client for the whole test

  std::string err;
  int attempts = 0;
  long ms = LookupUntilOk(client, a.domain, milliseconds(20000), &err, &attempts);
  if (ms < 0) {
    cleanup();
    return Fail("first lookup never succeeded: " + err);
  }
  std::printf("initial lookup ok after %ld ms (%d attempts)\n", ms, attempts);

  for (int round = 0; round < a.rounds; ++round) {
    const int sig = round % 2 == 0 ? SIGTERM : SIGKILL;
    kill(pid, sig);
    int st = WaitExit(pid, milliseconds(15000));
    if (st < 0) {
      cleanup();
      return Fail("poshd did not exit after signal " + std::to_string(sig));
    }
    pid = -1;
    if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      return Fail("poshd did not exit 0 on SIGTERM (status " + std::to_string(st) + ")");
    }
    // While the daemon is down: a call fails as unreachable, and quickly.
    {
      posh::client::LookupRequest req;
      req.domain = a.domain;
      posh::client::LookupResult resp;
      auto t0 = Clock::now();
      auto s = client.Lookup(req, &resp);
      auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
      if (s.ok()) return Fail("lookup succeeded while the daemon was down");
      if (!s.unreachable()) {
        return Fail("while down: expected unreachable(), got code " + std::to_string(s.code) +
                    ": " + s.message);
      }
      // First attempt fails at once (nothing listens), then at most reconnect_wait.
      if (took > 2000) return Fail("while down: the call took " + std::to_string(took) + " ms");
      std::printf("round %d: signal %d, down: code %d after %lld ms (stale socket file: %s)\n",
                  round, sig, s.code, static_cast<long long>(took),
                  SocketExists(a.socket) ? "yes" : "no");
    }
    // Same socket path, new daemon.
    pid = Spawn(a.poshd);
    if (pid < 0) return Fail("cannot restart " + a.poshd[0]);
    attempts = 0;
    auto t0 = Clock::now();
    ms = LookupUntilOk(client, a.domain, milliseconds(10000), &err, &attempts);
    if (ms < 0) {
      cleanup();
      return Fail("round " + std::to_string(round) +
                  ": no successful lookup within 10 s of the restart: " + err);
    }
    std::printf(
        "round %d: lookup ok %ld ms after the restart (%d attempts)\n", round,
        static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()),
        attempts);
  }
  cleanup();
  std::printf("PASS\n");
  return 0;
}
