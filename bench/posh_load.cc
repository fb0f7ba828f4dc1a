// posh_load: a load client for poshd over its real unix socket (gRPC callback API; the
// closed loop sends every RPC through a generic stub with a pre-serialised request and
// checks every answer the same way for all three: see Caller::AnswerOk).
//
// Closed-loop mode (throughput and latency at fixed concurrency):
//   posh_load --socket PATH --mode health|lookup|verify --concurrency 1,16,64
//             [--seconds 3] [--reps 5] [--warmup 0.5] [--channels N] [--domain D]
//             [--chain leaf.der,ca.der] [--server-pid PID]
//   Each of the C callers issues its next RPC as soon as the previous one is answered.
//   Per repetition: throughput, p50/p99 latency, client CPU (cores), server CPU (cores, from
//   /proc/PID/stat when --server-pid is given). Prints one RESULT line per concurrency with
//   the medians over the repetitions.
//
// Burst mode (cold retrievals, coalescing, cache fill):
//   posh_load --socket PATH --mode burst --count N (--pattern 'd%d.bench.test' | --domain D)
//             [--max-outstanding N] [--first 0] [--timeout 60]
//   Sends N Lookups at once (at most --max-outstanding in flight), waits for every answer,
//   prints a BURST line: wall time to the last answer, first answer, p50, status counts.
//
// Wait mode: posh_load --socket PATH --mode wait [--timeout 60] polls Health/Check every
// millisecond and prints "READY epoch_ms=..." at the first SERVING answer.
//
// Every answer is checked (status found, from_cache for lookup, verdict verified for
// verify, SERVING for health); anything else counts as `bad`. Exit 1 when any is bad.
#include <absl/synchronization/mutex.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "posh/v1/resolver.grpc.pb.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

struct Args {
  std::string socket;
  std::string mode = "lookup";
  std::vector<int> concurrency = {1, 16, 64};
  double seconds = 3;
  int reps = 5;
  double warmup = 0.5;
  // 0 = min(concurrency, 16): a connection per caller, as independent client processes
  // (XMPP servers) have; beyond 16 callers they share 16 connections.
  int channels = 0;
  std::string domain = "xmpp.bench.test";
  std::vector<std::string> chain_files;
  int server_pid = 0;
  // burst
  int count = 1000;
  std::string pattern;
  int max_outstanding = 0;
  int first = 0;
  double timeout = 60;
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr, "posh_load: %s\n(see the header of bench/posh_load.cc)\n", msg);
  std::exit(64);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    if (k == "--socket")
      a.socket = v();
    else if (k == "--mode")
      a.mode = v();
    else if (k == "--concurrency") {
      a.concurrency.clear();
      for (auto& c : Split(v(), ',')) a.concurrency.push_back(std::atoi(c.c_str()));
    } else if (k == "--seconds")
      a.seconds = std::atof(v().c_str());
    else if (k == "--reps")
      a.reps = std::atoi(v().c_str());
    else if (k == "--warmup")
      a.warmup = std::atof(v().c_str());
    else if (k == "--channels")
      a.channels = std::atoi(v().c_str());
    else if (k == "--domain")
      a.domain = v();
    else if (k == "--chain")
      a.chain_files = Split(v(), ',');
    else if (k == "--server-pid")
      a.server_pid = std::atoi(v().c_str());
    else if (k == "--count")
      a.count = std::atoi(v().c_str());
    else if (k == "--pattern")
      a.pattern = v();
    else if (k == "--max-outstanding")
      a.max_outstanding = std::atoi(v().c_str());
    else if (k == "--first")
      a.first = std::atoi(v().c_str());
    else if (k == "--timeout")
      a.timeout = std::atof(v().c_str());
    else
      Usage(("unknown argument " + k).c_str());
  }
  if (a.socket.empty()) Usage("--socket is required");
  return a;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Usage(("cannot read " + path).c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime of another process, seconds (0 when unknown).
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t rp = line.rfind(')');
  if (rp == std::string::npos) return 0;
  auto fields = Split(line.substr(rp + 2), ' ');
  // fields[0] is state (field 3); utime is field 14, stime 15.
  if (fields.size() < 13) return 0;
  return (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& socket, int index) {
  grpc::ChannelArguments args;
  // A distinct argument per channel: a connection of its own (no shared subchannel).
  args.SetInt("posh.bench.channel", index);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(16 << 20);
  auto ch = grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    Usage(("cannot connect to unix:" + socket).c_str());
  return ch;
}

int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Polls Health/Check every millisecond until SERVING; prints the epoch time (ms) of the
// first SERVING answer. Used to time start-to-ready.
int RunWait(const Args& a) {
  const auto give_up =
      SteadyClock::now() + std::chrono::microseconds(static_cast<int64_t>(a.timeout * 1e6));
  grpc::Slice empty("", 0);
  grpc::ByteBuffer req(&empty, 1);
  while (SteadyClock::now() < give_up) {
    if (access(a.socket.c_str(), F_OK) == 0) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto ch =
          grpc::CreateCustomChannel("unix:" + a.socket, grpc::InsecureChannelCredentials(), args);
      grpc::GenericStub stub(ch);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      grpc::ByteBuffer resp;
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      grpc::Status status;
      stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                     [&](grpc::Status st) {
                       std::lock_guard<std::mutex> l(mu);
                       status = st;
                       done = true;
                       cv.notify_all();
                     });
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return done; });
      std::vector<grpc::Slice> slices;
      if (status.ok() && resp.Dump(&slices).ok()) {
        std::string b;
        for (auto& sl : slices) b.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        if (b == std::string("\x08\x01", 2)) {
          std::printf("READY epoch_ms=%lld\n", static_cast<long long>(EpochMs()));
          return 0;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::fprintf(stderr, "posh_load: %s not ready\n", a.socket.c_str());
  return 1;
}

double Percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(idx), v.end());
  return v[idx];
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------------------------------
// Closed loop.

