/*
 * struct tls_server: the SSL_CTX for the default certificates plus one
 * SSL_CTX per SNI map entry, all configured alike, refcounted so a reload
 * can swap generations under live sessions.
 *
 * Lifetime: every SSL made by tls_server_start() holds a reference in its
 * ex_data, dropped by OpenSSL's ex_data free callback when the SSL is
 * freed (with the bufferevent). So the SNI callback, which finds the map
 * through that ex_data, can never see a freed tls_server, and the contexts
 * (themselves refcounted by OpenSSL: SSL_new and SSL_set_SSL_CTX take
 * references) outlive every handshake started from them.
 *
 * Resumption: session tickets are encrypted with keys OpenSSL generates per
 * SSL_CTX, and OpenSSL always uses the *original* context (session_ctx)
 * for tickets and the session cache even after an SNI switch, so one
 * generation resumes its own sessions. A reload makes new keys: that is
 * also our ticket-key rotation. A session is only resumed for the server
 * name it was made for (RFC 6066 §3): see client_hello_cb().
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xmalloc.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

/*
 * For TLS <= 1.2 only (TLS 1.3 suites are all AEAD with forward secrecy):
 * forward-secret AEAD first, then forward-secret CBC for old peers, so that
 * opportunistic STARTTLS still beats falling back to plaintext.
 */
#define DEFAULT_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:DHE+AES:!aNULL:!eNULL"

static const unsigned char sid_ctx[] = "ehlod";

struct sni_entry {
	char    *name;          /* lower case; for "*.x.y" the suffix ".x.y" */
	bool     wildcard;
	SSL_CTX *ctx;
};

struct tls_server {
	atomic_int        refs;
	SSL_CTX          *ctx;
	struct sni_entry *sni;
	size_t            nsni;
	time_t            not_after;    /* earliest expiry of any served certificate */
};

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_index = -1;

static void
ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_server *t = ptr;

	if (t != NULL)
		tls_server_unref(&t);
}

static void
ex_init(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

/* Any client certificate is accepted: we only log its fingerprint. */
static int
accept_any_cert(int preverify, X509_STORE_CTX *xs)
{
	return 1;
}

static int client_hello_cb(SSL *ssl, int *alert, void *arg);

static SSL_CTX *
ctx_new(const struct tls_server_opts *o, int minv, int maxv, struct buf *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *ciphers = (o->ciphers && *o->ciphers) ? o->ciphers : DEFAULT_CIPHERS;

	if (ctx == NULL) {
		buf_append_str(err, "SSL_CTX_new failed");
		tls_append_ssl_errors(err);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, maxv) != 1) {
		buf_append_str(err, "cannot set the protocol range");
		goto fail;
	}
	/*
	 * IGNORE_UNEXPECTED_EOF: a TCP close without close_notify is a normal
	 * end for SMTP (truncation is caught by "." and QUIT), and without it
	 * OpenSSL 3 + libevent 2.1.12 report it as an error (STACK.md 2.1).
	 * NO_RENEGOTIATION: client-initiated renegotiation is a CPU DoS and
	 * has no use in SMTP.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    (o->session_tickets ? 0 : SSL_OP_NO_TICKET));
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		buf_appendf(err, "invalid cipher list \"%s\"", ciphers);
		goto fail;
	}
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
		buf_append_str(err, "cannot set the session id context");
		goto fail;
	}
	if (o->session_tickets) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		/* One TLS 1.3 ticket: an SMTP client reconnects once per queue run. */
		SSL_CTX_set_num_tickets(ctx, 1);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	/*
	 * On every context: after an SNI switch, a second ClientHello (after a
	 * TLS 1.3 HelloRetryRequest) goes to the context switched to.
	 */
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	if (o->ask_ccert)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_cert);
	return ctx;
fail:
	tls_append_ssl_errors(err);
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Loads cert/key pairs into ctx. Each pair fills the slot of its key type;
 * a second pair of the same type would replace the first without a word.
 */
