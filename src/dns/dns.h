/*
 * Asynchronous DNS for one worker's event loop: libunbound on the caller's
 * libevent event_base (ub_ctx_create_event + ub_resolve_event), with a
 * bounded cache and coalescing in front of it. See docs/dns.md.
 *
 * Threading: one struct dns per event_base (per worker thread), created,
 * used and freed only on that thread (NLnetLabs/unbound #100: cross-thread
 * use of the event API crashes). This is asserted.
 *
 * Lookups never block and never call back from inside the call that started
 * them: every callback, a cache hit included, is delivered from the event
 * loop through a deferred event (event_active), so callers never re-enter
 * their own code. Each upstream lookup has one deadline timer; when it fires
 * every waiter gets DNS_TIMEOUT, so no caller ever waits longer than
 * dns_opts.timeout_ms (default 2 s): libunbound alone would wait 13-18 s and
 * then answer SERVFAIL (STACK.md §2.2).
 *
 * The libunbound queries themselves outlive the deadline: on a context from
 * ub_ctx_create_event, ub_cancel() only marks a query, which keeps its
 * memory and keeps being retried inside libunbound until the resolver
 * answers or libunbound gives up (with a dead forwarder, minutes, at about
 * 13 KB per query). So a timed-out query is not cancelled but left to
 * finish, and is counted until its (ignored) answer comes back. At most
 * dns_opts.max_inflight libunbound queries are outstanding per struct dns;
 * a lookup that would need more answers DNS_TIMEOUT at once (through the
 * loop, like any answer), is not cached, and is counted in busy.
 *
 * Identical lookups in flight (same type and name) share one upstream query.
 *
 * Cache (per struct dns, LRU, at most cache_size answers):
 *   positive answers    min TTL of the answer RRs, capped at 1 day; TTL 0
 *                       answers are handed to current waiters and not kept
 *   NXDOMAIN, NODATA    min(SOA TTL, SOA MINIMUM) from the authority section
 *                       (RFC 2308 §5), capped at 15 min; 60 s without a SOA
 *   SERVFAIL, REFUSED,  5 s: RFC 9520 §3.2 requires caching resolution
 *   TIMEOUT, ERROR      failures (at least 1 s) so that a dead or failing
 *                       resolver is not asked again by every new session,
 *                       and 5 s keeps a transient failure short-lived.
 *
 * Every answer is parsed here from the wire packet libunbound hands back,
 * as peer input: every offset and length is bounds-checked, compression
 * pointers must point strictly backwards, and names (PTR targets, MX
 * exchanges) are validated before they leave this module: RFC 1123 §2.1
 * host-name syntax (letters, digits, hyphen; no leading or trailing hyphen;
 * labels 1-63 octets; at most 253 characters), printable by construction,
 * lower-cased, without the trailing dot. Names failing that are dropped and
 * counted in dns_result.ninvalid, never passed on.
 */
#ifndef EHLO_DNS_DNS_H
#define EHLO_DNS_DNS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/buf.h"

struct event_base;

#define DNS_TIMEOUT_DEFAULT_MS 2000
#define DNS_CACHE_DEFAULT      10000
#define DNS_INFLIGHT_DEFAULT   1000    /* libunbound queries outstanding */
#define DNS_MAX_RECORDS        32      /* records kept per answer */
#define DNS_NAME_MAX           253     /* presentation, no trailing dot */

struct dns_opts {
	/*
	 * Forwarders, "ADDR" or "ADDR@PORT" (e.g. "127.0.0.1@5353"). When
	 * there are none, the resolvers of resolv_conf (NULL: the system's
	 * /etc/resolv.conf) are used as forwarders.
	 */
	const char *const *forwarders;
	size_t      nforwarders;
	const char *resolv_conf;
	long long   timeout_ms;     /* <= 0: DNS_TIMEOUT_DEFAULT_MS */
	size_t      cache_size;     /* 0: DNS_CACHE_DEFAULT */
	bool        no_cache;       /* true: no answer cache (coalescing stays) */
	/* libunbound queries outstanding at most, timed-out ones included
	 * (an A+AAAA lookup is two); 0: DNS_INFLIGHT_DEFAULT. */
	size_t      max_inflight;
	/* Optional (NULL: none), for metrics read by another thread: each
	 * refusal for max_inflight adds 1 to *busy_total; *inflight follows
	 * stats.inflight (summed over every struct dns that shares it). */
	atomic_ullong *busy_total;
	atomic_llong  *inflight;
};