struct Shared {
  const Args* args;
  std::vector<std::unique_ptr<grpc::GenericStub>> generic;
  posh::v1::VerifyRequest verify_template;
  SteadyClock::time_point end;
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> rpc_errors{0};
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  std::string first_error;
};

// Every mode goes through the same machinery (a GenericStub, the request serialised once
// and sent as the same ByteBuffer each time, every answer checked by AnswerOk), so the
// three RPCs differ only in what the server does and in the bytes.
class Caller {
 public:
  Caller(Shared* s, int index) : s_(s), index_(index) {
    const std::string& mode = s->args->mode;
    if (mode == "health") {
      method_ = "/grpc.health.v1.Health/Check";
      request_ = ToBuffer("");  // an empty HealthCheckRequest: any service
    } else if (mode == "lookup") {
      method_ = "/posh.v1.Resolver/Lookup";
      posh::v1::LookupRequest req;
      req.set_domain(s->args->domain);
      request_ = ToBuffer(req.SerializeAsString());
    } else {
      method_ = "/posh.v1.Resolver/Verify";
      request_ = ToBuffer(s->verify_template.SerializeAsString());
    }
    lat_us_.reserve(1 << 16);
  }

  void Start() { Issue(); }
  std::vector<uint32_t>& latencies() { return lat_us_; }

 private:
  static grpc::ByteBuffer ToBuffer(const std::string& bytes) {
    grpc::Slice slice(bytes);
    return grpc::ByteBuffer(&slice, 1);
  }

  void Issue() {
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    t0_ = SteadyClock::now();
    const size_t ch = static_cast<size_t>(index_) % s_->generic.size();
    response_.Clear();
    s_->generic[ch]->UnaryCall(ctx_.get(), method_, grpc::StubOptions(), &request_, &response_,
                               [this](grpc::Status st) { Done(st); });
  }

