/*
 * Server-side TLS for ehlod: one refcounted struct tls_server per
 * configuration generation (certificates, protocols, ciphers, SNI map),
 * and the libevent glue that puts a TLS filter on a session's bufferevent.
 *
 * STARTTLS and implicit TLS (port 465, RFC 8314) both use the same path:
 * the session creates a plain socket bufferevent, and tls_server_start()
 * stacks libevent's OpenSSL *filter* on it. See docs/tls.md for why (the
 * OpenSSL 3 dirty-shutdown trap, PROXY headers before the handshake) and for
 * the other libevent traps this layer handles.
 *
 * Threads: a struct tls_server is immutable after tls_server_new() and its
 * refcount is atomic, so several worker threads (each with its own
 * event_base) may start sessions from the same one. OpenSSL locks its
 * SSL_CTX session cache internally.
 */
#ifndef EHLO_TLS_H
#define EHLO_TLS_H

#include <stdbool.h>
#include <time.h>
#include <stddef.h>

#include "lib/buf.h"

struct bufferevent;
struct event;
struct event_base;
struct evbuffer;
struct evbuffer_cb_entry;

struct tls_server_opts {
	/*
	 * Certificate/key pairs, e.g. one ECDSA and one RSA. All go into one
	 * SSL_CTX; OpenSSL chooses per handshake from the client's signature
	 * algorithms and cipher suites. A key file NULL or "" means the key
	 * is in the certificate file. Two pairs of the same key type are an
	 * error (the second would silently replace the first).
	 */
	const char *const *cert_files;
	const char *const *key_files;
	size_t ncerts;
	/*
	 * Postfix smtpd_tls_protocols syntax, see tls_parse_protocols().
	 * NULL or "" = TLSv1.2 and TLSv1.3.
	 */
	const char *protocols;
	/* OpenSSL cipher list for TLS <= 1.2; NULL or "" = a strong default. */
	const char *ciphers;
	/*
	 * File of "name certfile keyfile [certfile keyfile ...]" lines, '#'
	 * comments; a name may be "*.example.com" (one label). NULL or "" =
	 * no SNI map.
	 */
	const char *sni_map;
	/* Request (never require) a client certificate; any is accepted. */
	bool ask_ccert;
	/* TLS 1.3 tickets and TLS 1.2 session tickets/ids (resumption). */
	bool session_tickets;
	/*
	 * When ncerts == 0 and auto_cert_dir is set: use (creating once) a
	 * self-signed ECDSA P-256 certificate for auto_cert_name in that
	 * directory: <dir>/<name>.crt and <dir>/<name>.key (mode 0600).
	 */
	const char *auto_cert_dir;
	const char *auto_cert_name;
};

struct tls_server;

/*
 * Builds the server contexts. Returns a new tls_server with one reference,
 * or NULL with a human-readable reason appended to err (file names and
 * file:line for SNI map errors). Having no certificate at all (ncerts == 0
 * and no auto_cert_dir) is an error: the caller then does not offer
 * STARTTLS.
 */
struct tls_server *tls_server_new(const struct tls_server_opts *o, struct buf *err);
/* Takes a reference; returns t. Safe from any thread. */
struct tls_server *tls_server_ref(struct tls_server *t);
/* The earliest notAfter (seconds since the epoch) of the certificates t
 * serves, the default ones and the SNI map's, read once when t was built:
 * what a renewal must replace first. */
time_t tls_server_not_after(const struct tls_server *t);
/*
 * Drops a reference and clears *tp. The contexts are freed with the last
 * reference; every session started with tls_server_start() holds its own
 * reference (inside its SSL object) until that SSL is freed, so dropping
 * the configuration's reference on reload is always safe.
 */
void tls_server_unref(struct tls_server **tp);

/*
 * Starts the server side of TLS on top of plain (STARTTLS, or a fresh
 * connection on an implicit-TLS listener). The caller must already have
 * drained plain's input buffer: bytes pipelined after STARTTLS are plaintext
 * injection (CVE-2011-0411) and must be logged, counted and discarded by
 * the session, not fed to the handshake.
 *
 * Returns the new top bufferevent, which owns plain (BEV_OPT_CLOSE_ON_FREE)
 * and has deferred callbacks and dirty shutdown allowed: a peer that closes
 * TCP without close_notify yields BEV_EVENT_EOF. The caller sets callbacks
 * and timeouts on it and enables EV_READ|EV_WRITE; BEV_EVENT_CONNECTED
 * reports the finished handshake, BEV_EVENT_ERROR a failed one (see
 * tls_error_reason()). Never returns NULL (allocation failure aborts).
 */
