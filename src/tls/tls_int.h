/* Internal to src/tls: shared between tls_server.c and tls_autocert.c. */
#ifndef EHLO_TLS_INT_H
#define EHLO_TLS_INT_H

#include <stdbool.h>

#include "lib/buf.h"

/*
 * Makes sure <dir>/<name>.crt and <dir>/<name>.key exist, creating a
 * self-signed ECDSA P-256 pair when the certificate or key is missing.
 * Existing files are reused as they are (never overwritten), so a restart
 * keeps the certificate clients may have pinned. On success sets
 * *certpath and *keypath (caller frees) and returns true; false with a reason
 * appended to err.
 */
bool tls_autocert_ensure(const char *dir, const char *name, char **certpath,
    char **keypath, struct buf *err);

/* Appends OpenSSL's queued errors (oldest first, "; "-separated) to err. */
void tls_append_ssl_errors(struct buf *err);

#endif
