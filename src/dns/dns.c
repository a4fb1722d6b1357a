/*
 * libunbound on the worker's event_base, with a cache and coalescing in
 * front (contract in dns.h, operator notes in docs/dns.md).
 *
 * Objects:
 *   entry   one (type, name) key in the hash table: either a flight in
 *           progress (e->fl) or a cached answer on the LRU list (e->ans).
 *   flight  one upstream lookup: one or two libunbound queries (A+AAAA),
 *           one deadline timer, and the dns_query waiters that share it.
 *           After its deadline a flight whose libunbound queries are still
 *           running is "spent": its waiters have their answer and its
 *           entry is gone, but it stays on d->spent, counted in
 *           d->stats.inflight, until libunbound calls back for each query
 *           (ub_cancel would only mark them: see dns.h).
 *   answer  an immutable, reference-counted result; a cached entry and
 *           every query about to be told hold a reference, so eviction
 *           never frees an answer a callback is about to read.
 *   query   the caller's handle; delivered through its own event, made
 *           active when the answer is known (never called back inline).
 */
#include "dns/dns.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>
#include <unbound-event.h>
#include <unbound.h>

#include "dns/wire.h"
#include "lib/log.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

#define POS_TTL_CAP   86400u    /* positive answers: at most a day */
#define NEG_TTL_CAP   900u      /* NXDOMAIN/NODATA: at most 15 min */
#define NEG_TTL_NOSOA 60u       /* NXDOMAIN/NODATA without a SOA */
#define FAIL_TTL      5u        /* SERVFAIL/REFUSED/TIMEOUT/ERROR */

enum kind { K_PTR, K_ADDR, K_MX };

struct answer {
	int              refs;
	struct dns_result r;
	struct dns_record *rr;      /* r.n records; names are owned */
};

struct flight;

struct entry {
	char            *key;
	uint64_t         hash;
	struct entry    *hnext;
	TAILQ_ENTRY(entry) lru;     /* when cached */
	struct flight   *fl;        /* while a lookup is in flight */
	struct answer   *ans;       /* when cached */
	uint64_t         expires;   /* monotonic ms */
};

struct sub {
	struct flight   *fl;
	int              rrtype;
	int              async_id;
	bool             running;
	enum dns_status  st;
	bool             secure;
	struct wire_answer *wa;     /* parsed answer when st is OK/NX/NODATA */
};

struct dns_query {
	struct dns      *d;
	dns_cb          *cb;
	void            *arg;
	struct event    *ev;
	struct flight   *fl;        /* waiting for this flight */
	struct answer   *ans;       /* ready: the answer to deliver */
	uint32_t         ttl;       /* remaining ttl reported */
	bool             cached;
	bool             delivering;
	TAILQ_ENTRY(dns_query) link;    /* fl->waiters or d->ready */
};

TAILQ_HEAD(query_list, dns_query);

struct flight {
	struct dns      *d;
	struct entry    *e;
	enum kind        kind;
	struct sub       sub[2];
	int              nsub;
	struct event    *deadline;
	bool             starting;
	bool             spent;     /* past its deadline, on d->spent */
	struct query_list waiters;
	LIST_ENTRY(flight) link;
};

struct dns {
	struct event_base *base;
	struct ub_ctx   *ub;
	pthread_t        owner;
	long long        timeout_ms;
	size_t           cache_max;
	bool             no_cache;
	uint64_t         seed;
	struct entry   **tab;
	size_t           tabsize;   /* power of two */
	size_t           ncached;
	TAILQ_HEAD(entry_lru, entry) lru; /* most recently used first */
	struct query_list ready;
	LIST_HEAD(, flight) flights;
	LIST_HEAD(, flight) spent;  /* past the deadline, queries running */
	size_t           max_inflight;
	atomic_ullong   *busy_total;        /* NULL: not shared */
	atomic_llong    *inflight_shared;   /* NULL: not shared */
	struct dns_stats stats;
};

static const char *const status_names[] = {
	[DNS_OK] = "ok", [DNS_NXDOMAIN] = "nxdomain", [DNS_NODATA] = "nodata",
	[DNS_SERVFAIL] = "servfail", [DNS_TIMEOUT] = "timeout",
	[DNS_REFUSED] = "refused", [DNS_ERROR] = "error",
};

