/*
 * Identity checks for one session: the glue between the pure identity
 * engine and policy (src/identity, src/policy) and asynchronous DNS
 * (src/dns) on the worker's loop.
 *
 * Timing (issue 4): the PTR lookup of the client starts at connect; the
 * greeting never waits for it. The EHLO name's lookups start at EHLO. A
 * decision is asked for where the verdict is applied (at EHLO, or at the
 * first RCPT with smtpd_delay_reject); if an enforcing check still awaits
 * DNS, ident_decide() returns false and the ready callback runs once the
 * answers are in or the deadline (dns_timeout) has passed — never later.
 * Answers that time out become temperror, which policy never turns into a
 * 5xx.
 */
#ifndef EHLO_SESSION_IDENT_H
#define EHLO_SESSION_IDENT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "identity/identity.h"
#include "lib/buf.h"
#include "net/cidr.h"
#include "policy/policy.h"

struct dns;
struct event_base;

/* Per-generation inputs shared by sessions (read-only). */
struct ident_env {
	struct policy_opts         po;
	const struct psl          *psl;
	const struct generic_patterns *gp;
	struct cidr_list           exempt_nets;
	char                     **exempt_names;    /* lower-case; ".x" = subdomains */
	size_t                     n_exempt_names;
	const char                *myhostname;
	long long                  timeout_ms;
	bool                       ptr_match_exact;
	unsigned                   checks;          /* policy_checks(&po) */
};

struct ident;
typedef void ident_ready_fn(void *arg);

/*
 * Starts identity work for a new connection. client/local are the
 * connection's (or the PROXY header's) addresses. Returns NULL when no
 * check is enabled. dns may be NULL (then every DNS-based check is
 * temperror at once).
 */
struct ident *ident_new(const struct ident_env *env, struct dns *dns, struct event_base *base,
                        const struct sockaddr *client, const struct sockaddr *local,
                        ident_ready_fn *ready, void *arg);
void ident_free(struct ident **ip);

/* A HELO/EHLO was accepted syntactically: evaluate it (starts lookups). */
void ident_helo(struct ident *id, const char *helo, bool is_ehlo);

/* The session accepted the name given to ident_helo() (250 to HELO/EHLO). */
void ident_helo_accepted(struct ident *id);

/*
 * The session refused the name given to ident_helo() (smtpd_delay_reject
 * = no). RFC 5321 §4.1.4: a refused EHLO changes nothing, so the state from
 * before that ident_helo() comes back: the earlier name (judged again at
 * RCPT), its answers, the previous name for consistency, the sticky
 * refusal. A no-op when nothing awaits a verdict.
 */
void ident_helo_refused(struct ident *id);

/*
 * TLS is up after STARTTLS: forgets every HELO/EHLO-derived state (names,
 * their DNS answers, the sticky refusal), as RFC 3207 §4.2 requires, so
 * the next EHLO is the session's first. The client-address part (PTR and
 * its forward lookups) stays. Call it only while no decision is awaited.
 */
void ident_tls_reset(struct ident *id);

/*
 * Before a new HELO/EHLO replaces an accepted name: true if it may (the
 * old name's verdict is final). Otherwise false, and ready(arg) runs once
 * the verdict is final or the deadline passed; the refusal it earned then
 * stays with the session.
 */
bool ident_helo_switch_ready(struct ident *id);

/*
 * The decision now, if there is one: returns true and fills *d. Returns
 * false when an enforcing check awaits DNS: ready(arg) is then called
 * exactly once, later, from the event loop; call ident_decide() again then.
 */
bool ident_decide(struct ident *id, struct policy_decision *d);

/*
 * Before a tagged message is delivered: true if no lookup is in flight (or
 * nothing is tagged). Otherwise false, and ready(arg) runs once when the
 * answers are in or the deadline has passed.
 */
bool ident_settle(struct ident *id);

/* True when no lookup is in flight (every result is final). */
bool ident_complete(const struct ident *id);
/* The decision on what is known now, without waiting for anything. */
void ident_current(struct ident *id, struct policy_decision *d);

/* The first forward-confirmed PTR name, else "unknown" (Received:, logs). */
const char *ident_client_name(const struct ident *id);

/* RFC 8601 header for a tagged message; false if nothing to add.
 * *exempt: whether helo_checks_exempt exempts the client (by a confirmed
 * PTR name), from the same decision. */
bool ident_auth_results(struct ident *id, struct buf *out, bool *exempt);

/* A short "check=result ..." summary for the log. */
void ident_summary(struct ident *id, struct buf *out);

#endif
