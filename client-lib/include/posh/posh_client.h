/* libposhclient C API: ask poshd (over its unix socket) whether a certificate proves a
 * domain, for XMPP servers not written in C++ (C, Lua, Erlang NIFs, Go via cgo...).
 *
 * Thread safety: a posh_client may be used from many threads at once. Results are
 * allocated by the library and freed with the matching *_free function; strings in a
 * result live as long as the result. Every call is bounded by the client's timeout. */
#ifndef POSH_CLIENT_H
#define POSH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct posh_client posh_client;

/* Return codes: the same numbers as poshctl's exit statuses. */
enum posh_code {
  POSH_OK = 0,            /* found / verified */
  POSH_NEGATIVE = 1,      /* no POSH published, or not verified */
  POSH_UNDETERMINED = 2,  /* retrieval or document error: see the result's error/reason */
  POSH_EINVAL = 64,       /* bad argument (domain, service, certificate chain) */
  POSH_EUNAVAILABLE = 69, /* the daemon cannot be reached */
  POSH_EINTERNAL = 70     /* anything else (out of memory, unexpected RPC failure) */
};

enum posh_status { POSH_STATUS_FOUND = 1, POSH_STATUS_NOT_FOUND = 2, POSH_STATUS_ERROR = 3 };
enum posh_verdict {
  POSH_VERDICT_VERIFIED = 1,
  POSH_VERDICT_NOT_VERIFIED = 2,
  POSH_VERDICT_NO_POSH = 3,
  POSH_VERDICT_ERROR = 4
};

typedef struct posh_fingerprint {
  const char* hash;  /* "sha-256", "sha-512", ... */
  const char* value; /* standard base64 */
} posh_fingerprint;

typedef struct posh_key {
  const char* kid;   /* "" when none */
  int64_t not_after; /* unix seconds, 0 when unknown */
  size_t fingerprint_count;
  const posh_fingerprint* fingerprints;
} posh_key;

typedef struct posh_lookup_result {
  int status;         /* enum posh_status */
  const char* domain; /* normalised */
  const char* service;
  const char* delegated_to; /* "" when not delegated */
  const char* format;       /* "rfc7711", "jwk" or "" */
  int64_t expires_at;       /* unix seconds, 0 when unknown */
  int from_cache;
  const char* error; /* "" unless status is POSH_STATUS_ERROR */
  size_t key_count;
  const posh_key* keys;
} posh_lookup_result;

typedef struct posh_verify_result {
  int verdict; /* enum posh_verdict */
  const char* domain;
  const char* service;
  const char* delegated_to; /* "" when not delegated */
  const char* reason;       /* "" when verified */
  const char* matched_kid;  /* "" when none */
  int from_cache;
} posh_verify_result;

/* Opens a client. socket_path NULL or "": $POSHD_SOCKET, else the daemon's default path.
 * timeout_ms <= 0: 30 s. Connecting is lazy and automatic (reconnects after a daemon
 * restart). Returns NULL only when out of memory. */
posh_client* posh_client_open(const char* socket_path, int timeout_ms);
void posh_client_close(posh_client* client);

/* service NULL or "": "xmpp-server". refresh != 0 bypasses the cache.
 * On POSH_OK/POSH_NEGATIVE/POSH_UNDETERMINED *out is set (free it); otherwise *out is NULL
 * and posh_client_last_error() tells why. */
int posh_lookup(posh_client* client, const char* domain, const char* service, int refresh,
                posh_lookup_result** out);
void posh_lookup_result_free(posh_lookup_result* result);

/* chain: count DER certificates, leaf first. */
int posh_verify(posh_client* client, const char* domain, const char* service,
                const unsigned char* const* chain, const size_t* chain_lengths, size_t count,
                posh_verify_result** out);
void posh_verify_result_free(posh_verify_result* result);

/* A static description of a posh_code. */
const char* posh_strerror(int code);
/* The message of the calling thread's last failed call on any client ("" if none). Valid
 * until that thread's next call. */
const char* posh_client_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* POSH_CLIENT_H */
