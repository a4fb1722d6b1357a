/*
 * Per-session identity state: DNS answers gathered so far, the lookups in
 * flight, and the wait for a decision. See ident.h.
 *
 * Answer storage is sized to each answer (heap), since a server keeps
 * thousands of sessions and most PTR sets are one name.
 */
#include "session/ident.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

struct qctx {
	struct ident      *id;
	struct dns_query  *q;
	struct id_lookup   lk;
	bool               both;   /* one addr lookup fills helo A and AAAA */
};

/* Heap storage behind one struct id_dns_answer. */
struct ans_store {
	char           **names;
	struct id_addr  *addrs;
	size_t           n;
};

struct ident {
	const struct ident_env *env;
	struct dns          *dns;
	struct event_base   *base;
	struct sockaddr_storage client;
	struct id_input      in;
	/* The current EHLO name and the previously accepted one (heap; NULL:
	 * none). Heap, not arrays: an idle server holds tens of thousands of
	 * sessions, and names are short. */
	char                *helo, *prev;
	struct ans_store     st_ptr, st_a, st_aaaa, st_mx, st_paddr[ID_MAX_PTR];
	struct qctx         *q[ID_MAX_LOOKUPS];
	struct event        *timer;
	ident_ready_fn      *ready;
	void                *arg;
	bool                 waiting;       /* for an enforcing decision */
	bool                 settling;      /* for every answer (tagging) */
	bool                 expired;
	/*
	 * The verdict exists only inside one call (evaluate() ... release()):
	 * it is a pure function of in, 4 KiB for its ten PTR-name slots, and
	 * recomputing it costs microseconds. What outlives the call is the
	 * client name (cname) that ident_client_name() reports.
	 */
	struct id_verdict   *v;
	/* A refusal earned by an earlier HELO/EHLO name stays: a second HELO
	 * must not wash it away (the Haraka#3040 bypass). */
	bool                 sticky;
	struct policy_decision sticky_d;
	/* The current name was accepted by the session (not refused at EHLO
	 * under smtpd_delay_reject = no); only accepted names count as the
	 * previous name (consistency) and can earn a sticky refusal. */
	bool                 accepted;
	char                *accepted_name; /* heap; NULL: none */
	char                *cname;         /* first forward-confirmed PTR name (heap) */
	bool                 cname_valid;   /* cname is from the current answers */
};

static void store_free(struct ans_store *s)
{
	for (size_t i = 0; i < s->n && s->names; i++)
		free(s->names[i]);
	free(s->names);
	free(s->addrs);
	memset(s, 0, sizeof *s);
}

static struct id_dns_answer *
slot_answer(struct ident *id, enum id_lookup_slot slot, size_t index, struct ans_store **st)
{
	switch (slot) {
	case ID_SLOT_PTR: *st = &id->st_ptr; return &id->in.ptr;
	case ID_SLOT_HELO_A: *st = &id->st_a; return &id->in.helo_a;
	case ID_SLOT_HELO_AAAA: *st = &id->st_aaaa; return &id->in.helo_aaaa;
	case ID_SLOT_HELO_MX: *st = &id->st_mx; return &id->in.helo_mx;
	case ID_SLOT_PTR_ADDR: *st = &id->st_paddr[index]; return &id->in.ptr_addr[index];
	}
	abort();
}

static enum id_dns_status
map_status(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return ID_DNS_OK;
	case DNS_NXDOMAIN: return ID_DNS_NXDOMAIN;
	case DNS_NODATA: return ID_DNS_NODATA;
	case DNS_TIMEOUT: return ID_DNS_TIMEOUT;
	default: return ID_DNS_SERVFAIL;
	}
}

/* Fills one answer slot from a DNS result; family 0 = names (PTR, MX). */
static void
fill(struct id_dns_answer *a, struct ans_store *st, const struct dns_result *r, int family)
{
	store_free(st);
	a->status = map_status(r->status);
	a->n = 0;
	a->names = NULL;
	a->addrs = NULL;
	if (r->status != DNS_OK)
		return;
	if (family == 0) {
		st->names = xcalloc(r->n ? r->n : 1, sizeof *st->names);
		for (size_t i = 0; i < r->n; i++)
			if (r->rr[i].name)
				st->names[st->n++] = xstrdup(r->rr[i].name);
		a->names = (const char *const *)st->names;
		a->n = st->n;
	} else {
		st->addrs = xcalloc(r->n ? r->n : 1, sizeof *st->addrs);
		for (size_t i = 0; i < r->n; i++)
			if (r->rr[i].addr.ss_family == family &&
			    id_addr_from_sockaddr((const struct sockaddr *)&r->rr[i].addr,
			    sizeof r->rr[i].addr, &st->addrs[st->n]))
				st->n++;
		a->addrs = st->addrs;
		a->n = st->n;
		/* One family answered and this one failed: not NODATA. */
		if (st->n == 0)
			a->status = r->partial ? ID_DNS_SERVFAIL : ID_DNS_NODATA;
	}
	if (a->n == 0 && a->status == ID_DNS_OK)
		a->status = ID_DNS_NODATA;
}

