/*
 * checkout: checks a seat of FEATURE out of the license servers SERVERS, prints the
 * lease, holds the seat (heartbeats run in the background) until standard input
 * ends, then returns it.
 *
 *   cc -o checkout checkout.c -I../include -L<dir of libsolme_client_ffi.so> -lsolme_client_ffi
 *   ./checkout http://licenses.example:7070 cad < /dev/null
 *
 * Exit status: 0 when the seat was checked out and returned, 1 when the library
 * refused or failed (the status's name and the message on standard error), 2 on
 * bad usage.
 */

#include <inttypes.h>
#include <stdio.h>

#include "solme_client.h"

/* Prints what failed, the status's name and the library's message. */
static int fail(const char *what, SolmeStatus status) {
  const char *message = solme_last_error_message();
  fprintf(stderr, "%s: %s: %s\n", what, solme_status_name(status),
          message != NULL ? message : "(no message)");
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SERVERS FEATURE < INPUT\n", argv[0]);
    return 2;
  }
  const char *servers = argv[1];
  const char *feature = argv[2];

  SolmeClient *client = NULL;
  /* NULL user and host: taken from the environment and the machine's name. */
  SolmeStatus status = solme_client_new(servers, "checkout example", NULL, NULL, &client);
  if (status != SOLME_STATUS_OK) {
    return fail("cannot make the license client", status);
  }

  SolmeLease *lease = NULL;
  /* No queue wait, no borrow. */
  status = solme_checkout(client, feature, 0, 0, &lease);
  if (status != SOLME_STATUS_OK) {
    int code = fail("no seat", status);
    solme_client_free(client);
    return code;
  }
  /* The lease keeps the library's thread alive: the client is no longer needed. */
  solme_client_free(client);

  char *id = NULL;
  int64_t expires_at = 0;
  status = solme_lease_id(lease, &id);
  if (status == SOLME_STATUS_OK) {
    status = solme_lease_expires_at(lease, &expires_at);
  }
  if (status != SOLME_STATUS_OK) {
    solme_string_free(id);
    int code = fail("cannot read the lease", status);
    solme_lease_free(lease);
    return code;
  }
  printf("lease %s expires_at %" PRId64 "\n", id, expires_at);
  solme_string_free(id);
  fflush(stdout);

  /* The licensed work: here, reading standard input to its end. */
  char buffer[256];
  while (fgets(buffer, sizeof buffer, stdin) != NULL) {
  }

  status = solme_lease_check(lease);
  if (status != SOLME_STATUS_OK) {
    int code = fail("the seat was lost while held", status);
    solme_lease_free(lease);
    return code;
  }
  status = solme_lease_release(lease);
  solme_lease_free(lease);
  if (status != SOLME_STATUS_OK) {
    return fail("the seat was not returned", status);
  }
  printf("released\n");
  return 0;
}
