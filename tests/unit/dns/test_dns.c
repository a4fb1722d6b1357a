/*
 * lib_dns against the test resolver (tests/dns/unbound.conf.in), started
 * on a free loopback port for this test program and stopped by PID at the
 * end. Never touches the system resolver: every struct dns here forwards to
 * that unbound only. Skipped when /usr/sbin/unbound is not installed.
 *
 * Upstream queries are counted in the resolver's own log (log-queries), so
 * "served from the cache" is checked from the outside as well as through
 * dns_result.cached and dns_stats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/buf.h"

#ifndef EHLO_SRCDIR
#error "EHLO_SRCDIR must be defined by the build"
#endif

static char tmpdir[] = "/tmp/ehlo-dns-test-XXXXXX";
static char fwd[64];
static bool have_unbound;

struct got {
	int      calls;
	struct dns_result r;        /* scalars copied */
	char     names[DNS_MAX_RECORDS][DNS_NAME_MAX + 1];
	char     addrs[DNS_MAX_RECORDS][INET6_ADDRSTRLEN];
	unsigned prefs[DNS_MAX_RECORDS];
	long long at_ms;
	/* cross-query actions performed inside the callback */
	struct dns_query **cancel_other;
	struct dns **free_dns;
};

static bool in_lookup_call;     /* set while a dns_lookup_* call runs */

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_result(const struct dns_result *r, void *arg)
{
	struct got *g = arg;

	assert_false(in_lookup_call);   /* never called back inline */
	g->calls++;
	g->r = *r;
	g->r.rr = NULL;
	g->at_ms = mono_ms();
	for (size_t i = 0; i < r->n; i++) {
		g->names[i][0] = g->addrs[i][0] = '\0';
		if (r->rr[i].name != NULL)
			snprintf(g->names[i], sizeof g->names[i], "%s", r->rr[i].name);
		g->prefs[i] = r->rr[i].pref;
		if (r->rr[i].addr.ss_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)&r->rr[i].addr)->sin_addr,
			    g->addrs[i], sizeof g->addrs[i]);
		else if (r->rr[i].addr.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&r->rr[i].addr)->sin6_addr,
			    g->addrs[i], sizeof g->addrs[i]);
	}
	if (g->cancel_other != NULL)
		dns_cancel(g->cancel_other);
	if (g->free_dns != NULL)
		dns_free(g->free_dns);
}

static int
start_resolver(void **state)
{
	char cmd[512];
	char line[128];

	if (access("/usr/sbin/unbound", X_OK) != 0)
		return 0;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(cmd, sizeof cmd, "%s/tests/dns/unbound-test.sh start %s",
	    EHLO_SRCDIR, tmpdir);
	FILE *p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	unsigned port = 0;
	while (fgets(line, sizeof line, p) != NULL)
		if (strncmp(line, "PORT=", 5) == 0)
			port = (unsigned)atoi(line + 5);
	if (pclose(p) != 0 || port == 0)
		return -1;
	snprintf(fwd, sizeof fwd, "127.0.0.1@%u", port);
	have_unbound = true;
	return 0;
}