static void start_lookups(struct ident *id);
static void reevaluate(struct ident *id);

static void
on_answer(const struct dns_result *r, void *arg)
{
	struct qctx *c = arg;
	struct ident *id = c->id;
	struct ans_store *st;
	struct id_dns_answer *a = slot_answer(id, c->lk.slot, c->lk.index, &st);
	if (c->both) {
		fill(&id->in.helo_a, &id->st_a, r, AF_INET);
		fill(&id->in.helo_aaaa, &id->st_aaaa, r, AF_INET6);
	} else if (c->lk.type == ID_LOOKUP_A) {
		fill(a, st, r, AF_INET);
	} else if (c->lk.type == ID_LOOKUP_AAAA) {
		fill(a, st, r, AF_INET6);
	} else {
		fill(a, st, r, 0);
	}
	for (size_t i = 0; i < ID_MAX_LOOKUPS; i++)
		if (id->q[i] == c)
			id->q[i] = NULL;
	free(c);
	id->cname_valid = false;
	if (!id->expired)
		start_lookups(id);
	reevaluate(id);
}

static void
start_lookups(struct ident *id)
{
	if (id->dns == NULL)
		return;
	struct id_lookup lk[ID_MAX_LOOKUPS];
	size_t n = identity_lookups(&id->in, id->env->checks, lk, ID_MAX_LOOKUPS);
	bool helo_pair = false;
	for (size_t i = 0; i < n; i++) {
		if (lk[i].slot == ID_SLOT_HELO_AAAA && helo_pair)
			continue;   /* already covered by the merged A+AAAA lookup */
		size_t k;
		for (k = 0; k < ID_MAX_LOOKUPS && id->q[k] != NULL; k++)
			;
		if (k == ID_MAX_LOOKUPS)
			break;
		struct qctx *c = xcalloc(1, sizeof *c);
		c->id = id;
		c->lk = lk[i];
		struct ans_store *st;
		struct id_dns_answer *a = slot_answer(id, lk[i].slot, lk[i].index, &st);
		a->status = ID_DNS_PENDING;
		if (lk[i].slot == ID_SLOT_HELO_A) {
			for (size_t j = 0; j < n; j++)
				if (lk[j].slot == ID_SLOT_HELO_AAAA) {
					c->both = true;
					helo_pair = true;
					id->in.helo_aaaa.status = ID_DNS_PENDING;
				}
		}
		id->q[k] = c;
		switch (lk[i].type) {
		case ID_LOOKUP_PTR:
			c->q = dns_lookup_ptr(id->dns, (struct sockaddr *)&id->client, on_answer, c);
			break;
		case ID_LOOKUP_A:
		case ID_LOOKUP_AAAA:
			c->q = dns_lookup_addr(id->dns, lk[i].qname, on_answer, c);
			break;
		case ID_LOOKUP_MX:
			c->q = dns_lookup_mx(id->dns, lk[i].qname, on_answer, c);
			break;
		}
	}
}

static bool
name_exempt(const struct ident_env *env, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return false;
	size_t n = strlen(name);
	for (size_t i = 0; i < env->n_exempt_names; i++) {
		const char *e = env->exempt_names[i];
		size_t en = strlen(e);
		if (e[0] == '.') {
			if (n > en && ascii_ieq(name + n - en, e))
				return true;
		} else if (ascii_ieq(name, e)) {
			return true;
		}
	}
	return false;
}

static void
evaluate(struct ident *id)
{
	if (id->v != NULL)
		return;         /* already evaluated in this call */
	id->v = xmalloc(sizeof *id->v);
	identity_evaluate(&id->in, id->env->psl, id->env->gp, id->v);
	x_free(&id->cname);
	for (size_t i = 0; i < id->v->n_ptr; i++)
		if (id->v->ptr_confirmed[i]) {
			id->cname = xstrdup(id->v->ptr_names[i]);
			break;
		}
	id->cname_valid = true;
}

/* Ends a call that evaluated: the verdict goes (see struct ident). */
static void
release(struct ident *id)
{
	x_free(&id->v);
}

