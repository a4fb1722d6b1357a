/*
 * One inbound SMTP session: a connection, a pure smtp_server machine, and
 * the decisions and I/O the machine asks for.
 *
 * Life cycle: session_accept -> greeting (after an optional pause) ->
 * process_input() feeds every complete piece of input to the machine and
 * performs each event it returns -> session_free(), reached only through
 * close_after_flush() or a connection error. A session marks itself closing
 * and is freed from a callback that touches nothing else afterwards
 * (STYLE.md lesson 9; STACK.md §2.1 traps 1, 3 and 4).
 *
 * Writes: replies accumulate in the machine's output buffer and are written
 * in one piece when the input is drained (RFC 2920 §3.2), which over TLS is
 * one record per reply group (STACK.md §2.1 trap 2). On a plain socket with
 * nothing queued the piece goes straight to send(2); only what the kernel
 * does not take goes through the bufferevent (and its write event).
 *
 * Reading stays enabled while the session waits for the spool or for DNS:
 * process_input() does nothing while busy, and the input high-water mark
 * bounds what a pipelining client can queue meanwhile. Toggling the read
 * event per message cost two epoll_ctl(2) calls per message for nothing.
 */
#include "session/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "config/addrmap.h"
#include "net/proxy.h"
#include "session/ident.h"
#include "lib/idna.h"
#include "lib/log.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "lib/xmalloc.h"
#include "proto/server.h"
#include "spool/spool.h"
#include "tls/tls.h"

/*
 * Unread input a session holds at most while it processes nothing (busy,
 * or held back by unread output); then TCP pushes back. Reads are at most
 * 16 KiB and content is consumed as it arrives, so this never slows a
 * transfer; it bounds a session that neither reads nor stops sending to
 * about 115-130 KiB (32 KiB in, 64 KiB out; 340-350 KiB with 256 KiB in),
 * measured with 100 such clients (test_many_flooding_clients_stay_small).
 */
#define SESSION_INPUT_HIGHWATER (32 * 1024)
/*
 * Output backpressure: a client that pipelines commands but does not read
 * the replies (a memory-exhaustion attack: six octets of NOOP buy sixteen
 * of reply) makes the session stop executing commands once this much
 * output waits in the bufferevent, and go on when it has drained to the
 * low mark. Unread input then stops at SESSION_INPUT_HIGHWATER and TCP
 * pushes back on the client. Replies of one pipelined group are also sent
 * once they reach SESSION_OUTPUT_CHUNK instead of at the end of the group.
 */
#define SESSION_OUTPUT_HIGHWATER (64 * 1024)
#define SESSION_OUTPUT_LOWWATER  (16 * 1024)
#define SESSION_OUTPUT_CHUNK     (16 * 1024)
/*
 * Over TLS both bounds hold on the whole chain. libevent's filter hands
 * its output to the socket bufferevent at once and clears that one's read
 * watermark, so without more the replies a client does not read, and what
 * it sends while the session is busy, grew without limit (hundreds of MB
 * for one client). So the input mark is on the filter as well; output is
 * measured over the chain (bev_chain_output_length), resumed by a drain
 * waiter (on_drained); and the socket bufferevent gets both marks again:
 * its write mark stops OpenSSL from queueing what reading makes it send
 * (TLS 1.3 KeyUpdate responses, RFC 8446 §4.6.3) once that much waits,
 * which stops the filter reading, and its read mark then stops the socket
 * reading. A record is at most about 18 KiB (RFC 8446 §5.2), under the
 * read mark, so the filter can always complete one.
 */
/* How long a failed handshake's alert may take to reach the kernel. */
#define SESSION_ALERT_FLUSH_MS   1000

/*
 * A TCP endpoint: IPv4 or IPv6. 28 bytes where a sockaddr_storage takes
 * 128; a session holds two, and 10,000 idle sessions fit in 2 MiB less.
 * ehlod's listeners are TCP only, and a PROXY header's addresses are
 * taken only when they are AF_INET or AF_INET6.
 */
union inet_addr {
	struct sockaddr     sa;
	struct sockaddr_in  in;
	struct sockaddr_in6 in6;
};

struct session {
	struct session     *next, *prev;
	struct worker      *w;
	struct gen         *g;
	const struct ehlo_config *cfg;
	char                sid[20];
	struct bufferevent *bev;            /* top: socket or TLS filter */
	struct smtp_server *srv;
	union inet_addr     peer;           /* the client (after PROXY) */
	socklen_t           peerlen;
	char                ip[INET6_ADDRSTRLEN];
	unsigned            port;
	uint32_t            req_bytes;      /* octets since req_ms (saturating) */
	char               *client;         /* "name[ip]" for log lines (heap) */
	const struct listener_def *listener;
	/* The greeting pause, later the TLS handshake's deadline: never both
	 * at once (an implicit-TLS session has no pause, STARTTLS comes after
	 * the greeting), so they share one pointer. */
	struct event       *timer;
	struct spool_job   *job;
	char                qid[24];
	uint64_t            msg_size;
	size_t              held;           /* body bytes counted in stats.receiving_bytes */
	struct bev_flush    flush;
	struct tls_info    *tlsinfo;        /* once TLS is up (heap) */
	bool                greeted;
	bool                pregreet_logged;
	bool                improper_logged;
	bool                busy;           /* an asynchronous decision is pending */
	bool                closing;        /* last reply queued; freed after flush */
	bool                in_handshake;
	bool                tls_active;
	bool                tls_closed;     /* close_notify sent */
	bool                data_timeouts;  /* timeouts currently set for DATA */
	bool                rd_cut;         /* read timeout cut short to the deadline */
	/* Counted under peer by daemon_ip_add. peer no longer changes once
	 * counted (a PROXY header replaces it before the count), so the same
	 * address gives the count back at the end. */
	bool                counted_ip;
	bool                peer_eof;       /* EOF seen while busy; see on_event */
	int64_t             resumed_ms;     /* last resume(), mono_ms(); 0: never */
	/* smtpd_per_request_deadline: when the client's time for its current
	 * request began (our last reply: a command's, the greeting, or the end
	 * of a TLS handshake), mono_ms(); req_bytes counts what came since.
	 * Milliseconds in 8 bytes rather than a timeval: 10,000 idle sessions
	 * hold 160 KB less. */
	int64_t             req_ms;
	bool                out_blocked;    /* output above the high mark */
	bool                rd_parked;      /* TLS: reading off while input waits (process_input) */
	bool                out_blocked_seen; /* counted in stats.output_blocked */
	union inet_addr     local;          /* our end (after PROXY); family 0: unknown */
	enum smtp_cmd       last_cmd;
	struct ident       *id;             /* identity checks; NULL if all off */
	enum smtp_event     waiting_ev;     /* event parked until DNS answers */
	bool                ident_logged;
	bool                shadow_logged;
	bool                helo_switch_wait; /* HELO parked until the old verdict is final */
	/* PROXY protocol (trusted upstream proxies only) */
	struct proxy_parser *pp;
	struct event       *proxy_timer;
	bool                proxy_bytes;     /* some header bytes have arrived */
	char                proxy_ip[INET6_ADDRSTRLEN];
};

static void process_input(struct session *s);
static bool proxy_input(struct session *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void session_free(struct session *s);
static void close_after_flush(struct session *s);
static void log_identity(struct session *s, const struct policy_decision *d);
static void helo_identity(struct session *s);
static void identity_gate(struct session *s, enum smtp_event ev);
static void on_flushed(void *arg);
static void on_drained(void *arg);
static void note_lost(struct session *s);
static void log_accepted(struct session *s);
static void on_hs_deadline(evutil_socket_t fd, short what, void *arg);
static void session_timeout(struct session *s, short what, bool deadline);

/* True unless l is bound to one specific address and a fixed port. */
static bool
listener_is_wildcard(const struct listener_def *l)
{
	if (l->ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&l->ss;
		return a->sin_port == 0 || a->sin_addr.s_addr == htonl(INADDR_ANY);
	}
	if (l->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&l->ss;
		return a->sin6_port == 0 || IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
	}
	return true;
}

/*
 * Monotonic milliseconds: a deadline must not move when the wall clock is
 * stepped. CLOCK_MONOTONIC_COARSE (a few ms of resolution, plenty for
 * timeouts of seconds) is read from the vDSO without a system call or a
 * lock; event_gettime_monotonic() took the event base's lock and cost
 * about 1,000 instructions per session (callgrind, 7 replies each).
 * Never 0.
 */
static int64_t
mono_ms(void)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) != 0)
		return 1;
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 1;
}

static void
set_client(struct session *s, const char *name)
{
	free(s->client);
	s->client = xasprintf("%s[%s]", name, s->ip);
}

/* Callbacks and the output low mark, for the socket bufferevent and again
 * for the TLS one that replaces it. */
static void
set_callbacks(struct session *s)
{
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIGHWATER);
	bufferevent_setwatermark(s->bev, EV_WRITE, SESSION_OUTPUT_LOWWATER, 0);
}

/* The read timeout for a phase: DATA/BDAT content, or commands. */
static long long
read_timeout_ms(const struct session *s, bool data)
{
	return data ? s->cfg->smtpd_data_timeout : s->cfg->smtpd_timeout;
}

/*
 * The read timeout rd on the top bufferevent; the write timeout
 * (smtpd_timeout) where unsent output really waits, the socket
 * bufferevent. Over TLS that is the one under the filter, whose write
 * timeout was set once at the end of the handshake: the filter's own write
 * timer is armed by every write and not disarmed when its output drains,
 * so an idle client that had read every reply was cut after smtpd_timeout
 * as "not reading replies", with no 421 (RFC 5321 §4.5.3.2).
 */
static void
put_timeouts(struct session *s, const struct timeval *rd)
{
	struct timeval wr = timeval_ms(s->cfg->smtpd_timeout);
	bufferevent_set_timeouts(s->bev, rd, s->tls_active ? NULL : &wr);
}