static int
stop_resolver(void **state)
{
	char cmd[512];

	if (!have_unbound)
		return 0;
	snprintf(cmd, sizeof cmd, "%s/tests/dns/unbound-test.sh stop %s; rm -rf %s",
	    EHLO_SRCDIR, tmpdir, tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

struct fixture {
	struct event_base *base;
	struct dns *dns;
};

static struct dns *
new_dns(struct event_base *base, long long timeout_ms, bool no_cache)
{
	const char *fw[] = { fwd };
	struct dns_opts o = { .forwarders = fw, .nforwarders = 1,
	    .timeout_ms = timeout_ms, .no_cache = no_cache };
	struct buf err = BUF_INIT;
	struct dns *d = dns_new(base, &o, &err);
	if (d == NULL)
		fail_msg("dns_new: %s", buf_cstr(&err));
	buf_free(&err);
	return d;
}

static int
setup(void **state)
{
	if (!have_unbound)
		return 0;
	struct fixture *f = calloc(1, sizeof *f);
	f->base = event_base_new();
	f->dns = new_dns(f->base, 500, false);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	if (f == NULL)
		return 0;
	dns_free(&f->dns);
	event_base_free(f->base);
	free(f);
	return 0;
}

#define NEED_UNBOUND() do { if (!have_unbound) skip(); } while (0)

static void
loop_break(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop until every counter in gs reached want or max_ms passed. */
static void
run_until(struct event_base *base, struct got **gs, size_t n, int want,
    int max_ms)
{
	long long end = mono_ms() + max_ms;
	struct timeval tick = { 0, 20000 };
	struct event *t = evtimer_new(base, loop_break, base);

	for (;;) {
		bool done = true;
		for (size_t i = 0; i < n; i++)
			if (gs[i]->calls < want)
				done = false;
		if (done || mono_ms() >= end)
			break;
		evtimer_add(t, &tick);
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
}

/* Run the loop for ms, whatever happens. */
static void
run_for(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, loop_break, base);
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

static struct sockaddr_storage
ip(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
	}
	return ss;
}

static struct dns_query *
ptr(struct dns *d, const char *addr, struct got *g)
{
	struct sockaddr_storage ss = ip(addr);
	in_lookup_call = true;
	struct dns_query *q = dns_lookup_ptr(d, (struct sockaddr *)&ss, on_result, g);
	in_lookup_call = false;
	return q;
}

static struct dns_query *
addr(struct dns *d, const char *name, struct got *g)
{
	in_lookup_call = true;
	struct dns_query *q = dns_lookup_addr(d, name, on_result, g);
	in_lookup_call = false;
	return q;
}

/* One lookup to completion. */
static void
ptr1(struct fixture *f, const char *a, struct got *g)
{
	struct got *gs[] = { g };
	(void)ptr(f->dns, a, g);
	run_until(f->base, gs, 1, 1, 5000);
	assert_int_equal(g->calls, 1);
}

/* Lines in the resolver's log recording a query (not a reply) for qname. */
static int
upstream_queries(const char *qname, const char *type)
{
	char path[256], line[1024], want[300];
	int n = 0;

	snprintf(path, sizeof path, "%s/unbound.log", tmpdir);
	snprintf(want, sizeof want, " %s %s IN\n", qname, type);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof line, fp) != NULL) {
		size_t ll = strlen(line), wl = strlen(want);
		if (ll >= wl && strcmp(line + ll - wl, want) == 0)
			n++;
	}
	fclose(fp);
	return n;
}

/* Reply sizes logged for qname (log-replies: "... NOERROR 0.000 0 SIZE"). */
static int
reply_sizes(const char *qname, int *sizes, int max)
{
	char path[256], line[1024], key[300];
	int n = 0;

	snprintf(path, sizeof path, "%s/unbound.log", tmpdir);
	snprintf(key, sizeof key, " %s PTR IN NOERROR ", qname);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof line, fp) != NULL && n < max) {
		if (strstr(line, key) == NULL)
			continue;
		char *sp = strrchr(line, ' ');
		sizes[n++] = atoi(sp + 1);
	}
	fclose(fp);
	return n;
}

static void
test_ptr_good(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 };

	ptr1(f, "127.0.0.2", &g);
	assert_int_equal(g.r.status, DNS_OK);
	assert_int_equal(g.r.n, 1);
	assert_string_equal(g.names[0], "mx.good.test");
	assert_false(g.r.cached);
	assert_false(g.r.secure);
	assert_true(g.r.ttl > 0);
}

static void
test_ptr_ipv6_and_mapped(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 }, h = { 0 };

	ptr1(f, "fd00::2", &g);
	assert_int_equal(g.r.status, DNS_OK);
	assert_string_equal(g.names[0], "mx.good.test");
	ptr1(f, "::ffff:127.0.0.3", &h);    /* looked up as 127.0.0.3 */
	assert_int_equal(h.r.status, DNS_OK);
	assert_string_equal(h.names[0], "liar.bad.test");
}

