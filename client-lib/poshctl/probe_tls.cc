// poshctl probe: the TLS handshake on a non-blocking socket (no verification: the chain is
// judged afterwards), the chain's summary, and PKIX (X509_verify_cert + X509_check_host).
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

#include "core/base64.h"
#include "core/hash.h"
#include "probe.h"

namespace posh::ctl::probe {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The oldest queued OpenSSL error's reason ("wrong version number"), the queue cleared.
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_error();
  std::string r;
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    r = reason ? reason : "";
    if (r.empty()) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      r = buf;
    }
  }
  ERR_clear_error();
  return r;
}

bool IsExcessiveMessage() {
  const unsigned long e = ERR_peek_error();
  return e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
         ERR_GET_REASON(e) == SSL_R_EXCESSIVE_MESSAGE_SIZE;
}

X509Ptr FromDer(const std::vector<uint8_t>& der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

std::string NameLine(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data ? data : "", data ? static_cast<size_t>(len) : 0);
  BIO_free(bio);
  return out;
}

std::string CommonName(const X509_NAME* name) {
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

Result<TlsOutcome> HandshakeTls(int fd, const std::string& domain, const std::string& alpn,
                                const Deadline& deadline) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Fail(Error{0, "TLS setup failed: " + OpenSslReason()});
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  // The Certificate message is bounded: a huge chain ends the handshake, not our memory.
  SSL_CTX_set_max_cert_list(ctx.get(), static_cast<long>(kMaxChainBytes + 16 * 1024));
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 ||
      SSL_set_tlsext_host_name(ssl.get(), domain.c_str()) != 1) {
    return Fail(Error{0, "TLS setup failed: " + OpenSslReason()});
  }
  if (!alpn.empty()) {
    std::string wire(1, static_cast<char>(alpn.size()));
    wire += alpn;
    if (SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size())) != 0) {
      return Fail(Error{0, "TLS setup failed: cannot set ALPN"});
    }
  }
  for (;;) {
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    const int err = SSL_get_error(ssl.get(), rc);
    short events = 0;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      return Fail(Error{0, errno != 0 ? std::string("handshake failed: ") + std::strerror(errno)
                                      : "the server closed the connection during the handshake"});
    } else if (IsExcessiveMessage()) {
      ERR_clear_error();
      return Fail(Error{0, "handshake failed: the server's certificate message exceeds " +
                               std::to_string(kMaxChainBytes / 1024) + " KiB"});
    } else {
      const std::string reason = OpenSslReason();
      return Fail(Error{0, "handshake failed: " + (reason.empty() ? "unknown error" : reason)});
    }
    for (;;) {
      const int left = deadline.RemainingMs();
      if (left <= 0) return Fail(Error{ETIMEDOUT, "the TLS handshake timed out"});
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, left);
      if (n > 0) break;
      if (n < 0 && errno != EINTR) {
        return Fail(Error{errno, std::string("poll: ") + std::strerror(errno)});
      }
    }
  }
  TlsOutcome out;
  out.version = SSL_get_version(ssl.get());
  const unsigned char* selected = nullptr;
  unsigned selected_len = 0;
  SSL_get0_alpn_selected(ssl.get(), &selected, &selected_len);
  if (selected) out.alpn.assign(reinterpret_cast<const char*>(selected), selected_len);
  // The peer's chain as sent, leaf first (client side: it includes the leaf).
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
  const int count = chain ? sk_X509_num(chain) : 0;
  if (count <= 0) return Fail(Error{0, "the server presented no certificate"});
  if (static_cast<size_t>(count) > kMaxChainCerts) {
    return Fail(Error{0, "the server presented " + std::to_string(count) + " certificates (limit " +
                             std::to_string(kMaxChainCerts) + ")"});
  }
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    X509* x = sk_X509_value(chain, i);
    unsigned char* der = nullptr;
    const int len = i2d_X509(x, &der);
    if (len <= 0) return Fail(Error{0, "cannot encode certificate " + std::to_string(i)});
    total += static_cast<size_t>(len);
    out.chain.emplace_back(der, der + len);
    OPENSSL_free(der);
    if (total > kMaxChainBytes) {
      return Fail(Error{0, "the server's certificate chain exceeds " +
                               std::to_string(kMaxChainBytes / 1024) + " KiB"});
    }
  }
  // A polite close; the socket is non-blocking, so this never waits.
  SSL_shutdown(ssl.get());
  ERR_clear_error();
  return out;
}

std::vector<CertSummary> SummarizeChain(const std::vector<std::vector<uint8_t>>& chain) {
  std::vector<CertSummary> out;
  for (const auto& der : chain) {
    CertSummary s;
    auto digest = posh::core::Digest(posh::core::HashAlg::kSha256, der);
    s.sha256_b64 = posh::core::EncodeBase64(digest);
    if (X509Ptr x = FromDer(der)) {
      s.subject = NameLine(X509_get_subject_name(x.get()));
      s.issuer = NameLine(X509_get_issuer_name(x.get()));
      s.common_name = CommonName(X509_get_subject_name(x.get()));
      std::tm tm{};
      if (ASN1_TIME_to_tm(X509_get0_notAfter(x.get()), &tm) == 1) s.not_after = timegm(&tm);
    }
    out.push_back(std::move(s));
  }
  ERR_clear_error();
  return out;
}

void StoreDeleter::operator()(x509_store_st* s) const { X509_STORE_free(s); }

Result<TrustStore> LoadTrustStore(const std::string& ca_file) {
  TrustStore store(X509_STORE_new());
  if (!store) return Fail(Error{0, "cannot create a trust store"});
  if (ca_file.empty()) {
    if (X509_STORE_set_default_paths(store.get()) != 1) {
      return Fail(Error{0, "cannot load the system trust store: " + OpenSslReason()});
    }
  } else if (X509_STORE_load_file(store.get(), ca_file.c_str()) != 1) {
    return Fail(Error{0, "--ca-file " + ca_file + ": cannot load: " + OpenSslReason()});
  }
  ERR_clear_error();
  return store;
}

PkixOutcome CheckPkix(x509_store_st* store, const std::vector<std::vector<uint8_t>>& chain,
                      const std::string& domain) {
  PkixOutcome out;
  if (chain.empty()) {
    out.reason = "no certificate";
    return out;
  }
  X509Ptr leaf = FromDer(chain[0]);
  if (!leaf) {
    ERR_clear_error();
    out.reason = "the leaf certificate cannot be parsed";
    return out;
  }
  std::unique_ptr<STACK_OF(X509), X509StackFree> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain.size() && untrusted; ++i) {
    if (X509Ptr x = FromDer(chain[i])) {
      if (sk_X509_push(untrusted.get(), x.get()) > 0) x.release();
    }
  }
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!ctx || !untrusted ||
      X509_STORE_CTX_init(ctx.get(), store, leaf.get(), untrusted.get()) != 1) {
    out.reason = "cannot set up verification: " + OpenSslReason();
    return out;
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) != 1) {
    out.reason = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return out;
  }
  // RFC 6125 DNS-ID only (no CN fallback); a wildcard covers one whole left-most label.
  const unsigned flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
  if (X509_check_host(leaf.get(), domain.data(), domain.size(), flags, nullptr) != 1) {
    out.reason = "certificate is not valid for " + domain;
    ERR_clear_error();
    return out;
  }
  out.valid = true;
  return out;
}

}  // namespace posh::ctl::probe