static void
set_timeouts(struct session *s, bool data)
{
	struct timeval rd = timeval_ms(read_timeout_ms(s, data));
	put_timeouts(s, &rd);
	s->data_timeouts = data;
}

/* Wraps the socket in TLS and waits for the handshake (STARTTLS, or an
 * implicit-TLS listener), with its own timeout for both directions. */
static void
begin_handshake(struct session *s)
{
	s->bev = tls_server_start(s->g->tls, s->w->base, s->bev);
	s->in_handshake = true;
	set_callbacks(s);
	/* The socket bufferevent's marks again (see SESSION_OUTPUT_HIGHWATER). */
	struct bufferevent *sock = bufferevent_get_underlying(s->bev);
	bufferevent_setwatermark(sock, EV_READ, 0, SESSION_INPUT_HIGHWATER);
	bufferevent_setwatermark(sock, EV_WRITE, SESSION_OUTPUT_LOWWATER,
	    SESSION_OUTPUT_HIGHWATER);
	struct timeval hs = timeval_ms(s->cfg->smtpd_tls_handshake_timeout);
	bufferevent_set_timeouts(s->bev, &hs, &hs);
	s->rd_cut = false;
	/* Those timeouts restart with every record that arrives; the whole
	 * handshake gets the same time once more as a deadline, so that a
	 * client cannot trickle a ClientHello an octet at a time. */
	if (s->timer != NULL) {
		event_free(s->timer);   /* the greeting pause's, long fired */
		s->timer = NULL;
	}
	if (s->cfg->smtpd_per_request_deadline) {
		s->timer = evtimer_new(s->w->base, on_hs_deadline, s);
		if (s->timer == NULL)
			abort();
		evtimer_add(s->timer, &hs);
	}
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* The client's time for its next request starts now. */
static void
req_restart(struct session *s)
{
	s->req_ms = mono_ms();
	s->req_bytes = 0;
}

/*
 * Milliseconds left before the current request's deadline: a command line
 * gets smtpd_timeout from req_ms, content smtpd_data_timeout plus one
 * second per smtpd_min_data_rate octets received (as Postfix 3.7's
 * smtpd_min_data_rate), so a slow but steady sender of a large message
 * keeps going while a trickler of a few octets a minute does not.
 */
static long long
req_time_left_ms(struct session *s, bool data)
{
	long long elapsed = (long long)(mono_ms() - s->req_ms);
	long long allowed = read_timeout_ms(s, data);
	if (data)
		allowed += (long long)((uint64_t)s->req_bytes * 1000 /
		    (uint64_t)s->cfg->smtpd_min_data_rate);
	return allowed - elapsed;
}

static void
flush_out(struct session *s)
{
	struct buf *o = &s->srv->out;
	if (o->len == 0)
		return;
	req_restart(s);   /* RFC 5321 §4.5.3.2: the client's time runs from our reply */
	size_t off = 0;
	if (!s->tls_active && !s->in_handshake &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		/* Nothing is queued before these bytes, so writing them now keeps
		 * the order. MSG_NOSIGNAL: a vanished peer is an error, not a
		 * signal. A failure other than EAGAIN is left for the bufferevent
		 * to meet again and report through on_event. */
		ssize_t n = send(bufferevent_getfd(s->bev), o->data, o->len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			off = (size_t)n;
	}
	if (off < o->len) {
		bufferevent_write(s->bev, o->data + off, o->len - off);
		/* A plain session writes through the bufferevent only what the
		 * kernel did not take, so writing (and its timeout and the
		 * low-mark callback) is switched on only now. Enabling it with
		 * an empty buffer would cost an epoll change, a wake-up to find
		 * nothing to write, and another change. */
		bufferevent_enable(s->bev, EV_WRITE);
	}
	/* Release rather than keep: an idle session should hold no buffers. */
	buf_free(o);
}

/* The asynchronous decision (spool or DNS) is in and its reply queued:
 * go on with the input. A peer that closed its sending side meanwhile
 * still gets the replies to what it sent before (its pipelined QUIT, say);
 * after that its EOF ends the session as on_event would have. */
static void
resume(struct session *s)
{
	/*
	 * RFC 5321 §4.5.3.2: the client's time to send its next command runs
	 * from our reply, but the read timeout still counts from the command
	 * we were busy with (or from its last restart in on_event). So when it
	 * fires less than a timeout after this, on_event restarts it instead
	 * (resumed_lately). Not restarted here: if the timeout expired in
	 * this same loop iteration, libevent has already taken the read event
	 * out of epoll and queued its callback, and re-adding it now would
	 * cancel that callback but leave the socket unwatched (event_add does
	 * not re-register an event that is active).
	 */
	s->resumed_ms = mono_ms();
	process_input(s);
	if (!s->peer_eof || s->closing || s->busy)
		return;
	note_lost(s);
	flush_out(s);
	s->closing = true;
	bev_when_flushed(&s->flush, s->bev, on_flushed, s);
}

/* True if resume() ran less than the current read timeout ago. */
static bool
resumed_lately(struct session *s)
{
	if (s->resumed_ms == 0)
		return false;
	long long ms = (long long)(mono_ms() - s->resumed_ms);
	return ms >= 0 && ms < read_timeout_ms(s, s->data_timeouts);
}

static void
on_flushed(void *arg)
{
	struct session *s = arg;
	if (s->tls_active && !s->tls_closed) {
		/* End TLS with close_notify (RFC 8446 §6.1) so the client can tell
		 * our close from a truncation attack; then flush that alert too. */
		s->tls_closed = true;
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		if (ssl != NULL && SSL_shutdown(ssl) >= 0) {
			bev_when_flushed(&s->flush, s->bev, on_flushed, s);
			return;
		}
	}
	session_free(s);
}

/* Queue the pending output and free the session once the kernel has it. */
static void log_error_limit(struct session *s);

static void
close_after_flush(struct session *s)
{
	if (s->closing)
		return;
	s->closing = true;
	/* Here, not at each caller: the 421 may follow a reply that waited for
	 * DNS or the spool (on_ident_ready, on_delivered), and those paths
	 * closed without the line and the counter. */
	log_error_limit(s);
	flush_out(s);
	bufferevent_disable(s->bev, EV_READ);
	/* Writing (and so its timeout) must be on for the flush to end, if
	 * anything is left to flush; flush_out switched it on for a plain
	 * session that has some. A peer that stops reading cannot hold the
	 * session: the write timeout still applies and frees it (on_event). */
	if (s->tls_active || s->in_handshake)
		bufferevent_enable(s->bev, EV_WRITE);
	bev_when_flushed(&s->flush, s->bev, on_flushed, s);
}

static void
session_log_disconnect(struct session *s)
{
	struct buf b = BUF_INIT;
	smtp_server_format_counts(s->srv, &b);
	log_info("%s disconnect from %s %s", s->sid, s->client, buf_cstr(&b));
	buf_free(&b);
}

static void
session_free(struct session *s)
{
	struct worker *w = s->w;
	struct daemon *d = w->d;
	if (s->srv->helo[0])
		log_identity(s, NULL);
	session_log_disconnect(s);
	if (s->job != NULL)
		spool_job_abandon(s->job);
	ident_free(&s->id);
	if (s->proxy_timer)
		event_free(s->proxy_timer);
	free(s->pp);
	bev_flush_cancel(&s->flush);
	if (s->timer)
		event_free(s->timer);
	if (s->bev)
		bufferevent_free(s->bev);
	smtp_server_free(&s->srv);
	atomic_fetch_sub(&d->stats.receiving_bytes, s->held);
	if (s->counted_ip)
		daemon_ip_del(d, (struct sockaddr *)&s->peer);
	gen_unref(&s->g);
	free(s->client);
	free(s->tlsinfo);
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsessions--;
	atomic_fetch_add(&d->stats.disconnects, 1);
	atomic_fetch_sub(&d->stats.sessions_active, 1);
	free(s);
	if (w->stopping && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

/* ---- message delivery ---- */

/*
 * A header-safe rendering of peer text for Received: (no CR/LF can reach
 * here, but a header must also not get parentheses, backslashes, quotes,
 * semicolons or non-ASCII that would change its structure), at most max
 * octets of output: escaping takes four octets per byte, and RFC 5322
 * §2.1.1 caps a line at 998.
 */
static void
header_safe(struct buf *b, const char *p, size_t max)
{
	size_t out = 0;
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool plain = c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\' &&
		    c != ';' && c != '"';
		if (out + (plain ? 1 : 4) > max) {
			buf_append_str(b, "...");
			return;
		}
		if (plain)
			buf_append_char(b, (char)c);
		else
			buf_appendf(b, "\\x%02x", c);
		out += plain ? 1 : 4;
	}
}

/*
 * The recipient of the "for" clause as a path (RFC 5321 §4.4: For = "FOR"
 * (Path / Mailbox)): the parser has validated it, so it goes in as the
 * client sent it, a quoted local part with its spaces and, in an SMTPUTF8
 * transaction, UTF-8 (RFC 6531 §3.7, RFC 6532); a control byte, which
 * cannot pass the parser, would be escaped.
 */
static void
path_safe(struct buf *b, const char *p)
{
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			buf_appendf(b, "\\x%02x", c);
		else
			buf_append_char(b, (char)c);
	}
}

/* The client's address as an RFC 5321 §4.1.3 address literal: IPv6 ones
 * tagged "IPv6:", IPv4-mapped ones as the IPv4 address they carry. */
static void
client_literal(struct buf *b, const struct session *s)
{
	if (s->peer.sa.sa_family == AF_INET6) {
		const struct in6_addr *a = &s->peer.in6.sin6_addr;
		char v4[INET_ADDRSTRLEN];
		if (IN6_IS_ADDR_V4MAPPED(a) && inet_ntop(AF_INET, &a->s6_addr[12], v4, sizeof v4)) {
			buf_appendf(b, "[%s]", v4);
			return;
		}
		buf_appendf(b, "[IPv6:%s]", s->ip);
		return;
	}
	buf_appendf(b, "[%s]", s->ip);
}

static void
build_received(struct session *s, struct buf *h)
{
	struct smtp_server *m = s->srv;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);

	/* RFC 5321 §4.4: the EHLO name and an address literal of the client. */
	buf_append_str(h, "Received: from ");
	header_safe(h, m->helo, 255);
	buf_appendf(h, " (%s ", ident_client_name(s->id));
	client_literal(h, s);
	buf_appendf(h, ")\n\tby %s (ehlo) with %s id %s", s->cfg->myhostname,
	    smtp_server_with_protocol(m), s->qid);
	if (m->tx->nrcpt == 1) {
		char a[PATH_LOCAL_MAX * 2 + PATH_DOMAIN_MAX + 8];
		if (path_format(&m->tx->rcpt[0].path, a, sizeof a) >= 0) {
			buf_append_str(h, "\n\tfor <");
			path_safe(h, a);
			buf_append_str(h, ">");
		}
	}
	if (s->tls_active) {
		/* RFC 8314 §4.3: the "tls" clause names the cipher suite. */
		buf_appendf(h, "\n\ttls %s (%s, %d/%d bits)", s->tlsinfo->cipher,
		    s->tlsinfo->version, s->tlsinfo->bits, s->tlsinfo->alg_bits);
	}
	buf_appendf(h, ";\n\t%s\n", date);
}

/* "Return-Path: <reverse-path>" (RFC 5321 §4.4; "<>" for the null
 * sender), the first line of every stored message. The path as the parser
 * validated it, UTF-8 under SMTPUTF8 included (RFC 6532 §3). */
static void
build_return_path(struct session *s, struct buf *h)
{
	char a[PATH_LOCAL_MAX * 2 + PATH_DOMAIN_MAX + 8];
	if (path_format(&s->srv->tx->mail, a, sizeof a) < 0)
		a[0] = '\0';   /* cannot happen: the buffer takes the longest path */
	buf_append_str(h, "Return-Path: <");
	path_safe(h, a);
	buf_append_str(h, ">\n");
}

/*
 * A path as shown in a log line or a reply (sanitised: \xHH for what is not
 * printable ASCII), at most PATH_SHOWN octets of it, escapes whole, then
 * "...": with its text a reply line stays under RFC 5321 §4.5.3.1.5's 512
 * octets, and a log line well under LOG_LINE_MAX. (It rendered 300 octets
 * of input, up to 1,203 of output, into 600-octet buffers: cut silently,
 * possibly inside an escape.) out must have PATH_SHOWN_SIZE octets.
 */
#define PATH_SHOWN      300
#define PATH_SHOWN_SIZE (PATH_SHOWN + 4)

/* p rendered (sanitize_fit) into out, in at most width octets. */
static const char *
show_path(const struct smtp_path *p, size_t width, struct buf *out)
{
	char a[PATH_LOCAL_MAX * 2 + PATH_DOMAIN_MAX + 8];
	buf_reset(out);
	if (path_format(p, a, sizeof a) < 0)
		a[0] = '\0';
	return sanitize_fit(out, a, strlen(a), width);
}

static const char *
fmt_path(const struct smtp_path *p, char out[static PATH_SHOWN_SIZE], struct buf *tmp)
{
	snprintf(out, PATH_SHOWN_SIZE, "%s", show_path(p, PATH_SHOWN + 3, tmp));
	return out;
}

/*
 * Octets an address may take when quoted in a reply. The longest reply
 * that quotes one, "550 5.1.1 <" ADDRESS ">: Recipient address rejected:
 * User unknown in virtual mailbox table" CRLF, has 82 of its own; a reply
 * line has 512 (RFC 5321 §4.5.3.1.5).
 */
#define REPLY_ADDR_MAX 400

/*
 * The address of p as a reply quotes it: sanitised as for the log, and
 * shortened with "..." to REPLY_ADDR_MAX octets without cutting an escape
 * or a UTF-8 character (an address of 250 octets of "ü" is 1000 escaped).
 * Log lines keep fmt_path().
 */
static const char *
reply_path(const struct smtp_path *p, struct buf *out)
{
	return show_path(p, REPLY_ADDR_MAX, out);
}

static void
on_delivered(struct spool_job *job, int status, void *arg)
{
	struct session *s = arg;
	struct daemon *d = s->w->d;
	s->job = NULL;
	s->busy = false;
	if (status == 0) {
		log_accepted(s);
		smtp_server_resolve(s->srv, 250, "2.0.0", "Ok: queued as %s", s->qid);
		atomic_fetch_add(&d->stats.messages_accepted, 1);
		atomic_fetch_add(&d->stats.bytes_accepted, s->msg_size);
	} else if (status == ENOSPC || status == EDQUOT) {
		log_warn("%s %s: delivery failed: %s", s->sid, s->qid, strerror(status));
		smtp_server_resolve(s->srv, 452, "4.3.1", "Error: insufficient system storage");
	} else {
		log_warn("%s %s: delivery failed: %s", s->sid, s->qid, strerror(status));
		smtp_server_resolve(s->srv, 451, "4.3.0", "Error: local delivery failed, try again later");
	}
	/* At shutdown the machine follows the reply with its 421 (smtp_server_stop). */
	if (s->srv->pending == SRV_EV_CLOSE) {
		close_after_flush(s);
		return;
	}
	resume(s);
}

/* Recipient -> Maildir; false if it is not ours or not deliverable. */
static bool
mailbox_for(struct session *s, const struct smtp_path *p, struct buf *out)
{
	char local[sizeof p->local];
	snprintf(local, sizeof local, "%s", p->local);
	const char *domain = p->domain;
	if (domain[0] == '\0') {
		/* "<postmaster>" (RFC 5321 §4.5.1): the first local domain's. */
		if (s->cfg->virtual_mailbox_domains.n == 0)
			return false;
		domain = s->cfg->virtual_mailbox_domains.v[0];
	}
	/* A U-label domain (SMTPUTF8) is stored under its A-label, as the
	 * configuration keeps local domains: one Maildir for both forms. */
	struct buf a = BUF_INIT;
	if (idna_has_utf8(domain, strlen(domain))) {
		if (!idna_to_ascii(domain, strlen(domain), &a)) {
			buf_free(&a);
			return false;
		}
		domain = buf_cstr(&a);
	}
	bool ok = spool_mailbox_path(s->cfg->virtual_mailbox_base, local, domain, out);
	buf_free(&a);
	return ok;
}

/*
 * The lines for an accepted message, written when the 250 goes out (before
 * the commit they were also written for messages that then got 451 or
 * 452, and log tools counted mail that was never accepted):
 *
 *   <sid> <qid>: client=..., from=<...>, size=N, nrcpt=N, proto=..., long_lines=N
 *   <sid> <qid>: to=<...>        (one per recipient, in RCPT order)
 *
 * One line per recipient, as Postfix logs them: the recipients went in the
 * one line before, which a message with many long recipients took past
 * the 8 KiB a line may have, losing the rest of its recipients and the
 * size=, nrcpt= and proto= after them. Each line is now bounded whatever
 * the recipients. The transaction is still there (resolve() frees it).
 */
static void
log_accepted(struct session *s)
{
	struct smtp_server *m = s->srv;
	struct smtp_tx *tx = m->tx;
	if (tx == NULL)
		return;
	struct buf tmp = BUF_INIT;
	char a[PATH_SHOWN_SIZE];
	log_info("%s %s: client=%s, from=<%s>, size=%llu, nrcpt=%zu, proto=%s%s%s, "
	    "long_lines=%llu", s->sid, s->qid, s->client, fmt_path(&tx->mail, a, &tmp),
	    (unsigned long long)s->msg_size, tx->nrcpt, smtp_server_with_protocol(m),
	    s->tls_active ? ", tls=" : "", s->tls_active ? s->tlsinfo->version : "",
	    (unsigned long long)tx->dd.long_lines);
	for (size_t i = 0; i < tx->nrcpt; i++)
		log_info("%s %s: to=<%s>", s->sid, s->qid, fmt_path(&tx->rcpt[i].path, a, &tmp));
	buf_free(&tmp);
}

static void
deliver(struct session *s)
{
	struct smtp_server *m = s->srv;
	struct smtp_tx *tx = m->tx;
	struct buf tmp = BUF_INIT;
	spool_queue_id(s->qid);

	struct buf hdr = BUF_INIT;
	size_t blen = 0;
	char *body = smtp_server_take_message(m, &blen);
	log_identity(s, NULL);
	/* RFC 5321 §4.4: the final delivery inserts the return path at the
	 * beginning of the mail data; a Return-Path the client wrote would be
	 * taken for ours (or contradict it), so every one of them goes. */
	size_t nrp = data_strip_header_field(body, &blen, "Return-Path");
	if (nrp > 0)
		log_info("%s removed %zu Return-Path field%s from %s", s->sid, nrp,
		    nrp == 1 ? "" : "s", s->client);
	build_return_path(s, &hdr);
	/* RFC 8601: identity results for "tag" checks, above the trace field.
	 * And §5: a field that claims our authserv-id and comes from outside
	 * (any client helo_checks_exempt does not trust) is forged, whether or
	 * not we add one of our own: a later reader cannot tell it from ours.
	 * It was removed only when some check tagged. */
	bool trusted = false;
	if (s->id != NULL)
		(void)ident_auth_results(s->id, &hdr, &trusted);
	else
		trusted = cidr_list_match(&s->g->ienv.exempt_nets, &s->peer.sa);
	if (!trusted) {
		size_t n = identity_strip_auth_results(body, &blen, s->cfg->myhostname);
		if (n > 0)
			log_info("%s removed %zu forged Authentication-Results field%s from %s",
			    s->sid, n, n == 1 ? "" : "s", s->client);
	}
	build_received(s, &hdr);
	/* One allocation: header then body; the spool takes ownership. */
	char *msg = xmalloc(hdr.len + blen + 1);
	memcpy(msg, hdr.data, hdr.len);
	memcpy(msg + hdr.len, body, blen);
	size_t mlen = hdr.len + blen;
	free(body);

	/* Mailboxes, each once even if named by several RCPTs. */
	const char **boxes = xcalloc(tx->nrcpt, sizeof *boxes);
	size_t nbox = 0;
	for (size_t i = 0; i < tx->nrcpt; i++) {
		struct buf p = BUF_INIT;
		if (!mailbox_for(s, &tx->rcpt[i].path, &p)) {
			buf_free(&p);
			continue;   /* cannot happen: checked at RCPT */
		}
		bool dup = false;
		for (size_t j = 0; j < nbox; j++)
			if (strcmp(boxes[j], p.data) == 0)
				dup = true;
		if (dup)
			buf_free(&p);
		else
			boxes[nbox++] = buf_steal(&p);
	}
	s->msg_size = mlen;   /* as stored: the log's size= and the bytes metric */
	buf_free(&tmp);
	buf_free(&hdr);

	s->busy = true;
	s->job = spool_submit(s->w->d->spool, s->w->base, msg, mlen,
	    (const char *const *)boxes, nbox, s->qid, on_delivered, s);
	for (size_t i = 0; i < nbox; i++)
		free((void *)boxes[i]);
	free(boxes);
}

/* ---- decisions ---- */

static void reject(struct session *s, const char *what, const char *extra, unsigned code,
    const char *enh, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The reply line that starts at out[off] as it went to the client, without
 * its CRLF; bytes outside printable ASCII (none are expected: reply text
 * is ours, peer data in it sanitised) as \xHH; at most a reply line's
 * 512 octets (RFC 5321 §4.5.3.1.5), then "...". */
static void
reply_line(const struct buf *out, size_t off, struct buf *b)
{
	size_t n = 0;
	for (size_t i = off; i < out->len && out->data[i] != '\r' && out->data[i] != '\n'; i++) {
		if (n++ == 512) {
			buf_append_str(b, "...");
			return;
		}
		unsigned char c = (unsigned char)out->data[i];
		if (c >= 0x20 && c < 0x7f)
			buf_append_char(b, (char)c);
		else
			buf_appendf(b, "\\x%02x", c);
	}
}

/*
 * Refuses the pending command (what: "HELO", "MAIL", "RCPT") with one
 * reply and writes the Postfix-style line for it (smtpd_check.c's
 * log_whatsup, which log tools and fail2ban filters parse):
 *
 *   NOQUEUE: reject: RCPT from name[ip]: <reply>; from=<s> to=<r> proto=ESMTP helo=<h>
 *
 * <reply> is the reply line exactly as it went into the output (taken from
 * there, so the two cannot differ); from= only once MAIL named a sender,
 * to= only for RCPT, as Postfix; extra (NULL: none) are ehlod's own
 * key=value fields after helo=<>. The context is read before the reply:
 * a refused MAIL frees the transaction.
 */
static void
reject(struct session *s, const char *what, const char *extra, unsigned code,
    const char *enh, const char *fmt, ...)
{
	struct smtp_server *m = s->srv;
	struct buf ctx = BUF_INIT, tmp = BUF_INIT;
	char a[PATH_SHOWN_SIZE];
	if (m->tx != NULL)
		buf_appendf(&ctx, " from=<%s>", fmt_path(&m->tx->mail, a, &tmp));
	if (strcmp(what, "RCPT") == 0 && m->rcpt_pending != NULL)
		buf_appendf(&ctx, " to=<%s>", fmt_path(&m->rcpt_pending->path, a, &tmp));
	const char *hn = m->helo_pending ? m->helo_pending : m->helo;
	bool esmtp = m->helo_pending ? m->helo_pending_ehlo : m->esmtp;
	buf_appendf(&ctx, " proto=%s helo=<", esmtp ? "ESMTP" : "SMTP");
	log_sanitize(&ctx, hn, strlen(hn), 255);
	buf_append_char(&ctx, '>');

	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	size_t off = m->out.len;
	smtp_server_resolve(m, code, enh, "%s", text);
	buf_reset(&tmp);
	reply_line(&m->out, off, &tmp);
	log_info("%s NOQUEUE: reject: %s from %s: %s;%s%s%s", s->sid, what, s->client,
	    buf_cstr(&tmp), buf_cstr(&ctx), extra ? " " : "", extra ? extra : "");
	buf_free(&ctx);
	buf_free(&tmp);
}

/* domain is in A-label form (the configuration keeps local domains so). */
static bool
domain_is_local(const struct ehlo_config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->virtual_mailbox_domains.n; i++)
		if (ascii_ieq(cfg->virtual_mailbox_domains.v[i], domain))
			return true;
	return false;
}

static void
decide_rcpt(struct session *s)
{
	const struct smtp_path *p = &s->srv->rcpt_pending->path;
	struct buf rtmp = BUF_INIT;
	/* The reply's form (shortened to fit, RFC 5321 §4.5.3.1.5); reject()
	 * logs the reply as sent, with the full address in to=. */
	const char *raddr = reply_path(p, &rtmp);
	/* RFC 6531 §3.2: with SMTPUTF8 the domain may be U-labels; it names
	 * the same domain as its A-label form (RFC 5890 §2.3.2.1), which is
	 * what local domains and map keys are compared in. */
	struct buf adom = BUF_INIT;
	const char *dom = p->domain;
	if (idna_has_utf8(dom, strlen(dom)))
		dom = idna_to_ascii(dom, strlen(dom), &adom) ? buf_cstr(&adom) : "";

	if (p->domain[0] != '\0' && (dom[0] == '\0' || !domain_is_local(s->cfg, dom))) {
		/* Relaying arrives with AUTH (a later issue). */
		reject(s, "RCPT", NULL, 554, "5.7.1", "<%s>: Relay access denied", raddr);
		goto out;
	}
	struct buf box = BUF_INIT;
	bool deliverable = mailbox_for(s, p, &box);
	buf_free(&box);
	if (!deliverable) {
		reject(s, "RCPT", NULL, 550, "5.1.3",
		    "<%s>: Recipient address rejected: not a deliverable mailbox name", raddr);
		goto out;
	}
	/* RFC 5321 §4.5.1: postmaster at every local domain is accepted
	 * (MUST), listed in the map or not, as bare <postmaster> already was;
	 * its Maildir is <domain>/postmaster like any other address's. */
	if (s->g->vmaps != NULL && p->domain[0] != '\0' && !ascii_ieq(p->local, "postmaster")) {
		struct buf key = BUF_INIT;
		buf_appendf(&key, "%s@%s", p->local, dom);
		bool known = addrmap_contains(s->g->vmaps, buf_cstr(&key));
		buf_free(&key);
		if (!known) {
			reject(s, "RCPT", NULL, 550, "5.1.1",
			    "<%s>: Recipient address rejected: User unknown in virtual mailbox table", raddr);
			goto out;
		}
	}
	smtp_server_resolve(s->srv, 250, "2.1.5", "Ok");
out:
	buf_free(&adom);
	buf_free(&rtmp);
}

/* One line per session with every identity result, once they are final
 * (all answers in, or the deadline passed), or at the end of the session. */
static void
log_identity(struct session *s, const struct policy_decision *d)
{
	if (s->ident_logged || s->id == NULL)
		return;
	struct policy_decision tmp;
	if (d == NULL) {
		ident_current(s->id, &tmp);
		d = &tmp;
	}
	struct buf b = BUF_INIT;
	ident_summary(s->id, &b);
	struct buf h = BUF_INIT;
	const char *hn = s->srv->helo_pending ? s->srv->helo_pending : s->srv->helo;
	log_sanitize(&h, hn, strlen(hn), 255);
	log_info("%s identity client=%s helo=<%s> %s decision=%s%s", s->sid, s->client,
	    buf_cstr(&h), buf_cstr(&b), policy_outcome_name(d->would),
	    d->exempt ? " (exempt)" : "");
	buf_free(&b);
	buf_free(&h);
	s->ident_logged = true;
	/* The PTR is known now: use the confirmed name in later lines. */
	set_client(s, ident_client_name(s->id));
}

/* Applies an identity decision to the pending HELO or RCPT. Returns true if
 * it answered the command (a refusal), false if the command may proceed. */
static bool
apply_identity(struct session *s, const struct policy_decision *d, const char *what)
{
	struct daemon *dm = s->w->d;
	if (ident_complete(s->id))
		log_identity(s, d);
	if (d->outcome == POL_ACCEPT) {
		if ((d->would == POL_REJECT || d->would == POL_TEMPFAIL) && !s->shadow_logged) {
			atomic_fetch_add(&dm->stats.helo_shadow_rejects, 1);
			log_info("%s shadow: would %s %s from %s: %u %s %s (check=%s)", s->sid,
			    d->would == POL_REJECT ? "reject" : "tempfail", what, s->client, d->code,
			    d->enh, d->text, id_check_name(d->check));
			s->shadow_logged = true;
		}
		return false;
	}
	atomic_fetch_add(d->outcome == POL_REJECT ? &dm->stats.helo_rejects :
	    &dm->stats.helo_tempfails, 1);
	char extra[64];
	snprintf(extra, sizeof extra, "check=%s", id_check_name(d->check));
	reject(s, what, extra, d->code, d->enh, "%s", d->text);
	return true;
}

static void
on_ident_ready(void *arg)
{
	struct session *s = arg;
	if (!s->busy || s->closing)
		return;
	s->busy = false;
	enum smtp_event ev = s->waiting_ev;
	s->waiting_ev = SRV_EV_NONE;
	struct policy_decision d;
	d.outcome = POL_ACCEPT;
	if (ev != SRV_EV_MESSAGE && !ident_decide(s->id, &d)) {
		/* Cannot happen: ready means no enforcing answer is pending. */
		d.outcome = POL_ACCEPT;
	}
	if (ev == SRV_EV_HELO && s->helo_switch_wait) {
		/* The earlier name's verdict is final: now take the new one. */
		s->helo_switch_wait = false;
		helo_identity(s);
		if (s->busy)
			return;   /* waiting again, for the new name's verdict */
	} else if (ev == SRV_EV_HELO) {
		if (!apply_identity(s, &d, "HELO")) {
			ident_helo_accepted(s->id);
			smtp_server_resolve(s->srv, 250, NULL, NULL);
		} else {
			ident_helo_refused(s->id);   /* RFC 5321 §4.1.4 */
		}
	} else if (ev == SRV_EV_RCPT) {
		if (!apply_identity(s, &d, "RCPT"))
			decide_rcpt(s);
	} else if (ev == SRV_EV_MESSAGE) {
		deliver(s);
		return;   /* deliver() waits for the spool; it resumes input */
	}
	if (s->srv->pending == SRV_EV_CLOSE) {
		close_after_flush(s);
		return;
	}
	resume(s);
}

/* Parks the pending event ev until ident's ready callback, which ident
 * guarantees, at the latest at the DNS deadline. Input that arrives
 * meanwhile waits in the input buffer (see the top of this file). */
static void
park(struct session *s, enum smtp_event ev)
{
	s->busy = true;
	s->waiting_ev = ev;
}

/* A HELO/EHLO name goes to the identity checks: accepted at once under
 * smtpd_delay_reject (the verdict applies at RCPT), else decided now. */
static void
helo_identity(struct session *s)
{
	ident_helo(s->id, s->srv->helo_pending, s->srv->helo_pending_ehlo);
	if (s->cfg->smtpd_delay_reject) {
		ident_helo_accepted(s->id);
		smtp_server_resolve(s->srv, 250, NULL, NULL);
	} else {
		identity_gate(s, SRV_EV_HELO);
	}
}

/* HELO/EHLO or RCPT needs the identity verdict; waits for DNS if needed. */
static void
identity_gate(struct session *s, enum smtp_event ev)
{
	struct policy_decision d;
	if (ident_decide(s->id, &d)) {
		if (apply_identity(s, &d, ev == SRV_EV_HELO ? "HELO" : "RCPT")) {
			/* RFC 5321 §4.1.4: a refused HELO/EHLO changes nothing;
			 * the name before it stays the one judged at RCPT. */
			if (ev == SRV_EV_HELO)
				ident_helo_refused(s->id);
			return;
		}
		if (ev == SRV_EV_HELO) {
			ident_helo_accepted(s->id);
			smtp_server_resolve(s->srv, 250, NULL, NULL);
		} else {
			decide_rcpt(s);
		}
		return;
	}
	park(s, ev);
}

static void
start_tls(struct session *s)
{
	struct daemon *d = s->w->d;
	flush_out(s);   /* the 220 goes out in plaintext, before the handshake */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t left = evbuffer_get_length(in);
	if (left > 0) {
		/* CVE-2011-0411: plaintext pipelined after STARTTLS must not be
		 * executed inside the TLS session. Discard, log, count. */
		log_warn("%s %zu bytes of plaintext pipelined after STARTTLS from %s: discarded",
		    s->sid, left, s->client);
		evbuffer_drain(in, left);
		s->srv->plaintext_discarded += left;
		atomic_fetch_add(&d->stats.starttls_injection, 1);
	}
	begin_handshake(s);
}

/* ---- the message memory budget ---- */

/*
 * smtpd_message_memory_limit bounds what all sessions together hold of
 * message content: bodies being received (stats.receiving_bytes, the sum of
 * every session's s->held) plus messages handed to the spool and not yet
 * freed (spool_held_bytes). Without it, clients that each send a message
 * slowly could make ehlod hold smtpd_max_connections x message_size_limit
 * (10,000 x 10 MB by default) and run the machine out of memory; Postfix
 * avoids this by writing to its queue file as it reads, we by refusing
 * with a temporary 452 4.3.1 (RFC 5321 §4.2.3 "insufficient system
 * storage"; the client tries again later) at the limit.
 */
/* Brings s->held and the shared total up to the body buffer the engine
 * holds now (its capacity: that is the memory taken). */
static void
account_body(struct session *s)
{
	struct daemon *d = s->w->d;
	size_t now = s->srv->tx != NULL ? s->srv->tx->body.cap : 0;
	if (now > s->held)
		atomic_fetch_add(&d->stats.receiving_bytes, now - s->held);
	else if (now < s->held)
		atomic_fetch_sub(&d->stats.receiving_bytes, s->held - now);
	s->held = now;
}

/* After input was fed: a message whose content took the total over the
 * limit is read on to its end, thrown away and refused (the engine's
 * smtp_server_storage_full). The check follows each piece of input, so
 * the total can pass the limit by what one piece made a body grow (its
 * buffer doubling, at most) before that body is released. */
static void
check_budget(struct session *s)
{
	account_body(s);
	unsigned long long lim = s->cfg->smtpd_message_memory_limit;
	if (lim == 0 || s->held == 0 || daemon_message_memory(s->w->d) <= lim)
		return;
	size_t had = s->held;
	if (!smtp_server_storage_full(s->srv))
		return;
	account_body(s);
	atomic_fetch_add(&s->w->d->stats.memory_rejects_data, 1);
	log_warn("%s message content from %s refused (452 4.3.1): %zu bytes held by all "
	    "sessions are over smtpd_message_memory_limit = %llu; released %zu bytes of "
	    "this message, the rest is read and discarded", s->sid, s->client,
	    daemon_message_memory(s->w->d) + had, lim, had);
}

/*
 * The largest message the budget can ever hold, as the protocol engine's
 * message size limit (0: none). A body buffer grows by doubling from a
 * power of two (buf_reserve), so its capacity, which is what the budget
 * counts, is a power of two; and it reserves at most two octets beyond
 * the content counted in CRLF form, which is how the engine measures
 * against its limit (BDAT reserves each piece plus one, buf_reserve one
 * more for the NUL). A message of up to P - 2 octets, P the largest
 * power of two not above the budget, therefore fits when nothing else is
 * held; a larger one can never fit, and answering it 452 4.3.1 ("try
 * later") had the client try for ever. It gets 552 5.3.4 instead (RFC
 * 1870 §6.1/§6.2: over the fixed maximum is permanent; 452 is for
 * storage that is short now), at MAIL when SIZE= declares it, else at
 * the end of its content; EHLO announces it as SIZE. message_size_limit
 * stays when it is lower, as it is whenever set (config.c wants the
 * budget at least twice it) but for odd budgets such as 2^30 - 1.
 */
static uint64_t
effective_size_limit(const struct ehlo_config *cfg)
{
	uint64_t msl = (uint64_t)cfg->message_size_limit;
	uint64_t lim = (uint64_t)cfg->smtpd_message_memory_limit;
	if (lim < 4)
		return msl;   /* 0: no budget (and 1..3 can hold nothing anyway) */
	uint64_t p = 1;
	while (p <= lim / 2)
		p *= 2;
	uint64_t most = p - 2;
	return msl == 0 || msl > most ? most : msl;
}

/* MAIL: is there room for a message (of the size SIZE= declares)? */
static bool
budget_allows_mail(struct session *s)
{
	unsigned long long lim = s->cfg->smtpd_message_memory_limit;
	if (lim == 0)
		return true;
	size_t used = daemon_message_memory(s->w->d);
	const struct smtp_tx *tx = s->srv->tx;
	uint64_t want = tx != NULL && tx->mp.has_size ? tx->mp.size : 0;
	if (used < lim && want <= lim - used)
		return true;
	atomic_fetch_add(&s->w->d->stats.memory_rejects_mail, 1);
	char extra[128];
	snprintf(extra, sizeof extra, "held=%zu smtpd_message_memory_limit=%llu size=%llu",
	    used, lim, (unsigned long long)want);
	reject(s, "MAIL", extra, 452, "4.3.1", "Error: insufficient system storage");
	return false;
}

/* Performs one machine event. */
static void
handle_event(struct session *s, enum smtp_event ev)
{
	switch (ev) {
	case SRV_EV_HELO:
		if (s->id == NULL) {
			if (s->g->ienv.checks != 0 && !s->ident_logged) {
				/* Exempt by address: no identity state, one line. */
				struct buf h = BUF_INIT;
				log_sanitize(&h, s->srv->helo_pending, strlen(s->srv->helo_pending), 255);
				log_info("%s identity client=%s helo=<%s> checks=skipped decision=accept (exempt)",
				    s->sid, s->client, buf_cstr(&h));
				buf_free(&h);
				s->ident_logged = true;
			}
			smtp_server_resolve(s->srv, 250, NULL, NULL);
			break;
		}
		if (!ident_helo_switch_ready(s->id)) {
			s->helo_switch_wait = true;
			park(s, SRV_EV_HELO);
			break;
		}
		helo_identity(s);
		break;
	case SRV_EV_MAIL:
		if (budget_allows_mail(s))
			smtp_server_resolve(s->srv, 250, "2.1.0", "Ok");
		break;
	case SRV_EV_RCPT:
		if (s->id != NULL)
			identity_gate(s, SRV_EV_RCPT);
		else
			decide_rcpt(s);
		break;
	case SRV_EV_MESSAGE:
		/* Tagged results belong in the message: give the DNS answers
		 * still on their way until the deadline to arrive. */
		if (s->id != NULL && !ident_settle(s->id)) {
			park(s, SRV_EV_MESSAGE);
			break;
		}
		deliver(s);
		break;
	case SRV_EV_STARTTLS:
		start_tls(s);
		break;
	case SRV_EV_CLOSE:
		close_after_flush(s);
		break;
	case SRV_EV_NONE:
		break;
	}
	if (!s->closing && s->srv->pending == SRV_EV_CLOSE)
		close_after_flush(s);
}

/* The first bytes (at most n, at most 64) of what the client has sent
 * and we have not read yet, sanitised for a log line, into out. */
static void
input_excerpt(struct session *s, size_t n, struct buf *out)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t k = evbuffer_get_length(in);
	if (k > n)
		k = n;
	if (k > 64)
		k = 64;
	unsigned char *p = k > 0 ? evbuffer_pullup(in, (ev_ssize_t)k) : NULL;
	if (p != NULL)
		log_sanitize(out, p, k, 64);
}