static void
test_ptr_multi_cname_hostile(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got m = { 0 }, c = { 0 }, e = { 0 };

	ptr1(f, "127.0.0.11", &m);
	assert_int_equal(m.r.status, DNS_OK);
	assert_int_equal(m.r.n, 2);
	assert_true((strcmp(m.names[0], "multi.good.test") == 0 &&
	    strcmp(m.names[1], "liar2.bad.test") == 0) ||
	    (strcmp(m.names[1], "multi.good.test") == 0 &&
	    strcmp(m.names[0], "liar2.bad.test") == 0));
	/* RFC 2317 style CNAME: libunbound follows it, we take the PTR. */
	ptr1(f, "127.0.0.15", &c);
	assert_int_equal(c.r.status, DNS_OK);
	assert_int_equal(c.r.n, 1);
	assert_string_equal(c.names[0], "mx15.good.test");
	/* "evil\032name\010.bad.test": a space and a control byte. */
	ptr1(f, "127.0.0.13", &e);
	assert_int_equal(e.r.status, DNS_OK);
	assert_int_equal(e.r.n, 0);
	assert_int_equal(e.r.ninvalid, 1);
}

static void
test_nxdomain(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 }, h = { 0 };

	ptr1(f, "127.0.0.8", &g);
	assert_int_equal(g.r.status, DNS_NXDOMAIN);
	assert_int_equal(g.r.n, 0);
	assert_int_equal(g.r.ttl, 30);     /* the SOA MINIMUM (RFC 2308) */
	/* Negative answers are cached too. */
	int before = upstream_queries("8.0.0.127.in-addr.arpa.", "PTR");
	ptr1(f, "127.0.0.8", &h);
	assert_int_equal(h.r.status, DNS_NXDOMAIN);
	assert_true(h.r.cached);
	assert_int_equal(upstream_queries("8.0.0.127.in-addr.arpa.", "PTR"), before);
}

static void
test_servfail_fast(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 };

	long long t0 = mono_ms();
	ptr1(f, "127.0.0.6", &g);
	assert_int_equal(g.r.status, DNS_SERVFAIL);
	assert_true(g.at_ms - t0 < 400);    /* not the 500 ms deadline */
}

static void
test_timeout_deadline(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 };

	long long t0 = mono_ms();
	ptr1(f, "127.0.0.7", &g);
	long long took = g.at_ms - t0;
	assert_int_equal(g.r.status, DNS_TIMEOUT);
	if (took < 480 || took > 900)
		fail_msg("timeout after %lld ms, deadline 500", took);
	struct dns_stats st;
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.timeouts, 1);
}

static void
test_truncated_tcp(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 };
	int sizes[8];

	ptr1(f, "127.0.0.9", &g);
	assert_int_equal(g.r.status, DNS_OK);
	assert_int_equal(g.r.n, 12);
	for (int i = 0; i < 12; i++) {
		char want[16];
		snprintf(want, sizeof want, "h%02d-", i);
		bool found = false;
		for (int j = 0; j < 12; j++)
			if (strncmp(g.names[j], want, 4) == 0) {
				assert_int_equal(strlen(g.names[j]), 4 + 50 + 1 + 4 + 50 + 9);
				found = true;
			}
		assert_true(found);
	}
	/* The resolver saw a truncated UDP reply, then the full one (TCP). */
	int n = reply_sizes("9.0.0.127.in-addr.arpa.", sizes, 8);
	assert_int_equal(n, 2);
	assert_true(sizes[0] < 100);
	assert_true(sizes[1] > 1232);
}

static void
test_cache_hit_and_ttl(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct dns_stats s0, s1;

	ptr1(f, "127.0.0.14", &a);     /* TTL 1 s */
	assert_int_equal(a.r.status, DNS_OK);
	assert_false(a.r.cached);
	assert_int_equal(a.r.ttl, 1);
	assert_int_equal(upstream_queries("14.0.0.127.in-addr.arpa.", "PTR"), 1);

	dns_get_stats(f->dns, &s0);
	long long t0 = mono_ms();
	ptr1(f, "127.0.0.14", &b);
	assert_true(b.r.cached);
	assert_true(b.at_ms - t0 < 50);
	assert_string_equal(b.names[0], "ttl1.good.test");
	dns_get_stats(f->dns, &s1);
	assert_int_equal(s1.upstream, s0.upstream);
	assert_int_equal(s1.cache_hits, s0.cache_hits + 1);
	assert_int_equal(upstream_queries("14.0.0.127.in-addr.arpa.", "PTR"), 1);

	/* Past the TTL our cache no longer answers... */
	run_for(f->base, 1100);
	ptr1(f, "127.0.0.14", &c);
	assert_int_equal(c.r.status, DNS_OK);
	assert_false(c.r.cached);
	/* ...and once libunbound's own cache (whole seconds: a 1 s record
	 * goes when now > stored + 1) has let go too, the resolver is asked. */
	run_for(f->base, 1100);
	ptr1(f, "127.0.0.14", &d);
	assert_int_equal(d.r.status, DNS_OK);
	assert_false(d.r.cached);
	assert_int_equal(upstream_queries("14.0.0.127.in-addr.arpa.", "PTR"), 2);
}