static bool
ctx_load_pairs(SSL_CTX *ctx, const char *const *certs, const char *const *keys,
    size_t n, struct buf *err)
{
	int types[8];
	size_t i, j, ntypes = 0;

	for (i = 0; i < n; i++) {
		const char *cf = certs[i];
		const char *kf = (keys != NULL && keys[i] != NULL && *keys[i]) ? keys[i] : cf;
		X509 *x;
		int type;

		if (SSL_CTX_use_certificate_chain_file(ctx, cf) != 1) {
			buf_appendf(err, "%s: cannot load certificate", cf);
			goto fail;
		}
		x = SSL_CTX_get0_certificate(ctx);
		type = x != NULL ? EVP_PKEY_get_base_id(X509_get0_pubkey(x)) : EVP_PKEY_NONE;
		for (j = 0; j < ntypes; j++)
			if (types[j] == type) {
				buf_appendf(err, "%s: a certificate with this key type (%s) is already loaded",
				    cf, OBJ_nid2sn(type));
				return false;
			}
		if (ntypes == sizeof(types) / sizeof(types[0])) {
			buf_appendf(err, "%s: too many certificates", cf);
			return false;
		}
		types[ntypes++] = type;
		if (SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1) {
			buf_appendf(err, "%s: cannot load private key", kf);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			buf_appendf(err, "%s does not match %s", kf, cf);
			goto fail;
		}
	}
	return true;
fail:
	tls_append_ssl_errors(err);
	return false;
}

static void
server_free(struct tls_server *t)
{
	size_t i;

	for (i = 0; i < t->nsni; i++) {
		free(t->sni[i].name);
		SSL_CTX_free(t->sni[i].ctx);
	}
	free(t->sni);
	SSL_CTX_free(t->ctx);
	free(t);
}