/* RFC 2920 §3.1: logged (once per session, with what followed) and
 * counted, not refused, as Postfix does: many clients send DATA and the
 * content together, while a spam engine that writes a whole transaction
 * without reading replies shows up here. in[0..n) is the input of the
 * feed() call that noticed it, still unreleased: what followed is taken
 * from there, because feed() has usually consumed it already (a NOOP
 * after a NOOP needs no decision), and the buffer held nothing more. */
static void
log_improper_pipelining(struct session *s, const char *in, size_t n)
{
	s->improper_logged = true;
	atomic_fetch_add(&s->w->d->stats.improper_pipelining, 1);
	struct buf b = BUF_INIT;
	size_t off = s->srv->improper_off < n ? s->srv->improper_off : n;
	log_sanitize(&b, (const unsigned char *)in + off, n - off < 64 ? n - off : 64, 64);
	char verb[16];
	snprintf(verb, sizeof verb, "%s", smtp_cmd_name(s->srv->improper_after));
	for (char *c = verb; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	log_info("%s improper command pipelining after %s from %s: %s", s->sid, verb,
	    s->client, buf_cstr(&b));
	buf_free(&b);
}

/*
 * After the input is drained: the read timeout for the phase (commands or
 * content), cut short to what is left of the request's deadline when the
 * client is part-way through a request (smtpd_per_request_deadline).
 * libevent restarts a read timeout with every read, so without the cut a
 * client that sends an octet every few minutes would hold its session,
 * and the server's memory for it, for ever. A deadline already passed
 * ends the session here as a timeout would.
 */
static void
arm_read_deadline(struct session *s)
{
	bool data = s->srv->state == SS_DATA || s->srv->state == SS_BDAT;
	long long per_read = read_timeout_ms(s, data);
	long long left = per_read;
	/* Not while busy or held back by unread replies (out_blocked): the
	 * rest of the request may be in the input buffer already, unread by
	 * us; the write timeout deals with a client that does not read. */
	if (s->cfg->smtpd_per_request_deadline && !s->busy && !s->out_blocked &&
	    smtp_server_mid_request(s->srv)) {
		left = req_time_left_ms(s, data);
		if (left <= 0) {
			session_timeout(s, BEV_EVENT_READING, true);
			return;
		}
	}
	if (left < per_read) {
		struct timeval rd = timeval_ms(left);
		put_timeouts(s, &rd);
		s->data_timeouts = data;
		s->rd_cut = true;
	} else if (s->rd_cut || data != s->data_timeouts) {
		set_timeouts(s, data);
		s->rd_cut = false;
	}
}

static void
process_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	if (s->rd_parked && !s->busy && !s->out_blocked && !s->closing) {
		s->rd_parked = false;
		bufferevent_enable(s->bev, EV_READ);
	}
	while (!s->busy && !s->closing && !s->in_handshake) {
		if (s->srv->out.len >= SESSION_OUTPUT_CHUNK)
			flush_out(s);
		if (bev_chain_output_length(s->bev) > SESSION_OUTPUT_HIGHWATER) {
			if (!s->out_blocked_seen) {
				s->out_blocked_seen = true;
				atomic_fetch_add(&s->w->d->stats.output_blocked, 1);
			}
			/* Plain: on_write resumes. TLS: on_drained (the filter's
			 * write callback says nothing about the socket's output). */
			if (s->tls_active && !s->out_blocked)
				bev_when_drained(&s->flush, s->bev, SESSION_OUTPUT_LOWWATER,
				    on_drained, s);
			s->out_blocked = true;
			break;
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		size_t used = 0;
		enum smtp_event ev = smtp_server_feed(s->srv, v.iov_base, v.iov_len, &used);
		if (s->srv->improper_pipelining && !s->improper_logged)
			log_improper_pipelining(s, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
		s->req_bytes = used > UINT32_MAX - s->req_bytes ? UINT32_MAX :
		    s->req_bytes + (uint32_t)used;
		if (s->srv->pending_cmd < CMD_COUNT)
			s->last_cmd = s->srv->pending_cmd;
		check_budget(s);
		if (ev != SRV_EV_NONE) {
			handle_event(s, ev);
			account_body(s);   /* deliver() moved the body to the spool */
		}
	}
	if (s->closing || s->in_handshake)
		return;
	/*
	 * libevent 2.1.12 runs a deferred read callback (the TLS filter's)
	 * again and again for as long as the input stays at the high mark with
	 * reading enabled (bufferevent_inbuf_wm_check): a TLS session waiting
	 * for DNS or for its client to read, with a full input, spun a core.
	 * So it turns reading off until it can go on; a plain socket
	 * bufferevent, without deferred callbacks, just stops reading.
	 */
	if (s->tls_active && !s->rd_parked && (s->busy || s->out_blocked) &&
	    evbuffer_get_length(in) >= SESSION_INPUT_HIGHWATER) {
		s->rd_parked = true;
		bufferevent_disable(s->bev, EV_READ);
	}
	/* RFC 2920 §3.2: the input is drained (or we wait): send what we have. */
	flush_out(s);
	arm_read_deadline(s);
}

/* ---- greeting and connection events ---- */

static void
send_greeting(struct session *s)
{
	s->greeted = true;
	smtp_server_greeting(s->srv);
	flush_out(s);
	process_input(s);   /* a pre-greeting talker's bytes, if logged only */
}

static void
pregreet(struct session *s, size_t n)
{
	struct daemon *d = s->w->d;
	if (!s->pregreet_logged) {
		struct buf b = BUF_INIT;
		input_excerpt(s, n, &b);
		log_info("%s PREGREET %zu bytes from %s: %s", s->sid, n, s->client, buf_cstr(&b));
		buf_free(&b);
		s->pregreet_logged = true;
		atomic_fetch_add(&d->stats.pregreet, 1);
	}
	if (s->cfg->smtpd_pregreet_action == PREGREET_REJECT) {
		/* RFC 5321 §4.2.2 / RFC 7504: 554 greeting; the client spoke
		 * before we did (an SMTP client must wait for the greeting). */
		evbuffer_drain(bufferevent_get_input(s->bev), n);
		buf_appendf(&s->srv->out, "554 5.5.1 %s Error: talked before greeting\r\n",
		    s->cfg->myhostname);
		s->greeted = true;
		close_after_flush(s);
	}
}

static void
on_greet_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (s->closing)
		return;
	send_greeting(s);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->pp != NULL) {
		if (!proxy_input(s) || s->pp != NULL)
			return;
		if (s->closing)
			return;
	}
	if (s->closing || s->in_handshake)
		return;
	if (!s->greeted) {
		pregreet(s, evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	process_input(s);
}

/* The output drained to the low mark (or below): resume commands that
 * output backpressure held back. */
static void
on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	(void)bev;
	if (!s->out_blocked || s->closing || s->tls_active)
		return;
	s->out_blocked = false;
	process_input(s);
}

/* TLS: the output of the whole chain drained to the low mark. */
static void
on_drained(void *arg)
{
	struct session *s = arg;
	s->out_blocked = false;
	process_input(s);
}

static const char *
lost_after(const struct session *s)
{
	switch (s->srv->state) {
	case SS_DATA: return "DATA";
	case SS_BDAT: return "BDAT";
	case SS_TLS:  return "STARTTLS";
	default: break;
	}
	if (s->last_cmd >= CMD_COUNT || s->srv->cmd_total[s->last_cmd] == 0)
		return "CONNECT";
	static const char *const up[CMD_COUNT] = {
		"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT",
		"RSET", "NOOP", "VRFY", "EXPN", "HELP", "QUIT", "UNKNOWN",
	};
	return up[s->last_cmd];
}

/*
 * The session's 421 for smtpd_hard_error_limit: one line, as Postfix's
 * "too many errors after RCPT from host[ip]" (fail2ban-style filters match
 * it), and a counter. It was the disconnect line alone, and no metric.
 */
static void
log_error_limit(struct session *s)
{
	if (!s->srv->error_limit_hit)
		return;
	s->srv->error_limit_hit = false;
	log_info("%s too many errors after %s from %s", s->sid, lost_after(s), s->client);
	atomic_fetch_add(&s->w->d->stats.error_limit_closes, 1);
}

/* The peer went away: count and log it unless the dialogue had ended. */
static void
note_lost(struct session *s)
{
	if (s->srv->state == SS_CLOSED)
		return;
	atomic_fetch_add(&s->w->d->stats.lost_connections, 1);
	log_info("%s lost connection after %s from %s", s->sid, lost_after(s), s->client);
}

/* A read or write timeout (what: BEV_EVENT_READING or _WRITING), or the
 * request's deadline: log, count, 421 4.4.2 and close (RFC 5321 §4.5.3.2). */
static void
session_timeout(struct session *s, short what, bool deadline)
{
	struct daemon *d = s->w->d;
	atomic_fetch_add(&d->stats.timeouts, 1);
	if (deadline) {
		atomic_fetch_add(&d->stats.deadline_timeouts, 1);
		log_info("%s timeout after %s from %s (request deadline: %lu octets in %lld ms)",
		    s->sid, lost_after(s), s->client, (unsigned long)s->req_bytes,
		    (long long)(mono_ms() - s->req_ms));
	} else {
		log_info("%s timeout after %s from %s%s", s->sid, lost_after(s), s->client,
		    (what & BEV_EVENT_WRITING) ? " (not reading replies)" : "");
	}
	if (s->busy || (what & BEV_EVENT_WRITING)) {
		/* A peer that does not read what we already sent will not
		 * read a 421 either: libevent has stopped writing, so a
		 * flush would wait for ever. */
		bev_flush_cancel(&s->flush);
		session_free(s);
		return;
	}
	smtp_server_shutdown(s->srv, "4.4.2", "Error: timeout exceeded");
	close_after_flush(s);
}

/* smtpd_per_request_deadline: the TLS handshake did not end in time. */
static void
on_hs_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	atomic_fetch_add(&s->w->d->stats.timeouts, 1);
	atomic_fetch_add(&s->w->d->stats.deadline_timeouts, 1);
	log_info("%s TLS handshake timeout from %s (deadline)", s->sid, s->client);
	bev_flush_cancel(&s->flush);
	session_free(s);
}