  // Health: the bytes of SERVING. Lookup/Verify: the first answer is parsed in full with
  // the generated message and checked (found / verified, from_cache); every later answer
  // must be byte-for-byte that checked answer (a cached answer never changes while the
  // entry is fresh), so each answer is checked at the cost of a comparison, as for health.
  bool AnswerOk() {
    std::vector<grpc::Slice> slices;
    if (!response_.Dump(&slices).ok()) return false;
    size_t size = 0;
    for (auto& sl : slices) size += sl.size();
    answer_.resize(size);
    size_t at = 0;
    for (auto& sl : slices) {
      std::memcpy(answer_.data() + at, sl.begin(), sl.size());
      at += sl.size();
    }
    if (!checked_.empty()) return answer_ == checked_;
    const std::string& mode = s_->args->mode;
    bool ok = false;
    if (mode == "health") {
      ok = answer_ == std::string("\x08\x01", 2);  // status: SERVING
    } else if (mode == "lookup") {
      posh::v1::LookupResponse r;
      ok = r.ParseFromString(answer_) && r.status() == posh::v1::LOOKUP_STATUS_FOUND &&
           r.from_cache();
    } else {
      posh::v1::VerifyResponse r;
      ok = r.ParseFromString(answer_) && r.verdict() == posh::v1::VERDICT_VERIFIED &&
           r.from_cache() && r.record().status() == posh::v1::LOOKUP_STATUS_FOUND;
    }
    if (ok) checked_ = answer_;
    return ok;
  }

  void Done(const grpc::Status& st) {
    const auto now = SteadyClock::now();
    if (!st.ok()) {
      s_->rpc_errors.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> l(s_->mu);
      if (s_->first_error.empty()) s_->first_error = st.error_message();
    } else if (!AnswerOk()) {
      s_->bad.fetch_add(1, std::memory_order_relaxed);
    }
    if (s_->measuring.load(std::memory_order_relaxed)) {
      lat_us_.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - t0_).count()));
    }
    if (now < s_->end) {
      Issue();
      return;
    }
    std::lock_guard<std::mutex> l(s_->mu);
    if (--s_->running == 0) s_->cv.notify_all();
  }

  Shared* s_;
  int index_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  SteadyClock::time_point t0_;
  std::string method_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::string answer_;   // the last answer's bytes
  std::string checked_;  // the first answer, parsed and checked
  std::vector<uint32_t> lat_us_;
};

struct RepResult {
  double rps = 0, p50_us = 0, p99_us = 0, client_cores = 0, server_cores = 0;
  uint64_t n = 0;
};

RepResult RunPhase(Shared& s, std::vector<std::unique_ptr<Caller>>& callers, double seconds,
                   bool measure) {
  for (auto& c : callers) c->latencies().clear();
  s.measuring.store(measure);
  const double cpu0 = CpuSeconds();
  const double scpu0 = ProcessCpuSeconds(s.args->server_pid);
  const auto t0 = SteadyClock::now();
  s.end = t0 + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  {
    std::lock_guard<std::mutex> l(s.mu);
    s.running = static_cast<int>(callers.size());
  }
  for (auto& c : callers) c->Start();
  {
    std::unique_lock<std::mutex> l(s.mu);
    s.cv.wait(l, [&] { return s.running == 0; });
  }
  const double wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  RepResult r;
  std::vector<uint32_t> all;
  for (auto& c : callers) all.insert(all.end(), c->latencies().begin(), c->latencies().end());
  r.n = all.size();
  r.rps = static_cast<double>(all.size()) / wall;
  r.p50_us = Percentile(all, 0.50);
  r.p99_us = Percentile(all, 0.99);
  r.client_cores = (CpuSeconds() - cpu0) / wall;
  if (s.args->server_pid > 0)
    r.server_cores = (ProcessCpuSeconds(s.args->server_pid) - scpu0) / wall;
  return r;
}