const char *
dns_status_str(enum dns_status s)
{
	if ((size_t)s < sizeof status_names / sizeof status_names[0])
		return status_names[s];
	return "unknown";
}

static void
assert_owner(const struct dns *d)
{
	/* The ctx is not thread-safe with the event API (unbound #100). */
	assert(pthread_equal(pthread_self(), d->owner));
	(void)d;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One libunbound query more (+1) or less (-1) outstanding. */
static void
inflight_add(struct dns *d, int delta)
{
	d->stats.inflight += (size_t)(ssize_t)delta;
	if (d->inflight_shared != NULL)
		atomic_fetch_add_explicit(d->inflight_shared, delta,
		    memory_order_relaxed);
}

/* ---- answers ---- */

static struct answer *
answer_new(enum dns_status st)
{
	struct answer *a = xcalloc(1, sizeof *a);
	a->refs = 1;
	a->r.status = st;
	return a;
}

static struct answer *
answer_ref(struct answer *a)
{
	a->refs++;
	return a;
}

static void
answer_unref(struct answer **ap)
{
	struct answer *a = *ap;
	*ap = NULL;
	if (a == NULL || --a->refs > 0)
		return;
	for (size_t i = 0; i < a->r.n; i++)
		free((char *)a->rr[i].name);
	free(a->rr);
	free(a);
}

/* ---- the table: entries by key, cached ones on an LRU list ---- */

static uint64_t
key_hash(const struct dns *d, const char *key)
{
	/* FNV-1a with a per-instance random basis: keys are peer-chosen
	 * names, so fixed chains must not be predictable. */
	uint64_t h = 0xcbf29ce484222325ull ^ d->seed;
	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct entry *
entry_find(struct dns *d, const char *key, uint64_t h)
{
	for (struct entry *e = d->tab[h & (d->tabsize - 1)]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static struct entry *
entry_add(struct dns *d, char *key, uint64_t h)
{
	struct entry *e = xcalloc(1, sizeof *e);
	e->key = key;
	e->hash = h;
	e->hnext = d->tab[h & (d->tabsize - 1)];
	d->tab[h & (d->tabsize - 1)] = e;
	return e;
}

static void
entry_remove(struct dns *d, struct entry *e)
{
	struct entry **pp = &d->tab[e->hash & (d->tabsize - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->ans != NULL) {
		TAILQ_REMOVE(&d->lru, e, lru);
		d->ncached--;
		answer_unref(&e->ans);
	}
	free(e->key);
	free(e);
}

static void
cache_store(struct dns *d, struct entry *e, struct answer *a, uint32_t ttl)
{
	if (d->no_cache || ttl == 0) {
		entry_remove(d, e);
		return;
	}
	e->ans = answer_ref(a);
	e->expires = now_ms() + (uint64_t)ttl * 1000;
	TAILQ_INSERT_HEAD(&d->lru, e, lru);
	d->ncached++;
	while (d->ncached > d->cache_max)
		entry_remove(d, TAILQ_LAST(&d->lru, entry_lru));
}

/* ---- queries ---- */

static void deliver_cb(evutil_socket_t fd, short what, void *arg);

static struct dns_query *
query_new(struct dns *d, dns_cb *cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof *q);
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->ev = event_new(d->base, -1, 0, deliver_cb, q);
	if (q->ev == NULL)
		log_fatal(71, "dns: event_new failed");
	d->stats.lookups++;
	return q;
}

static void
query_free(struct dns_query *q)
{
	event_free(q->ev);
	answer_unref(&q->ans);
	free(q);
}

/* Make q ready with answer a (a reference is taken): deliver it from the
 * loop, never from inside the caller's frame. */
static void
query_ready(struct dns_query *q, struct answer *a, uint32_t ttl, bool cached)
{
	q->fl = NULL;
	q->ans = answer_ref(a);
	q->ttl = ttl;
	q->cached = cached;
	TAILQ_INSERT_TAIL(&q->d->ready, q, link);
	event_active(q->ev, EV_TIMEOUT, 1);
}

static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result r;

	TAILQ_REMOVE(&q->d->ready, q, link);
	/* From here q belongs to no list: dns_free() and dns_cancel() made
	 * inside the callback leave it alone, and q->d is not used again. */
	q->d = NULL;
	q->delivering = true;
	r = q->ans->r;
	r.ttl = q->ttl;
	r.cached = q->cached;
	q->cb(&r, q->arg);
	query_free(q);
}

void
dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;

	*qp = NULL;
	if (q == NULL || q->delivering)
		return;
	assert_owner(q->d);
	if (q->fl != NULL)
		TAILQ_REMOVE(&q->fl->waiters, q, link);
	else
		TAILQ_REMOVE(&q->d->ready, q, link);
	query_free(q);
}

/* ---- flights ---- */

static void
sub_clear(struct sub *s)
{
	x_free(&s->wa);
}

static enum dns_status
status_of_rcode(int rcode, bool have_records)
{
	switch (rcode) {
	case 0:  return have_records ? DNS_OK : DNS_NODATA;
	case 2:  return DNS_SERVFAIL;
	case 3:  return DNS_NXDOMAIN;
	case 5:  return DNS_REFUSED;
	default: return DNS_ERROR;
	}
}

static bool
is_failure(enum dns_status st)
{
	return st == DNS_SERVFAIL || st == DNS_TIMEOUT || st == DNS_REFUSED ||
	    st == DNS_ERROR;
}

static uint32_t
sub_ttl(const struct sub *s)
{
	if (is_failure(s->st))
		return FAIL_TTL;
	if (s->st == DNS_OK) {
		uint32_t t = s->wa->have_ttl ? s->wa->min_ttl : 0;
		return t < POS_TTL_CAP ? t : POS_TTL_CAP;
	}
	if (s->wa != NULL && s->wa->have_soa)
		return s->wa->soa_neg_ttl < NEG_TTL_CAP ?
		    s->wa->soa_neg_ttl : NEG_TTL_CAP;
	return NEG_TTL_NOSOA;
}

/* Build the merged answer of a finished flight; *ttl gets its lifetime. */
static struct answer *
flight_answer(struct flight *fl, uint32_t *ttl)
{
	size_t total = 0, ninvalid = 0;
	bool truncated = false, secure = true, fail = false, nx = false;
	enum dns_status failst = DNS_ERROR;
	uint32_t t = UINT32_MAX, failttl = UINT32_MAX;

	for (int i = 0; i < fl->nsub; i++) {
		struct sub *s = &fl->sub[i];
		if (s->wa != NULL) {
			total += s->wa->n;
			ninvalid += s->wa->ninvalid;
			truncated |= s->wa->truncated;
		}
		secure &= s->secure;
		uint32_t st = sub_ttl(s);
		if (is_failure(s->st)) {
			if (!fail || s->st == DNS_TIMEOUT)
				failst = s->st;
			fail = true;
			failttl = st;
		} else if (st < t)
			t = st;
		nx |= s->st == DNS_NXDOMAIN;
	}
	struct answer *a;
	if (total > 0 || (ninvalid > 0 && !fail)) {
		a = answer_new(DNS_OK);
		a->r.partial = fail;
		*ttl = fail ? failttl : t;
	} else if (fail) {
		a = answer_new(failst);
		*ttl = failttl;
	} else {
		a = answer_new(nx ? DNS_NXDOMAIN : DNS_NODATA);
		*ttl = t;
	}
	if (total > DNS_MAX_RECORDS) {
		total = DNS_MAX_RECORDS;
		truncated = true;
	}
	a->rr = total ? xcalloc(total, sizeof *a->rr) : NULL;
	for (int i = 0; i < fl->nsub; i++) {
		struct wire_answer *wa = fl->sub[i].wa;
		for (size_t j = 0; wa != NULL && j < wa->n && a->r.n < total; j++) {
			struct dns_record *r = &a->rr[a->r.n++];
			*r = wa->rr[j];
			if (wa->rr[j].name != NULL)
				r->name = xstrdup(wa->rr[j].name);
		}
	}
	if (fl->kind == K_MX) {
		/* Insertion sort by preference: stable, n <= 32. */
		for (size_t i = 1; i < a->r.n; i++) {
			struct dns_record tmp = a->rr[i];
			size_t j = i;
			while (j > 0 && a->rr[j - 1].pref > tmp.pref) {
				a->rr[j] = a->rr[j - 1];
				j--;
			}
			a->rr[j] = tmp;
		}
	}
	a->r.rr = a->rr;
	a->r.ninvalid = ninvalid;
	a->r.truncated = truncated;
	a->r.secure = secure && a->r.status == DNS_OK;
	a->r.ttl = *ttl;
	return a;
}

static bool
flight_done(const struct flight *fl)
{
	for (int i = 0; i < fl->nsub; i++)
		if (fl->sub[i].running)
			return false;
	return true;
}

static void
flight_finish(struct flight *fl)
{
	struct dns *d = fl->d;
	struct entry *e = fl->e;
	uint32_t ttl;
	struct answer *a = flight_answer(fl, &ttl);
	struct dns_query *q;

	if (a->r.status == DNS_TIMEOUT)
		d->stats.timeouts++;
	while ((q = TAILQ_FIRST(&fl->waiters)) != NULL) {
		TAILQ_REMOVE(&fl->waiters, q, link);
		query_ready(q, a, ttl, false);
	}
	e->fl = NULL;
	fl->e = NULL;
	cache_store(d, e, a, ttl);
	answer_unref(&a);
	event_free(fl->deadline);
	fl->deadline = NULL;
	LIST_REMOVE(fl, link);
	for (int i = 0; i < fl->nsub; i++)
		sub_clear(&fl->sub[i]);
	if (flight_done(fl)) {
		free(fl);
		return;
	}
	/* Timed out with queries still inside libunbound: they keep their
	 * memory there until they finish, so they stay counted. */
	fl->spent = true;
	LIST_INSERT_HEAD(&d->spent, fl, link);
}

static void
ub_cb(void *arg, int rcode, void *packet, int len, int sec, char *why_bogus,
    int was_ratelimited)
{
	struct sub *s = arg;
	struct flight *fl = s->fl;

	s->running = false;
	inflight_add(fl->d, -1);
	if (fl->spent) {
		/* A late answer to a lookup already told DNS_TIMEOUT. */
		if (flight_done(fl)) {
			LIST_REMOVE(fl, link);
			free(fl);
		}
		return;
	}
	s->secure = sec == 2;
	if (rcode != 0) {
		/* libunbound says "do not inspect" the packet here; only the
		 * header's RCODE is read, to tell REFUSED from SERVFAIL. */
		s->st = DNS_SERVFAIL;
		if (packet != NULL && len >= 12 &&
		    (((const uint8_t *)packet)[3] & 0x0f) == 5)
			s->st = DNS_REFUSED;
	} else if (sec == 1) {
		struct buf why = BUF_INIT;
		log_warn("dns: bogus answer (DNSSEC): %s",
		    why_bogus ? log_sanitize(&why, why_bogus, strlen(why_bogus),
		    200) : "-");
		buf_free(&why);
		s->st = DNS_SERVFAIL;
	} else if (packet == NULL || len < 0) {
		s->st = DNS_ERROR;
	} else {
		s->wa = xmalloc(sizeof *s->wa);
		if (wire_parse_answer(packet, (size_t)len, (uint16_t)s->rrtype,
		    s->wa) != 0) {
			log_warn("dns: malformed answer for %s", fl->e->key);
			x_free(&s->wa);
			s->st = DNS_ERROR;
		} else {
			s->st = status_of_rcode(s->wa->rcode,
			    s->wa->n > 0 || s->wa->ninvalid > 0);
			if (is_failure(s->st))
				x_free(&s->wa);
		}
	}
	if (!fl->starting && flight_done(fl))
		flight_finish(fl);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flight *fl = arg;

	/* libunbound has no per-query deadline (STACK.md §2.2). The queries
	 * are not cancelled: ub_cancel() on an event context only marks them
	 * and they go on inside libunbound, uncounted. They stay running and
	 * counted until libunbound calls back (flight_finish, ub_cb). */
	for (int i = 0; i < fl->nsub; i++) {
		struct sub *s = &fl->sub[i];
		if (s->running)
			s->st = DNS_TIMEOUT;
	}
	flight_finish(fl);
}

static void
flight_start(struct dns *d, struct flight *fl, const char *qname)
{
	struct timeval tv = timeval_ms(d->timeout_ms);

	fl->deadline = evtimer_new(d->base, deadline_cb, fl);
	if (fl->deadline == NULL)
		log_fatal(71, "dns: evtimer_new failed");
	evtimer_add(fl->deadline, &tv);
	/* libunbound answers local data (and maybe its own cache) from
	 * inside ub_resolve_event: finish only after every start returned. */
	fl->starting = true;
	for (int i = 0; i < fl->nsub; i++) {
		struct sub *s = &fl->sub[i];
		int id = 0;
		s->fl = fl;
		s->running = true;
		d->stats.upstream++;
		/* Counted before the call: ub_cb may run inside it. */
		inflight_add(d, 1);
		int r = ub_resolve_event(d->ub, qname, s->rrtype, 1, s, ub_cb, &id);
		if (r != 0) {
			log_warn("dns: resolve %s: %s", fl->e->key, ub_strerror(r));
			inflight_add(d, -1);
			s->running = false;
			s->st = DNS_ERROR;
		} else if (s->running)
			s->async_id = id;
	}
	fl->starting = false;
	if (flight_done(fl))
		flight_finish(fl);
}

/*
 * The common path of every lookup: qname is a valid query name (or NULL
 * when the caller's input was unusable).
 */
static struct dns_query *
lookup(struct dns *d, enum kind kind, const char *qname, dns_cb *cb,
    void *arg)
{
	static const char kinds[] = { 'P', 'A', 'M' };
	struct dns_query *q;

	assert_owner(d);
	q = query_new(d, cb, arg);
	if (qname == NULL) {
		struct answer *a = answer_new(DNS_ERROR);
		query_ready(q, a, 0, false);
		answer_unref(&a);
		return q;
	}
	char *key = xasprintf("%c:%s", kinds[kind], qname);
	ascii_lower_str(key);
	uint64_t h = key_hash(d, key);
	struct entry *e = entry_find(d, key, h);

	if (e != NULL && e->ans != NULL) {
		uint64_t now = now_ms();
		if (now < e->expires) {
			free(key);
			d->stats.cache_hits++;
			TAILQ_REMOVE(&d->lru, e, lru);
			TAILQ_INSERT_HEAD(&d->lru, e, lru);
			query_ready(q, e->ans,
			    (uint32_t)((e->expires - now + 999) / 1000), true);
			return q;
		}
		entry_remove(d, e);
		e = NULL;
	}
	if (e != NULL) {
		free(key);
		d->stats.coalesced++;
		q->fl = e->fl;
		TAILQ_INSERT_TAIL(&e->fl->waiters, q, link);
		return q;
	}
	int nsub = kind == K_ADDR ? 2 : 1;
	if (d->stats.inflight + (size_t)nsub > d->max_inflight) {
		/* Too many queries inside libunbound (a dead or slow resolver
		 * under load): fail fast, as the deadline would, rather than
		 * let its memory grow. Not cached: it says nothing about the
		 * name. */
		struct answer *a = answer_new(DNS_TIMEOUT);
		free(key);
		d->stats.busy++;
		if (d->busy_total != NULL)
			atomic_fetch_add_explicit(d->busy_total, 1,
			    memory_order_relaxed);
		query_ready(q, a, 0, false);
		answer_unref(&a);
		return q;
	}
	e = entry_add(d, key, h);
	struct flight *fl = xcalloc(1, sizeof *fl);
	fl->d = d;
	fl->e = e;
	fl->kind = kind;
	fl->nsub = nsub;
	TAILQ_INIT(&fl->waiters);
	switch (kind) {
	case K_PTR:
		fl->sub[0].rrtype = WIRE_T_PTR;
		break;
	case K_ADDR:
		fl->sub[0].rrtype = WIRE_T_A;
		fl->sub[1].rrtype = WIRE_T_AAAA;
		break;
	case K_MX:
		fl->sub[0].rrtype = WIRE_T_MX;
		break;
	}
	e->fl = fl;
	LIST_INSERT_HEAD(&d->flights, fl, link);
	q->fl = fl;
	TAILQ_INSERT_TAIL(&fl->waiters, q, link);
	flight_start(d, fl, qname);
	return q;
}

struct dns_query *
dns_lookup_ptr(struct dns *d, const struct sockaddr *ip, dns_cb *cb,
    void *arg)
{
	char name[80];
	const uint8_t *b;

	if (ip->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)ip)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			b = a6->s6_addr + 12;
			goto v4;
		}
		char *p = name;
		for (int i = 15; i >= 0; i--) {
			static const char hex[] = "0123456789abcdef";
			*p++ = hex[a6->s6_addr[i] & 0x0f];
			*p++ = '.';
			*p++ = hex[a6->s6_addr[i] >> 4];
			*p++ = '.';
		}
		memcpy(p, "ip6.arpa", sizeof "ip6.arpa");
		return lookup(d, K_PTR, name, cb, arg);
	}
	if (ip->sa_family != AF_INET)
		return lookup(d, K_PTR, NULL, cb, arg);
	b = (const uint8_t *)&((const struct sockaddr_in *)ip)->sin_addr;