/* close_after_alert's bound: the peer did not take the alert in time. */
static void
on_alert_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	bev_flush_cancel(&s->flush);
	session_free(s);
}

/*
 * A failed handshake: OpenSSL has queued its fatal alert (handshake_failure,
 * protocol_version, ...) in the socket bufferevent, and RFC 8446 §6.2 and
 * RFC 5246 §7.2.2 want it sent before the connection closes; freeing the
 * session at once dropped it, so the client saw a bare EOF. Free once the
 * kernel has it, or after SESSION_ALERT_FLUSH_MS if the peer does not take
 * it (then it would not read it either). Nothing more is read meanwhile.
 */
static void
close_after_alert(struct session *s)
{
	s->closing = true;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_disable(bufferevent_get_underlying(s->bev), EV_READ);
	if (s->timer != NULL)
		event_free(s->timer);   /* the handshake's deadline */
	s->timer = evtimer_new(s->w->base, on_alert_timer, s);
	if (s->timer == NULL)
		abort();
	struct timeval tv = timeval_ms(SESSION_ALERT_FLUSH_MS);
	evtimer_add(s->timer, &tv);
	bev_when_flushed(&s->flush, s->bev, on_flushed, s);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	struct daemon *d = s->w->d;

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake finished (STARTTLS or implicit TLS). */
		s->in_handshake = false;
		if (s->timer != NULL) {
			event_free(s->timer);
			s->timer = NULL;
		}
		req_restart(s);
		s->tls_active = true;
		s->tlsinfo = xcalloc(1, sizeof *s->tlsinfo);
		tls_info_get(bev, s->tlsinfo);
		/* The write timeout on the socket bufferevent (put_timeouts). */
		struct timeval wr = timeval_ms(s->cfg->smtpd_timeout);
		bufferevent_set_timeouts(bufferevent_get_underlying(bev), NULL, &wr);
		atomic_fetch_add(&d->stats.tls_handshakes, 1);
		log_info("%s TLS established from %s: %s with cipher %s (%d/%d bits)%s%s%s%s%s",
		    s->sid, s->client, s->tlsinfo->version, s->tlsinfo->cipher, s->tlsinfo->bits,
		    s->tlsinfo->alg_bits, s->tlsinfo->sni[0] ? " sni=" : "", s->tlsinfo->sni,
		    s->tlsinfo->peer_fingerprint[0] ? " client_fingerprint=" : "",
		    s->tlsinfo->peer_fingerprint, s->tlsinfo->resumed ? " resumed" : "");
		set_timeouts(s, false);
		if (s->srv->state == SS_TLS) {
			smtp_server_tls_started(s->srv);
			/* RFC 3207 §4.2: the EHLO name from before TLS is gone. */
			if (s->id != NULL)
				ident_tls_reset(s->id);
			if (s->srv->pending == SRV_EV_CLOSE)
				close_after_flush(s);   /* shutting down: no transaction */
			else
				process_input(s);
		} else if (!s->greeted) {
			/* Implicit TLS: shutting down, the greeting is the 421. */
			if (s->w->stopping && smtp_server_stop(s->srv)) {
				s->greeted = true;
				close_after_flush(s);
			} else {
				send_greeting(s);
			}
		}
		return;
	}
	if (s->closing && !(what & BEV_EVENT_TIMEOUT)) {
		/* The peer went away while we flushed the last reply. */
		bev_flush_cancel(&s->flush);
		session_free(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->closing || s->in_handshake) {
			if (s->in_handshake) {
				atomic_fetch_add(&d->stats.timeouts, 1);
				log_info("%s TLS handshake timeout from %s", s->sid, s->client);
			}
			bev_flush_cancel(&s->flush);
			session_free(s);
			return;
		}
		if ((what & BEV_EVENT_READING) && (s->busy || (!s->rd_cut && resumed_lately(s)))) {
			/* Waiting for the spool or DNS is not the client's fault:
			 * its read timeout starts again (libevent disabled the read
			 * event when it fired). Also less than a timeout after
			 * resume(): the timer still counted from the command we
			 * were busy with, and the client is owed its full time
			 * from our reply (so at most twice smtpd_timeout). A
			 * parked TLS session reads again when it goes on. */
			if (!s->rd_parked)
				bufferevent_enable(s->bev, EV_READ);
			return;
		}
		session_timeout(s, what, s->rd_cut && (what & BEV_EVENT_READING));
		return;
	}
	if (s->in_handshake && (what & BEV_EVENT_ERROR)) {
		char reason[256];
		tls_error_reason(bev, reason, sizeof reason);
		atomic_fetch_add(&d->stats.tls_failures, 1);
		log_info("%s TLS handshake failed from %s: %s", s->sid, s->client, reason);
		close_after_alert(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && s->busy) {
		/* A half-close after pipelined commands (".", then QUIT): the
		 * replies are still owed. libevent stopped reading; resume()
		 * finishes the session once the pending decision is in. */
		s->peer_eof = true;
		return;
	}
	/* EOF or error. */
	note_lost(s);
	session_free(s);
}