int RunClosedLoop(const Args& a) {
  Shared s;
  s.args = &a;
  if (a.mode == "verify") {
    if (a.chain_files.empty()) Usage("--mode verify needs --chain leaf.der[,ca.der]");
    s.verify_template.set_domain(a.domain);
    for (auto& f : a.chain_files) s.verify_template.add_presented_chain(ReadFile(f));
  } else if (a.mode != "lookup" && a.mode != "health") {
    Usage("--mode is health, lookup, verify or burst");
  }
  int max_c = *std::max_element(a.concurrency.begin(), a.concurrency.end());
  int nch = a.channels > 0 ? a.channels : std::min(max_c, 16);
  for (int i = 0; i < nch; ++i) {
    auto ch = MakeChannel(a.socket, i);
    s.generic.push_back(std::make_unique<grpc::GenericStub>(ch));
  }
  int status = 0;
  for (int c : a.concurrency) {
    std::vector<std::unique_ptr<Caller>> callers;
    for (int i = 0; i < c; ++i) callers.push_back(std::make_unique<Caller>(&s, i));
    if (a.warmup > 0) RunPhase(s, callers, a.warmup, false);
    std::vector<double> rps, p50, p99, ccpu, scpu;
    for (int r = 0; r < a.reps; ++r) {
      RepResult rr = RunPhase(s, callers, a.seconds, true);
      std::fprintf(stderr,
                   "  rep %d: mode=%s c=%d n=%llu rps=%.0f p50_us=%.0f p99_us=%.0f "
                   "client_cores=%.2f server_cores=%.2f\n",
                   r + 1, a.mode.c_str(), c, static_cast<unsigned long long>(rr.n), rr.rps,
                   rr.p50_us, rr.p99_us, rr.client_cores, rr.server_cores);
      rps.push_back(rr.rps);
      p50.push_back(rr.p50_us);
      p99.push_back(rr.p99_us);
      ccpu.push_back(rr.client_cores);
      scpu.push_back(rr.server_cores);
    }
    std::printf(
        "RESULT mode=%s c=%d reps=%d seconds=%.1f channels=%d rps=%.0f p50_us=%.0f "
        "p99_us=%.0f client_cores=%.2f server_cores=%.2f bad=%llu rpc_errors=%llu\n",
        a.mode.c_str(), c, a.reps, a.seconds, nch, Median(rps), Median(p50), Median(p99),
        Median(ccpu), Median(scpu), static_cast<unsigned long long>(s.bad.load()),
        static_cast<unsigned long long>(s.rpc_errors.load()));
    std::fflush(stdout);
    if (s.bad.load() || s.rpc_errors.load()) {
      std::fprintf(stderr, "posh_load: %llu bad answers, %llu RPC errors (first: %s)\n",
                   static_cast<unsigned long long>(s.bad.load()),
                   static_cast<unsigned long long>(s.rpc_errors.load()), s.first_error.c_str());
      status = 1;
    }
  }
  return status;
}

// ---------------------------------------------------------------------------------------
// Burst.

struct BurstCall {
  grpc::ClientContext ctx;
  posh::v1::LookupRequest req;
  posh::v1::LookupResponse resp;
};

