/*
 * smtp-probe: two measurements smtp-source cannot make.
 *
 *   smtp-probe idle -n N [-S SRCS] [-w WINDOW] [-t SECS] HOST PORT
 *	Open N SMTP sessions, read each greeting, send EHLO and read the
 *	whole reply, then hold every session open and idle.  Prints
 *	"ready=N failed=F" once all are settled, then waits until stdin
 *	reaches EOF (the driver measures the server meanwhile), prints
 *	"dropped=D" (sessions the server closed while idle) and exits.
 *
 *   smtp-probe latency -n N [-S SRCS] HOST PORT
 *	Run N sessions one after another: connect, read the greeting,
 *	send EHLO, read the reply, QUIT, read 221.  Prints percentiles of
 *	the connect+greeting time, the EHLO round trip and the whole
 *	session, in microseconds.
 *
 * Sessions are spread over SRCS loopback source addresses (127.0.0.2 and
 * up) so that N can exceed one address's ephemeral port range.  Only
 * IPv4 loopback destinations are accepted: this is a bench tool, never a
 * load generator against another host.
 *
 * Replies are parsed just enough to find their end: a reply is complete
 * at the first line whose fourth byte is a space (RFC 5321 §4.2.1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

#define REPLY_MAX	4096
#define EHLO_LINE	"EHLO probe.example\r\n"

enum cstate { C_CONNECTING, C_GREETING, C_EHLO, C_IDLE, C_DEAD };

struct conn {
	int		 fd;
	enum cstate	 st;
	size_t		 len;
	char		 buf[REPLY_MAX];
};

static void
die(const char *what)
{
	perror(what);
	exit(2);
}

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Returns the reply code (200..599) if buf[0..len) holds a complete reply,
 * 0 if more bytes are needed, -1 if the bytes are not an SMTP reply.
 */
static int
reply_complete(const char *buf, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		size_t n = i - start;
		const char *l = buf + start;
		if (n < 4 || l[0] < '2' || l[0] > '5')
			return -1;
		if (l[3] == ' ' || l[3] == '\r')
			return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (l[3] != '-')
			return -1;
		start = i + 1;
	}
	return 0;
}

static void
src_addr(struct sockaddr_in *sa, unsigned i, unsigned nsrc)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = 0;
	sa->sin_addr.s_addr = htonl(0x7f000002u + (i % nsrc));
}

/* A socket bound to the i-th source address; the port is chosen at connect. */
static int
new_socket(unsigned i, unsigned nsrc, bool nonblock)
{
	struct sockaddr_in sa;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	/* Defer the port choice to connect() so ports are per-destination. */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	src_addr(&sa, i, nsrc);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
raise_nofile(unsigned need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	if (rl.rlim_cur < need + 64) {
		rl.rlim_cur = rl.rlim_max < need + 64 ? rl.rlim_max : need + 64;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			die("setrlimit");
	}
	if (rl.rlim_cur < need + 16) {
		fprintf(stderr, "smtp-probe: RLIMIT_NOFILE hard limit %llu is below %u\n",
		    (unsigned long long)rl.rlim_max, need + 16);
		exit(2);
	}
}

/* Reads what is available; returns false on EOF or a hard error. */
static bool
conn_read(struct conn *c)
{
	for (;;) {
		if (c->len >= sizeof(c->buf) - 1)
			return false;
		ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (r > 0) {
			c->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return false;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK;
	}
}

static void
conn_kill(int ep, struct conn *c, unsigned *failed, unsigned *busy)
{
	if (c->st == C_DEAD)
		return;
	if (c->st != C_IDLE)
		(*busy)--;
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->st = C_DEAD;
	(*failed)++;
}

/* Advances one session after an event; returns true when it turned idle. */
static bool
conn_step(int ep, struct conn *c, uint32_t ev, unsigned *failed, unsigned *busy)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			conn_kill(ep, c, failed, busy);
			return false;
		}
		struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
			die("epoll_ctl");
		c->st = C_GREETING;
		return false;
	}
	if (!conn_read(c) || (ev & EPOLLERR)) {
		conn_kill(ep, c, failed, busy);
		return false;
	}
	int code = reply_complete(c->buf, c->len);
	if (code == 0)
		return false;
	if (code < 0 || code / 100 != 2) {
		conn_kill(ep, c, failed, busy);
		return false;
	}
	c->len = 0;
	if (c->st == C_GREETING) {
		/* Tiny write into an empty socket buffer: it goes out whole. */
		if (write(c->fd, EHLO_LINE, sizeof(EHLO_LINE) - 1) != sizeof(EHLO_LINE) - 1) {
			conn_kill(ep, c, failed, busy);
			return false;
		}
		c->st = C_EHLO;
		return false;
	}
	c->st = C_IDLE;
	(*busy)--;
	return true;
}