/* "mail.example.com" or "*.example.com": LDH labels, at most 253 octets. */
static bool
sni_name_ok(const char *s)
{
	size_t label = 0, n = strlen(s);

	if (n > 253)
		return false;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (ascii_isalnum(*s) || *s == '-' || *s == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

static const struct sni_entry *
sni_lookup(const struct tls_server *t, const char *name)
{
	size_t i, n = strlen(name);
	const char *dot;

	if (n > 0 && name[n - 1] == '.')
		n--;
	for (i = 0; i < t->nsni; i++)
		if (!t->sni[i].wildcard && ascii_ieqn(name, n, t->sni[i].name))
			return &t->sni[i];
	/* "*.example.com" covers exactly one label, like RFC 6125 6.4.3. */
	dot = memchr(name, '.', n);
	if (dot == NULL || dot == name)
		return NULL;
	for (i = 0; i < t->nsni; i++)
		if (t->sni[i].wildcard &&
		    ascii_ieqn(dot, n - (size_t)(dot - name), t->sni[i].name))
			return &t->sni[i];
	return NULL;
}

static bool
sni_map_line(struct tls_server *t, const struct tls_server_opts *o, int minv, int maxv,
    const char *path, unsigned lineno, char *line, struct buf *err)
{
	char *tok[1 + 2 * 8], *save = NULL, *w, *hash;
	size_t ntok = 0, i;
	struct sni_entry e;
	const char *certs[8], *keys[8];

	if ((hash = strchr(line, '#')) != NULL)
		*hash = '\0';
	for (w = strtok_r(line, " \t\r\n", &save); w != NULL; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (ntok == sizeof(tok) / sizeof(tok[0])) {
			buf_appendf(err, "%s:%u: too many certificate files", path, lineno);
			return false;
		}
		tok[ntok++] = w;
	}
	if (ntok == 0)
		return true;
	if (ntok < 3 || ntok % 2 == 0) {
		buf_appendf(err, "%s:%u: expected \"name certfile keyfile [certfile keyfile ...]\"",
		    path, lineno);
		return false;
	}
	if (!sni_name_ok(tok[0])) {
		buf_appendf(err, "%s:%u: invalid server name \"%s\"", path, lineno, tok[0]);
		return false;
	}
	ascii_lower_str(tok[0]);
	e.wildcard = tok[0][0] == '*';
	e.name = xstrdup(e.wildcard ? tok[0] + 1 : tok[0]);
	for (i = 0; i < t->nsni; i++)
		if (t->sni[i].wildcard == e.wildcard && strcmp(t->sni[i].name, e.name) == 0) {
			buf_appendf(err, "%s:%u: duplicate server name \"%s\"", path, lineno, tok[0]);
			free(e.name);
			return false;
		}
	for (i = 0; 1 + 2 * i < ntok; i++) {
		certs[i] = tok[1 + 2 * i];
		keys[i] = tok[2 + 2 * i];
	}
	e.ctx = ctx_new(o, minv, maxv, err);
	if (e.ctx == NULL || !ctx_load_pairs(e.ctx, certs, keys, i, err)) {
		buf_appendf(err, " (%s:%u)", path, lineno);
		SSL_CTX_free(e.ctx);
		free(e.name);
		return false;
	}
	t->sni = xrealloc(t->sni, (t->nsni + 1) * sizeof(*t->sni));
	t->sni[t->nsni++] = e;
	return true;
}

static bool
sni_map_load(struct tls_server *t, const struct tls_server_opts *o, int minv, int maxv,
    struct buf *err)
{
	FILE *f = fopen(o->sni_map, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	bool ok = true;

	if (f == NULL) {
		buf_appendf(err, "%s: %s", o->sni_map, strerror(errno));
		return false;
	}
	while (ok && getline(&line, &cap, f) >= 0)
		ok = sni_map_line(t, o, minv, maxv, o->sni_map, ++lineno, line, err);
	free(line);
	fclose(f);
	return ok;
}

/*
 * Contract: before OpenSSL looks for a session to resume, the connection's
 * session id context is set from the server name the client asked for in
 * this ClientHello, so that a session is only resumed by a handshake for the
 * same name. RFC 6066 §3: the server "MUST NOT accept the request to resume
 * the session if the server_name extension contains a different name";
 * it must then do a full handshake, not fail.
 *
 * Why here and not in servername_cb: OpenSSL decides on resumption (session
 * cache, TLS 1.2 and 1.3 tickets) before it calls the servername callback,
 * and it checks only that the session's context equals the connection's.
 * This callback runs first. Every session records the context it was made
 * in, so a session made for another name (or for none) is a cache miss and
 * a full handshake follows, with the certificate for the name asked for.
 *
 * The name is compared as sni_lookup() matches it: ASCII case and one
 * trailing dot ignored. No name: the contexts' own sid_ctx. A server_name
 * extension we cannot parse gets a context from its raw bytes (OpenSSL then
 * judges the extension itself), so it never resumes another name's session.
 * SSL_set_SSL_CTX() in servername_cb leaves a context set per connection
 * in place (it only replaces one inherited from the old SSL_CTX).
 */
static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	const unsigned char *ext, *name = NULL;
	size_t extlen, n = 0;
	unsigned char norm[1 + TLSEXT_MAXLEN_host_name];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &extlen) != 1) {
		if (SSL_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1) != 1)
			goto fail;
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	/* ServerNameList with one host_name entry (RFC 6066 §3), as OpenSSL takes it. */
	if (extlen >= 5 && (size_t)(ext[0] << 8 | ext[1]) == extlen - 2 &&
	    ext[2] == TLSEXT_NAMETYPE_host_name && (size_t)(ext[3] << 8 | ext[4]) == extlen - 5) {
		name = ext + 5;
		n = extlen - 5;
		if (n > 0 && name[n - 1] == '.')
			n--;
		if (n > TLSEXT_MAXLEN_host_name || memchr(name, '\0', n) != NULL)
			name = NULL;
	}
	if (name != NULL) {
		norm[0] = 'n';
		for (size_t i = 0; i < n; i++)
			norm[1 + i] = (unsigned char)ascii_lower((char)name[i]);
		n++;
		if (EVP_Digest(norm, n, md, &mdlen, EVP_sha256(), NULL) != 1)
			goto fail;
	} else {
		unsigned char tag = 'r';
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		int ok = mc != NULL && EVP_DigestInit_ex(mc, EVP_sha256(), NULL) == 1 &&
		    EVP_DigestUpdate(mc, &tag, 1) == 1 && EVP_DigestUpdate(mc, ext, extlen) == 1 &&
		    EVP_DigestFinal_ex(mc, md, &mdlen) == 1;
		EVP_MD_CTX_free(mc);
		if (!ok)
			goto fail;
	}
	/* SHA-256 is 32 octets, SSL_MAX_SID_CTX_LENGTH. */
	if (SSL_set_session_id_context(ssl, md, mdlen) != 1)
		goto fail;
	return SSL_CLIENT_HELLO_SUCCESS;
fail:
	*alert = SSL_AD_INTERNAL_ERROR;
	return SSL_CLIENT_HELLO_ERROR;
}