int RunBurst(const Args& a) {
  auto ch = MakeChannel(a.socket, 0);
  auto stub = posh::v1::Resolver::NewStub(ch);
  const int n = a.count;
  const int max_out = a.max_outstanding > 0 ? a.max_outstanding : n;
  std::vector<std::unique_ptr<BurstCall>> calls(static_cast<size_t>(n));
  std::vector<double> done_ms(static_cast<size_t>(n), -1);
  std::vector<double> sent_ms(static_cast<size_t>(n), 0);  // per-call latency = done - sent
  std::mutex mu;
  std::condition_variable cv;
  int completed = 0, outstanding = 0, next = 0;
  uint64_t found = 0, not_found = 0, error = 0, rpc_errors = 0, from_cache = 0;
  std::string first_error;
  const auto t0 = SteadyClock::now();
  const int64_t t0_epoch_ms = EpochMs();
  const double cpu0 = CpuSeconds();
  const double scpu0 = ProcessCpuSeconds(a.server_pid);
  char buf[512];

  std::function<void(int)> issue = [&](int i) {
    auto& c = calls[static_cast<size_t>(i)];
    c = std::make_unique<BurstCall>();
    if (!a.pattern.empty()) {
      std::snprintf(buf, sizeof buf, a.pattern.c_str(), a.first + i);
      c->req.set_domain(buf);
    } else {
      c->req.set_domain(a.domain);
    }
    c->ctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(a.timeout * 1000)));
    {
      std::lock_guard<std::mutex> l(mu);
      sent_ms[static_cast<size_t>(i)] =
          std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
    }
    stub->async()->Lookup(&c->ctx, &c->req, &c->resp, [&, i](grpc::Status st) {
      const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
      std::lock_guard<std::mutex> l(mu);
      auto& cc = calls[static_cast<size_t>(i)];
      done_ms[static_cast<size_t>(i)] = ms;
      if (!st.ok()) {
        ++rpc_errors;
        if (first_error.empty()) first_error = st.error_message();
      } else {
        switch (cc->resp.status()) {
          case posh::v1::LOOKUP_STATUS_FOUND:
            ++found;
            break;
          case posh::v1::LOOKUP_STATUS_NOT_FOUND:
            ++not_found;
            break;
          default:
            ++error;
            if (first_error.empty()) first_error = cc->resp.error();
        }
        if (cc->resp.from_cache()) ++from_cache;
      }
      cc.reset();
      ++completed;
      --outstanding;
      cv.notify_all();
    });
  };

  {
    std::unique_lock<std::mutex> l(mu);
    while (next < n) {
      cv.wait(l, [&] { return outstanding < max_out; });
      int burst_end = std::min(n, next + (max_out - outstanding));
      std::vector<int> batch;
      for (; next < burst_end; ++next) batch.push_back(next);
      outstanding += static_cast<int>(batch.size());
      l.unlock();
      for (int i : batch) issue(i);
      l.lock();
    }
    cv.wait(l, [&] { return completed == n; });
  }
  const double wall_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  std::vector<double> sorted = done_ms;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> latency(static_cast<size_t>(n));
  for (size_t i = 0; i < latency.size(); ++i) latency[i] = done_ms[i] - sent_ms[i];
  std::sort(latency.begin(), latency.end());
  std::printf(
      "BURST n=%d max_outstanding=%d wall_ms=%.1f first_ms=%.1f p50_ms=%.1f last_ms=%.1f "
      "lat_p50_ms=%.3f lat_p99_ms=%.3f "
      "found=%llu not_found=%llu error=%llu rpc_errors=%llu from_cache=%llu client_cpu_s=%.2f "
      "server_cpu_s=%.2f t0_epoch_ms=%lld\n",
      n, max_out, wall_ms, sorted.front(), sorted[sorted.size() / 2], sorted.back(),
      latency[latency.size() / 2], latency[std::min(latency.size() - 1, latency.size() * 99 / 100)],
      static_cast<unsigned long long>(found), static_cast<unsigned long long>(not_found),
      static_cast<unsigned long long>(error), static_cast<unsigned long long>(rpc_errors),
      static_cast<unsigned long long>(from_cache), CpuSeconds() - cpu0,
      a.server_pid > 0 ? ProcessCpuSeconds(a.server_pid) - scpu0 : 0.0,
      static_cast<long long>(t0_epoch_ms));
  if (!first_error.empty())
    std::fprintf(stderr, "posh_load: first error: %s\n", first_error.c_str());
  std::fflush(stdout);
  return (rpc_errors || error) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // As poshd does (daemon/server/main.cc): no lock-order tracking in gRPC's absl mutexes.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Args a = ParseArgs(argc, argv);
  if (a.mode == "burst") return RunBurst(a);
  if (a.mode == "wait") return RunWait(a);
  return RunClosedLoop(a);
}