static int
start_conn(int ep, struct conn *c, unsigned i, unsigned nsrc, const struct sockaddr_in *dst)
{
	c->len = 0;
	c->fd = new_socket(i, nsrc, true);
	if (c->fd < 0)
		return -1;
	if (connect(c->fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 &&
	    errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->st = C_CONNECTING;
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
		die("epoll_ctl");
	return 0;
}

static int
run_idle(unsigned n, unsigned nsrc, unsigned window, unsigned secs,
    const struct sockaddr_in *dst)
{
	raise_nofile(n);
	struct conn *cs = calloc(n, sizeof(*cs));
	struct epoll_event *evs = calloc(1024, sizeof(*evs));
	if (cs == NULL || evs == NULL)
		die("calloc");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");

	unsigned next = 0, ready = 0, failed = 0, busy = 0;
	uint64_t deadline = now_us() + (uint64_t)secs * 1000000u, t0 = now_us();
	while (ready + failed < n) {
		/* Bounded handshakes in flight: the listener's backlog is finite. */
		while (next < n && busy < window) {
			if (start_conn(ep, &cs[next], next, nsrc, dst) < 0) {
				cs[next].st = C_DEAD;
				failed++;
			} else
				busy++;
			next++;
		}
		if (now_us() > deadline)
			break;
		int k = epoll_wait(ep, evs, 1024, 100);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int j = 0; j < k; j++) {
			struct conn *c = evs[j].data.ptr;
			if (c->st == C_IDLE) {
				/* The server spoke or closed while the session was idle. */
				conn_kill(ep, c, &failed, &busy);
				ready--;
				continue;
			}
			if (conn_step(ep, c, evs[j].events, &failed, &busy))
				ready++;
		}
	}
	printf("ready=%u failed=%u unsettled=%u setup_ms=%llu\n", ready, failed,
	    n - ready - failed, (unsigned long long)((now_us() - t0) / 1000));
	fflush(stdout);

	/* Hold until stdin closes, counting sessions the server drops. */
	unsigned dropped = 0;
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e) < 0)
		die("epoll_ctl stdin");
	for (bool hold = true; hold;) {
		int k = epoll_wait(ep, evs, 1024, -1);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int j = 0; j < k; j++) {
			struct conn *c = evs[j].data.ptr;
			if (c == NULL) {
				char junk[64];
				if (read(0, junk, sizeof junk) <= 0)
					hold = false;
				continue;
			}
			if (c->st == C_IDLE) {
				(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				c->st = C_DEAD;
				dropped++;
			} else
				conn_kill(ep, c, &failed, &busy);
		}
	}
	printf("dropped=%u\n", dropped);
	for (unsigned i = 0; i < n; i++)
		if (cs[i].fd >= 0 && cs[i].st != C_DEAD)
			close(cs[i].fd);
	free(cs);
	free(evs);
	close(ep);
	return ready == n && dropped == 0 ? 0 : 1;
}

/* Blocking read of one whole reply with a poll timeout; returns the code or -1. */
static int
read_reply(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) <= 0)
			return -1;
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		int code = reply_complete(buf, len);
		if (code != 0)
			return code;
		if (len >= cap - 1)
			return -1;
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void
print_pct(const char *name, uint64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	/* Nearest-rank percentiles. */
	unsigned i50 = (n * 50 + 99) / 100, i99 = (n * 99 + 99) / 100;
	printf("%s_p50_us=%llu %s_p99_us=%llu %s_max_us=%llu\n",
	    name, (unsigned long long)v[i50 ? i50 - 1 : 0],
	    name, (unsigned long long)v[i99 ? i99 - 1 : 0],
	    name, (unsigned long long)v[n - 1]);
}

static int
run_latency(unsigned n, unsigned nsrc, const struct sockaddr_in *dst)
{
	uint64_t *greet = calloc(n, sizeof(uint64_t));
	uint64_t *ehlo = calloc(n, sizeof(uint64_t));
	uint64_t *whole = calloc(n, sizeof(uint64_t));
	char buf[REPLY_MAX];
	unsigned ok = 0, failed = 0;
	if (greet == NULL || ehlo == NULL || whole == NULL)
		die("calloc");
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_us(), t1, t2;
		int fd = new_socket(i, nsrc, false);
		if (fd < 0 || connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 ||
		    read_reply(fd, buf, sizeof buf) != 220)
			goto fail;
		t1 = now_us();
		if (write(fd, EHLO_LINE, sizeof(EHLO_LINE) - 1) != sizeof(EHLO_LINE) - 1 ||
		    read_reply(fd, buf, sizeof buf) != 250)
			goto fail;
		t2 = now_us();
		if (write(fd, "QUIT\r\n", 6) != 6 || read_reply(fd, buf, sizeof buf) != 221)
			goto fail;
		close(fd);
		greet[ok] = t1 - t0;
		ehlo[ok] = t2 - t1;
		whole[ok] = now_us() - t0;
		ok++;
		continue;
fail:
		if (fd >= 0)
			close(fd);
		failed++;
	}
	printf("sessions=%u failed=%u\n", ok, failed);
	if (ok > 0) {
		print_pct("greeting", greet, ok);
		print_pct("ehlo", ehlo, ok);
		print_pct("session", whole, ok);
	}
	free(greet);
	free(ehlo);
	free(whole);
	return failed == 0 ? 0 : 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: smtp-probe idle -n N [-S srcs] [-w window] [-t secs] 127.x.y.z port\n"
	    "       smtp-probe latency -n N [-S srcs] 127.x.y.z port\n");
	exit(2);
}

static unsigned
num(const char *s, unsigned lo, unsigned hi)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return (unsigned)v;
}

int
main(int argc, char **argv)
{
	unsigned n = 1, nsrc = 8, window = 256, secs = 120;
	int ch;
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	argc--;
	argv++;
	while ((ch = getopt(argc, argv, "n:S:w:t:")) != -1) {
		switch (ch) {
		case 'n': n = num(optarg, 1, 1000000); break;
		case 'S': nsrc = num(optarg, 1, 250); break;
		case 'w': window = num(optarg, 1, 100000); break;
		case 't': secs = num(optarg, 1, 3600); break;
		default: usage();
		}
	}
	if (argc - optind != 2)
		usage();
	struct sockaddr_in dst;
	memset(&dst, 0, sizeof dst);
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)num(argv[optind + 1], 1, 65535));
	if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1 ||
	    (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "smtp-probe: the server must be an IPv4 loopback address\n");
		return 2;
	}
	if (strcmp(mode, "idle") == 0)
		return run_idle(n, nsrc, window, secs, &dst);
	if (strcmp(mode, "latency") == 0)
		return run_latency(n, nsrc, &dst);
	usage();
	return 2;
}