v4:
	snprintf(name, sizeof name, "%u.%u.%u.%u.in-addr.arpa",
	    b[3], b[2], b[1], b[0]);
	return lookup(d, K_PTR, name, cb, arg);
}

/* A name from the caller (often an EHLO argument): checked, dot dropped. */
static struct dns_query *
lookup_name(struct dns *d, enum kind kind, const char *name, dns_cb *cb,
    void *arg)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (!wire_query_name_ok(name, n))
		return lookup(d, kind, NULL, cb, arg);
	char *q = xstrndup(name, n);
	struct dns_query *r = lookup(d, kind, q, cb, arg);
	free(q);
	return r;
}

struct dns_query *
dns_lookup_addr(struct dns *d, const char *name, dns_cb *cb, void *arg)
{
	return lookup_name(d, K_ADDR, name, cb, arg);
}

struct dns_query *
dns_lookup_mx(struct dns *d, const char *name, dns_cb *cb, void *arg)
{
	return lookup_name(d, K_MX, name, cb, arg);
}

void
dns_get_stats(const struct dns *d, struct dns_stats *out)
{
	*out = d->stats;
}

/* ---- setup ---- */

/*
 * libunbound's built-in local zones answer before any forwarder is asked:
 * test. and 127.in-addr.arpa. gave instant NXDOMAIN, and so did the RFC 1918
 * reverse zones, which breaks FCrDNS of internal clients (STACK.md §2.2).
 * ub_ctx_set_option("local-zone:") returned 0 without effect, so these go
 * through a config file. do-not-query-localhost: no, because the forwarder
 * is normally a caching resolver on this host (or the test resolver).
 */