enum dns_status {
	DNS_OK,         /* the name has records of the type (n may still be 0
	                   when every record was invalid: see ninvalid) */
	DNS_NXDOMAIN,   /* the name does not exist */
	DNS_NODATA,     /* the name exists, no records of the type */
	DNS_SERVFAIL,   /* upstream failure, including DNSSEC bogus answers */
	DNS_TIMEOUT,    /* no answer within the deadline */
	DNS_REFUSED,    /* the resolver refused */
	DNS_ERROR,      /* malformed answer, unusable query name, local error */
};

struct dns_record {
	/* PTR target or MX exchange; NULL for addresses. A null MX
	 * (RFC 7505, exchange ".") is the empty string. */
	const char *name;
	unsigned    pref;           /* MX preference; 0 otherwise */
	/* A/AAAA: AF_INET or AF_INET6, port 0; zeroed for names. */
	struct sockaddr_storage addr;
};

struct dns_result {
	enum dns_status status;
	size_t      n;
	const struct dns_record *rr;    /* n records; MX sorted by pref */
	size_t      ninvalid;       /* names dropped by validation */
	bool        truncated;      /* more than DNS_MAX_RECORDS records */
	/* A+AAAA lookups: one family answered, the other failed (SERVFAIL,
	 * TIMEOUT, ...); rr holds the family that answered. */
	bool        partial;
	uint32_t    ttl;            /* seconds the answer stays cached */
	bool        secure;         /* DNSSEC-validated (all parts) */
	bool        cached;         /* served from the cache */
};

/*
 * Called once per lookup, from the event loop, unless the lookup was
 * cancelled. r and everything it points to is valid only during the call.
 * The callback may start new lookups, cancel other lookups and call
 * dns_free(). The lookup's handle is invalid once the callback returns.
 */
typedef void dns_cb(const struct dns_result *r, void *arg);

struct dns;
struct dns_query;

/*
 * Create a resolver on base. Returns NULL and a reason in err (when not
 * NULL) if libunbound cannot be set up (bad forwarder syntax, unreadable
 * resolv.conf, temp file failure). The caller owns the result.
 */
struct dns *dns_new(struct event_base *base, const struct dns_opts *o,
    struct buf *err);

/*
 * Free the resolver and *d = NULL. Lookups still pending are cancelled:
 * their callbacks are not called. Safe from inside a dns callback.
 */
void dns_free(struct dns **d);

/*
 * Start a lookup. All return a handle for dns_cancel(), never NULL; errors
 * (an invalid name) come back as DNS_ERROR through the callback.
 *   dns_lookup_ptr   PTR of ip (AF_INET or AF_INET6; an IPv4-mapped IPv6
 *                    address is looked up as IPv4).
 *   dns_lookup_addr  A and AAAA of name, merged (A records first).
 *   dns_lookup_mx    MX of name, sorted by preference.
 * name: a host name with or without the trailing dot; letters, digits,
 * hyphen and underscore (anything else is DNS_ERROR without a query).
 */
struct dns_query *dns_lookup_ptr(struct dns *d, const struct sockaddr *ip,
    dns_cb *cb, void *arg);
struct dns_query *dns_lookup_addr(struct dns *d, const char *name,
    dns_cb *cb, void *arg);
struct dns_query *dns_lookup_mx(struct dns *d, const char *name,
    dns_cb *cb, void *arg);

/*
 * Cancel a lookup: its callback will not be called. Sets *q = NULL. A NULL
 * *q is ignored, and so is the lookup whose callback is running now.
 */
void dns_cancel(struct dns_query **q);

/* Name of a status ("ok", "nxdomain", "timeout", ...), for logs. */
const char *dns_status_str(enum dns_status s);

/* Counters since dns_new, for metrics and tests. */
struct dns_stats {
	unsigned long long lookups;     /* dns_lookup_* calls */
	unsigned long long cache_hits;
	unsigned long long coalesced;   /* joined a lookup in flight */
	unsigned long long upstream;    /* ub_resolve_event calls */
	unsigned long long timeouts;    /* lookups answered DNS_TIMEOUT at
	                                   the deadline (busy not included) */
	unsigned long long busy;        /* refused: max_inflight reached */
	size_t             inflight;    /* libunbound queries outstanding now */
};
void dns_get_stats(const struct dns *d, struct dns_stats *out);

#endif
