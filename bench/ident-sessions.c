/*
 * ident-sessions: SMTP session-rate load for the identity benchmark
 * (bench/identity_bench.sh).
 *
 *   ident-sessions -n N [-c CONC] [-t SECS] -s SRC=EHLO[,SRC=EHLO...] HOST PORT
 *
 * Runs N sessions, at most CONC at a time, round-robin over the source
 * addresses given with -s (each bound before connect, so the server sees
 * a distinct client per address and the identity checks run for it). One
 * session: connect, read the greeting, EHLO <name>, MAIL FROM, RCPT TO,
 * QUIT, each reply read whole before the next command (no pipelining:
 * RCPT is where a delayed identity verdict is applied). A '#' in an EHLO
 * name is replaced by the session's number, so every session can ask the
 * server's resolver about a name nothing has cached. Prints one line:
 *
 *   sessions=N ok=K rcpt_2xx=R rcpt_4xx=T rcpt_5xx=F failed=E secs=S rate=N/S
 *   p50_ms=.. p99_ms=.. max_ms=..
 *
 * "ok" sessions got 221 to QUIT; "failed" ones saw an I/O error, a close
 * or a timeout. Latency is per session, connect to 221. Only IPv4
 * loopback is accepted as HOST and as sources: a bench tool, never a load
 * generator against another host. A reply is complete at its first line
 * whose fourth byte is a space (RFC 5321 §4.2.1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SRC   64
#define RBUF      4096

enum step { ST_GREET, ST_EHLO, ST_MAIL, ST_RCPT, ST_QUIT };

struct src {
	struct in_addr addr;
	char           ehlo[256];
};

struct conn {
	int        fd;
	enum step  step;
	double     t0;
	size_t     len;
	char       buf[RBUF];
	int        src;
	long       seq;
};

static struct src srcs[MAX_SRC];
static int nsrc;

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: ident-sessions -n N [-c CONC] [-t SECS] "
	    "-s SRC=EHLO[,SRC=EHLO...] HOST PORT\n");
	exit(2);
}

static long
num(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "ident-sessions: bad number '%s' (%ld..%ld)\n", s, lo, hi);
		exit(2);
	}
	return v;
}

static bool
loopback4(const char *s, struct in_addr *a)
{
	return inet_pton(AF_INET, s, a) == 1 && (ntohl(a->s_addr) >> 24) == 127;
}

static void
parse_srcs(char *arg)
{
	for (char *tok = strtok(arg, ","); tok != NULL; tok = strtok(NULL, ",")) {
		char *eq = strchr(tok, '=');
		if (eq == NULL || nsrc == MAX_SRC)
			usage();
		*eq = '\0';
		if (!loopback4(tok, &srcs[nsrc].addr)) {
			fprintf(stderr, "ident-sessions: source %s is not IPv4 loopback\n", tok);
			exit(2);
		}
		size_t n = strlen(eq + 1);
		if (n == 0 || n >= sizeof srcs[nsrc].ehlo)
			usage();
		memcpy(srcs[nsrc].ehlo, eq + 1, n + 1);
		nsrc++;
	}
	if (nsrc == 0)
		usage();
}

/* Returns the reply code once buf holds a whole reply (consumed), 0 if
 * more input is needed, -1 if the input is not a reply. */
static int
reply_done(struct conn *c)
{
	size_t start = 0;
	for (size_t i = 0; i < c->len; i++) {
		if (c->buf[i] != '\n')
			continue;
		size_t ll = i + 1 - start;
		if (ll < 5)
			return -1;
		const char *l = c->buf + start;
		if (l[3] == ' ' || l[3] == '\r') {
			int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
			memmove(c->buf, c->buf + i + 1, c->len - i - 1);
			c->len -= i + 1;
			return code >= 200 && code < 600 ? code : -1;
		}
		start = i + 1;
	}
	if (c->len == sizeof c->buf)
		return -1;
	return 0;
}

static bool
send_line(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;   /* a command line fits in an empty socket buffer */
		off += (size_t)w;
	}
	return true;
}