/* ---- PROXY protocol (HAProxy's proxy-protocol.txt, v1 and v2) ---- */

#define PROXY_SNIFF_MS 250

static void session_start(struct session *s);

/* smtpd_client_connection_count_limit: is a client's n-th concurrent
 * session one too many? (0: no limit) */
static bool
over_client_limit(const struct ehlo_config *cfg, unsigned n)
{
	return cfg->smtpd_client_connection_count_limit > 0 &&
	    n > (unsigned long long)cfg->smtpd_client_connection_count_limit;
}

/* The 421 for a refused connection, its counter and its log line; the
 * caller sends the reply (line) and closes. */
static void
refuse_connection(struct daemon *d, const char *myhostname, const char *client,
    const char *why, struct buf *line)
{
	size_t off = line->len;
	buf_appendf(line, "421 4.7.0 %s Error: %s\r\n", myhostname, why);
	atomic_fetch_add(&d->stats.rejected_connections, 1);
	/* The reply as sent, as the other reject lines (reject()). */
	struct buf b = BUF_INIT;
	reply_line(line, off, &b);
	log_info("NOQUEUE: reject: CONNECT from %s: %s", client, buf_cstr(&b));
	buf_free(&b);
}

/*
 * A connection from a trusted proxy is counted for
 * smtpd_client_connection_count_limit only now, under the client the
 * header named (or the proxy's own address when it sent none): counting it
 * under the proxy at accept let the proxy's own count reach the limit and
 * refuse everyone behind it, and uncounting it under the client at the end
 * never gave that count back. Over the limit: 421 4.7.0 and close, as at
 * accept. Returns false if the session is closing.
 */
