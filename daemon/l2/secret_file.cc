#include "l2/secret_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace posh::l2 {
namespace {

constexpr size_t kMaxSecretSize = 64 * 1024;

std::string Mode(mode_t m) {
  char b[8];
  std::snprintf(b, sizeof(b), "%04o", static_cast<unsigned>(m & 07777));
  return b;
}

}  // namespace

Result<std::string> LoadSecretFile(const std::string& path, const std::string& what) {
  const std::string name = what + " " + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(Error{1, name + ": " + std::strerror(errno)});
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(Error{1, name + ": not a regular file"});
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    return Fail(Error{1, name + " is accessible to its group or others (mode " + Mode(st.st_mode) +
                             "): it must be readable by poshd only (chmod 0600)"});
  }
  std::string secret;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      OPENSSL_cleanse(secret.data(), secret.size());
      return Fail(Error{1, name + ": " + why});
    }
    if (n == 0) break;
    secret.append(buf, static_cast<size_t>(n));
    if (secret.size() > kMaxSecretSize) {
      ::close(fd);
      OPENSSL_cleanse(secret.data(), secret.size());
      return Fail(Error{1, name + ": larger than 64 KiB"});
    }
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  ::close(fd);
  return secret;
}

Result<std::string> LoadRedisPassword(const std::string& path) {
  auto secret = LoadSecretFile(path, "redis password file");
  if (!secret) return secret;
  std::string& p = *secret;
  if (!p.empty() && p.back() == '\n') p.pop_back();
  if (!p.empty() && p.back() == '\r') p.pop_back();
  if (p.empty()) return Fail(Error{1, "redis password file " + path + " is empty"});
  if (p.find_first_of("\r\n") != std::string::npos) {
    OPENSSL_cleanse(p.data(), p.size());
    return Fail(Error{1, "redis password file " + path + " holds more than one line"});
  }
  return secret;
}

}  // namespace posh::l2
