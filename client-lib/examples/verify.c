/* Example: verify a peer's certificate with the C API, as an XMPP server would after a
 * TLS handshake (the DER leaf comes from the TLS library; here, from a file).
 *   example_verify_c DOMAIN LEAF.der [SOCKET] */
#include <posh/posh_client.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DOMAIN LEAF.der [SOCKET]\n", argv[0]);
    return 64;
  }
  FILE* f = fopen(argv[2], "rb");
  if (!f) {
    perror(argv[2]);
    return 64;
  }
  unsigned char buf[65536];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);

  posh_client* client = posh_client_open(argc > 3 ? argv[3] : NULL, 15000);
  if (!client) return 70;
  const unsigned char* chain[1] = {buf};
  size_t lengths[1] = {len};
  posh_verify_result* result = NULL;
  int rc = posh_verify(client, argv[1], NULL, chain, lengths, 1, &result);
  if (result) {
    printf("%s: verdict %d%s%s\n", result->domain, result->verdict,
           result->reason[0] ? ": " : "", result->reason);
    posh_verify_result_free(result);
  } else {
    fprintf(stderr, "verify failed: %s (%s)\n", posh_strerror(rc), posh_client_last_error());
  }
  posh_client_close(client);
  return rc;
}
