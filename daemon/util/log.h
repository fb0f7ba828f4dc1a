// Minimal leveled logger to stderr (journald adds its own timestamps under systemd; we
// still print them for foreground runs). Thread-safe: one write(2) per line.
#pragma once

#include <atomic>
#include <cstdio>
#include <string>
#include <string_view>

namespace posh::log {

enum class Level : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

bool ParseLevel(std::string_view text, Level* out);
void SetLevel(Level level);
Level GetLevel();
bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <class... Args>
void Logf(Level level, const char* fmt, Args... args) {
  if (!Enabled(level)) return;
  char buf[2048];
  int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n < 0) return;
  Write(level, std::string_view(buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1));
}

}  // namespace posh::log

#define POSH_LOG_ERROR(...) ::posh::log::Logf(::posh::log::Level::kError, __VA_ARGS__)
#define POSH_LOG_WARN(...) ::posh::log::Logf(::posh::log::Level::kWarn, __VA_ARGS__)
#define POSH_LOG_INFO(...) ::posh::log::Logf(::posh::log::Level::kInfo, __VA_ARGS__)
#define POSH_LOG_DEBUG(...) ::posh::log::Logf(::posh::log::Level::kDebug, __VA_ARGS__)