static const char ub_conf[] =
    "server:\n"
    "    local-zone: \"test.\" nodefault\n"
    "    local-zone: \"127.in-addr.arpa.\" nodefault\n"
    "    local-zone: \"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
    "0.0.0.0.0.0.ip6.arpa.\" nodefault\n"
    "    unblock-lan-zones: yes\n"
    "    insecure-lan-zones: yes\n"
    "    do-not-query-localhost: no\n";

/*
 * libunbound keeps process-wide state that its contexts share, and each
 * worker makes its own context on its own thread, so every call that
 * touches that state runs under this lock:
 *   - ub_ctx_create*(): the first one in a process initialises the log
 *     lock behind an unguarded "created yet?" flag (util/log.c, log_init);
 *     two at once re-initialised a lock the other held, and ehlod aborted
 *     on glibc's mutex owner check (test_dns_threads reproduces it: 16
 *     threads, a fresh process per round);
 *   - ub_ctx_config(): its parser is flex/bison with globals (two parses at
 *     once gave "syntax error" and a crash);
 *   - ub_ctx_delete(), which tears down what creation set up.
 * Creation and teardown are rare (start, reload, stop); lookups never
 * take it.
 */
static pthread_mutex_t ub_global_lock = PTHREAD_MUTEX_INITIALIZER;

