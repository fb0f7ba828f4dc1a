#include "l2/redis_tier.h"

#include <arpa/inet.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>

#include "l2/entry_codec.h"
#include "util/log.h"

namespace posh::l2 {
namespace {

void CloseTimer(uv_timer_t*& t) {
  if (!t) return;
  uv_timer_stop(t);
  t->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(t),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  t = nullptr;
}

}  // namespace

Result<RedisAddress> ParseRedisUrl(const std::string& url) {
  RedisAddress a;
  if (url.rfind("unix:", 0) == 0) {
    a.unix_socket = true;
    a.host = url.substr(5);
    if (a.host.empty() || a.host[0] != '/') {
      return Fail(Error{1, "--redis " + url + ": unix:PATH needs an absolute path"});
    }
    return a;
  }
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) {
    return Fail(Error{1, "--redis " + url + ": expected redis://HOST:PORT or unix:PATH"});
  }
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host;
  std::string port;
  if (!rest.empty() && rest[0] == '[') {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string::npos) return Fail(Error{1, "--redis " + url + ": bad IPv6 host"});
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Fail(Error{1, "--redis " + url + ": bad port"});
      port = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1) {
    return Fail(Error{1, "--redis " + url +
                             ": HOST must be an IP address or localhost (no name resolution "
                             "on poshd's loop)"});
  }
  a.host = host;
  if (!port.empty()) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p <= 0 || p > 65535) {
      return Fail(Error{1, "--redis " + url + ": bad port"});
    }
    a.port = p;
  }
  return a;
}

RedisTier::RedisTier(uv_loop_t* loop, const Clock& clock, RedisTierOptions options, L2Stats* stats)
    : loop_(loop), clock_(clock), options_(std::move(options)), stats_(stats) {
  POSH_DCHECK_ON_THREAD(loop_thread_);
  backoff_ms_ = options_.min_backoff_ms;
  reconnect_timer_ = new uv_timer_t;
  uv_timer_init(loop_, reconnect_timer_);
  reconnect_timer_->data = this;
  read_timer_ = new uv_timer_t;
  uv_timer_init(loop_, read_timer_);
  read_timer_->data = this;
  Connect();
}

RedisTier::~RedisTier() {
  POSH_DCHECK_ON_THREAD(loop_thread_);
  closing_ = true;
  pending_.clear();  // dropped, not run: the service answers its own waiters when stopping
  deadlines_.clear();
  if (ac_) {
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    redisAsyncFree(ac);  // runs the reply callbacks with NULL: they see closing_
  }
  CloseTimer(reconnect_timer_);
  CloseTimer(read_timer_);
}

void RedisTier::SetLifetimes(const cache::Lifetimes& lifetimes) {
  POSH_DCHECK_ON_THREAD(loop_thread_);
  options_.lifetimes = lifetimes;
}

void RedisTier::Connect() {
  if (closing_ || ac_) return;
  redisAsyncContext* ac =
      options_.address.unix_socket
          ? redisAsyncConnectUnix(options_.address.host.c_str())
          : redisAsyncConnect(options_.address.host.c_str(), options_.address.port);
  if (!ac) {
    ScheduleReconnect();
    return;
  }
  if (ac->err) {
    if (!logged_down_) {
      POSH_LOG_WARN("redis: cannot connect: %s (retrying in the background)", ac->errstr);
      logged_down_ = true;
    }
    redisAsyncFree(ac);
    ScheduleReconnect();
    return;
  }
  ac->data = this;
  if (redisLibuvAttach(ac, loop_) != REDIS_OK) {
    redisAsyncFree(ac);
    ScheduleReconnect();
    return;
  }
  redisAsyncSetConnectCallback(ac, &RedisTier::ConnectThunk);
  redisAsyncSetDisconnectCallback(ac, &RedisTier::DisconnectThunk);
  ac_ = ac;
}