static bool
exempt(struct ident *id)
{
	evaluate(id);
	/* Only names the DNS confirms: the EHLO name is the client's claim,
	 * and exempting by it would let anyone skip every check. */
	for (size_t i = 0; i < id->v->n_ptr; i++)
		if (id->v->ptr_confirmed[i] && name_exempt(id->env, id->v->ptr_names[i]))
			return true;
	return false;
}

static bool
in_flight(const struct ident *id)
{
	for (size_t i = 0; i < ID_MAX_LOOKUPS; i++)
		if (id->q[i] != NULL)
			return true;
	return false;
}

static void
reevaluate(struct ident *id)
{
	if (id->settling) {
		if (in_flight(id))
			return;
		id->settling = false;
		if (id->timer)
			evtimer_del(id->timer);
		id->ready(id->arg);
		return;
	}
	if (!id->waiting)
		return;
	struct policy_decision d;
	evaluate(id);
	policy_decide(&id->env->po, id->v, exempt(id), &d);
	release(id);            /* before ready(), which may free id */
	if (d.would == POL_PENDING)
		return;
	id->waiting = false;
	if (id->timer)
		evtimer_del(id->timer);
	id->ready(id->arg);
}

/* The deadline: every answer not in by now is a timeout (temperror). */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct ident *id = arg;
	id->expired = true;
	for (size_t i = 0; i < ID_MAX_LOOKUPS; i++) {
		struct qctx *c = id->q[i];
		if (c == NULL)
			continue;
		dns_cancel(&c->q);
		struct ans_store *st;
		struct id_dns_answer *a = slot_answer(id, c->lk.slot, c->lk.index, &st);
		a->status = ID_DNS_TIMEOUT;
		if (c->both)
			id->in.helo_aaaa.status = ID_DNS_TIMEOUT;
		free(c);
		id->q[i] = NULL;
	}
	id->cname_valid = false;
	reevaluate(id);
}

struct ident *
ident_new(const struct ident_env *env, struct dns *dns, struct event_base *base,
          const struct sockaddr *client, const struct sockaddr *local,
          ident_ready_fn *ready, void *arg)
{
	/* No checks, or a client exempt by its address: no identity state at
	 * all (an idle server holds tens of thousands of sessions). */
	if (env->checks == 0 || cidr_list_match(&env->exempt_nets, client))
		return NULL;
	struct ident *id = xcalloc(1, sizeof *id);
	id->env = env;
	id->dns = dns;
	id->base = base;
	id->ready = ready;
	id->arg = arg;
	socklen_t len = sockaddr_len(client);
	memcpy(&id->client, client, len);
	id_addr_from_sockaddr(client, len, &id->in.client);
	id->in.our_names = &env->myhostname;
	id->in.n_our_names = 1;
	if (local != NULL) {
		struct id_addr *ours = xcalloc(1, sizeof *ours);
		if (id_addr_from_sockaddr(local, sockaddr_len(local), ours)) {
			id->in.our_addrs = ours;
			id->in.n_our_addrs = 1;
		} else {
			free(ours);
		}
	}
	id->in.ptr_match_exact = env->ptr_match_exact;
	if (dns == NULL) {
		/* No resolver: DNS-based checks cannot be answered. */
		id->in.ptr.status = ID_DNS_SERVFAIL;
	}
	start_lookups(id);
	return id;
}

void
ident_free(struct ident **ip)
{
	struct ident *id = *ip;
	if (id == NULL)
		return;
	for (size_t i = 0; i < ID_MAX_LOOKUPS; i++) {
		if (id->q[i]) {
			dns_cancel(&id->q[i]->q);
			free(id->q[i]);
		}
	}
	if (id->timer)
		event_free(id->timer);
	store_free(&id->st_ptr);
	store_free(&id->st_a);
	store_free(&id->st_aaaa);
	store_free(&id->st_mx);
	for (size_t i = 0; i < ID_MAX_PTR; i++)
		store_free(&id->st_paddr[i]);
	free((void *)id->in.our_addrs);
	free(id->v);
	free(id->helo);
	free(id->prev);
	free(id->accepted_name);
	free(id->cname);
	x_free(ip);
}

