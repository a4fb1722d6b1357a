/*
 * The ehlod daemon: listeners, worker threads, signals, reload, privilege
 * drop, and the state shared by sessions (see daemon.h).
 *
 * Threads: the main thread owns signals (SIGTERM/SIGINT stop, SIGHUP
 * reloads) and tells workers through an event it activates on each worker's
 * base (libevent is in pthreads mode, so event_active is thread-safe). Each
 * worker owns its sessions outright; nothing about a session is touched from
 * another thread. Shared state is only: the current generation pointer and
 * the per-IP table (under d->lock), and atomic counters.
 */
#include "session/daemon.h"
#include "session/metrics.h"
#include "session/session.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "config/addrmap.h"
#include "dns/dns.h"
#include "identity/load.h"
#include "lib/log.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "lib/xmalloc.h"
#include "net/cidr.h"
#include "proto/params.h"
#include "spool/fscheck.h"
#include "spool/spool.h"
#include "tls/tls.h"

/* ---- generations ---- */

struct gen *
gen_ref(struct gen *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

void
gen_unref(struct gen **gp)
{
	struct gen *g = *gp;
	if (g == NULL)
		return;
	*gp = NULL;
	if (atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	tls_server_unref(&g->tls);
	addrmap_free(&g->vmaps);
	psl_free(&g->psl);
	generic_free(&g->gp);
	cidr_list_clear(&g->ienv.exempt_nets);
	cidr_list_clear(&g->proxy_hosts);
	for (size_t i = 0; i < g->ienv.n_exempt_names; i++)
		free(g->ienv.exempt_names[i]);
	free(g->ienv.exempt_names);
	config_free(&g->cfg);
	free(g);
}

struct gen *
daemon_gen(struct daemon *d)
{
	pthread_mutex_lock(&d->lock);
	struct gen *g = gen_ref(d->gen);
	pthread_mutex_unlock(&d->lock);
	return g;
}

static const struct { const char *kw; unsigned bit; } ehlo_keywords[] = {
	{ "pipelining", EXT_PIPELINING }, { "size", EXT_SIZE },
	{ "8bitmime", EXT_8BITMIME }, { "enhancedstatuscodes", EXT_ENHANCEDSTATUSCODES },
	{ "smtputf8", EXT_SMTPUTF8 }, { "chunking", EXT_CHUNKING }, { "dsn", EXT_DSN },
	{ "starttls", EXT_STARTTLS }, { "auth", EXT_AUTH },
};

/* The generic-patterns file shipped with ehlo: installed, else the source
 * tree's copy (running from a build directory). */
static const char *
default_patterns_file(void)
{
	if (access(EHLO_DATADIR "/generic-patterns", R_OK) == 0)
		return EHLO_DATADIR "/generic-patterns";
	return EHLO_SRCDIR "/data/generic-patterns";
}

static bool
ident_env_build(struct gen *g, struct buf *err)
{
	const struct ehlo_config *cfg = g->cfg;
	struct ident_env *e = &g->ienv;
	policy_opts_from_config(&e->po, cfg);
	e->checks = policy_checks(&e->po);
	e->myhostname = cfg->myhostname;
	e->timeout_ms = cfg->dns_timeout;
	e->ptr_match_exact = cfg->helo_ptr_match_exact;
	if (e->checks == 0)
		return true;
	g->psl = psl_load_file(cfg->public_suffix_file, err);
	if (g->psl == NULL)
		return false;
	const char *gpf = cfg->helo_generic_patterns_file[0] ? cfg->helo_generic_patterns_file :
	    default_patterns_file();
	g->gp = generic_load_file(gpf, err);
	if (g->gp == NULL)
		return false;
	e->psl = g->psl;
	e->gp = g->gp;
	e->exempt_names = xcalloc(cfg->helo_checks_exempt.n + 1, sizeof *e->exempt_names);
	for (size_t i = 0; i < cfg->helo_checks_exempt.n; i++) {
		const char *x = cfg->helo_checks_exempt.v[i];
		struct buf tmp = BUF_INIT;
		/* An address or network, else a name (".example.com" = subdomains). */
		if (cidr_list_add(&e->exempt_nets, x, &tmp)) {
			buf_free(&tmp);
			continue;
		}
		buf_free(&tmp);
		char *n = xstrdup(x);
		ascii_lower_str(n);
		e->exempt_names[e->n_exempt_names++] = n;
	}
	return true;
}

/* Builds a generation from a loaded configuration (takes ownership of cfg).
 * NULL with a reason in err if a part (certificates, maps) fails. When
 * "may" finds no usable certificate the generation runs without STARTTLS:
 * the reason is logged, or appended to tls_off instead when it is not
 * NULL (a reload or a check, see reload_build and ehlod_check). */
/* The first submissions (implicit-TLS) entry of listen, or NULL. */
static const char *
submissions_listener(const struct ehlo_config *cfg)
{
	struct buf ignored = BUF_INIT;
	const char *found = NULL;
	for (size_t i = 0; i < cfg->listen.n && found == NULL; i++) {
		struct cfg_listen l;
		if (config_parse_listen(cfg->listen.v[i], &l, &ignored) &&
		    l.kind == LISTEN_SUBMISSIONS)
			found = cfg->listen.v[i];
	}
	buf_free(&ignored);
	return found;
}

static struct gen *
gen_build(struct ehlo_config *cfg, struct buf *err, struct buf *tls_off)
{
	struct gen *g = xcalloc(1, sizeof *g);
	atomic_init(&g->refs, 1);
	g->cfg = cfg;

	unsigned ext = EXT_PIPELINING | EXT_SIZE | EXT_8BITMIME | EXT_ENHANCEDSTATUSCODES |
	    EXT_SMTPUTF8 | EXT_CHUNKING | EXT_DSN | EXT_STARTTLS;
	for (size_t i = 0; i < cfg->smtpd_discard_ehlo_keywords.n; i++)
		for (size_t k = 0; k < sizeof ehlo_keywords / sizeof ehlo_keywords[0]; k++)
			if (ascii_ieq(cfg->smtpd_discard_ehlo_keywords.v[i], ehlo_keywords[k].kw))
				ext &= ~ehlo_keywords[k].bit;
	/* No TLS at all: STARTTLS is an unknown command (502), not one that
	 * fails for lack of a certificate (454). */
	if (cfg->smtpd_tls_security_level == TLS_LEVEL_NONE)
		ext &= ~(unsigned)EXT_STARTTLS;
	g->ext = ext;
	snprintf(g->greeting, sizeof g->greeting, "%s", cfg->smtpd_banner);

	if (!ident_env_build(g, err))
		goto fail;
	for (size_t i = 0; i < cfg->smtpd_upstream_proxy_hosts.n; i++)
		if (!cidr_list_add(&g->proxy_hosts, cfg->smtpd_upstream_proxy_hosts.v[i], err))
			goto fail;
	if (cfg->virtual_mailbox_maps[0] != '\0') {
		g->vmaps = addrmap_load(cfg->virtual_mailbox_maps, err);
		if (g->vmaps == NULL)
			goto fail;
	}
	if (cfg->smtpd_tls_security_level != TLS_LEVEL_NONE) {
		struct tls_server_opts to = {
			.cert_files = (const char *const *)cfg->smtpd_tls_cert_file.v,
			.key_files = (const char *const *)cfg->smtpd_tls_key_file.v,
			.ncerts = cfg->smtpd_tls_cert_file.n,
			.protocols = cfg->smtpd_tls_protocols,
			.ciphers = cfg->smtpd_tls_ciphers,
			.sni_map = cfg->tls_server_sni_maps,
			.ask_ccert = cfg->smtpd_tls_ask_ccert,
			.session_tickets = cfg->smtpd_tls_session_tickets,
			.auto_cert_dir = cfg->smtpd_tls_auto_cert ? cfg->smtpd_tls_auto_cert_dir : NULL,
			.auto_cert_name = cfg->myhostname,
		};
		g->tls = tls_server_new(&to, err);
		if (g->tls == NULL) {
			if (cfg->smtpd_tls_cert_file.n > 0 || cfg->smtpd_tls_security_level ==
			    TLS_LEVEL_ENCRYPT)
				goto fail;
			/* An implicit-TLS listener would close every connection
			 * (RFC 8314 §3: TLS first): not a server to start. */
			const char *implicit = submissions_listener(cfg);
			if (implicit != NULL) {
				char *why = buf_steal(err);
				buf_appendf(err, "listen: %s is implicit TLS (RFC 8314) but there is "
				    "no usable certificate: %s", implicit, why);
				free(why);
				goto fail;
			}
			/* "may" with no usable certificate: run without STARTTLS. */
			if (tls_off != NULL)
				buf_appendf(tls_off, "%s", buf_cstr(err));
			else
				log_warn("TLS disabled: %s", buf_cstr(err));
			buf_reset(err);
		}
	}
	return g;
fail:
	g->cfg = NULL;   /* the caller still owns cfg on failure */
	gen_unref(&g);
	return NULL;
}

/*
 * The generation a reload would switch to, or NULL with the reason in err
 * (the caller still owns cfg then). Besides gen_build's failures, a reload
 * that would lose STARTTLS by accident fails too. With "may", a
 * certificate that cannot be loaded means running without STARTTLS at
 * start (docs/tls.md); but a server that offers STARTTLS must not stop
 * offering it, and fall back to plaintext for every client, because a
 * renewed key or its directory became unreadable. Turning TLS off on
 * purpose (smtpd_tls_security_level = none) still reloads. had_tls:
 * whether the running generation offers STARTTLS.
 */
static struct gen *
reload_build(struct ehlo_config *cfg, bool had_tls, struct buf *err)
{
	struct buf tls_off = BUF_INIT;
	struct gen *g = gen_build(cfg, err, &tls_off);
	if (g != NULL && had_tls && g->tls == NULL &&
	    cfg->smtpd_tls_security_level != TLS_LEVEL_NONE) {
		buf_appendf(err, "STARTTLS would no longer be offered: %s", buf_cstr(&tls_off));
		g->cfg = NULL;          /* the caller still owns cfg */
		gen_unref(&g);
	}
	buf_free(&tls_off);
	return g;
}

size_t
daemon_message_memory(const struct daemon *d)
{
	return atomic_load_explicit(&d->stats.receiving_bytes, memory_order_relaxed) +
	    (d->spool != NULL ? spool_held_bytes(d->spool) : 0);
}

/* ---- per-client connection counts ---- */

struct ipcount {
	struct ipcount *next;
	int      family;
	uint8_t  addr[16];
	unsigned count;
};

#define IPC_BUCKETS 4096

/* The counted client: sa's network at the configured prefix lengths (the
 * address itself by default for IPv4, its /84 for IPv6; an IPv4-mapped
 * address counts as IPv4), and its hash bucket. */
static size_t
ip_key(const struct daemon *d, const struct sockaddr *sa, int *fam, uint8_t addr[16])
{
	struct cidr net;
	(void)cidr_of_client(sa, d->v4_prefix, d->v6_prefix, &net);
	*fam = net.family;
	memcpy(addr, net.addr, 16);
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h % IPC_BUCKETS;
}

unsigned
daemon_ip_add(struct daemon *d, const struct sockaddr *sa)
{
	int fam;
	uint8_t a[16];
	size_t h = ip_key(d, sa, &fam, a);
	pthread_mutex_lock(&d->lock);
	struct ipcount **bucket = d->ipc + h, *e;
	for (e = *bucket; e; e = e->next)
		if (e->family == fam && memcmp(e->addr, a, 16) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof *e);
		e->family = fam;
		memcpy(e->addr, a, 16);
		e->next = *bucket;
		*bucket = e;
	}
	unsigned n = ++e->count;
	pthread_mutex_unlock(&d->lock);
	return n;
}

void
daemon_ip_del(struct daemon *d, const struct sockaddr *sa)
{
	int fam;
	uint8_t a[16];
	size_t h = ip_key(d, sa, &fam, a);
	pthread_mutex_lock(&d->lock);
	struct ipcount **pp = d->ipc + h;
	for (; *pp; pp = &(*pp)->next) {
		struct ipcount *e = *pp;
		if (e->family == fam && memcmp(e->addr, a, 16) == 0) {
			if (--e->count == 0) {
				*pp = e->next;
				free(e);
			}
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* ---- listeners ---- */

static bool
listener_parse(const char *spec, struct listener_def *l, struct buf *err)
{
	struct cfg_listen cl;
	if (!config_parse_listen(spec, &cl, err))
		return false;
	memset(l, 0, sizeof *l);
	l->kind = cl.kind;
	snprintf(l->name, sizeof l->name, "%s", spec);
	if (cl.family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(cl.port);
		inet_pton(AF_INET6, cl.addr, &in6->sin6_addr);
		l->sslen = sizeof *in6;
	} else if (cl.family == AF_INET) {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&l->ss;
		in4->sin_family = AF_INET;
		in4->sin_port = htons(cl.port);
		inet_pton(AF_INET, cl.addr, &in4->sin_addr);
		l->sslen = sizeof *in4;
	} else {
		/* "*": all addresses, IPv6 socket accepting IPv4 too. */
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(cl.port);
		in6->sin6_addr = in6addr_any;
		l->sslen = sizeof *in6;
	}
	return true;
}

static int
bind_one(struct listener_def *l, struct buf *err)
{
	int fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		buf_appendf(err, "%s: socket: %s", l->name, strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (l->ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->ss;
		bool any = memcmp(&in6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof one);
	}
	if (bind(fd, (struct sockaddr *)&l->ss, l->sslen) != 0) {
		buf_appendf(err, "%s: bind: %s", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 1024) != 0) {
		buf_appendf(err, "%s: listen: %s", l->name, strerror(errno));
		close(fd);
		return -1;
	}
	/* Port 0 (tests): every worker's socket must share the kernel's choice. */
	struct sockaddr_storage got;
	socklen_t gl = sizeof got;
	if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
		if (got.ss_family == AF_INET)
			((struct sockaddr_in *)&l->ss)->sin_port = ((struct sockaddr_in *)&got)->sin_port;
		else if (got.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&l->ss)->sin6_port = ((struct sockaddr_in6 *)&got)->sin6_port;
	}
	return fd;
}

struct accept_ctx {
	struct worker *w;
	const struct listener_def *l;
	int            idx;          /* in w->ls */
	struct event  *pause;        /* re-enables the listener after EMFILE */
	time_t         logged_at;    /* last accept-error line (one per 10 s) */
	unsigned       unlogged;     /* errors since that line */
};

static void
on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
	struct accept_ctx *a = arg;
	session_accept(a->w, fd, sa, (socklen_t)salen, a->l);
}

/* How long a listener rests after running out of descriptors. */
#define ACCEPT_PAUSE_MS 100

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct accept_ctx *a = arg;
	if (a->w->ls != NULL && a->w->ls[a->idx] != NULL && !a->w->stopping)
		evconnlistener_enable(a->w->ls[a->idx]);
}

/*
 * accept(2) failed. Out of descriptors (EMFILE, ENFILE) or memory
 * (ENOBUFS, ENOMEM), the connection stays in the backlog and the listening
 * socket stays readable, so libevent called accept again at once: one
 * client holding the process's descriptors made ehlod spin at full CPU
 * and write 400,000 log lines a second (measured with a 64-descriptor
 * limit). The listener now rests ACCEPT_PAUSE_MS, as nginx's does, while
 * live sessions go on and free descriptors; waiting clients stay in the
 * backlog. The line is logged once per 10 s with a count, and counted in
 * ehlo_smtpd_accept_errors_total.
 */
static void
on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct accept_ctx *a = arg;
	int e = EVUTIL_SOCKET_ERROR();
	atomic_fetch_add(&a->w->d->stats.accept_errors, 1);
	time_t now = time(NULL);
	if (now - a->logged_at >= 10) {
		log_warn("accept on %s: %s%s (%u more since the last such line)", a->l->name,
		    evutil_socket_error_to_string(e), e == EMFILE || e == ENFILE ?
		    ": out of file descriptors; raise the open-file limit or lower "
		    "smtpd_max_connections" : "", a->unlogged);
		a->logged_at = now;
		a->unlogged = 0;
	} else {
		a->unlogged++;
	}
	if ((e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) && a->pause != NULL) {
		evconnlistener_disable(lis);
		struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
		evtimer_add(a->pause, &tv);
	}
}

/* ---- workers ---- */

/* The sessions cut at the deadline have this long to flush their 421. */
#define STOP_FLUSH_GRACE_S 2

static void
on_stop_final(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	event_base_loopbreak(w->base);   /* session_free_all frees the rest */
}

static void
on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	log_warn("worker %d: %u sessions still busy at shutdown deadline: closing them",
	    w->index, w->nsessions);
	session_cut_all(w);
	if (w->nsessions > 0) {
		struct timeval tv = { STOP_FLUSH_GRACE_S, 0 };
		event_base_once(w->base, -1, EV_TIMEOUT, on_stop_final, w, &tv);
	}
}