static void
ub_delete_locked(struct ub_ctx *ub)
{
	pthread_mutex_lock(&ub_global_lock);
	ub_ctx_delete(ub);
	pthread_mutex_unlock(&ub_global_lock);
}

static int
load_config(struct ub_ctx *ub, struct buf *err)
{
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/ehlo-unbound-XXXXXX",
	    tmp != NULL && *tmp == '/' ? tmp : "/tmp");
	int fd = mkstemp(path);     /* 0600, a fresh name: private */
	if (fd < 0) {
		buf_appendf(err, "dns: cannot create %s: %s", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	size_t off = 0;
	while (off < sizeof ub_conf - 1) {
		ssize_t w = write(fd, ub_conf + off, sizeof ub_conf - 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			buf_appendf(err, "dns: cannot write %s: %s", path,
			    strerror(errno));
			close(fd);
			unlink(path);
			free(path);
			return -1;
		}
		off += (size_t)w;
	}
	close(fd);
	pthread_mutex_lock(&ub_global_lock);
	int r = ub_ctx_config(ub, path);
	pthread_mutex_unlock(&ub_global_lock);
	unlink(path);
	free(path);
	if (r != 0) {
		buf_appendf(err, "dns: libunbound config: %s", ub_strerror(r));
		return -1;
	}
	return 0;
}

struct dns *
dns_new(struct event_base *base, const struct dns_opts *o, struct buf *err)
{
	struct buf scratch = BUF_INIT;
	struct ub_ctx *ub;
	int r;

	if (err == NULL)
		err = &scratch;
	pthread_mutex_lock(&ub_global_lock);
	ub = ub_ctx_create_event(base);
	pthread_mutex_unlock(&ub_global_lock);
	if (ub == NULL) {
		buf_append_str(err, "dns: ub_ctx_create_event failed");
		goto fail;
	}
	if (load_config(ub, err) != 0)
		goto fail;
	for (size_t i = 0; i < o->nforwarders; i++) {
		if ((r = ub_ctx_set_fwd(ub, o->forwarders[i])) != 0) {
			struct buf clean = BUF_INIT;
			buf_appendf(err, "dns: bad forwarder '%s': %s",
			    log_sanitize(&clean, o->forwarders[i],
			    strlen(o->forwarders[i]), 80), ub_strerror(r));
			buf_free(&clean);
			goto fail;
		}
	}
	if (o->nforwarders == 0 &&
	    (r = ub_ctx_resolvconf(ub, o->resolv_conf)) != 0) {
		buf_appendf(err, "dns: cannot read %s: %s",
		    o->resolv_conf ? o->resolv_conf : "/etc/resolv.conf",
		    ub_strerror(r));
		goto fail;
	}

	struct dns *d = xcalloc(1, sizeof *d);
	d->base = base;
	d->ub = ub;
	d->owner = pthread_self();
	d->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DNS_TIMEOUT_DEFAULT_MS;
	d->cache_max = o->cache_size ? o->cache_size : DNS_CACHE_DEFAULT;
	d->no_cache = o->no_cache;
	d->max_inflight = o->max_inflight ? o->max_inflight : DNS_INFLIGHT_DEFAULT;
	d->busy_total = o->busy_total;
	d->inflight_shared = o->inflight;
	d->seed = ((uint64_t)arc4random() << 32) | arc4random();
	d->tabsize = 64;
	while (d->tabsize < d->cache_max && d->tabsize < ((size_t)1 << 20))
		d->tabsize <<= 1;
	d->tab = xcalloc(d->tabsize, sizeof *d->tab);
	TAILQ_INIT(&d->lru);
	TAILQ_INIT(&d->ready);
	LIST_INIT(&d->flights);
	LIST_INIT(&d->spent);
	buf_free(&scratch);
	return d;
fail:
	if (ub != NULL)
		ub_delete_locked(ub);
	buf_free(&scratch);
	return NULL;
}

void
dns_free(struct dns **dp)
{
	struct dns *d = *dp;
	struct flight *fl;
	struct dns_query *q;

	*dp = NULL;
	if (d == NULL)
		return;
	assert_owner(d);
	while ((fl = LIST_FIRST(&d->flights)) != NULL) {
		for (int i = 0; i < fl->nsub; i++) {
			if (fl->sub[i].running) {
				(void)ub_cancel(d->ub, fl->sub[i].async_id);
				inflight_add(d, -1);
			}
			sub_clear(&fl->sub[i]);
		}
		while ((q = TAILQ_FIRST(&fl->waiters)) != NULL) {
			TAILQ_REMOVE(&fl->waiters, q, link);
			query_free(q);
		}
		event_free(fl->deadline);
		LIST_REMOVE(fl, link);
		fl->e->fl = NULL;
		entry_remove(d, fl->e);
		free(fl);
	}
	while ((fl = LIST_FIRST(&d->spent)) != NULL) {
		for (int i = 0; i < fl->nsub; i++) {
			if (fl->sub[i].running) {
				(void)ub_cancel(d->ub, fl->sub[i].async_id);
				inflight_add(d, -1);
			}
		}
		LIST_REMOVE(fl, link);
		free(fl);
	}
	while ((q = TAILQ_FIRST(&d->ready)) != NULL) {
		TAILQ_REMOVE(&d->ready, q, link);
		query_free(q);
	}
	ub_delete_locked(d->ub);
	for (size_t i = 0; i < d->tabsize; i++)
		while (d->tab[i] != NULL)
			entry_remove(d, d->tab[i]);
	free(d->tab);
	free(d);
}
