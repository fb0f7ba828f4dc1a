// RedisTier: the second tier on Redis, through hiredis's async API on poshd's own libuv
// loop (its libuv adapter). Never blocks and is never on an answer's critical path:
//   - a read gets a bounded budget (read_budget_ms); past it the caller gets a miss and
//     the late reply is ignored. The budget is Redis's, not poshd's loop's: when the read
//     is past its budget but Redis answered within the last budget (the loop ran late:
//     a burst, a saturated machine), it waits on, up to kMaxLoopLagWaits budgets more;
//   - while disconnected, Get says "not asked" at once and Put does nothing; reconnection
//     runs in the background with exponential back-off (100 ms .. 10 s);
//   - writes are fire and forget: SET key value PX <remaining lifetime>; a refused one
//     (maxmemory) is counted, nothing else;
//   - at most max_outstanding commands wait for replies (a slow Redis cannot grow
//     hiredis's buffers without bound): over it, reads are not asked and writes dropped.
// Loop thread only (created, used and destroyed there; checked).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "cache/lifetime.h"
#include "core/result.h"
#include "l2/second_tier.h"
#include "util/clock.h"
#include "util/thread_checker.h"

struct redisAsyncContext;

namespace posh::l2 {

// Where Redis listens: "redis://HOST:PORT" (HOST an IP address or "localhost": no name
// resolution on the loop) or "unix:PATH".
struct RedisAddress {
  bool unix_socket = false;
  std::string host;  // IP literal, or the socket path
  int port = 6379;
};
Result<RedisAddress> ParseRedisUrl(const std::string& url);

struct RedisTierOptions {
  RedisAddress address;
  std::string fleet_key;  // >= kMinFleetKeySize bytes (LoadFleetKey)
  // AUTH after each connect when password is set: "AUTH user password" (a Redis 6 ACL
  // user) or "AUTH password" (requirepass) when user is empty. Reads and writes wait for
  // it; a refused AUTH drops the connection and retries with back-off.
  std::string user;
  std::string password;
  cache::Lifetimes lifetimes;
  int64_t read_budget_ms = 50;
  int64_t min_backoff_ms = 100;
  int64_t max_backoff_ms = 10'000;
  size_t max_outstanding = 1024;
};

class RedisTier final : public SecondTier {
 public:
  // A read past its budget while Redis keeps answering waits at most this many budgets
  // more (200 ms in all with the default 50 ms).
  static constexpr uint64_t kMaxLoopLagWaits = 3;
  // Connects at once (in the background); `stats` and `clock` outlive the tier.
  RedisTier(uv_loop_t* loop, const Clock& clock, RedisTierOptions options, L2Stats* stats);
  // Closes the connection; pending callbacks are dropped (not run). Loop thread.
  ~RedisTier() override;

  bool Get(const cache::Key& key, GetCallback cb) override;
  void Put(const cache::Key& key, const cache::Entry& entry) override;
  // New lifetimes (SIGHUP): applies to entries read afterwards.
  void SetLifetimes(const cache::Lifetimes& lifetimes) override;
  bool connected() const { return connected_; }

 private:
  struct Pending {
    cache::Key key;
    GetCallback cb;
  };
  void Connect();
  void ScheduleReconnect();
  void ArmReadTimer(uint64_t due);  // uv_now time; 0 with no reads: stops the timer
  void NoteProgress();
  void ExpireReads();
  void OnGetReply(uint64_t id, void* reply);
  void OnSetReply(void* reply);
  void LogRefused(const char* command, const char* why);
  void OnConnected();
  void OnAuthReply(void* reply);
  static void GetReplyThunk(redisAsyncContext* ac, void* reply, void* privdata);
  static void SetReplyThunk(redisAsyncContext* ac, void* reply, void* privdata);
  static void AuthReplyThunk(redisAsyncContext* ac, void* reply, void* privdata);
  static void ConnectThunk(const redisAsyncContext* ac, int status);
  static void DisconnectThunk(const redisAsyncContext* ac, int status);

  uv_loop_t* loop_;
  const Clock& clock_;
  RedisTierOptions options_;
  L2Stats* stats_;
  util::ThreadChecker loop_thread_;

  redisAsyncContext* ac_ = nullptr;
  bool connected_ = false;  // connected and, with a password, authenticated
  bool closing_ = false;
  int64_t backoff_ms_ = 0;
  uv_timer_t* reconnect_timer_ = nullptr;
  uv_timer_t* read_timer_ = nullptr;
  uint64_t next_id_ = 1;
  size_t outstanding_ = 0;  // commands sent, reply not yet in (reads and writes)
  std::unordered_map<uint64_t, Pending> pending_;
  // Reads in the order sent (all have the same budget, so deadlines are in order too).
  std::deque<std::pair<uint64_t, uint64_t>> deadlines_;  // (uv_now deadline, id)
  uint64_t last_progress_ms_ = 0;  // uv_now of the last reply, or of commands handed over
  bool logged_down_ = false;
  bool ever_connected_ = false;
  int64_t next_error_log_ms_ = 0;  // refused commands are logged once per 10 s
};

}  // namespace posh::l2
