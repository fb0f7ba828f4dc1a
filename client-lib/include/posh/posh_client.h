/* libposhclient C API: ask poshd (over its unix socket) whether a certificate proves a
 * domain, for XMPP servers not written in C++ (C, Lua, Erlang NIFs, Go via cgo...).
 *
 * Thread safety: a posh_client may be used from many threads at once. Results are
 * allocated by the library and freed with the matching *_free function; strings in a
 * result live as long as the result. Every call is bounded by the client's timeout.
 *
 * Two ways to call: synchronous (posh_lookup, posh_verify: the calling thread waits) and
 * asynchronous (posh_lookup_start, posh_verify_start: return at once; the result arrives
 * later as a completion, announced on the client's file descriptor and taken by the
 * caller in its own thread; see "Asynchronous calls" below). Event loops that must never
 * block (Prosody, ejabberd, libuv/libevent/epoll programs) use the asynchronous form.
 *
 * fork(): a client must not be used across fork() (gRPC's threads do not survive it).
 * A program that daemonizes by forking opens its client after the fork. */
#ifndef POSH_CLIENT_H
#define POSH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* What libposhclient exports (it is built with -fvisibility=hidden and a version script,
 * docs/CLIENT_ABI.md). */
#ifndef POSH_CLIENT_API
#if defined(__GNUC__)
#define POSH_CLIENT_API __attribute__((visibility("default")))
#else
#define POSH_CLIENT_API
#endif
#endif

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
  POSH_EINTERNAL = 70,    /* anything else (out of memory, unexpected RPC failure) */
  POSH_ECANCELED = 125    /* an asynchronous call cancelled by posh_cancel (Linux ECANCELED) */
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
 * restart). Returns NULL only when out of memory or of file descriptors (the client's
 * completion descriptor, see posh_client_fd); posh_client_last_error() tells which. */
POSH_CLIENT_API posh_client* posh_client_open(const char* socket_path, int timeout_ms);
/* Closes a client (NULL: nothing). Asynchronous calls still pending are cancelled and
 * their completions, like those nobody took, are freed without being delivered; it returns
 * once no gRPC thread can touch the client any more (promptly: it does not wait for the
 * daemon's answers), and closes the completion descriptor. Call it from any thread, but
 * not while another thread still uses the client; nothing of the client (descriptor,
 * call ids) may be used after it returns. Completions already taken stay valid until
 * posh_completion_free(). */
POSH_CLIENT_API void posh_client_close(posh_client* client);

/* service NULL or "": "xmpp-server". refresh != 0 bypasses the cache.
 * On POSH_OK/POSH_NEGATIVE/POSH_UNDETERMINED *out is set (free it); otherwise *out is NULL
 * and posh_client_last_error() tells why. */
POSH_CLIENT_API int posh_lookup(posh_client* client, const char* domain, const char* service,
                                int refresh, posh_lookup_result** out);
POSH_CLIENT_API void posh_lookup_result_free(posh_lookup_result* result);

/* chain: count DER certificates, leaf first. */
POSH_CLIENT_API int posh_verify(posh_client* client, const char* domain, const char* service,
                                const unsigned char* const* chain, const size_t* chain_lengths,
                                size_t count, posh_verify_result** out);
POSH_CLIENT_API void posh_verify_result_free(posh_verify_result* result);