static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *t = SSL_get_ex_data(ssl, ex_index);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct sni_entry *e;

	if (t == NULL || name == NULL)
		return SSL_TLSEXT_ERR_OK;
	e = sni_lookup(t, name);
	/* Unknown names get the default certificates, never a failed handshake. */
	if (e != NULL && SSL_set_SSL_CTX(ssl, e->ctx) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * libevent 2.1 creates the BIO_METHOD behind bufferevent_openssl_filter_new
 * lazily on first use and without a lock: two worker threads starting their
 * first TLS sessions at the same moment each made one and one was lost (a
 * 108-byte leak that LeakSanitizer reported at exit, found by a TLS flood).
 * So one filter is made and freed here first, once per process, from
 * tls_server_new(): that runs on the main thread, at start or reload, before
 * any worker can see a TLS server. Not earlier: a daemon without TLS never
 * initialises OpenSSL, which costs about 2 MiB of RSS.
 */
static pthread_once_t lev_once = PTHREAD_ONCE_INIT;

static void
lev_init(void)
{
	struct event_base *base = event_base_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	struct bufferevent *plain = base != NULL ?
	    bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (ssl == NULL || plain == NULL)
		log_fatal(70, "tls: cannot set up libevent's OpenSSL filter (out of memory)");
	struct bufferevent *bev = bufferevent_openssl_filter_new(base, plain, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		log_fatal(70, "tls: bufferevent_openssl_filter_new failed (out of memory)");
	bufferevent_free(bev);          /* frees plain and ssl too */
	SSL_CTX_free(ctx);              /* ssl held a reference */
	event_base_free(base);
}

/*
 * Lowers *min to the notAfter of every certificate ctx serves (one per key
 * type: RSA and ECDSA can both be loaded). A notAfter that does not parse
 * counts as 0, so that it shows as already expired rather than never.
 */
static void
ctx_min_not_after(SSL_CTX *ctx, time_t *min)
{
	for (int r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST); r == 1;
	    r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT)) {
		X509 *x = SSL_CTX_get0_certificate(ctx);
		if (x == NULL)
			continue;
		struct tm tm;
		time_t t = 0;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
			t = timegm(&tm);
		if (t < *min)
			*min = t;
	}
}

