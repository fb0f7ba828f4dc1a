/* Example: verify a peer's certificate for several domains at once with the asynchronous
 * C API, from a poll() loop, as an event-driven XMPP server would (its own loop watches
 * the client's descriptor instead). The daemon's socket: $POSHD_SOCKET or the default.
 *   example_verify_async_c LEAF.der DOMAIN...
 * Exit status: the highest posh_code among the answers (0: every domain verified). */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <posh/posh_client.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LEAF.der DOMAIN...\n", argv[0]);
    return 64;
  }
  FILE* f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 64;
  }
  unsigned char buf[65536];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);

  posh_client* client = posh_client_open(NULL, 15000);
  if (!client) return 70;
  const unsigned char* chain[1] = {buf};
  size_t lengths[1] = {len};
  int worst = POSH_OK;
  for (int i = 2; i < argc; ++i) {
    /* user_data: the domain, to recognise its completion. */
    int rc = posh_verify_start(client, argv[i], NULL, chain, lengths, 1, argv[i], NULL);
    if (rc != POSH_OK) {
      fprintf(stderr, "%s: not started: %s (%s)\n", argv[i], posh_strerror(rc),
              posh_client_last_error());
      if (rc > worst) worst = rc;
    }
  }
  struct pollfd pfd = {posh_client_fd(client), POLLIN, 0};
  while (posh_pending(client) > 0) {
    if (poll(&pfd, 1, -1) < 0) { /* every call completes within the client's timeout */
      perror("poll");
      break;
    }
    posh_completion* c;
    while ((c = posh_next_completion(client)) != NULL) {
      const char* domain = c->user_data;
      if (c->verify) {
        printf("%s: verdict %d%s%s\n", domain, c->verify->verdict, c->verify->reason[0] ? ": " : "",
               c->verify->reason);
      } else {
        printf("%s: %s (%s)\n", domain, posh_strerror(c->code), c->error);
      }
      if (c->code > worst) worst = c->code;
      posh_completion_free(c);
    }
  }
  posh_client_close(client);
  return worst;
}
