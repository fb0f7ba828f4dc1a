#include "support/tls_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace posh::testing {
namespace {

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

X509* MakeCert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, long serial,
               bool is_ca) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* iss = issuer != nullptr ? issuer : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(iss));
  AddExt(cert, iss, NID_subject_key_identifier, "hash");
  if (is_ca) {
    AddExt(cert, iss, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(cert, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert, iss, NID_authority_key_identifier, "keyid");
    AddExt(cert, iss, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(cert, iss, NID_key_usage, "critical,digitalSignature");
    AddExt(cert, iss, NID_ext_key_usage, "serverAuth");
    AddExt(cert, iss, NID_subject_alt_name, "DNS:posh.test,DNS:localhost,IP:127.0.0.1");
  }
  X509_sign(cert, issuer_key, EVP_sha256());
  return cert;
}

int ListenLocal(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

std::string Response(std::string_view path) {
  auto head = [](std::string_view status, std::string_view extra, size_t length) {
    std::string h = "HTTP/1.1 " + std::string(status) + "\r\nConnection: close\r\n";
    h += extra;
    if (length != std::string::npos) h += "Content-Length: " + std::to_string(length) + "\r\n";
    return h + "\r\n";
  };
  if (path == "/ok") {
    std::string body = "{\"hello\":\"posh\"}";
    return head("200 OK", "Content-Type: application/json\r\n", body.size()) + body;
  }
  if (path == "/exact") {  // exactly 100 bytes
    return head("200 OK", "", 100) + std::string(100, 'x');
  }
  if (path == "/big") {  // no Content-Length: only the write callback can stop it
    return head("200 OK", "", std::string::npos) + std::string(300 * 1024, 'x');
  }
  if (path == "/big-cl") {  // Content-Length announces too much: early reject
    return head("200 OK", "", 300 * 1024) + std::string(300 * 1024, 'x');
  }
  if (path == "/redirect") {
    return head("302 Found", "Location: https://posh.test/elsewhere.json\r\n", 0);
  }
  if (path == "/unavailable") return head("503 Service Unavailable", "", 4) + "busy";
  return head("404 Not Found", "", 0);
}

}  // namespace

TlsTestServer::TlsTestServer() {
  char tmpl[] = "/tmp/posh-fetch-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return;
  dir_ = tmpl;
  ca_key_ = EVP_EC_gen("P-256");
  leaf_key_ = EVP_EC_gen("P-256");
  if (ca_key_ == nullptr || leaf_key_ == nullptr) return;
  ca_cert_ = MakeCert(ca_key_, "poshd test CA", nullptr, ca_key_, 1, true);
  leaf_cert_ = MakeCert(leaf_key_, "posh.test", ca_cert_, ca_key_, 2, false);
  ca_file_ = dir_ + "/ca.pem";
  FILE* f = std::fopen(ca_file_.c_str(), "w");
  if (f == nullptr) return;
  PEM_write_X509(f, ca_cert_);
  std::fclose(f);

  ctx_ = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate(ctx_, leaf_cert_) != 1 ||
      SSL_CTX_use_PrivateKey(ctx_, leaf_key_) != 1) {
    return;
  }
  listen_fd_ = ListenLocal(&port_);
  silent_fd_ = ListenLocal(&silent_port_);
  if (listen_fd_ < 0 || silent_fd_ < 0) return;
  ok_ = true;
  thread_ = std::thread([this] { Run(); });
}

TlsTestServer::~TlsTestServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (silent_fd_ >= 0) ::close(silent_fd_);
  SSL_CTX_free(ctx_);
  X509_free(leaf_cert_);
  X509_free(ca_cert_);
  EVP_PKEY_free(leaf_key_);
  EVP_PKEY_free(ca_key_);
  if (!ca_file_.empty()) std::remove(ca_file_.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

void TlsTestServer::Run() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    Serve(fd);
    ::close(fd);
  }
}

void TlsTestServer::Serve(int fd) {
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL* ssl = SSL_new(ctx_);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string_view line(request);
    line = line.substr(0, line.find("\r\n"));
    std::string_view path;
    if (line.size() > 4 && line.substr(0, 4) == "GET ") {
      path = line.substr(4);
      path = path.substr(0, path.find(' '));
    }
    std::string response = Response(path);
    size_t off = 0;
    while (off < response.size()) {
      int chunk = static_cast<int>(std::min<size_t>(16384, response.size() - off));
      int n = SSL_write(ssl, response.data() + off, chunk);
      if (n <= 0) break;  // client gave up (body too large): fine
      off += static_cast<size_t>(n);
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  ERR_clear_error();
}

}  // namespace posh::testing