void RedisTier::ScheduleReconnect() {
  if (closing_ || !reconnect_timer_) return;
  const int64_t wait = backoff_ms_;
  backoff_ms_ = std::min(options_.max_backoff_ms, std::max<int64_t>(1, backoff_ms_) * 2);
  uv_timer_start(
      reconnect_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisTier*>(t->data);
        if (!self) return;
        POSH_DCHECK_ON_THREAD(self->loop_thread_);
        self->Connect();
      },
      static_cast<uint64_t>(std::max<int64_t>(1, wait)), 0);
}

void RedisTier::ConnectThunk(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisTier*>(ac->data);
  if (!self || self->closing_) return;
  POSH_DCHECK_ON_THREAD(self->loop_thread_);
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback (no disconnect callback follows).
    if (!self->logged_down_) {
      POSH_LOG_WARN("redis: cannot connect: %s (retrying in the background)", ac->errstr);
      self->logged_down_ = true;
    }
    self->ac_ = nullptr;
    self->connected_ = false;
    self->ScheduleReconnect();
    return;
  }
  if (self->options_.password.empty()) {
    self->OnConnected();
    return;
  }
  // Sent before anything else on this connection; Get/Put wait for connected_.
  const std::string& user = self->options_.user;
  const std::string& password = self->options_.password;
  const int rc =
      user.empty() ? redisAsyncCommand(self->ac_, &RedisTier::AuthReplyThunk, nullptr, "AUTH %b",
                                       password.data(), password.size())
                   : redisAsyncCommand(self->ac_, &RedisTier::AuthReplyThunk, nullptr, "AUTH %b %b",
                                       user.data(), user.size(), password.data(), password.size());
  if (rc != REDIS_OK) redisAsyncDisconnect(self->ac_);  // the disconnect callback retries
}

void RedisTier::AuthReplyThunk(redisAsyncContext* ac, void* reply, void* /*privdata*/) {
  auto* self = static_cast<RedisTier*>(ac->data);
  if (!self || self->closing_) return;
  POSH_DCHECK_ON_THREAD(self->loop_thread_);
  self->OnAuthReply(reply);
}