/* ---- Asynchronous calls ------------------------------------------------------------------
 *
 * posh_lookup_start and posh_verify_start send the request and return at once. Every call
 * they start (return value POSH_OK) gets exactly one completion, whatever happens: its
 * result, an error (POSH_EUNAVAILABLE when the daemon cannot be reached within the
 * client's timeout, ...), or POSH_ECANCELED after posh_cancel. A call that is not started
 * (any other return value; posh_client_last_error() tells why) gets no completion.
 *
 * Completions wait in the client until the caller takes them with posh_next_completion(),
 * in whichever thread it likes: the library never calls into the caller's code. The file
 * descriptor from posh_client_fd() is readable while at least one completion waits (it is
 * an eventfd, level-triggered): add it to your event loop for reading, and when it is
 * readable take completions until posh_next_completion() returns NULL. Never read, write
 * or close that descriptor yourself.
 *
 * A call that finds the daemon unreachable (e.g. during a restart) is retried once after
 * the connection comes back (at most 2 s later), within the call's timeout: every posh.v1
 * call is idempotent. Completions are never delivered twice.
 *
 * posh_client_close() cancels every pending call, waits until no gRPC thread can touch
 * the client any more, and frees the completions nobody took (they are not delivered). */

typedef uint64_t posh_call_id; /* never 0; unique within a client */

enum posh_call_kind { POSH_CALL_LOOKUP = 1, POSH_CALL_VERIFY = 2 };

typedef struct posh_completion {
  posh_call_id id;
  int kind;        /* enum posh_call_kind */
  void* user_data; /* as given to *_start */
  /* What the synchronous call would have returned (POSH_OK, POSH_NEGATIVE,
   * POSH_UNDETERMINED, POSH_EINVAL, POSH_EUNAVAILABLE, POSH_EINTERNAL), or POSH_ECANCELED. */
  int code;
  /* Why, when code is neither POSH_OK, POSH_NEGATIVE nor POSH_UNDETERMINED; "" otherwise. */
  const char* error;
  /* When code is POSH_OK, POSH_NEGATIVE or POSH_UNDETERMINED, the result of the call
   * (lookup for POSH_CALL_LOOKUP, verify for POSH_CALL_VERIFY; the other is NULL); NULL
   * otherwise. Owned by the completion: freed with it, never free them yourself. */
  posh_lookup_result* lookup;
  posh_verify_result* verify;
} posh_completion;

/* The client's completion descriptor (readable while completions wait); -1 if the client
 * is NULL. Valid until posh_client_close(). */
POSH_CLIENT_API int posh_client_fd(posh_client* client);

/* Start a Lookup / Verify: arguments as for posh_lookup / posh_verify. On POSH_OK, *id (if
 * id is not NULL) is the call's id and exactly one completion will follow. Otherwise
 * (POSH_EINVAL for bad arguments, POSH_EINTERNAL) nothing was started and *id is 0.
 * Arguments the daemon rejects (a malformed domain, a chain that is not DER) are only
 * found out there: the call is started and completes with POSH_EINVAL. */
POSH_CLIENT_API int posh_lookup_start(posh_client* client, const char* domain, const char* service,
                                      int refresh, void* user_data, posh_call_id* id);
POSH_CLIENT_API int posh_verify_start(posh_client* client, const char* domain, const char* service,
                                      const unsigned char* const* chain,
                                      const size_t* chain_lengths, size_t count, void* user_data,
                                      posh_call_id* id);

/* Cancel a call whose completion has not been taken yet: its completion (queued already
 * or still to come) is POSH_ECANCELED. POSH_OK when the call was found, POSH_EINVAL when
 * no such call is pending (unknown id, or its completion already taken). */
POSH_CLIENT_API int posh_cancel(posh_client* client, posh_call_id id);

/* The next waiting completion, or NULL when none waits. Free it with
 * posh_completion_free(). When the last waiting completion is taken the descriptor stops
 * being readable. */
POSH_CLIENT_API posh_completion* posh_next_completion(posh_client* client);
POSH_CLIENT_API void posh_completion_free(posh_completion* completion);

/* Calls started whose completions have not been taken yet (in flight or waiting). */
POSH_CLIENT_API size_t posh_pending(posh_client* client);

/* A static description of a posh_code. */
POSH_CLIENT_API const char* posh_strerror(int code);
/* The message of the calling thread's last failed call on any client ("" if none). Valid
 * until that thread's next call. */
POSH_CLIENT_API const char* posh_client_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* POSH_CLIENT_H */