static void
test_coalesce(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got a = { 0 }, b = { 0 };
	struct got *gs[] = { &a, &b };

	(void)ptr(f->dns, "127.0.0.10", &a);
	(void)ptr(f->dns, "127.0.0.10", &b);
	run_until(f->base, gs, 2, 1, 5000);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_string_equal(a.names[0], "helo.good.test");
	assert_string_equal(b.names[0], "helo.good.test");
	assert_false(b.r.cached);
	struct dns_stats st;
	dns_get_stats(f->dns, &st);
	assert_int_equal(st.coalesced, 1);
	assert_int_equal(st.upstream, 1);
	assert_int_equal(upstream_queries("10.0.0.127.in-addr.arpa.", "PTR"), 1);
}

static void
test_cancel(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got a = { 0 }, b = { 0 }, c = { 0 }, warm = { 0 };
	struct got *gs[] = { &c };

	/* Pending upstream lookup, cancelled. */
	struct dns_query *qa = ptr(f->dns, "127.0.0.3", &a);
	dns_cancel(&qa);
	assert_null(qa);
	dns_cancel(&qa);                /* NULL is ignored */
	/* Cache hit, cancelled before its deferred delivery. */
	ptr1(f, "127.0.0.2", &warm);
	struct dns_query *qb = ptr(f->dns, "127.0.0.2", &b);
	dns_cancel(&qb);
	(void)ptr(f->dns, "127.0.0.4", &c);
	run_until(f->base, gs, 1, 1, 5000);
	run_for(f->base, 100);
	assert_int_equal(c.calls, 1);
	assert_string_equal(c.names[0], "127-0-0-4.dyn.isp.test");
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);
}

/* A callback cancels another lookup (pending upstream, and coalesced). */
static void
test_cancel_from_callback(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got a = { 0 }, slow = { 0 }, twin = { 0 }, a2 = { 0 };
	struct got *gs[] = { &a };

	struct dns_query *qslow = ptr(f->dns, "127.0.0.7", &slow);
	a.cancel_other = &qslow;
	(void)ptr(f->dns, "127.0.0.2", &a);
	run_until(f->base, gs, 1, 1, 5000);
	assert_int_equal(a.calls, 1);
	assert_null(qslow);
	run_for(f->base, 700);          /* past the 500 ms deadline */
	assert_int_equal(slow.calls, 0);

	/* Two lookups sharing one flight; the first cancels the second,
	 * which by then is ready to be delivered. */
	struct got *gs2[] = { &a2 };
	struct dns_query *qtwin;
	a2.cancel_other = &qtwin;
	(void)ptr(f->dns, "127.0.0.12", &a2);
	qtwin = ptr(f->dns, "127.0.0.12", &twin);
	run_until(f->base, gs2, 1, 1, 5000);
	run_for(f->base, 100);
	assert_int_equal(a2.calls, 1);
	assert_int_equal(twin.calls, 0);
}

static void
test_free_in_flight(void **state)
{
	NEED_UNBOUND();
	struct event_base *base = event_base_new();
	struct dns *d = new_dns(base, 500, false);
	struct got a = { 0 }, b = { 0 }, c = { 0 }, w = { 0 };

	/* warm the cache so that one lookup is a pending deferred hit */
	struct got *gw[] = { &w };
	(void)ptr(d, "127.0.0.2", &w);
	run_until(base, gw, 1, 1, 5000);
	(void)ptr(d, "127.0.0.7", &a);
	(void)ptr(d, "127.0.0.5", &b);
	(void)ptr(d, "127.0.0.2", &c);
	(void)addr(d, "mx.good.test", &c);
	dns_free(&d);
	assert_null(d);
	run_for(base, 700);
	assert_int_equal(a.calls + b.calls + c.calls, 0);
	event_base_free(base);
}