static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int flags = atomic_exchange(&w->ctl_flags, 0);
	if ((flags & CTL_STOP) && !w->stopping) {
		w->stopping = true;
		for (int i = 0; i < w->d->nlisteners; i++) {
			if (w->ls[i]) {
				evconnlistener_free(w->ls[i]);
				w->ls[i] = NULL;
			}
		}
		session_stop_all(w);
		if (w->nsessions == 0) {
			event_base_loopexit(w->base, NULL);
		} else {
			struct gen *g = daemon_gen(w->d);
			long long ms = g->cfg->smtpd_shutdown_timeout;
			gen_unref(&g);
			struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
			event_base_once(w->base, -1, EV_TIMEOUT, on_stop_deadline, w, &tv);
		}
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	if (w->need_dns) {
		/* Created on the loop's own thread: a libunbound context is used
		 * only from the thread that owns it (NLnetLabs/unbound#100). */
		struct gen *g = daemon_gen(w->d);
		const struct ehlo_config *cfg = g->cfg;
		struct dns_opts dop = {
			.forwarders = (const char *const *)cfg->dns_forwarders.v,
			.nforwarders = cfg->dns_forwarders.n,
			.timeout_ms = cfg->dns_timeout,
			.cache_size = (size_t)cfg->dns_cache_size,
			.max_inflight = (size_t)cfg->dns_max_inflight,
			.busy_total = &w->d->stats.dns_inflight_rejects,
			.inflight = &w->d->stats.dns_inflight,
		};
		struct buf err = BUF_INIT;
		w->dns = dns_new(w->base, &dop, &err);
		if (w->dns == NULL)
			log_fatal(78, "%s", buf_cstr(&err));
		buf_free(&err);
		gen_unref(&g);
	}
	/* event_base_dispatch(), one iteration at a time: the log lines of an
	 * iteration go out together (log_batch_begin). */
	log_batch_begin();
	while (event_base_loop(w->base, EVLOOP_ONCE) == 0) {
		log_batch_flush();
		if (event_base_got_exit(w->base) || event_base_got_break(w->base))
			break;
	}
	log_batch_end();
	/* Sessions left at the shutdown deadline are freed here, on their own
	 * thread, so their DNS queries are cancelled by the resolver's owner. */
	session_free_all(w);
	dns_free(&w->dns);
	return NULL;
}