struct bufferevent *tls_server_start(struct tls_server *t, struct event_base *base,
    struct bufferevent *plain);

/* Facts about an established TLS session, for logs, Received: and metrics. */
struct tls_info {
	char version[16];           /* "TLSv1.3" */
	char cipher[64];            /* IANA name: "TLS_AES_256_GCM_SHA384",
	                               "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" */
	int  bits, alg_bits;
	char sni[256];              /* client's server_name, printable ASCII
	                               (other bytes as \xHH), "" when none */
	char peer_fingerprint[100]; /* "sha256:<64 lowercase hex>" of the
	                               client certificate, or "" */
	bool resumed;
};

/* Fills *out from tlsbev (a bufferevent from tls_server_start()). */
void tls_info_get(struct bufferevent *tlsbev, struct tls_info *out);

/*
 * Writes a one-line human reason for a failed handshake or TLS error into
 * out (always NUL-terminated), e.g. "unsupported protocol" or "no shared
 * cipher". Consumes the errors libevent recorded for tlsbev.
 */
void tls_error_reason(struct bufferevent *tlsbev, char *out, size_t outlen);

/*
 * Parses a Postfix-style protocol list into an OpenSSL version range.
 * Tokens are separated by commas, spaces or colons:
 *   "TLSv1.2 TLSv1.3"   only these       "!TLSv1, !TLSv1.1"  all but these
 *   ">=TLSv1.2"         this and newer   "<=TLSv1.2"         this and older
 * Names: SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 (case-insensitive).
 * Anything below TLS 1.2 is only enabled when named explicitly (an
 * inclusion or a ">=" bound): an exclusion-only list such as
 * "!SSLv2, !SSLv3" starts from the default TLSv1.2+. Other comparison
 * operators ("<", ">"), SSLv2/SSLv3 as allowed protocols, unknown names, an
 * empty result and a set with a hole are errors.
 * Returns true and sets *minv and *maxv (TLS1_2_VERSION etc.); false with a
 * reason appended to err.
 */
bool tls_parse_protocols(const char *spec, int *minv, int *maxv, struct buf *err);

/*
 * Close-after-flush (STACK.md trap #1). A TLS filter reports its output as
 * "written" once the bytes reach the underlying bufferevent, not the
 * socket, so a write callback is the wrong signal for "reply sent, now
 * close". bev_when_flushed() calls cb(arg) exactly once, from the event
 * loop (never from inside bev_when_flushed itself), when every bufferevent
 * in top's chain has an empty output buffer, i.e. the kernel has every byte.
 *
 * The waiter lives in caller-owned storage (usually the session struct),
 * so there is nothing to leak when the connection dies first. Rules:
 *  - call bev_flush_cancel(w) before freeing top or w; it is a no-op when
 *    nothing is pending (after the callback fired, or never armed);
 *  - re-arming a pending waiter cancels the earlier request first.
 * The callback may free top and w.
 */
struct bev_flush {
	/* private */
	void (*cb)(void *);
	void *arg;
	struct bufferevent *top;
	struct evbuffer *sock_out;
	struct evbuffer_cb_entry *entry;
	struct event *now;
	size_t limit;
};

void bev_when_flushed(struct bev_flush *w, struct bufferevent *top,
    void (*cb)(void *), void *arg);
/*
 * The same wait, ending as soon as at most limit octets are left in top's
 * chain (bev_when_flushed is limit 0); same rules. For output flow control
 * on a TLS filter, whose own output is always nearly empty.
 */
void bev_when_drained(struct bev_flush *w, struct bufferevent *top, size_t limit,
    void (*cb)(void *), void *arg);
/* Octets waiting in the output buffers of top and every bufferevent under it. */
size_t bev_chain_output_length(struct bufferevent *top);
void bev_flush_cancel(struct bev_flush *w);

#endif