/* "EHLO name\r\n" with each '#' of name replaced by seq. */
static void
ehlo_line(char *out, size_t size, const char *name, long seq)
{
	size_t o = (size_t)snprintf(out, size, "EHLO ");
	for (const char *p = name; *p != '\0' && o + 24 < size; p++) {
		if (*p == '#')
			o += (size_t)snprintf(out + o, size - o, "%ld", seq);
		else
			out[o++] = *p;
	}
	snprintf(out + o, size - o, "\r\n");
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	long n = 0, conc = 50, secs = 600;
	int ch;
	while ((ch = getopt(argc, argv, "n:c:t:s:")) != -1) {
		switch (ch) {
		case 'n': n = num(optarg, 1, 10000000); break;
		case 'c': conc = num(optarg, 1, 20000); break;
		case 't': secs = num(optarg, 1, 3600); break;
		case 's': parse_srcs(optarg); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2 || n == 0 || nsrc == 0)
		usage();
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (!loopback4(argv[0], &dst.sin_addr)) {
		fprintf(stderr, "ident-sessions: %s is not IPv4 loopback\n", argv[0]);
		return 2;
	}
	dst.sin_port = htons((uint16_t)num(argv[1], 1, 65535));
	if (conc > n)
		conc = n;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	int ep = epoll_create1(0);
	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	struct conn *cs = calloc((size_t)conc, sizeof *cs);
	double *lat = calloc((size_t)n, sizeof *lat);
	if (cs == NULL || lat == NULL) {
		perror("calloc");
		return 1;
	}
	long started = 0, done = 0, ok = 0, failed = 0, r2 = 0, r4 = 0, r5 = 0, nlat = 0;
	double t_start = now(), deadline = t_start + (double)secs;

	/* Starts session number `started` in slot i; false if no socket. */
	for (long i = 0; i < conc; i++)
		cs[i].fd = -1;
	int active = 0;
	for (;;) {
		for (long i = 0; i < conc && started < n; i++) {
			struct conn *c = &cs[i];
			if (c->fd >= 0)
				continue;
			int si = (int)(started % nsrc);
			started++;
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = srcs[si].addr };
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
			    (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
			    errno != EINPROGRESS)) {
				if (fd >= 0)
					close(fd);
				failed++;
				done++;
				continue;
			}
			c->fd = fd;
			c->step = ST_GREET;
			c->len = 0;
			c->src = si;
			c->seq = started;
			c->t0 = now();
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			active++;
		}
		if (active == 0 && started >= n)
			break;
		if (now() > deadline) {
			fprintf(stderr, "ident-sessions: time limit of %lds reached\n", secs);
			break;
		}
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, 1000);
		if (k < 0 && errno == EINTR)
			continue;
		for (int e = 0; e < k; e++) {
			struct conn *c = &cs[evs[e].data.u64];
			bool bad = false, fin = false;
			ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				bad = true;
			} else {
				c->len += (size_t)r;
				int code;
				while (!bad && !fin && (code = reply_done(c)) != 0) {
					char line[300];
					if (code < 0) {
						bad = true;
						break;
					}
					switch (c->step) {
					case ST_GREET:
						ehlo_line(line, sizeof line, srcs[c->src].ehlo, c->seq);
						bad = code != 220 || !send_line(c->fd, line);
						c->step = ST_EHLO;
						break;
					case ST_EHLO:
						bad = code != 250 ||
						    !send_line(c->fd, "MAIL FROM:<bench@sender.test>\r\n");
						c->step = ST_MAIL;
						break;
					case ST_MAIL:
						bad = code != 250 ||
						    !send_line(c->fd, "RCPT TO:<bench@example.test>\r\n");
						c->step = ST_RCPT;
						break;
					case ST_RCPT:
						if (code < 300)
							r2++;
						else if (code < 500)
							r4++;
						else
							r5++;
						bad = !send_line(c->fd, "QUIT\r\n");
						c->step = ST_QUIT;
						break;
					case ST_QUIT:
						fin = true;
						bad = code != 221;
						break;
					}
				}
			}
			if (bad || fin) {
				if (fin && !bad) {
					ok++;
					lat[nlat++] = now() - c->t0;
				} else {
					failed++;
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				active--;
				done++;
			}
		}
	}
	double el = now() - t_start;
	qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
	double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(nlat * 99) / 100] : 0;
	double mx = nlat ? lat[nlat - 1] : 0;
	printf("sessions=%ld ok=%ld rcpt_2xx=%ld rcpt_4xx=%ld rcpt_5xx=%ld failed=%ld "
	    "secs=%.3f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
	    done, ok, r2, r4, r5, failed, el, el > 0 ? (double)ok / el : 0.0,
	    p50 * 1e3, p99 * 1e3, mx * 1e3);
	free(cs);
	free(lat);
	close(ep);
	return failed > 0 || started < n ? 1 : 0;
}
