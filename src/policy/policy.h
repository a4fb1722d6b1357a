/*
 * Identity policy (pure): turns the identity engine's per-check results and
 * the operator's per-check actions into one decision and its SMTP reply.
 *
 * Actions (helo_check_<check> = off | log | tag | tempfail | reject):
 *   off       the check is not evaluated for policy
 *   log       a failing result is logged
 *   tag       logged, and the delivered message gets an
 *             Authentication-Results: header with every result
 *   tempfail  a failing result is refused with 450/4xx
 *   reject    a failing result is refused with the check's 5xx
 * "Failing" means fail or permerror. A temperror (DNS trouble) under an
 * enforcing action (tempfail/reject) gives 450 4.7.25 or 450 4.7.1, never
 * a 5xx: a resolver outage must not bounce mail. A result still awaiting
 * DNS under an enforcing action makes the decision "pending": the session
 * waits (at most its DNS deadline) and asks again.
 *
 * Precedence: the first enforcing check in table order that refuses
 * decides; a reject beats a tempfail of a later check but a pending
 * earlier check is waited for first, so the decision does not depend on
 * which answer came back first.
 *
 * Shadow mode enforces nothing: the decision is ACCEPT and `would` holds
 * what enforcement would have done, for the "would have rejected" counters.
 * Exempt clients (helo_checks_exempt, authenticated) get ACCEPT with
 * exempt set and no logging.
 */
#ifndef EHLO_POLICY_H
#define EHLO_POLICY_H

#include <stdbool.h>

#include "config/config.h"
#include "identity/identity.h"

enum policy_outcome { POL_ACCEPT, POL_TEMPFAIL, POL_REJECT, POL_PENDING };

struct policy_opts {
	enum check_action action[IDC_COUNT];
	bool shadow;
};

struct policy_decision {
	enum policy_outcome outcome;      /* what to do now */
	enum policy_outcome would;        /* without shadow mode */
	enum id_check       check;        /* the deciding check (when refusing) */
	unsigned            code;         /* reply when refusing */
	char                enh[8];
	char                text[300];    /* reply text; names are validated */
	unsigned            failed_mask;  /* IDC_BIT()s of non-passing enforced/logged checks */
	bool                tag;          /* add Authentication-Results */
	bool                exempt;
};

/* Fills opts from the configuration's helo_check_* and helo_checks_shadow. */
void policy_opts_from_config(struct policy_opts *o, const struct ehlo_config *cfg);

/* Which checks need evaluating at all (IDC_BIT mask of actions != off). */
unsigned policy_checks(const struct policy_opts *o);

/* Which checks need DNS to be answered before deciding: the enforcing
 * ones (IDC_BIT mask). */
unsigned policy_enforcing(const struct policy_opts *o);

void policy_decide(const struct policy_opts *o, const struct id_verdict *v, bool exempt,
                   struct policy_decision *out);

/* "accept", "tempfail", "reject", "pending". */
const char *policy_outcome_name(enum policy_outcome p);

#endif
