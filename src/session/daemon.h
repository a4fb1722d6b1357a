/*
 * Shared daemon state seen by sessions: the configuration generation, the
 * spool, per-client connection counts and the counters. Internal to the
 * session layer.
 */
#ifndef EHLO_SESSION_DAEMON_H
#define EHLO_SESSION_DAEMON_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "session/ident.h"

struct addrmap;
struct spool;
struct tls_server;
struct event_base;
struct evconnlistener;
struct event;
struct session;

/*
 * One configuration generation: everything derived from one load of the
 * configuration. Sessions hold a reference for their whole life, so a
 * reload (SIGHUP) never changes the rules under a live session.
 */
struct gen {
	atomic_int          refs;
	struct ehlo_config *cfg;
	struct tls_server  *tls;          /* NULL: no certificate, no STARTTLS */
	struct addrmap     *vmaps;        /* NULL: every local part exists */
	unsigned            ext;          /* EHLO keywords after discards */
	char                greeting[512];
	/* identity checks (issue 4) */
	struct psl         *psl;
	struct generic_patterns *gp;
	struct ident_env    ienv;
	struct cidr_list    proxy_hosts;  /* smtpd_upstream_proxy_hosts */
};

struct gen *gen_ref(struct gen *g);
void gen_unref(struct gen **g);

/* Listener kinds (config LISTEN_*). */
struct listener_def {
	int  kind;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char name[80];                    /* "smtp:127.0.0.1:2525" for logs */
};

struct worker {
	struct daemon      *d;
	int                 index;
	pthread_t           thread;
	struct event_base  *base;
	struct evconnlistener **ls;
	int                *lfds;
	struct event       *ctl;          /* activated by the main thread */
	atomic_int          ctl_flags;    /* CTL_* */
	struct session     *sessions;     /* doubly linked list of live sessions */
	unsigned            nsessions;
	bool                stopping;
	uint64_t            next_sid;
	struct dns         *dns;          /* this loop's resolver; NULL if unused */
	bool                need_dns;
};

enum { CTL_STOP = 1, CTL_RELOAD = 2 };

struct daemon_stats {
	atomic_ullong connects, disconnects, rejected_connections;
	atomic_ullong messages_accepted, messages_rejected, bytes_accepted;
	atomic_ullong tls_handshakes, tls_failures, starttls_injection;
	atomic_ullong timeouts, lost_connections, pregreet;
	atomic_ullong deadline_timeouts;   /* of timeouts: smtpd_per_request_deadline */
	atomic_ullong error_limit_closes;  /* sessions ended by smtpd_hard_error_limit */
	atomic_ullong accept_errors;       /* accept(2) failures (EMFILE, ...) */
	atomic_ullong improper_pipelining;  /* sessions (RFC 2920 §3.1) */
	atomic_ullong smuggling_rejects;
	atomic_ullong proxy_errors;
	atomic_ullong output_blocked;   /* sessions held back by unread replies */
	atomic_ullong helo_rejects, helo_tempfails, helo_shadow_rejects;
	atomic_llong  sessions_active;
	atomic_ullong dns_inflight_rejects; /* lookups refused: dns_max_inflight */
	atomic_llong  dns_inflight;         /* libunbound queries outstanding */
	/* smtpd_message_memory_limit (session.c, "the message memory budget") */
	atomic_size_t receiving_bytes;  /* message bodies being received, all sessions */
	atomic_ullong memory_rejects_mail, memory_rejects_data;
	/* SIGHUP reloads (main thread only writes them; metrics reads) */
	atomic_ullong reloads_ok, reloads_failed;
	atomic_int    last_reload_ok;       /* 1 at start and after a reload that took */
	atomic_llong  last_reload_time;     /* time(2) of the start or that reload */
};

struct daemon {
	pthread_mutex_t     lock;         /* guards gen swap and per-IP table */
	struct gen         *gen;
	struct spool       *spool;
	struct listener_def *listeners;
	int                 nlisteners;
	struct worker      *workers;
	int                 nworkers;
	struct daemon_stats stats;
	/* per-client connection counts: open hash on the client's network */
	struct ipcount    **ipc;          /* IPC_BUCKETS chains */
	unsigned            v4_prefix, v6_prefix; /* smtpd_client_ipv{4,6}_prefix_length */
};

/* Message content held in memory now: bodies being received
 * (stats.receiving_bytes) plus what the spool holds (spool_held_bytes); the
 * figure smtpd_message_memory_limit bounds. */
size_t daemon_message_memory(const struct daemon *d);

/* Current generation, referenced for the caller. */
struct gen *daemon_gen(struct daemon *d);

/* Per-client-IP connection accounting; returns the count after adding. */
unsigned daemon_ip_add(struct daemon *d, const struct sockaddr *sa);
void daemon_ip_del(struct daemon *d, const struct sockaddr *sa);

/* Called by the listener of worker w with a fresh connection (fd owned). */
void session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                    const struct listener_def *l);
/* Graceful stop: idle sessions get 421 now, busy ones after their transaction. */
void session_stop_all(struct worker *w);
/* After the worker loop has ended: free every session still listed. */
void session_cut_all(struct worker *w);     /* shutdown deadline: 421 and close */
void session_free_all(struct worker *w);

#endif
