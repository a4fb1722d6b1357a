/*
 * tls-client: full STARTTLS sessions per second against one SMTP server.
 *
 *   tls-client -c THREADS -t SECONDS [-s SIZE] [-r RCPT] HOST PORT
 *
 * Each thread runs sessions back to back, with blocking sockets:
 * connect, 220, EHLO, STARTTLS, 220, TLS handshake (no session reuse:
 * every session pays a full handshake, which is what a receiving MX sees
 * from distinct senders), EHLO, MAIL, RCPT, DATA, SIZE bytes of message,
 * ".", QUIT, 221. Commands are not pipelined, so both servers see the
 * same round trips. The certificate chain is not verified (the e2e tests
 * do that); the handshake signature still is, by OpenSSL.
 *
 * Prints one line: "sessions=N failed=F seconds=S rate=R/s" and on
 * failure the first error. Only IPv4 loopback destinations are accepted:
 * this is a bench tool, not a load generator against another host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static struct sockaddr_in dst;
static SSL_CTX *ctx;
static char *message;
static size_t message_len;
static const char *rcpt = "bench@example.test";
static double deadline;
static atomic_long ok_sessions, failed_sessions;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];

struct conn {
	int   fd;
	SSL  *ssl;
	char  buf[4096];
	size_t len;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
note_error(const char *what)
{
	pthread_mutex_lock(&err_lock);
	if (first_error[0] == '\0')
		snprintf(first_error, sizeof first_error, "%s", what);
	pthread_mutex_unlock(&err_lock);
}

static bool
conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			int r = SSL_write(c->ssl, p, n > (size_t)1 << 30 ? 1 << 30 : (int)n);
			w = r > 0 ? r : -1;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
		}
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads one whole reply (RFC 5321 4.2.1: complete at the first line whose
 * fourth byte is a space); returns its code, or -1. */
static int
read_reply(struct conn *c)
{
	size_t start = 0;
	for (;;) {
		char *nl;
		while ((nl = memchr(c->buf + start, '\n', c->len - start)) != NULL) {
			size_t linelen = (size_t)(nl - (c->buf + start)) + 1;
			const char *line = c->buf + start;
			if (linelen >= 4 && line[3] != '-') {
				int code = atoi(line);
				memmove(c->buf, nl + 1, c->len - (start + linelen));
				c->len -= start + linelen;
				return code;
			}
			start += linelen;
		}
		if (c->len == sizeof c->buf)
			return -1;
		ssize_t r;
		if (c->ssl) {
			int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len));
			r = n > 0 ? n : -1;
		} else {
			r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
		}
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static bool
command(struct conn *c, const char *line, int want)
{
	char b[512];
	int n = snprintf(b, sizeof b, "%s\r\n", line);
	if (!conn_write(c, b, (size_t)n))
		return false;
	int code = read_reply(c);
	if (code != want) {
		char e[256];
		snprintf(e, sizeof e, "%s: expected %d, got %d", line, want, code);
		note_error(e);
		return false;
	}
	return true;
}

static bool
session(void)
{
	struct conn c = { .fd = -1 };
	bool ok = false;
	char line[300];

	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
		note_error(strerror(errno));
		goto out;
	}
	int one = 1;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (read_reply(&c) != 220 || !command(&c, "EHLO bench.client.test", 250) ||
	    !command(&c, "STARTTLS", 220))
		goto out;
	if (c.len != 0) {
		note_error("bytes after 220 to STARTTLS");
		goto out;
	}
	c.ssl = SSL_new(ctx);
	SSL_set_fd(c.ssl, c.fd);
	SSL_set_tlsext_host_name(c.ssl, "mx.example.test");
	if (SSL_connect(c.ssl) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof e);
		note_error(e);
		goto out;
	}
	snprintf(line, sizeof line, "RCPT TO:<%s>", rcpt);
	if (!command(&c, "EHLO bench.client.test", 250) ||
	    !command(&c, "MAIL FROM:<bench@sender.test>", 250) || !command(&c, line, 250) ||
	    !command(&c, "DATA", 354))
		goto out;
	if (!conn_write(&c, message, message_len) || read_reply(&c) != 250) {
		note_error("message not accepted");
		goto out;
	}
	ok = command(&c, "QUIT", 221);
out:
	if (c.ssl) {
		SSL_shutdown(c.ssl);
		SSL_free(c.ssl);
	}
	if (c.fd >= 0)
		close(c.fd);
	return ok;
}

static void *
worker(void *arg)
{
	(void)arg;
	while (now() < deadline) {
		if (session())
			atomic_fetch_add(&ok_sessions, 1);
		else
			atomic_fetch_add(&failed_sessions, 1);
	}
	return NULL;
}

/* Header, SIZE bytes of 76-character lines, and the final ".". */
static void
build_message(size_t size)
{
	static const char hdr[] = "From: <bench@sender.test>\r\nTo: <bench@example.test>\r\n"
	    "Subject: tls bench\r\n\r\n";
	message = malloc(sizeof hdr + size + 80 + 8);
	if (message == NULL)
		exit(1);
	memcpy(message, hdr, sizeof hdr - 1);
	size_t n = sizeof hdr - 1, body = 0;
	while (body < size) {
		size_t k = size - body > 78 ? 78 : size - body;
		if (k < 3)
			k = 3;
		memset(message + n, 'x', k - 2);
		memcpy(message + n + k - 2, "\r\n", 2);
		n += k;
		body += k;
	}
	memcpy(message + n, ".\r\n", 3);
	message_len = n + 3;
}

int
main(int argc, char **argv)
{
	int threads = 8, opt;
	double secs = 10;
	size_t size = 1024;

	while ((opt = getopt(argc, argv, "c:t:s:r:")) != -1) {
		switch (opt) {
		case 'c': threads = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 's': size = (size_t)strtoul(optarg, NULL, 10); break;
		case 'r': rcpt = optarg; break;
		default: goto usage;
		}
	}
	if (argc - optind != 2 || threads < 1 || threads > 1024 || secs <= 0)
		goto usage;
	memset(&dst, 0, sizeof dst);
	dst.sin_family = AF_INET;
	dst.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1 ||
	    (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "tls-client: only 127.0.0.0/8 destinations\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	build_message(size);

	pthread_t *t = calloc((size_t)threads, sizeof *t);
	double t0 = now();
	deadline = t0 + secs;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			return 1;
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	double el = now() - t0;
	long okn = atomic_load(&ok_sessions), bad = atomic_load(&failed_sessions);
	printf("sessions=%ld failed=%ld seconds=%.2f rate=%.1f/s%s%s\n", okn, bad, el,
	    (double)okn / el, first_error[0] ? " first_error=" : "", first_error);
	free(t);
	free(message);
	SSL_CTX_free(ctx);
	return bad == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: tls-client -c THREADS -t SECONDS [-s SIZE] [-r RCPT] HOST PORT\n");
	return 2;
}
