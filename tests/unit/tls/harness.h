/*
 * Test harness for src/tls: certificates made at test time (never
 * committed), and one real handshake between an OpenSSL client in a
 * thread and tls_server_start() on an event_base, over a socketpair.
 */
#ifndef EHLO_TEST_TLS_HARNESS_H
#define EHLO_TEST_TLS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tls/tls.h"

/* mkdtemp under $TMPDIR or /tmp; returns a malloc'd path. */
char *th_tmpdir(void);
/* rm -r of a directory made by th_tmpdir (files one level deep). */
void th_rmdir(const char *dir);

/*
 * Writes <dir>/<base>.crt and <dir>/<base>.key: a self-signed certificate
 * with CN and SAN DNS:cn, key type EVP_PKEY_EC (P-256) or EVP_PKEY_RSA
 * (2048). Paths are malloc'd into *crt and *key. Fails the test on error.
 */
void th_certgen(const char *dir, const char *base, const char *cn, int type,
    char **crt, char **key);

/* Reads a whole file (malloc'd, NUL-terminated); *len set when non-NULL. */
char *th_slurp(const char *path, size_t *len);

struct th_client {
	int         min_version, max_version;  /* 0 = library default */
	const char *sigalgs;                    /* client signature algorithms */
	const char *ciphers;                    /* TLS <= 1.2 cipher list */
	const char *sni;
	const char *cert, *key;                 /* client certificate */
	const char *cafile;                     /* verify the server against this */
	const char *verify_host;
	SSL_SESSION *session;                   /* offer for resumption */
	bool        dirty_close;                /* close TCP without close_notify */
	size_t      expect_bytes;               /* bytes to read after the greeting */
	int         slow_ms;                    /* pause before reading the bulk */
};

struct th_client_result {
	bool         handshake_ok;
	char         version[16];
	char         peer_cn[256];
	int          peer_key_type;             /* EVP_PKEY_EC, EVP_PKEY_RSA */
	long         verify_result;
	bool         reused;
	SSL_SESSION *session;                   /* caller frees */
	char         greeting[64];
	size_t       bulk_read;                 /* bytes read after the greeting */
	bool         eof_after_bulk;            /* the server closed after them */
};

/*
 * What the server side saw. The default server callbacks write "220 hi\r\n"
 * on BEV_EVENT_CONNECTED and stop the loop at EOF or error. A test may set
 * on_connected to do something else; it gets the server bufferevent.
 */
struct th_server_result {
	bool            connected, eof, error, timed_out;
	struct tls_info info;
	char            reason[256];
	void          (*on_connected)(struct bufferevent *bev, struct th_server_result *sr);
	void           *user;
	struct event_base *base;
	struct bufferevent *bev;                /* freed by the harness unless NULL */
};

/*
 * Runs one session. When drop_ref is set, *tp is unreferenced right after
 * tls_server_start() (a reload while the handshake is in flight). Returns
 * after the client thread has finished.
 */
void th_run(struct tls_server **tp, bool drop_ref, const struct th_client *co,
    struct th_client_result *cr, struct th_server_result *sr);

#endif