static bool
count_proxied_client(struct session *s)
{
	struct daemon *d = s->w->d;
	unsigned n = daemon_ip_add(d, (struct sockaddr *)&s->peer);
	s->counted_ip = true;
	if (!over_client_limit(s->cfg, n))
		return true;
	refuse_connection(d, s->cfg->myhostname, s->client,
	    "too many connections from your address", &s->srv->out);
	close_after_flush(s);
	return false;
}

static void
proxy_done(struct session *s)
{
	x_free(&s->pp);
	if (s->proxy_timer) {
		event_free(s->proxy_timer);
		s->proxy_timer = NULL;
	}
	if (count_proxied_client(s))
		session_start(s);
}

static void
on_proxy_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (!s->proxy_bytes) {
		/* Nothing came: a direct client of a trusted host. */
		proxy_done(s);
		return;
	}
	log_info("%s PROXY header timeout from %s", s->sid, s->client);
	atomic_fetch_add(&s->w->d->stats.proxy_errors, 1);
	session_free(s);
}

/* Feeds the input to the PROXY parser. Returns true if the session goes on
 * (header done or not a header); false if it was freed. */
static bool
proxy_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	while (s->pp != NULL) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return true;
		if (!s->proxy_bytes) {
			s->proxy_bytes = true;
			struct timeval tv = timeval_ms(s->cfg->smtpd_upstream_proxy_timeout);
			evtimer_add(s->proxy_timer, &tv);
		}
		size_t used = 0;
		struct proxy_header h;
		enum proxy_status st = proxy_feed(s->pp, v.iov_base, v.iov_len, &used, &h);
		switch (st) {
		case PROXY_NEED_MORE:
			evbuffer_drain(in, used);
			break;
		case PROXY_DONE:
			evbuffer_drain(in, used);
			if (!h.local && (h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6)) {
				s->peerlen = sockaddr_len((struct sockaddr *)&h.src);
				memcpy(&s->peer, &h.src, s->peerlen);
				memcpy(&s->local, &h.dst, sizeof s->local);   /* same family */
				s->port = sockaddr_text((struct sockaddr *)&h.src, s->ip);
				set_client(s, "unknown");
			}
			log_info("%s PROXY v%d from %s: client=%s:%u%s", s->sid, h.version,
			    s->proxy_ip, s->client, s->port, h.local ? " (local)" : "");
			proxy_done(s);
			return true;
		case PROXY_NOT_PROXY: {
			/* Not a header: give the absorbed bytes back to SMTP. */
			size_t n = 0;
			const uint8_t *r = proxy_replay(s->pp, &n);
			evbuffer_drain(in, used);
			if (n > 0)
				evbuffer_prepend(in, r, n);
			proxy_done(s);
			return true;
		}
		case PROXY_ERROR:
			log_info("%s PROXY header error from %s: %s", s->sid, s->client,
			    proxy_error(s->pp));
			atomic_fetch_add(&s->w->d->stats.proxy_errors, 1);
			session_free(s);
			return false;
		}
	}
	return true;
}

