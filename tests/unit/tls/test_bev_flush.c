/*
 * bev_when_flushed(): close-after-flush over a plain socket bufferevent and
 * over the TLS filter (STACK.md trap #1). The callback must fire exactly
 * once, only when the socket's output buffer is empty, never inside the
 * arming call, and never after bev_flush_cancel(). bev_when_drained(), the
 * same with a threshold (TLS output flow control), fires once at most that
 * much is left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/evp.h>

#include "harness.h"
#include "lib/xmalloc.h"

#define BULK (1024 * 1024)

static char *dir, *crt, *key;

static int
group_setup(void **state)
{
	dir = th_tmpdir();
	th_certgen(dir, "ec", "flush.test", EVP_PKEY_EC, &crt, &key);
	return 0;
}

static int
group_teardown(void **state)
{
	th_rmdir(dir);
	free(dir);
	free(crt);
	free(key);
	return 0;
}

struct fired {
	int count;
	size_t out_at_fire;     /* sum of output lengths down the chain */
	struct bufferevent *bev;
	struct event_base *base;
	bool free_bev;
	struct bufferevent **clear;     /* the owner's pointer, cleared on free */
};

static size_t
chain_output(struct bufferevent *b)
{
	size_t n = 0;

	for (; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

static void
on_flushed(void *arg)
{
	struct fired *f = arg;

	f->count++;
	f->out_at_fire = chain_output(f->bev);
	if (f->free_bev) {
		bufferevent_free(f->bev);
		f->bev = NULL;
		if (f->clear != NULL)
			*f->clear = NULL;
		event_base_loopbreak(f->base);
	}
}

static void
write_bulk(struct bufferevent *bev)
{
	static char chunk[16384];
	size_t i;

	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < BULK / sizeof(chunk); i++)
		assert_int_equal(bufferevent_write(bev, chunk, sizeof(chunk)), 0);
}

struct reader {
	int fd;
	int delay_ms;
	size_t got;
};

static void *
reader_main(void *p)
{
	struct reader *r = p;
	char buf[65536];
	ssize_t n;

	usleep((useconds_t)r->delay_ms * 1000);
	while ((n = read(r->fd, buf, sizeof(buf))) > 0)
		r->got += (size_t)n;
	return NULL;
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void
run_for(struct event_base *base, int ms)
{
	/* tv_usec must stay below 1,000,000: { 0, 1500000 } made libevent wait
	 * for 35 minutes now and then. */
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = evtimer_new(base, stop_cb, base);

	evtimer_add(ev, &tv);
	event_base_dispatch(base);
	event_free(ev);
}

static struct bufferevent *
plain_pair(struct event_base *base, int *peer)
{
	int sv[2];
	struct bufferevent *bev;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	assert_non_null(bev);
	bufferevent_enable(bev, EV_WRITE);
	*peer = sv[1];
	return bev;
}

/*
 * Joins the reader while running the loop: bufferevent_free() closes the
 * socket from a deferred finalizer, which may need more than one loop pass
 * on a loaded machine; a single EVLOOP_NONBLOCK pass left the reader
 * blocked in read() forever. Bounded: fails after 10 s.
 */
static void
join_reader(struct event_base *base, pthread_t th)
{
	for (int i = 0; i < 200; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(th, NULL, &ts) == 0)
			return;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	fail_msg("reader thread did not see EOF within 10 s");
}

static void
test_plain_fires_once(void **state)
{
	struct event_base *base = event_base_new();
	struct bev_flush w = { 0 };
	struct fired f = { 0 };
	struct reader r = { .delay_ms = 100 };
	pthread_t th;

	f.bev = plain_pair(base, &r.fd);
	f.base = base;
	write_bulk(f.bev);
	bev_when_flushed(&w, f.bev, on_flushed, &f);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	run_for(base, 1500);
	assert_int_equal(f.count, 1);
	assert_int_equal(f.out_at_fire, 0);
	/* More output without re-arming: no second call. */
	bufferevent_write(f.bev, "more\r\n", 6);
	run_for(base, 100);
	assert_int_equal(f.count, 1);
	bev_flush_cancel(&w);           /* no-op after firing */
	bufferevent_free(f.bev);
	join_reader(base, th);          /* runs the closing finalizer */
	close(r.fd);
	assert_int_equal(r.got, BULK + 6);
	event_base_free(base);
}

static void
test_already_flushed_is_deferred(void **state)
{
	struct event_base *base = event_base_new();
	struct bev_flush w = { 0 };
	struct fired f = { 0 };
	int peer;

	f.bev = plain_pair(base, &peer);
	bev_when_flushed(&w, f.bev, on_flushed, &f);
	assert_int_equal(f.count, 0);   /* never from inside the call */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(f.count, 1);
	run_for(base, 50);
	assert_int_equal(f.count, 1);
	bufferevent_free(f.bev);
	close(peer);
	event_base_free(base);
}

static void
test_cancel_and_rearm(void **state)
{
	struct event_base *base = event_base_new();
	struct bev_flush w = { 0 };
	struct fired f1 = { 0 }, f2 = { 0 };
	struct reader r = { .delay_ms = 50 };
	pthread_t th;

	/* Cancelled while output is pending (nobody reads): never fires. */
	f1.bev = plain_pair(base, &r.fd);
	write_bulk(f1.bev);
	bev_when_flushed(&w, f1.bev, on_flushed, &f1);
	run_for(base, 50);
	bev_flush_cancel(&w);
	bev_flush_cancel(&w);
	/* Re-arming replaces the earlier request. */
	bev_when_flushed(&w, f1.bev, on_flushed, &f1);
	f2.bev = f1.bev;
	bev_when_flushed(&w, f1.bev, on_flushed, &f2);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	run_for(base, 1500);
	assert_int_equal(f1.count, 0);
	assert_int_equal(f2.count, 1);

	/* Armed, then the connection is torn down: cancel, free, nothing leaks. */
	write_bulk(f1.bev);
	bev_when_flushed(&w, f1.bev, on_flushed, &f1);
	bev_flush_cancel(&w);
	bufferevent_free(f1.bev);
	run_for(base, 50);              /* also runs the closing finalizer */
	assert_int_equal(f1.count, 0);
	join_reader(base, th);
	close(r.fd);
	event_base_free(base);
}

/* bev_when_drained(): fires once, when at most the limit is left. */
static void
test_drained_at_limit(void **state)
{
	struct event_base *base = event_base_new();
	struct bev_flush w = { 0 };
	struct fired f = { 0 };
	struct reader r = { .delay_ms = 100 };
	pthread_t th;
	const size_t limit = 64 * 1024;

	f.bev = plain_pair(base, &r.fd);
	f.base = base;
	write_bulk(f.bev);
	assert_true(bev_chain_output_length(f.bev) > limit);
	bev_when_drained(&w, f.bev, limit, on_flushed, &f);
	assert_int_equal(f.count, 0);
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	run_for(base, 1500);
	assert_int_equal(f.count, 1);
	assert_true(f.out_at_fire <= limit);
	/* Below the limit already: fires from the loop, not from the call. */
	bev_when_drained(&w, f.bev, limit, on_flushed, &f);
	assert_int_equal(f.count, 1);
	run_for(base, 50);
	assert_int_equal(f.count, 2);
	bufferevent_free(f.bev);
	join_reader(base, th);
	close(r.fd);
	assert_int_equal(r.got, BULK);
	event_base_free(base);
}

/* Server side of the TLS case: reply, bulk, then close once flushed. */
static struct bev_flush tls_w;
static struct fired tls_f;
static size_t tls_socket_pending;

static void
tls_connected(struct bufferevent *bev, struct th_server_result *sr)
{
	bufferevent_write(bev, "220 hi\r\n", 8);
	write_bulk(bev);
	/*
	 * The trap: the filter's own output is already empty (its write
	 * callback would say "done") while the socket still holds most of it.
	 */
	tls_socket_pending = evbuffer_get_length(bufferevent_get_output(
	    bufferevent_get_underlying(bev)));
	assert_int_equal(evbuffer_get_length(bufferevent_get_output(bev)), 0);
	tls_f.bev = bev;
	tls_f.base = sr->base;
	tls_f.free_bev = true;
	tls_f.clear = &sr->bev;
	bev_when_flushed(&tls_w, bev, on_flushed, &tls_f);
}

static void
test_tls_close_after_flush(void **state)
{
	const char *certs[] = { crt }, *keys[] = { key };
	struct tls_server_opts o = { .cert_files = certs, .key_files = keys, .ncerts = 1 };
	struct buf err = BUF_INIT;
	struct tls_server *t = tls_server_new(&o, &err);
	struct th_client co = { .expect_bytes = BULK, .slow_ms = 200 };
	struct th_client_result cr;
	struct th_server_result sr = { .on_connected = tls_connected };

	assert_non_null(t);
	th_run(&t, true, &co, &cr, &sr);
	assert_true(cr.handshake_ok);
	assert_string_equal(cr.greeting, "220 hi\r\n");
	assert_true(tls_socket_pending > 0);
	assert_int_equal(tls_f.count, 1);
	assert_int_equal(tls_f.out_at_fire, 0);
	assert_null(tls_f.bev);
	/* Every byte arrived before the close. */
	assert_int_equal(cr.bulk_read, BULK);
	assert_true(cr.eof_after_bulk);
	SSL_SESSION_free(cr.session);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_fires_once),
		cmocka_unit_test(test_already_flushed_is_deferred),
		cmocka_unit_test(test_cancel_and_rearm),
		cmocka_unit_test(test_drained_at_limit),
		cmocka_unit_test(test_tls_close_after_flush),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
