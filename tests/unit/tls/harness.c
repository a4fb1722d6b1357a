/* Test harness for src/tls; see harness.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "harness.h"
#include "lib/xmalloc.h"

char *
th_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = xasprintf("%s/ehlo-tls-XXXXXX", base && *base ? base : "/tmp");

	assert_non_null(mkdtemp(dir));
	return dir;
}

void
th_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		if (unlink(p) != 0)
			th_rmdir(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

char *
th_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t n = 0, cap = 0, r;

	assert_non_null(f);
	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			data = xrealloc(data, cap);
		}
		r = fread(data + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	data[n] = '\0';
	if (len != NULL)
		*len = n;
	return data;
}

static void
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

void
th_certgen(const char *dir, const char *base, const char *cn, int type,
    char **crt, char **key)
{
	EVP_PKEY *pk = type == EVP_PKEY_RSA ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	char *san;
	FILE *f;

	assert_non_null(pk);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	san = xasprintf("DNS:%s", cn);
	add_ext(x, NID_subject_alt_name, san);
	free(san);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);

	*crt = xasprintf("%s/%s.crt", dir, base);
	*key = xasprintf("%s/%s.key", dir, base);
	f = fopen(*crt, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	f = fopen(*key, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

struct client_arg {
	int fd;
	const struct th_client *co;
	struct th_client_result *cr;
};

/* Reads until "\r\n" or n-1 bytes; false at EOF or error. */
static bool
read_line(SSL *ssl, char *out, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		int r = SSL_read(ssl, out + len, 1);

		if (r <= 0)
			return false;
		len++;
		out[len] = '\0';
		if (len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n')
			return true;
	}
	return true;
}

static void *
client_main(void *p)
{
	struct client_arg *a = p;
	const struct th_client *co = a->co;
	struct th_client_result *cr = a->cr;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	X509 *peer;

	if (ctx == NULL)
		goto out;
	if (co->min_version)
		SSL_CTX_set_min_proto_version(ctx, co->min_version);
	if (co->max_version)
		SSL_CTX_set_max_proto_version(ctx, co->max_version);
	if (co->ciphers)
		SSL_CTX_set_cipher_list(ctx, co->ciphers);
	if (co->sigalgs)
		SSL_CTX_set1_sigalgs_list(ctx, co->sigalgs);
	if (co->cert) {
		SSL_CTX_use_certificate_file(ctx, co->cert, SSL_FILETYPE_PEM);
		SSL_CTX_use_PrivateKey_file(ctx, co->key, SSL_FILETYPE_PEM);
	}
	if (co->cafile) {
		SSL_CTX_load_verify_locations(ctx, co->cafile, NULL);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, a->fd);
	if (co->sni)
		SSL_set_tlsext_host_name(ssl, co->sni);
	if (co->verify_host)
		SSL_set1_host(ssl, co->verify_host);
	if (co->session)
		SSL_set_session(ssl, co->session);
	if (SSL_connect(ssl) != 1) {
		cr->verify_result = SSL_get_verify_result(ssl);
		goto done;
	}
	cr->handshake_ok = true;
	cr->verify_result = SSL_get_verify_result(ssl);
	snprintf(cr->version, sizeof(cr->version), "%s", SSL_get_version(ssl));
	if ((peer = SSL_get0_peer_certificate(ssl)) != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
		    cr->peer_cn, sizeof(cr->peer_cn));
		cr->peer_key_type = EVP_PKEY_get_base_id(X509_get0_pubkey(peer));
	}
	/* Reading also processes TLS 1.3 NewSessionTicket messages. */
	if (!read_line(ssl, cr->greeting, sizeof(cr->greeting)))
		goto done;
	cr->session = SSL_get1_session(ssl);
	cr->reused = SSL_session_reused(ssl) == 1;
	if (co->expect_bytes > 0) {
		char chunk[4096];
		int r;

		if (co->slow_ms)
			usleep((useconds_t)co->slow_ms * 1000);
		while (cr->bulk_read < co->expect_bytes &&
		    (r = SSL_read(ssl, chunk, sizeof(chunk))) > 0)
			cr->bulk_read += (size_t)r;
		cr->eof_after_bulk = SSL_read(ssl, chunk, sizeof(chunk)) <= 0;
	}
done:
	if (cr->handshake_ok && !co->dirty_close)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
out:
	close(a->fd);
	ERR_clear_error();
	OPENSSL_thread_stop();
	return NULL;
}

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	struct th_server_result *sr = arg;

	if (what & BEV_EVENT_CONNECTED) {
		sr->connected = true;
		tls_info_get(bev, &sr->info);
		if (sr->on_connected != NULL)
			sr->on_connected(bev, sr);
		else
			bufferevent_write(bev, "220 hi\r\n", 8);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		sr->error = true;
		tls_error_reason(bev, sr->reason, sizeof(sr->reason));
	} else if (what & BEV_EVENT_EOF) {
		sr->eof = true;
	}
	event_base_loopbreak(sr->base);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct th_server_result *sr = arg;

	sr->timed_out = true;
	event_base_loopbreak(sr->base);
}

void
th_run(struct tls_server **tp, bool drop_ref, const struct th_client *co,
    struct th_client_result *cr, struct th_server_result *sr)
{
	int sv[2];
	struct event_base *base = event_base_new();
	struct bufferevent *plain;
	struct event *timer;
	struct timeval tv = { 20, 0 };
	struct client_arg ca;
	pthread_t th;

	memset(cr, 0, sizeof(*cr));
	assert_non_null(base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	sr->base = base;
	plain = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	assert_non_null(plain);
	sr->bev = tls_server_start(*tp, base, plain);
	assert_non_null(sr->bev);
	if (drop_ref)
		tls_server_unref(tp);
	bufferevent_setcb(sr->bev, srv_read, NULL, srv_event, sr);
	bufferevent_enable(sr->bev, EV_READ | EV_WRITE);
	timer = evtimer_new(base, timeout_cb, sr);
	evtimer_add(timer, &tv);

	ca.fd = sv[1];
	ca.co = co;
	ca.cr = cr;
	assert_int_equal(pthread_create(&th, NULL, client_main, &ca), 0);
	event_base_dispatch(base);
	/* Freeing the server end also unblocks a client stuck after a timeout. */
	if (sr->bev != NULL)
		bufferevent_free(sr->bev);
	sr->bev = NULL;
	/* libevent closes the socket from a finalizer: let the loop run it. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	pthread_join(th, NULL);
	event_free(timer);
	event_base_free(base);
	sr->base = NULL;
	assert_false(sr->timed_out);
}