void RedisTier::OnAuthReply(void* r) {
  const auto* reply = static_cast<const redisReply*>(r);
  if (reply && reply->type == REDIS_REPLY_STATUS) {
    OnConnected();
    return;
  }
  if (!reply) return;  // the connection went away first: its disconnect callback retries
  if (!logged_down_) {
    POSH_LOG_ERROR("redis: AUTH%s%s refused: %s (retrying in the background)",
                   options_.user.empty() ? "" : " as ", options_.user.c_str(),
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    logged_down_ = true;
  }
  if (ac_) redisAsyncDisconnect(ac_);  // after this callback; the disconnect callback retries
}

void RedisTier::OnConnected() {
  connected_ = true;
  backoff_ms_ = options_.min_backoff_ms;
  POSH_LOG_INFO("redis: connected%s", ever_connected_ ? " again" : "");
  ever_connected_ = true;
  logged_down_ = false;
}

void RedisTier::DisconnectThunk(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisTier*>(ac->data);
  if (!self || self->closing_) return;
  POSH_DCHECK_ON_THREAD(self->loop_thread_);
  if (!self->logged_down_) {
    POSH_LOG_WARN("redis: connection lost%s%s (reconnecting in the background)",
                  status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
    self->logged_down_ = true;
  }
  self->ac_ = nullptr;  // freed by hiredis after this callback
  self->connected_ = false;
  self->ScheduleReconnect();
}

bool RedisTier::Get(const cache::Key& key, GetCallback cb) {
  POSH_DCHECK_ON_THREAD(loop_thread_);
  if (!connected_ || !ac_ || outstanding_ >= options_.max_outstanding) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const std::string rk = RedisKey(key);
  const uint64_t id = next_id_++;
  if (redisAsyncCommand(ac_, &RedisTier::GetReplyThunk, reinterpret_cast<void*>(id), "GET %b",
                        rk.data(), rk.size()) != REDIS_OK) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ++outstanding_;
  pending_.emplace(id, Pending{key, std::move(cb)});
  // The loop's cached time may be a long iteration old: the budget starts now.
  uv_update_time(loop_);
  deadlines_.emplace_back(uv_now(loop_) + static_cast<uint64_t>(options_.read_budget_ms), id);
  if (deadlines_.size() == 1) ArmReadTimer(deadlines_.front().first);
  return true;
}

void RedisTier::ArmReadTimer(uint64_t due) {
  if (!read_timer_) return;
  if (deadlines_.empty()) {
    uv_timer_stop(read_timer_);
    return;
  }
  const uint64_t now = uv_now(loop_);
  uv_timer_start(
      read_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisTier*>(t->data);
        if (!self) return;
        POSH_DCHECK_ON_THREAD(self->loop_thread_);
        self->ExpireReads();
      },
      due > now ? due - now : 0, 0);
}

void RedisTier::ExpireReads() {
  uv_update_time(loop_);
  if (ac_ && connected_) {
    // libuv runs timers before polling for I/O, so after a long loop iteration (a burst of
    // lookups, TLS handshakes on a saturated machine) commands may still sit in hiredis's
    // output buffer and replies that came in time in the socket. Hand the commands to
    // Redis now (its budget starts when it has them) and read what has arrived; both are
    // non-blocking (EAGAIN: nothing to do).
    if (ac_->c.obuf != nullptr && ac_->c.obuf[0] != '\0') {
      redisAsyncHandleWrite(ac_);
      last_progress_ms_ = uv_now(loop_);
    }
    if (ac_) redisAsyncHandleRead(ac_);  // may disconnect: the callbacks see it
  }
  const uint64_t now = uv_now(loop_);
  const auto budget = static_cast<uint64_t>(options_.read_budget_ms);
  uint64_t due = 0;
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const uint64_t deadline = deadlines_.front().first;
    const uint64_t id = deadlines_.front().second;
    if (!pending_.contains(id)) {  // answered in time
      deadlines_.pop_front();
      continue;
    }
    // Past its budget. If Redis answered (or was handed commands) within the last budget,
    // the wait is poshd's own loop running late, not Redis: waiting on costs less than a
    // fetch, which would wait for the same loop. Bounded all the same (kMaxLoopLagWaits).
    const uint64_t hard = deadline + budget * kMaxLoopLagWaits;
    if (connected_ && now < hard && now < last_progress_ms_ + budget) {
      due = std::min(hard, last_progress_ms_ + budget);
      break;
    }
    deadlines_.pop_front();
    auto it = pending_.find(id);
    GetCallback cb = std::move(it->second.cb);
    pending_.erase(it);
    stats_->errors.fetch_add(1, std::memory_order_relaxed);  // over budget: a late reply is ignored
    cb(nullptr);
  }
  if (deadlines_.empty()) {
    ArmReadTimer(0);
  } else {
    ArmReadTimer(due != 0 ? due : deadlines_.front().first);
  }
}

void RedisTier::GetReplyThunk(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* self = static_cast<RedisTier*>(ac->data);
  if (!self) return;
  if (self->outstanding_ > 0) --self->outstanding_;
  if (reply) self->NoteProgress();
  if (self->closing_) return;
  POSH_DCHECK_ON_THREAD(self->loop_thread_);
  self->OnGetReply(reinterpret_cast<uint64_t>(privdata), reply);
}

void RedisTier::NoteProgress() {
  if (closing_) return;
  uv_update_time(loop_);
  last_progress_ms_ = uv_now(loop_);
}