/* ---- accept ---- */

static void
reject_connection(struct worker *w, int fd, const char *client, const char *why)
{
	struct daemon *d = w->d;
	struct buf line = BUF_INIT;
	struct gen *g = daemon_gen(d);
	refuse_connection(d, g->cfg->myhostname, client, why, &line);
	gen_unref(&g);
	/* Best effort, non-blocking: the reply fits in an empty socket buffer. */
	if (write(fd, line.data, line.len) < 0) {
		/* nothing to do: the peer is gone */
	}
	close(fd);
	buf_free(&line);
}

void
session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
               const struct listener_def *l)
{
	struct daemon *d = w->d;
	char ip[INET6_ADDRSTRLEN];
	unsigned port = sockaddr_text(sa, ip);
	char client[300];
	snprintf(client, sizeof client, "unknown[%s]", ip);

	struct gen *g = daemon_gen(d);
	const struct ehlo_config *cfg = g->cfg;
	long long active = atomic_load(&d->stats.sessions_active);
	if (w->stopping || active >= cfg->smtpd_max_connections) {
		gen_unref(&g);
		reject_connection(w, fd, client, w->stopping ? "service shutting down" :
		    "too many connections");
		return;
	}
	/* A trusted proxy's connections are counted once the PROXY header
	 * names the client (count_proxied_client). */
	bool via_proxy = g->proxy_hosts.n > 0 && cidr_list_match(&g->proxy_hosts, sa);
	if (!via_proxy) {
		if (over_client_limit(cfg, daemon_ip_add(d, sa))) {
			daemon_ip_del(d, sa);
			gen_unref(&g);
			reject_connection(w, fd, client, "too many connections from your address");
			return;
		}
	}

	if (salen > sizeof(union inet_addr))
		salen = sizeof(union inet_addr);    /* TCP: never; see inet_addr */
	struct session *s = xcalloc(1, sizeof *s);
	s->w = w;
	s->g = g;
	s->cfg = cfg;
	s->counted_ip = !via_proxy;
	s->listener = l;
	memcpy(&s->peer, sa, salen);
	s->peerlen = salen;
	snprintf(s->ip, sizeof s->ip, "%s", ip);
	s->port = port;
	set_client(s, "unknown");
	s->last_cmd = CMD_COUNT;
	/* Session id: worker index, then a per-worker counter (unique per run). */
	snprintf(s->sid, sizeof s->sid, "%02X%014llX", (unsigned)w->index & 0xff,
	    (unsigned long long)(++w->next_sid & 0xffffffffffffffULL));

	struct smtp_server_opts o = {
		.hostname = cfg->myhostname,
		.greeting = g->greeting,
		.ext = g->ext,
		.max_size = effective_size_limit(cfg),
		.max_rcpt = (unsigned)cfg->smtpd_recipient_limit,
		.hard_error_limit = (unsigned)cfg->smtpd_hard_error_limit,
		.junk_command_limit = (unsigned)cfg->smtpd_junk_command_limit,
		.recipient_overshoot_limit = (unsigned)cfg->smtpd_recipient_overshoot_limit,
		.bare = cfg->smtpd_forbid_bare_newline == BARE_NL_NORMALIZE ?
		    DATA_BARE_NORMALIZE : DATA_BARE_REJECT,
		.reject_long_lines = cfg->smtpd_reject_long_lines,
		.tls_available = g->tls != NULL && l->kind != LISTEN_SUBMISSIONS,
		.tls_required = cfg->smtpd_tls_security_level == TLS_LEVEL_ENCRYPT,
		.tls_active = l->kind == LISTEN_SUBMISSIONS,
	};
	s->srv = smtp_server_new(&o);

	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	w->nsessions++;
	atomic_fetch_add(&d->stats.connects, 1);
	atomic_fetch_add(&d->stats.sessions_active, 1);

	log_info("%s connect from %s:%u to %s", s->sid, s->client, port, l->name);

	/* The local address: the listener's own when it is bound to one
	 * address and port (no system call per connection), else asked. */
	if (!listener_is_wildcard(l)) {
		memcpy(&s->local, &l->ss, sizeof s->local);
	} else {
		socklen_t llen = sizeof s->local;
		if (getsockname(fd, (struct sockaddr *)&s->local, &llen) != 0)
			memset(&s->local, 0, sizeof s->local);
	}

	/* evconnlistener accepted it with SOCK_NONBLOCK (accept4). */
	s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	set_callbacks(s);
	set_timeouts(s, false);

	if (via_proxy) {
		/* A trusted proxy may send a PROXY header first; a direct client
		 * (same listener) sends nothing before our greeting. Wait a
		 * moment for the first bytes (see net/proxy.h). */
		s->pp = xcalloc(1, sizeof *s->pp);
		proxy_init(s->pp);
		snprintf(s->proxy_ip, sizeof s->proxy_ip, "%s", ip);
		s->proxy_timer = evtimer_new(w->base, on_proxy_timer, s);
		struct timeval tv = timeval_ms(PROXY_SNIFF_MS);
		evtimer_add(s->proxy_timer, &tv);
		bufferevent_enable(s->bev, EV_READ);   /* EV_WRITE: see flush_out */
		return;
	}
	session_start(s);
}

