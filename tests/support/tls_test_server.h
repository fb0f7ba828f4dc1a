// A tiny threaded HTTPS/1.1 server on 127.0.0.1 for CurlFetcher tests, with a test CA and
// a leaf certificate (DNS:posh.test, DNS:localhost, IP:127.0.0.1) generated at run time.
// One request per connection ("Connection: close").
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

typedef struct evp_pkey_st EVP_PKEY;
typedef struct x509_st X509;
typedef struct ssl_ctx_st SSL_CTX;

namespace posh::testing {

class TlsTestServer {
 public:
  TlsTestServer();
  ~TlsTestServer();
  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;

  bool ok() const { return ok_; }
  int port() const { return port_; }
  // Port of a socket that listens but never accepts: the handshake never completes.
  int silent_port() const { return silent_port_; }
  const std::string& ca_file() const { return ca_file_; }
  int connections() const { return connections_.load(); }

 private:
  void Run();
  void Serve(int fd);

  bool ok_ = false;
  int listen_fd_ = -1;
  int silent_fd_ = -1;
  int port_ = 0;
  int silent_port_ = 0;
  std::string dir_;
  std::string ca_file_;
  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_cert_ = nullptr;
  EVP_PKEY* leaf_key_ = nullptr;
  X509* leaf_cert_ = nullptr;
  SSL_CTX* ctx_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace posh::testing