/* dns_free() from inside a callback while other lookups are pending. */
static void
test_free_from_callback(void **state)
{
	NEED_UNBOUND();
	struct event_base *base = event_base_new();
	struct dns *d = new_dns(base, 500, false);
	struct got a = { 0 }, slow = { 0 }, twin = { 0 };
	struct got *gs[] = { &a };

	(void)ptr(d, "127.0.0.7", &slow);
	a.free_dns = &d;
	(void)ptr(d, "127.0.0.3", &a);
	(void)ptr(d, "127.0.0.3", &twin);
	run_until(base, gs, 1, 1, 5000);
	assert_int_equal(a.calls, 1);
	assert_null(d);
	run_for(base, 700);
	assert_int_equal(slow.calls, 0);
	assert_int_equal(twin.calls, 0);
	event_base_free(base);
}

static void
test_addr(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 }, g4 = { 0 }, g5 = { 0 },
	    g6 = { 0 }, g7 = { 0 }, g8 = { 0 };
	struct got *gs[] = { &g1, &g2, &g3, &g4, &g5, &g6, &g7, &g8 };

	(void)addr(f->dns, "mx.good.test.", &g1);
	(void)addr(f->dns, "HELO.Good.Test", &g2);
	(void)addr(f->dns, "mxonly.good.test", &g3);
	(void)addr(f->dns, "x.nonexistent.test", &g4);
	(void)addr(f->dns, "servfail.test", &g5);
	(void)addr(f->dns, "refused.test", &g6);
	(void)addr(f->dns, "bad name\r\nRCPT", &g7);
	(void)addr(f->dns, "aaaa.good.test", &g8);
	run_until(f->base, gs, 8, 1, 5000);

	assert_int_equal(g1.r.status, DNS_OK);
	assert_int_equal(g1.r.n, 2);
	assert_string_equal(g1.addrs[0], "127.0.0.2");  /* A first */
	assert_string_equal(g1.addrs[1], "fd00::2");
	assert_null(g1.names[0][0] ? g1.names[0] : NULL);
	assert_int_equal(g2.r.status, DNS_OK);
	assert_int_equal(g2.r.n, 1);
	assert_string_equal(g2.addrs[0], "127.0.0.10");
	assert_int_equal(g3.r.status, DNS_NODATA);
	assert_int_equal(g4.r.status, DNS_NXDOMAIN);
	assert_int_equal(g5.r.status, DNS_SERVFAIL);
	assert_int_equal(g6.r.status, DNS_REFUSED);
	assert_int_equal(g7.r.status, DNS_ERROR);
	assert_int_equal(g8.r.status, DNS_OK);
	assert_string_equal(g8.addrs[0], "::1");
	assert_false(g8.r.partial);
}

/* Both families dropped: one deadline for the merged lookup, and the
 * failure is cached briefly (FAIL_TTL). */
static void
test_addr_timeout(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 };
	struct got *gs[] = { &g };

	(void)addr(f->dns, "timeout.test", &g);
	run_until(f->base, gs, 1, 1, 5000);
	assert_int_equal(g.r.status, DNS_TIMEOUT);
	assert_false(g.r.partial);
	assert_int_equal(g.r.ttl, 5);
}

/*
 * max_inflight: a timed-out query stays inside libunbound (ub_cancel only
 * marks it on an event context), so it stays counted after its deadline,
 * and a lookup over the limit answers DNS_TIMEOUT at once, uncached, from
 * the loop. A lookup that needs no query (a cached answer) still works.
 */