void RedisTier::OnGetReply(uint64_t id, void* r) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // its budget ran out: already answered as a miss
  Pending p = std::move(it->second);
  pending_.erase(it);  // its deadline entry is skipped when it comes up
  const auto* reply = static_cast<const redisReply*>(r);
  std::shared_ptr<const cache::Entry> entry;
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    if (reply) LogRefused("GET", reply->str);  // NOAUTH, NOPERM (ACL), LOADING...
  } else if (reply->type == REDIS_REPLY_NIL) {
    stats_->misses.fetch_add(1, std::memory_order_relaxed);
  } else if (reply->type == REDIS_REPLY_STRING) {
    Decoded d = DecodeEntry(std::string_view(reply->str, reply->len), p.key, options_.fleet_key,
                            clock_.NowMs(), options_.lifetimes);
    switch (d.status) {
      case DecodeStatus::kOk:
        stats_->hits.fetch_add(1, std::memory_order_relaxed);
        entry = std::move(d.entry);
        break;
      case DecodeStatus::kBadMac:
        stats_->bad_macs.fetch_add(1, std::memory_order_relaxed);
        POSH_LOG_WARN("redis: ignored the entry for %s (%s): %s", p.key.domain.c_str(),
                      p.key.service.c_str(), d.why.c_str());
        break;
      case DecodeStatus::kMalformed:
        stats_->errors.fetch_add(1, std::memory_order_relaxed);
        POSH_LOG_WARN("redis: ignored the entry for %s (%s): %s", p.key.domain.c_str(),
                      p.key.service.c_str(), d.why.c_str());
        break;
      case DecodeStatus::kUnusable:
        stats_->misses.fetch_add(1, std::memory_order_relaxed);
        POSH_LOG_DEBUG("redis: entry for %s (%s) not used: %s", p.key.domain.c_str(),
                       p.key.service.c_str(), d.why.c_str());
        break;
    }
  } else {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
  }
  p.cb(std::move(entry));
}

void RedisTier::Put(const cache::Key& key, const cache::Entry& entry) {
  POSH_DCHECK_ON_THREAD(loop_thread_);
  if (entry.status == cache::EntryStatus::kError || entry.stale_until_ms > entry.expires_at_ms) {
    return;  // errors and stale copies are never shared
  }
  if (!connected_ || !ac_ || outstanding_ >= options_.max_outstanding) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int64_t until = entry.expires_at_ms;
  if (entry.hard_limit_ms > 0) until = std::min(until, entry.hard_limit_ms);
  const int64_t remaining = until - clock_.NowMs();
  if (remaining <= 0) return;
  const std::string rk = RedisKey(key);
  const std::string value = EncodeEntry(key, entry, options_.fleet_key);
  if (value.empty()) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::string px = std::to_string(remaining);
  if (redisAsyncCommand(ac_, &RedisTier::SetReplyThunk, nullptr, "SET %b %b PX %b", rk.data(),
                        rk.size(), value.data(), value.size(), px.data(), px.size()) != REDIS_OK) {
    stats_->errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ++outstanding_;
}

void RedisTier::SetReplyThunk(redisAsyncContext* ac, void* reply, void* /*privdata*/) {
  auto* self = static_cast<RedisTier*>(ac->data);
  if (!self) return;
  if (self->outstanding_ > 0) --self->outstanding_;
  if (reply) self->NoteProgress();
  if (self->closing_) return;
  POSH_DCHECK_ON_THREAD(self->loop_thread_);
  self->OnSetReply(reply);
}

void RedisTier::OnSetReply(void* r) {
  const auto* reply = static_cast<const redisReply*>(r);
  if (reply && reply->type == REDIS_REPLY_STATUS) {
    stats_->writes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  stats_->errors.fetch_add(1, std::memory_order_relaxed);
  if (reply && reply->type == REDIS_REPLY_ERROR) LogRefused("SET", reply->str);  // OOM, NOPERM
}

void RedisTier::LogRefused(const char* command, const char* why) {
  const int64_t now = clock_.MonotonicMs();
  if (now < next_error_log_ms_) return;
  next_error_log_ms_ = now + 10'000;  // a full Redis refuses every write: once per 10 s
  POSH_LOG_WARN("redis: %s refused: %s", command, why);
}

}  // namespace posh::l2