/* The client's real address is known (directly or from PROXY): start the
 * identity work and the SMTP dialogue. */
static void
session_start(struct session *s)
{
	struct worker *w = s->w;
	struct gen *g = s->g;
	const struct ehlo_config *cfg = s->cfg;
	const struct listener_def *l = s->listener;
	int fd = bufferevent_getfd(s->bev);
	/* The PTR lookup starts now; the greeting does not wait for it. */
	s->id = ident_new(&g->ienv, w->dns, w->base, (struct sockaddr *)&s->peer,
	    s->local.sa.sa_family ? &s->local.sa : NULL, on_ident_ready, s);

	if (l->kind == LISTEN_SUBMISSIONS) {
		if (g->tls == NULL) {
			log_warn("%s implicit-TLS listener %s has no certificate: closing", s->sid, l->name);
			session_free(s);
			return;
		}
		/* RFC 8314 §3: TLS first, the greeting inside it. */
		begin_handshake(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);   /* EV_WRITE: see flush_out */
	if (cfg->smtpd_greet_pause > 0) {
		s->timer = evtimer_new(w->base, on_greet_timer, s);
		struct timeval tv = timeval_ms(cfg->smtpd_greet_pause);
		evtimer_add(s->timer, &tv);
		return;
	}
	/*
	 * No pause: still notice a client whose bytes beat our greeting. They
	 * are in the socket, not yet in the input buffer (nothing has been
	 * read), so take them in first: pregreet() logs from the buffer, and
	 * with an empty one it got NULL and crashed ehlod (SIGSEGV) for any
	 * client that spoke as soon as it connected. After PROXY, bytes that
	 * came with the header are in the buffer already.
	 */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	int pending = 0;
	if (ioctl(fd, FIONREAD, &pending) == 0 && pending > 0) {
		/* The bufferevent keeps its input's end frozen between its own
		 * reads; read the way it does. */
		evbuffer_unfreeze(in, 0);
		(void)evbuffer_read(in, fd, pending < SESSION_INPUT_HIGHWATER ? pending :
		    SESSION_INPUT_HIGHWATER);
		evbuffer_freeze(in, 0);
	}
	size_t early = evbuffer_get_length(in);
	if (early > 0) {
		pregreet(s, early);
		if (s->closing)
			return;
	}
	send_greeting(s);
}

/*
 * SIGTERM: a session with no transaction open gets 421 4.3.2 now (RFC 5321
 * §3.8); one with a transaction open (MAIL accepted, the message not yet
 * finished) may finish it, however far it is (RCPT, DATA or BDAT content,
 * or waiting for the spool or DNS), and gets the 421 right after the
 * reply that ends it (smtp_server_stop). Before, only sessions inside
 * DATA or BDAT content were spared: a client between RCPT and DATA, or
 * between two BDAT chunks, lost its transaction. A session in a TLS
 * handshake is told once it is over (on_event). What is left at
 * smtpd_shutdown_timeout is cut (session_cut_all).
 */
void
session_stop_all(struct worker *w)
{
	struct session *s = w->sessions;
	while (s != NULL) {
		struct session *next = s->next;
		/* An implicit-TLS handshake has no machine state to mark yet: its
		 * greeting, after the handshake, is the 421. */
		if (!s->closing && !(s->in_handshake && !s->greeted) && smtp_server_stop(s->srv))
			close_after_flush(s);
		s = next;
	}
}

/*
 * The shutdown deadline: every session still reading a command or message
 * gets 421 4.3.2 (RFC 5321 §3.8: a server shutting down SHOULD say so,
 * and a client cut off in DATA otherwise sees only a dropped connection)
 * and is closed once that is flushed. A session waiting for the spool or
 * DNS, or in a TLS handshake, is closed at once: no reply can be queued
 * before its pending one. The worker gives the flushes a moment, then
 * frees what is left (session_free_all).
 */
void
session_cut_all(struct worker *w)
{
	struct session *s = w->sessions;
	while (s != NULL) {
		struct session *next = s->next;
		if (!s->closing) {
			log_info("%s closing at shutdown deadline (state %s)", s->sid,
			    smtp_state_name(s->srv->state));
			if (s->busy || s->in_handshake || s->srv->state == SS_TLS) {
				session_free(s);
			} else {
				smtp_server_shutdown(s->srv, "4.3.2", "Service shutting down");
				close_after_flush(s);
			}
		}
		s = next;
	}
}

void
session_free_all(struct worker *w)
{
	while (w->sessions != NULL) {
		struct session *s = w->sessions;
		log_info("%s closing at shutdown deadline (state %s%s)", s->sid,
		    smtp_state_name(s->srv->state), s->closing ? ", reply not flushed" : "");
		session_free(s);
	}
}