void
ident_helo(struct ident *id, const char *helo, bool is_ehlo)
{
	if (id->helo != NULL && id->helo[0] && id->accepted && !id->sticky) {
		struct policy_decision d;
		evaluate(id);
		policy_decide(&id->env->po, id->v, exempt(id), &d);
		release(id);
		if (d.outcome == POL_REJECT || d.outcome == POL_TEMPFAIL) {
			id->sticky = true;
			id->sticky_d = d;
		}
	}
	if (id->accepted_name != NULL && id->accepted_name[0]) {
		free(id->prev);
		id->prev = xstrdup(id->accepted_name);
		id->in.prev_helo = id->prev;
	}
	id->accepted = false;
	free(id->helo);
	id->helo = xstrndup(helo, strnlen(helo, 255));
	id->in.helo = id->helo;
	id->in.is_ehlo = is_ehlo;
	/* A new name needs its own forward lookups. */
	for (size_t i = 0; i < ID_MAX_LOOKUPS; i++) {
		struct qctx *c = id->q[i];
		if (c && (c->lk.slot == ID_SLOT_HELO_A || c->lk.slot == ID_SLOT_HELO_AAAA ||
		    c->lk.slot == ID_SLOT_HELO_MX)) {
			dns_cancel(&c->q);
			free(c);
			id->q[i] = NULL;
		}
	}
	store_free(&id->st_a);
	store_free(&id->st_aaaa);
	store_free(&id->st_mx);
	memset(&id->in.helo_a, 0, sizeof id->in.helo_a);
	memset(&id->in.helo_aaaa, 0, sizeof id->in.helo_aaaa);
	memset(&id->in.helo_mx, 0, sizeof id->in.helo_mx);
	if (id->dns == NULL) {
		id->in.helo_a.status = id->in.helo_aaaa.status = ID_DNS_SERVFAIL;
		id->in.helo_mx.status = ID_DNS_SERVFAIL;
	}
	id->cname_valid = false;
	id->expired = false;
	start_lookups(id);
}

static void
arm_deadline(struct ident *id)
{
	if (id->timer == NULL)
		id->timer = evtimer_new(id->base, on_deadline, id);
	struct timeval tv = timeval_ms(id->env->timeout_ms > 0 ? id->env->timeout_ms : 2000);
	evtimer_add(id->timer, &tv);
}

bool
ident_settle(struct ident *id)
{
	bool tag = false;
	for (int c = 0; c < IDC_COUNT; c++)
		if (id->env->po.action[c] == ACT_TAG)
			tag = true;
	if (!tag || !in_flight(id) || id->expired)
		return true;
	id->settling = true;
	arm_deadline(id);
	return false;
}

void
ident_helo_accepted(struct ident *id)
{
	id->accepted = true;
	free(id->accepted_name);
	id->accepted_name = xstrdup(id->helo != NULL ? id->helo : "");
}

bool
ident_helo_switch_ready(struct ident *id)
{
	if (!id->accepted || id->sticky || id->helo == NULL || id->helo[0] == '\0')
		return true;
	struct policy_decision d;
	evaluate(id);
	policy_decide(&id->env->po, id->v, exempt(id), &d);
	release(id);
	if (d.would != POL_PENDING)
		return true;
	/* The accepted name's verdict still waits for DNS: a new HELO must
	 * not make it disappear (a pipelined HELO-bad, HELO-good bypass). */
	id->waiting = true;
	arm_deadline(id);
	return false;
}

bool
ident_decide(struct ident *id, struct policy_decision *d)
{
	evaluate(id);
	policy_decide(&id->env->po, id->v, exempt(id), d);
	release(id);
	if (id->sticky && d->outcome != POL_REJECT) {
		*d = id->sticky_d;
		return true;
	}
	if (d->would != POL_PENDING)
		return true;
	id->waiting = true;
	arm_deadline(id);
	return false;
}

const char *
ident_client_name(const struct ident *id)
{
	if (id == NULL || !id->cname_valid || id->cname == NULL)
		return "unknown";
	return id->cname;
}

bool
ident_auth_results(struct ident *id, struct buf *out)
{
	struct policy_decision d;
	evaluate(id);
	policy_decide(&id->env->po, id->v, exempt(id), &d);
	bool ok = d.tag && !d.exempt &&
	    identity_auth_results(out, id->env->myhostname, &id->in, id->v, "\n");
	release(id);
	if (ok)
		buf_append_char(out, '\n');
	return ok;
}

void
ident_summary(struct ident *id, struct buf *out)
{
	evaluate(id);
	for (int c = 0; c < IDC_COUNT; c++) {
		if (id->env->po.action[c] == ACT_OFF)
			continue;
		buf_appendf(out, "%s%s=%s", out->len ? " " : "", id_check_name((enum id_check)c),
		    id_result_name(id->v->c[c].r));
	}
	release(id);
}

bool
ident_complete(const struct ident *id)
{
	return !in_flight(id);
}

void
ident_current(struct ident *id, struct policy_decision *d)
{
	evaluate(id);
	policy_decide(&id->env->po, id->v, exempt(id), d);
	release(id);
}