struct tls_server *
tls_server_new(const struct tls_server_opts *o, struct buf *err)
{
	struct tls_server *t;
	int minv, maxv;
	char *acert = NULL, *akey = NULL;
	bool ok;

	pthread_once(&ex_once, ex_init);
	pthread_once(&lev_once, lev_init);
	if (ex_index < 0) {
		buf_append_str(err, "SSL_get_ex_new_index failed");
		return NULL;
	}
	ERR_clear_error();
	if (!tls_parse_protocols(o->protocols, &minv, &maxv, err))
		return NULL;
	if (o->ncerts == 0 && (o->auto_cert_dir == NULL || *o->auto_cert_dir == '\0')) {
		buf_append_str(err, "no certificate configured");
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	atomic_init(&t->refs, 1);
	t->ctx = ctx_new(o, minv, maxv, err);
	if (t->ctx == NULL)
		goto fail;
	if (o->ncerts > 0) {
		ok = ctx_load_pairs(t->ctx, o->cert_files, o->key_files, o->ncerts, err);
	} else {
		const char *c[1], *k[1];

		ok = tls_autocert_ensure(o->auto_cert_dir, o->auto_cert_name, &acert, &akey, err);
		if (ok) {
			c[0] = acert;
			k[0] = akey;
			ok = ctx_load_pairs(t->ctx, c, k, 1, err);
		}
		free(acert);
		free(akey);
	}
	if (!ok)
		goto fail;
	if (o->sni_map != NULL && *o->sni_map != '\0') {
		if (!sni_map_load(t, o, minv, maxv, err))
			goto fail;
		SSL_CTX_set_tlsext_servername_callback(t->ctx, servername_cb);
	}
	t->not_after = (time_t)INT64_MAX;
	ctx_min_not_after(t->ctx, &t->not_after);
	for (size_t i = 0; i < t->nsni; i++)
		ctx_min_not_after(t->sni[i].ctx, &t->not_after);
	return t;
fail:
	server_free(t);
	ERR_clear_error();
	return NULL;
}

time_t
tls_server_not_after(const struct tls_server *t)
{
	return t->not_after;
}

struct tls_server *
tls_server_ref(struct tls_server *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void
tls_server_unref(struct tls_server **tp)
{
	struct tls_server *t = *tp;

	*tp = NULL;
	if (t == NULL)
		return;
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		server_free(t);
}

struct bufferevent *
tls_server_start(struct tls_server *t, struct event_base *base, struct bufferevent *plain)
{
	SSL *ssl = SSL_new(t->ctx);
	struct bufferevent *bev;

	if (ssl == NULL || SSL_set_ex_data(ssl, ex_index, tls_server_ref(t)) != 1)
		log_fatal(70, "tls: SSL_new failed (out of memory)");
	bev = bufferevent_openssl_filter_new(base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		log_fatal(70, "tls: bufferevent_openssl_filter_new failed (out of memory)");
	/* A missing close_notify is EOF, not an error (STACK.md 2.1). */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* Copies a peer-supplied name so that it is safe in logs and headers, cut
 * to fit dst with a "..." mark, escapes whole. (It rendered 253 octets, up
 * to 1,012 escaped, into 256: cut silently, inside an escape.) */
static void
copy_printable(char *dst, size_t dstlen, const char *src)
{
	struct buf b = BUF_INIT;

	log_sanitize_to(&b, src, strlen(src), dstlen - 4);
	snprintf(dst, dstlen, "%s", buf_cstr(&b));
	buf_free(&b);
}

void
tls_info_get(struct bufferevent *tlsbev, struct tls_info *out)
{
	SSL *ssl = bufferevent_openssl_get_ssl(tlsbev);
	const char *s;
	X509 *peer;

	memset(out, 0, sizeof(*out));
	if (ssl == NULL)
		return;
	snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(ssl));
	/* The IANA registry's name (RFC 8314 §4.3 wants it in Received:);
	 * for TLS <= 1.2 OpenSSL's own differs ("ECDHE-ECDSA-AES256-GCM-SHA384"
	 * for TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384). */
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	const char *iana = c != NULL ? SSL_CIPHER_standard_name(c) : NULL;
	snprintf(out->cipher, sizeof(out->cipher), "%s",
	    iana != NULL ? iana : SSL_get_cipher_name(ssl));
	out->bits = SSL_get_cipher_bits(ssl, &out->alg_bits);
	if ((s = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) != NULL)
		copy_printable(out->sni, sizeof(out->sni), s);
	if ((peer = SSL_get0_peer_certificate(ssl)) != NULL) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0, i;
		char *p = out->peer_fingerprint;

		if (X509_digest(peer, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32) {
			p += sprintf(p, "sha256:");
			for (i = 0; i < mdlen; i++)
				p += sprintf(p, "%02x", md[i]);
		}
	}
	out->resumed = SSL_session_reused(ssl) == 1;
}

void
tls_error_reason(struct bufferevent *tlsbev, char *out, size_t outlen)
{
	struct buf b = BUF_INIT;
	unsigned long e;
	char line[256];

	while ((e = bufferevent_get_openssl_error(tlsbev)) != 0) {
		/* libevent also queues SSL_get_error()'s code (library 0), which
		 * printed as "error:00000001:lib(0)::reason(1)": noise. */
		if (ERR_GET_LIB(e) == 0)
			continue;
		const char *r = ERR_reason_error_string(e);

		if (r == NULL) {
			ERR_error_string_n(e, line, sizeof(line));
			r = line;
		}
		/* The same reason is often queued twice (library and libevent). */
		if (strstr(buf_cstr(&b), r) == NULL)
			buf_appendf(&b, "%s%s", b.len ? "; " : "", r);
	}
	/*
	 * libevent moved this session's errors off the thread's queue; what
	 * is left there belongs to nobody and would only confuse the next
	 * session handled on this thread.
	 */
	ERR_clear_error();
	if (outlen > 0)
		snprintf(out, outlen, "%s", b.len ? buf_cstr(&b) : "no TLS error recorded");
	buf_free(&b);
}