/* ---- main thread: signals and reload ---- */

/* config_warnings(), one log line each. */
static void
log_config_warnings(const struct ehlo_config *cfg)
{
	const char *w = config_warnings(cfg);
	while (*w != '\0') {
		const char *nl = strchr(w, '\n');
		size_t n = nl != NULL ? (size_t)(nl - w) : strlen(w);
		log_warn("%.*s", (int)n, w);
		w += n + (nl != NULL);
	}
}

struct main_ctx {
	struct daemon *d;
	struct event_base *base;
	const char *config_file;
	const char *owner;      /* mail_owner after the drop from root, or NULL */
};

static void
tell_workers(struct daemon *d, int flag)
{
	for (int i = 0; i < d->nworkers; i++) {
		atomic_fetch_or(&d->workers[i].ctl_flags, flag);
		event_active(d->workers[i].ctl, EV_READ, 0);
	}
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_ctx *m = arg;
	log_info("%s received: stopping (sessions in a transaction may finish)",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	tell_workers(m->d, CTL_STOP);
	event_base_loopexit(m->base, NULL);
}

/* A reload that did not take: counted, and the metrics' "last reload
 * successful" gauge drops to 0 until one does (alert on it). */
static void
reload_failed(struct main_ctx *m, const struct buf *err)
{
	log_err("reload failed, keeping the running configuration: %s%s%s%s",
	    buf_cstr(err), m->owner ? " (a reload reads the files as " : "",
	    m->owner ? m->owner : "", m->owner ? ")" : "");
	atomic_fetch_add(&m->d->stats.reloads_failed, 1);
	atomic_store(&m->d->stats.last_reload_ok, 0);
}

static void
on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_ctx *m = arg;
	struct daemon *d = m->d;
	struct buf err = BUF_INIT;
	const char *path = m->config_file[0] ? m->config_file : NULL;
	struct ehlo_config *cfg = config_load(path, &err);
	if (cfg == NULL) {
		reload_failed(m, &err);
		buf_free(&err);
		return;
	}
	log_config_warnings(cfg);
	struct gen *old = daemon_gen(d);
	if (!config_reload_compatible(old->cfg, cfg, &err))
		log_warn("reload: %s; they keep their running values", buf_cstr(&err));
	buf_reset(&err);
	/* And keep them: a new virtual_mailbox_base or maillog_file applied
	 * by a reload that said otherwise, and a later reload back to the
	 * file's value then warned about a change it was undoing. */
	config_keep_restart_only(cfg, old->cfg);
	struct gen *g = reload_build(cfg, old->tls != NULL, &err);
	if (g == NULL) {
		reload_failed(m, &err);
		config_free(&cfg);
		gen_unref(&old);
		buf_free(&err);
		return;
	}
	gen_unref(&old);
	pthread_mutex_lock(&d->lock);
	struct gen *prev = d->gen;
	d->gen = g;
	pthread_mutex_unlock(&d->lock);
	gen_unref(&prev);   /* live sessions keep their own references */
	if (log_open(g->cfg->maillog_file, "ehlod") != 0)
		log_warn("reload: cannot open maillog_file %s: %s", g->cfg->maillog_file,
		    strerror(errno));
	atomic_fetch_add(&d->stats.reloads_ok, 1);
	atomic_store(&d->stats.last_reload_ok, 1);
	atomic_store(&d->stats.last_reload_time, (long long)time(NULL));
	log_info("reloaded configuration%s%s", m->config_file[0] ? " from " : "",
	    m->config_file);
	buf_free(&err);
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		log_err("mail_owner %s: no such user", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		log_err("cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_err("privilege drop to %s did not stick", user);
		return -1;
	}
	return 0;
}

/* True if the start would make (or load) the self-signed pair. */
static bool
uses_auto_cert(const struct ehlo_config *cfg)
{
	return cfg->smtpd_tls_cert_file.n == 0 && cfg->smtpd_tls_auto_cert &&
	    cfg->smtpd_tls_security_level != TLS_LEVEL_NONE;
}

/*
 * For ehlod -t: the self-signed pair is made at start, under
 * smtpd_tls_auto_cert_dir and its lock, and a check must not make it
 * there. It makes one of its own in a private temporary directory
 * instead, so that the rest of the TLS load (SNI maps, protocols,
 * ciphers; "encrypt" needing a certificate) is still tried. Before, the
 * pair was simply left out, and "encrypt" with the self-signed pair, which
 * starts, failed the check with "no certificate configured". Returns the
 * directory for check_auto_cert_done(), or NULL.
 */
static char *
check_auto_cert(struct ehlo_config *cfg)
{
	if (!uses_auto_cert(cfg))
		return NULL;
	const char *tmp = getenv("TMPDIR");
	char *dir = xasprintf("%s/ehlod-check-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		free(dir);
		cfg->smtpd_tls_auto_cert = false;   /* check without it, as before */
		return NULL;
	}
	free(cfg->smtpd_tls_auto_cert_dir);
	cfg->smtpd_tls_auto_cert_dir = xstrdup(dir);
	return dir;
}

/* Removes what check_auto_cert()'s directory holds (files only), and it. */
static void
check_auto_cert_done(char *dir)
{
	if (dir == NULL)
		return;
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				(void)unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	(void)rmdir(dir);
	free(dir);
}

/*
 * A reload (SIGHUP) reads the configuration file and every file it names
 * (certificates and keys, maps, pattern files) again, by then as
 * mail_owner. A key that only root can read loads at start and makes
 * every later reload fail, which an operator would otherwise find out at
 * the next certificate renewal, when the old certificate stays in use
 * until it expires. So the whole load is tried once as mail_owner: by the
 * daemon right after its privilege drop, and by ehlod -t. The trial runs
 * in a child process (the daemon is still single-threaded there), so that
 * what it allocates (certificates, the public suffix list) never adds to
 * the daemon's memory, and so that ehlod -t, still root, can drop
 * privileges for it alone. The child sends back the warning text, if any,
 * through a pipe; it is appended to out. had_tls: whether the running (or
 * checked) generation offers STARTTLS (see reload_build). check: called by
 * ehlod -t, so the child drops privileges itself and leaves TLS out when
 * it would rest on the self-signed pair (which only a start makes).
 */
static void
trial_as_owner(const char *config_file, const char *owner, bool had_tls, bool check,
    struct buf *out)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		buf_appendf(out, "cannot check what a reload as %s would read: pipe: %s", owner,
		    strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		buf_appendf(out, "cannot check what a reload as %s would read: fork: %s", owner,
		    strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		struct buf err = BUF_INIT, msg = BUF_INIT;
		struct ehlo_config *cfg = NULL;
		struct gen *g = NULL;
		if (check && drop_privileges(owner) != 0) {
			buf_appendf(&msg, "cannot switch to mail_owner %s to check what a reload "
			    "would read", owner);
		} else {
			cfg = config_load(config_file[0] ? config_file : NULL, &err);
			/* ehlod -t: the self-signed pair the start would make is not
			 * there to read; what a reload reads of it is tried at start. */
			if (cfg != NULL && check && uses_auto_cert(cfg))
				cfg->smtpd_tls_security_level = TLS_LEVEL_NONE;
			g = cfg != NULL ? reload_build(cfg, had_tls, &err) : NULL;
			if (g == NULL)
				buf_appendf(&msg, "a reload (SIGHUP) would fail and keep the running "
				    "configuration, because it reads the files as %s: %s; make them "
				    "readable by %s (for example through a group of %s, ehlod(8)) "
				    "or restart ehlod to apply changes", owner, buf_cstr(&err), owner,
				    owner);
		}
		const char *q = msg.data;
		size_t left = msg.len;
		while (left > 0) {
			ssize_t w = write(p[1], q, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			q += w;
			left -= (size_t)w;
		}
		_exit(0);       /* no atexit handlers, nothing freed: the parent owns it all */
	}
	close(p[1]);
	struct buf msg = BUF_INIT;
	char chunk[4096];
	for (;;) {
		ssize_t r = read(p[0], chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (msg.len < 65536)
			buf_append(&msg, chunk, (size_t)r);
	}
	close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (msg.len > 0)
		buf_appendf(out, "%s", buf_cstr(&msg));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		buf_appendf(out, "the check of what a reload as %s would read ended abnormally "
		    "(wait status %d)", owner, status);
	buf_free(&msg);
}

/*
 * Cuts path in place back to the nearest of itself and its ancestors that
 * exists, and stats it: 0, or the errno value of the first stat that
 * failed other than with ENOENT (ENOTDIR: a regular file on the way), or
 * ENOENT if none exists (a relative path whose first component is new).
 */
static int
nearest_existing(char *path, struct stat *st)
{
	while (stat(path, st) != 0) {
		if (errno != ENOENT)
			return errno;
		char *slash = strrchr(path, '/');
		if (slash == NULL || slash == path)
			return ENOENT;
		*slash = '\0';
	}
	return 0;
}

int
ehlod_check(struct ehlo_config *cfg, struct buf *err, struct buf *warn)
{
	if (cfg->mail_owner[0] != '\0') {
		struct passwd *pw = getpwnam(cfg->mail_owner);
		if (pw == NULL || pw->pw_uid == 0) {
			buf_appendf(err, pw == NULL ? "mail_owner %s: no such user" :
			    "mail_owner %s: must be an unprivileged user (uid 0 drops nothing)",
			    cfg->mail_owner);
			config_free(&cfg);
			return 78;      /* EX_CONFIG, as the start would exit */
		}
	}
	/* The start makes these with mkdir -p (exit 73 if it cannot): the
	 * nearest one on the way that exists must be a directory. */
	const char *dirs[2][2] = {
		{ "virtual_mailbox_base", cfg->virtual_mailbox_base },
		{ "spool_journal_directory", cfg->spool_journal_directory },
	};
	for (size_t i = 0; i < 2; i++) {
		if (dirs[i][1][0] == '\0')
			continue;
		char *p = xstrdup(dirs[i][1]);
		struct stat st;
		int e = nearest_existing(p, &st);
		if (e == 0 && !S_ISDIR(st.st_mode))
			e = ENOTDIR;
		else if (e == ENOENT)
			e = 0;          /* a relative path: the working directory */
		free(p);
		if (e != 0) {
			buf_appendf(err, "cannot create %s %s: %s", dirs[i][0], dirs[i][1],
			    strerror(e));
			config_free(&cfg);
			return 73;      /* as the start */
		}
	}
	/* The start opens maillog_file first and stops (exit 75) if it
	 * cannot: the same rules, without creating the file. */
	if (log_check(cfg->maillog_file) != 0) {
		buf_appendf(err, "cannot open maillog_file %s: %s", cfg->maillog_file,
		    strerror(errno));
		config_free(&cfg);
		return 75;
	}
	char *auto_dir = check_auto_cert(cfg);
	struct buf tls_off = BUF_INIT;
	struct gen *g = gen_build(cfg, err, &tls_off);
	check_auto_cert_done(auto_dir);
	/* With "may", a TLS load that fails means a start without STARTTLS:
	 * not an error, but not silent either (a missing SNI map passed). */
	if (g != NULL && tls_off.len > 0)
		buf_appendf(warn, "STARTTLS would not be offered: %s", buf_cstr(&tls_off));
	buf_free(&tls_off);
	if (g == NULL) {
		config_free(&cfg);
		return 78;      /* EX_CONFIG */
	}
	/* g owns cfg now; the trial's child is forked before it is freed. */
	if (g->cfg->mail_owner[0] != '\0' && geteuid() == 0)
		trial_as_owner(g->cfg->config_file, g->cfg->mail_owner, g->tls != NULL, true,
		    warn);
	gen_unref(&g);
	return 0;
}

/*
 * mkdir -p for the Maildir base, and chown to the mail owner. What it
 * creates is fsynced, itself and its entry in the parent: on a file system
 * that does not order its metadata (ext4 without a journal) a power cut
 * could otherwise leave the base a corrupt directory, which stops the
 * boot's e2fsck -p (tests/e2e/test_powerloss.py). Errors of these fsyncs
 * are not fatal: the spool fsyncs every directory it delivers into.
 */
static int
make_dirs(const char *path, uid_t uid, gid_t gid)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	bool made = false;
	for (char *p = tmp + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(tmp, 0755) == 0) {
				made = true;
				(void)spool_dir_made_durable(tmp);
			} else if (errno != EEXIST)
				return -1;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	if (uid != (uid_t)-1 && chown(path, uid, gid) != 0)
		return -1;
	if (made && uid != (uid_t)-1)
		(void)spool_dir_fsync(path);    /* the chown */
	return 0;
}

/*
 * Running as root with a mail_owner: the self-signed pair's directory must
 * not be writable by anyone but root. Root creates, reads and chowns files
 * there before the privilege drop, and a user who could write the
 * directory could put a symbolic link in their place and have root create
 * or hand over any file (the lock file's open(O_CREAT) would make
 * /etc/nologin, a chown would give away /etc/shadow). Earlier versions
 * gave the directory itself to mail_owner: such a directory is taken
 * back; any other unsafe owner or mode is fatal.
 */
static void
autocert_dir_safe(const char *dir, uid_t mail_uid)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		log_fatal(73, "smtpd_tls_auto_cert_dir %s: %s", dir, strerror(errno));
	if (st.st_uid == mail_uid && st.st_uid != 0) {
		if (fchown(fd, 0, 0) != 0 || fchmod(fd, st.st_mode & 0755) != 0)
			log_fatal(73, "smtpd_tls_auto_cert_dir %s: cannot give it back to root: %s",
			    dir, strerror(errno));
		log_info("smtpd_tls_auto_cert_dir %s: now owned by root (it belonged to "
		    "mail_owner)", dir);
		st.st_uid = 0;
		st.st_mode &= 0755;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
		log_fatal(73, "smtpd_tls_auto_cert_dir %s must be owned by root and not "
		    "writable by group or others: root creates files there", dir);
	close(fd);
}

/* True if user (primary group gid) is in group g, supplementary groups
 * included, as after initgroups() in drop_privileges. */
static bool
in_groups(const char *user, gid_t gid, gid_t g)
{
	if (g == gid)
		return true;
	gid_t groups[256];
	int n = (int)(sizeof groups / sizeof groups[0]);
	if (getgrouplist(user, gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

/* A directory only root may change entries of: root's, and writable by
 * group or others only with the sticky bit (whose entries only their
 * owners, root here as the caller checks the next level, may rename). */
static bool
root_dir(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && st->st_uid == 0 &&
	    ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0 || (st->st_mode & S_ISVTX));
}

/* Every prefix of the absolute path p (/, /a, /a/b, ... p) names a
 * root_dir, each looked up as written (stat follows links, lstat checks
 * a link's own owner). */
static bool
prefixes_root(const char *p)
{
	char tmp[4096];
	size_t n = strlen(p);
	if (n == 0 || n >= sizeof tmp || p[0] != '/')
		return false;
	memcpy(tmp, p, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (i < n && tmp[i] != '/')
			continue;
		char c = tmp[i];
		tmp[i] = '\0';
		struct stat st, lst;
		/* tmp is the prefix up to here: never empty, it starts with '/'. */
		bool ok = stat(tmp, &st) == 0 && root_dir(&st) &&
		    lstat(tmp, &lst) == 0 && lst.st_uid == 0;
		tmp[i] = c;
		if (!ok)
			return false;
	}
	struct stat st;
	return stat("/", &st) == 0 && root_dir(&st);
}

/*
 * True if no user but root can change what path names, up to its nearest
 * existing directory: every directory on the way, as written and as
 * resolved (realpath: where links lead), is a root_dir. Root may then
 * create and chown there by name. Anywhere else (under a directory the
 * mail owner can write, say) a user could put a symbolic link in the way
 * between our check and our use, and have root create or hand over any
 * file or directory (a session-13 audit took /etc-like targets that way).
 */
static bool
trusted_path(const char *path)
{
	char abs[4096], real[PATH_MAX];
	if (path[0] == '/') {
		snprintf(abs, sizeof abs, "%s", path);
	} else {
		char cwd[2048];
		if (getcwd(cwd, sizeof cwd) == NULL)
			return false;
		snprintf(abs, sizeof abs, "%s/%s", cwd, path);
	}
	struct stat st;
	if (nearest_existing(abs, &st) != 0 || !S_ISDIR(st.st_mode))
		return false;
	return prefixes_root(abs) && realpath(abs, real) != NULL && prefixes_root(real);
}

/*
 * The directories the spool writes in, for mail_owner, started as root.
 * On a trusted path root makes them and hands them over; elsewhere it does
 * nothing by name there (see trusted_path), and the mail owner makes them
 * itself after the privilege drop (in ehlod_run). Returns true if that
 * is still to do.
 */
static bool
spool_dir_as_root(const char *setting, const char *path, uid_t uid, gid_t gid)
{
	if (uid != (uid_t)-1 && geteuid() == 0 && !trusted_path(path)) {
		log_info("%s %s: under a directory others than root can write: made and "
		    "checked as mail_owner after the privilege drop", setting, path);
		return true;
	}
	if (make_dirs(path, uid, gid) != 0)
		log_fatal(73, "cannot create %s %s: %s", setting, path, strerror(errno));
	return false;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Logs fs_check()'s warning for a spool directory, if it has one. */
static void
warn_fs(const char *setting, const char *path)
{
	struct buf msg = BUF_INIT;
	if (fs_check(setting, path, &msg) != FS_OK)
		log_warn("%s", buf_cstr(&msg));
	buf_free(&msg);
}

int
ehlod_run(struct ehlo_config *cfg)
{
	struct daemon dd;
	struct daemon *d = &dd;
	memset(d, 0, sizeof *d);
	atomic_store(&d->stats.last_reload_ok, 1);
	atomic_store(&d->stats.last_reload_time, (long long)time(NULL));
	pthread_mutex_init(&d->lock, NULL);
	d->ipc = xcalloc(IPC_BUCKETS, sizeof(struct ipcount *));
	/* Fixed for the process (the settings need a restart): a session is
	 * uncounted with the key it was counted with. */
	d->v4_prefix = (unsigned)cfg->smtpd_client_ipv4_prefix_length;
	d->v6_prefix = (unsigned)cfg->smtpd_client_ipv6_prefix_length;
	struct buf err = BUF_INIT;

	/*
	 * SIGHUP, SIGTERM and SIGINT wait (blocked, pending) until their
	 * handlers are installed below. The listeners accept connections
	 * before the spool has started (journal replay, a segment's pre-fill
	 * can take seconds), and a SIGHUP then (logrotate, "systemctl
	 * reload") killed ehlod by its default action, without a log line.
	 * Now it becomes a reload, and a SIGTERM a graceful stop, as soon as
	 * the main loop runs. Threads made meanwhile block every signal.
	 */
	sigset_t early;
	sigemptyset(&early);
	sigaddset(&early, SIGHUP);
	sigaddset(&early, SIGTERM);
	sigaddset(&early, SIGINT);
	pthread_sigmask(SIG_BLOCK, &early, NULL);

	/*
	 * Message bodies of 256 KiB and more live in their own mappings,
	 * returned to the kernel when freed. With glibc's sliding threshold
	 * (it rises to the size of any mapped block freed, up to 32 MiB) they
	 * came from the heap after the first one, and the heap kept what they
	 * freed: 30 clients sending 4 MB at once under a 64 MB
	 * smtpd_message_memory_limit peaked at 95-101 MB RSS and stayed at
	 * 20-28 MB with nothing held; with the fixed threshold, 58-60 MB and
	 * 9 MB. The limit bounds what ehlod holds, and so now its memory.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	if (log_open(cfg->maillog_file, "ehlod") != 0) {
		fprintf(stderr, "ehlod: cannot open maillog_file %s: %s\n", cfg->maillog_file,
		    strerror(errno));
		config_free(&cfg);
		free(d->ipc);
		pthread_mutex_destroy(&d->lock);
		return 75;
	}
	log_config_warnings(cfg);
	struct rlimit nofile;
	/* Each session holds a descriptor; the delivery threads, the journal,
	 * the listeners and libevent hold some more. */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
	    (unsigned long long)nofile.rlim_cur < (unsigned long long)cfg->smtpd_max_connections + 256)
		log_warn("the open-file limit (%llu) is below smtpd_max_connections (%lld) plus "
		    "256: beyond it connections wait in the backlog (raise it, e.g. systemd's "
		    "LimitNOFILE, or lower smtpd_max_connections)",
		    (unsigned long long)nofile.rlim_cur, cfg->smtpd_max_connections);
	char *config_file = xstrdup(cfg->config_file);

	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (cfg->mail_owner[0]) {
		struct passwd *pw = getpwnam(cfg->mail_owner);
		if (pw == NULL)
			log_fatal(78, "mail_owner %s: no such user", cfg->mail_owner);
		if (pw->pw_uid == 0)
			log_fatal(78, "mail_owner %s: must be an unprivileged user (uid 0 drops "
			    "nothing)", cfg->mail_owner);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	/*
	 * The log file is reopened on reload, as mail_owner by then. A file
	 * this start created (log_created_fd: O_EXCL, no symbolic link) is
	 * handed to mail_owner through its descriptor. One that existed is
	 * left as it is: a chown by name as root follows a symbolic link, and
	 * whoever could write the log's directory (mail_owner itself, when
	 * that directory is its own) could make it any file, /etc/shadow
	 * included; nor is a shared log such as /var/log/mail.log ours to
	 * give away. If mail_owner cannot write it, say so now.
	 */
	if (uid != (uid_t)-1) {
		struct stat lst;
		int lfd = log_created_fd();
		if (lfd >= 0) {
			if (fchown(lfd, uid, gid) != 0)
				log_warn("chown %s: %s", cfg->maillog_file, strerror(errno));
		} else if (stat(cfg->maillog_file, &lst) == 0 && S_ISREG(lst.st_mode) &&
		    !(lst.st_uid == uid && (lst.st_mode & S_IWUSR)) &&
		    !(in_groups(cfg->mail_owner, gid, lst.st_gid) && (lst.st_mode & S_IWGRP)) &&
		    !(lst.st_mode & S_IWOTH)) {
			log_warn("maillog_file %s is not writable by mail_owner %s: a reload after "
			    "the file is rotated cannot reopen it (give it to %s, or have the "
			    "rotation create it so)", cfg->maillog_file, cfg->mail_owner,
			    cfg->mail_owner);
		}
	}
	bool base_later = spool_dir_as_root("virtual_mailbox_base", cfg->virtual_mailbox_base,
	    uid, gid);
	bool journal_later = cfg->spool_journal_directory[0] &&
	    spool_dir_as_root("spool_journal_directory", cfg->spool_journal_directory, uid, gid);
	/* Root's, not mail_owner's: root writes and chowns the pair there
	 * before the drop (autocert_dir_safe), so the way to it must be
	 * root's too (trusted_path). Only when the start will make or load
	 * the pair: with TLS off there is nothing to make. */
	if (uses_auto_cert(cfg)) {
		if (uid != (uid_t)-1 && geteuid() == 0) {
			char *dir = xstrdup(cfg->smtpd_tls_auto_cert_dir);
			bool trusted = trusted_path(path_parent(dir));
			free(dir);
			if (!trusted)
				log_fatal(73, "smtpd_tls_auto_cert_dir %s: a directory on the way to "
				    "it can be written by others than root, who creates files there "
				    "before dropping privileges: move it", cfg->smtpd_tls_auto_cert_dir);
		}
		if (make_dirs(cfg->smtpd_tls_auto_cert_dir, (uid_t)-1, (gid_t)-1) != 0)
			log_fatal(73, "cannot create smtpd_tls_auto_cert_dir %s: %s",
			    cfg->smtpd_tls_auto_cert_dir, strerror(errno));
		if (uid != (uid_t)-1 && geteuid() == 0)
			autocert_dir_safe(cfg->smtpd_tls_auto_cert_dir, uid);
	}

	struct ehlo_config *cfg_keep = cfg;
	d->gen = gen_build(cfg, &err, NULL);
	if (d->gen == NULL) {
		config_free(&cfg_keep);
		log_fatal(78, "%s", buf_cstr(&err));
	}
	cfg = d->gen->cfg;
	if (uid != (uid_t)-1 && d->gen->tls != NULL && cfg->smtpd_tls_auto_cert &&
	    cfg->smtpd_tls_cert_file.n == 0) {
		/* The self-signed pair was made as root; a reload (SIGHUP) runs as
		 * mail_owner and must still read it. */
		static const char *const pre[] = { "", "", "." };
		static const char *const ext[] = { ".crt", ".key", ".lock" };
		for (size_t i = 0; i < 3; i++) {
			char p[4096];
			snprintf(p, sizeof p, "%s/%s%s%s", cfg->smtpd_tls_auto_cert_dir, pre[i],
			    cfg->myhostname, ext[i]);
			/* Through a descriptor of the file itself, never a
			 * symbolic link's target (the directory is root's,
			 * see autocert_dir_safe, but be exact anyway). */
			int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			struct stat fst;
			if (fd < 0) {
				if (errno != ENOENT)
					log_warn("chown %s: %s", p, strerror(errno));
				continue;
			}
			if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode))
				log_warn("chown %s: not a regular file", p);
			else if (fchown(fd, uid, gid) != 0)
				log_warn("chown %s: %s", p, strerror(errno));
			close(fd);
		}
	}

	/* Listeners: one socket per listener per worker (SO_REUSEPORT). */
	int nworkers = (int)cfg->smtpd_workers;
	if (nworkers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nworkers = n > 0 ? (int)n : 1;
	}
	d->nlisteners = (int)cfg->listen.n;
	d->listeners = xcalloc((size_t)d->nlisteners, sizeof *d->listeners);
	for (int i = 0; i < d->nlisteners; i++)
		if (!listener_parse(cfg->listen.v[i], &d->listeners[i], &err))
			log_fatal(78, "listen: %s", buf_cstr(&err));
	d->nworkers = nworkers;
	d->workers = xcalloc((size_t)nworkers, sizeof *d->workers);
	for (int k = 0; k < nworkers; k++) {
		struct worker *w = &d->workers[k];
		w->d = d;
		w->index = k;
		w->lfds = xcalloc((size_t)d->nlisteners, sizeof *w->lfds);
		for (int i = 0; i < d->nlisteners; i++) {
			w->lfds[i] = bind_one(&d->listeners[i], &err);
			if (w->lfds[i] < 0)
				log_fatal(71, "%s", buf_cstr(&err));
		}
	}

	const char *owner = NULL;
	if (cfg->mail_owner[0]) {
		bool was_root = geteuid() == 0;
		if (drop_privileges(cfg->mail_owner) != 0)
			log_fatal(77, "refusing to run with the privileges we could not drop");
		if (was_root) {
			owner = cfg->mail_owner;
			struct buf warn = BUF_INIT;
			trial_as_owner(config_file, owner, d->gen->tls != NULL, false, &warn);
			if (warn.len > 0)
				log_warn("%s", buf_cstr(&warn));
			buf_free(&warn);
		}
	} else if (geteuid() == 0) {
		log_warn("running as root: set mail_owner to drop privileges after binding");
	}
	/* As the mail owner now: what root left alone (spool_dir_as_root). */
	if (base_later && make_dirs(cfg->virtual_mailbox_base, (uid_t)-1, (gid_t)-1) != 0)
		log_fatal(73, "cannot create virtual_mailbox_base %s as %s: %s",
		    cfg->virtual_mailbox_base, cfg->mail_owner, strerror(errno));
	if (journal_later &&
	    make_dirs(cfg->spool_journal_directory, (uid_t)-1, (gid_t)-1) != 0)
		log_fatal(73, "cannot create spool_journal_directory %s as %s: %s",
		    cfg->spool_journal_directory, cfg->mail_owner, strerror(errno));
	/* Where a 250 cannot survive a power cut, say so once at start. */
	warn_fs("virtual_mailbox_base", cfg->virtual_mailbox_base);
	if (cfg->spool_journal_directory[0])
		warn_fs("spool_journal_directory", cfg->spool_journal_directory);

	struct spool_opts so = {
		.base = cfg->virtual_mailbox_base,
		.journal_dir = cfg->spool_journal_directory,
		.threads = (unsigned)cfg->delivery_threads,
		.hostname = cfg->myhostname,
		/* Retries read back from the journal count in the message
		 * memory too (spool_held_bytes): an eighth of the budget. */
		.retry_bytes_max = cfg->smtpd_message_memory_limit > 0 ?
		    (size_t)(cfg->smtpd_message_memory_limit / 8) : 0,
	};
	d->spool = spool_new(&so, &err);
	if (d->spool == NULL)
		log_fatal(73, "%s", buf_cstr(&err));

	/* One resolver per worker loop (libunbound contexts are not shared
	 * between threads: NLnetLabs/unbound#100). Exemption by host name
	 * needs the PTR and its forward lookups even when no enabled check
	 * does (ident.c lookup_checks()). */
	bool need_dns = (d->gen->ienv.checks & (IDC_BIT(IDC_RESOLVES) | IDC_BIT(IDC_FORWARD_MATCH) |
	    IDC_BIT(IDC_PTR) | IDC_BIT(IDC_FCRDNS) | IDC_BIT(IDC_PTR_MATCH) |
	    IDC_BIT(IDC_GENERIC))) != 0 ||
	    (d->gen->ienv.checks != 0 && d->gen->ienv.n_exempt_names > 0);

	struct accept_ctx *actx = xcalloc((size_t)(nworkers * d->nlisteners) + 1, sizeof *actx);
	for (int k = 0; k < nworkers; k++) {
		struct worker *w = &d->workers[k];
		w->base = event_base_new();
		if (w->base == NULL)
			log_fatal(71, "event_base_new failed");
		w->ctl = event_new(w->base, -1, EV_PERSIST, on_ctl, w);
		w->need_dns = need_dns;
		event_add(w->ctl, NULL);
		w->ls = xcalloc((size_t)d->nlisteners, sizeof *w->ls);
		for (int i = 0; i < d->nlisteners; i++) {
			struct accept_ctx *a = &actx[k * d->nlisteners + i];
			a->w = w;
			a->l = &d->listeners[i];
			a->idx = i;
			a->pause = evtimer_new(w->base, on_accept_resume, a);
			if (a->pause == NULL)
				log_fatal(71, "evtimer_new failed");
			w->ls[i] = evconnlistener_new(w->base, on_accept, a,
			    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, w->lfds[i]);
			if (w->ls[i] == NULL)
				log_fatal(71, "evconnlistener_new failed");
			evconnlistener_set_error_cb(w->ls[i], on_accept_error);
		}
	}

	/*
	 * Signals are handled before anything says "ready": a supervisor may
	 * send SIGTERM the moment it reads that line, and before event_add()
	 * installed the handler that signal's default action killed ehlod on
	 * the spot (no graceful stop; seen as exit -15 in the crash test under
	 * ASan, where start-up is slower).
	 */
	/* A copy: the configuration owner points into is freed by the first
	 * successful reload, and a failed one after it logs the name. */
	char *owner_copy = owner != NULL ? xstrdup(owner) : NULL;
	struct main_ctx m = { .d = d, .config_file = config_file, .owner = owner_copy };
	m.base = event_base_new();
	/* Bound after the privilege drop: pick an unprivileged port. */
	struct evhttp *metrics = metrics_start(d, m.base, cfg->metrics_listen, &err);
	if (metrics == NULL && err.len > 0)
		log_fatal(71, "%s", buf_cstr(&err));
	struct event *sterm = evsignal_new(m.base, SIGTERM, on_stop_signal, &m);
	struct event *sint = evsignal_new(m.base, SIGINT, on_stop_signal, &m);
	struct event *shup = evsignal_new(m.base, SIGHUP, on_reload_signal, &m);
	event_add(sterm, NULL);
	event_add(sint, NULL);
	event_add(shup, NULL);

	for (int k = 0; k < nworkers; k++) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		int e = pthread_create(&d->workers[k].thread, NULL, worker_main, &d->workers[k]);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (e != 0)
			log_fatal(71, "pthread_create: %s", strerror(e));
		/* Named for top -H and ps -L (15 characters at most). */
		(void)pthread_setname_np(d->workers[k].thread, "ehlod-worker");
	}
	/* The handlers are in place: what came meanwhile is delivered now. */
	pthread_sigmask(SIG_UNBLOCK, &early, NULL);

	struct buf names = BUF_INIT;
	for (int i = 0; i < d->nlisteners; i++) {
		static const char *const kinds[] = { "smtp", "submission", "submissions" };
		char host[INET6_ADDRSTRLEN];
		const struct sockaddr_storage *ss = &d->listeners[i].ss;
		unsigned port = sockaddr_text((const struct sockaddr *)ss, host);
		bool v6 = ss->ss_family == AF_INET6;
		buf_appendf(&names, "%s%s:%s%s%s:%u", i ? " " : "", kinds[d->listeners[i].kind],
		    v6 ? "[" : "", host, v6 ? "]" : "", port);
	}
	log_info("ehlod ready: listening on %s; myhostname=%s workers=%d tls=%s maildir=%s",
	    buf_cstr(&names), cfg->myhostname, nworkers, d->gen->tls ? "yes" : "no",
	    cfg->virtual_mailbox_base);
	buf_free(&names);

	event_base_dispatch(m.base);

	for (int k = 0; k < nworkers; k++)
		pthread_join(d->workers[k].thread, NULL);
	/* Sessions left after the deadline are still in the lists: the worker
	 * loops have stopped, so free what remains from here. */
	for (int k = 0; k < nworkers; k++) {
		struct worker *w = &d->workers[k];
		for (int i = 0; i < d->nlisteners; i++)
			if (w->ls[i])
				evconnlistener_free(w->ls[i]);
		free(w->ls);
		free(w->lfds);
	}
	spool_free(&d->spool);
	for (int i = 0; i < nworkers * d->nlisteners; i++)
		if (actx[i].pause != NULL)
			event_free(actx[i].pause);     /* before their bases */
	for (int k = 0; k < nworkers; k++) {
		event_free(d->workers[k].ctl);
		event_base_free(d->workers[k].base);
	}
	if (metrics != NULL)
		evhttp_free(metrics);
	event_free(sterm);
	event_free(sint);
	event_free(shup);
	event_base_free(m.base);
	log_info("ehlod stopped: %llu connections, %llu messages accepted",
	    (unsigned long long)atomic_load(&d->stats.connects),
	    (unsigned long long)atomic_load(&d->stats.messages_accepted));
	gen_unref(&d->gen);
	for (size_t i = 0; i < IPC_BUCKETS; i++) {
		struct ipcount *e = d->ipc[i];
		while (e) {
			struct ipcount *n = e->next;
			free(e);
			e = n;
		}
	}
	free(d->ipc);
	free(actx);
	free(d->listeners);
	free(d->workers);
	free(config_file);
	free(owner_copy);
	buf_free(&err);
	pthread_mutex_destroy(&d->lock);
	return 0;
}