static void
test_inflight_limit(void **state)
{
	NEED_UNBOUND();
	struct event_base *base = event_base_new();
	const char *fw[] = { fwd };
	struct dns_opts o = { .forwarders = fw, .nforwarders = 1,
	    .timeout_ms = 300, .max_inflight = 2 };
	atomic_ullong busy = 0;
	atomic_llong inflight = 0;
	o.busy_total = &busy;
	o.inflight = &inflight;
	struct dns *d = dns_new(base, &o, NULL);
	assert_non_null(d);
	struct got ga = { 0 }, gp = { 0 }, gc = { 0 }, gc2 = { 0 };
	struct got *gsa[] = { &ga }, *gsp[] = { &gp }, *gsc[] = { &gc },
	    *gsc2[] = { &gc2 };
	struct dns_stats st;

	/* 127.0.0.2 answered and cached while there is room. */
	(void)ptr(d, "127.0.0.2", &gc);
	run_until(base, gsc, 1, 1, 5000);
	assert_int_equal(gc.r.status, DNS_OK);

	(void)addr(d, "timeout.test", &ga);     /* A + AAAA: both slots */
	dns_get_stats(d, &st);
	assert_int_equal(st.inflight, 2);
	assert_int_equal(atomic_load(&inflight), 2);

	long long t0 = mono_ms();
	(void)ptr(d, "127.0.0.8", &gp);
	run_until(base, gsp, 1, 1, 5000);
	assert_int_equal(gp.r.status, DNS_TIMEOUT);
	assert_true(gp.at_ms - t0 < 200);       /* not the 300 ms deadline */
	assert_int_equal(ga.calls, 0);

	run_until(base, gsa, 1, 1, 5000);
	assert_int_equal(ga.r.status, DNS_TIMEOUT);
	/* Past the deadline the dropped queries still run in libunbound
	 * (13-18 s): still counted, so the limit still refuses. */
	dns_get_stats(d, &st);
	assert_int_equal(st.inflight, 2);
	assert_int_equal(st.timeouts, 1);
	memset(&gp, 0, sizeof gp);
	(void)ptr(d, "127.0.0.8", &gp);
	run_until(base, gsp, 1, 1, 5000);
	assert_int_equal(gp.r.status, DNS_TIMEOUT);
	assert_false(gp.r.cached);              /* refusals are not cached */
	dns_get_stats(d, &st);
	assert_int_equal(st.busy, 2);
	assert_int_equal(atomic_load(&busy), 2);
	assert_int_equal(st.upstream, 3);       /* 127.0.0.2, A, AAAA */

	(void)ptr(d, "127.0.0.2", &gc2);        /* the cache still answers */
	run_until(base, gsc2, 1, 1, 5000);
	assert_int_equal(gc2.r.status, DNS_OK);
	assert_true(gc2.r.cached);

	/* Freed with queries still inside libunbound: nothing leaks
	 * (ASan) and the shared gauge returns to 0. */
	dns_free(&d);
	assert_int_equal(atomic_load(&inflight), 0);
	event_base_free(base);
}

static void
test_mx(void **state)
{
	NEED_UNBOUND();
	struct fixture *f = *state;
	struct got g = { 0 }, h = { 0 };
	struct got *gs[] = { &g, &h };

	in_lookup_call = true;
	(void)dns_lookup_mx(f->dns, "good.test", on_result, &g);
	(void)dns_lookup_mx(f->dns, "helo.good.test", on_result, &h);
	in_lookup_call = false;
	run_until(f->base, gs, 2, 1, 5000);
	assert_int_equal(g.r.status, DNS_OK);
	assert_int_equal(g.r.n, 1);
	assert_string_equal(g.names[0], "mx.good.test");
	assert_int_equal(g.prefs[0], 10);
	assert_int_equal(h.r.status, DNS_NODATA);
}

/* Bad options are refused with a reason. */
static void
test_bad_forwarder(void **state)
{
	struct event_base *base = event_base_new();
	const char *fw[] = { "not-an-address" };
	struct dns_opts o = { .forwarders = fw, .nforwarders = 1 };
	struct buf err = BUF_INIT;

	assert_null(dns_new(base, &o, &err));
	assert_non_null(strstr(buf_cstr(&err), "not-an-address"));
	buf_free(&err);
	struct dns_opts r = { .resolv_conf = "/nonexistent/resolv.conf" };
	assert_null(dns_new(base, &r, &err));
	assert_true(err.len > 0);
	buf_free(&err);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ptr_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr_ipv6_and_mapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr_multi_cname_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servfail_fast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit_and_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup, teardown),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test_setup_teardown(test_addr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addr_timeout, setup, teardown),
		cmocka_unit_test(test_inflight_limit),
		cmocka_unit_test_setup_teardown(test_mx, setup, teardown),
		cmocka_unit_test(test_bad_forwarder),
	};
	return cmocka_run_group_tests(tests, start_resolver, stop_resolver);
}
