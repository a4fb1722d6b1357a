/*
 * Per-session identity state: DNS answers gathered so far, the lookups in
 * flight, and the wait for a decision. See ident.h.
 *
 * Memory: a server holds tens of thousands of sessions, most of them idle
 * after EHLO, so what a session keeps between calls is sized to what it
 * has: each answer's records on the heap, address slots only for the PTR
 * names that were asked about, the lookups in flight as a list, a sticky
 * refusal only once one exists. The pure engine's input (struct id_input,
 * with room for every slot) and its verdict exist only inside one call,
 * built from these stores by build_input() and evaluate().
 */
#include "session/ident.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/sockaddr.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

struct qctx {
	struct qctx       *next;   /* the ident's lookups in flight */
	struct ident      *id;
	struct dns_query  *q;
	struct id_lookup   lk;
	bool               both;   /* one addr lookup fills helo A and AAAA */
};

/* One answer: its status and records (heap), the source of one struct
 * id_dns_answer in the input build_input() makes. */
struct ans_store {
	char             **names;
	struct id_addr    *addrs;
	size_t             n;
	enum id_dns_status status;
};

/*
 * What a HELO/EHLO replaced, kept from ident_helo() until the session
 * accepts the new name (dropped) or refuses it (put back): RFC 5321 §4.1.4,
 * a refused EHLO leaves the session as it was, so the refused name must
 * neither become the name judged at RCPT nor the previous name.
 */
struct helo_saved {
	char                *helo, *prev;
	bool                 is_ehlo;
	bool                 accepted;
	bool                 expired;
	bool                 made_sticky;   /* ident_helo() created id->sticky */
	struct ans_store     st_a, st_aaaa, st_mx;
};

struct ident {
	const struct ident_env *env;
	struct dns          *dns;
	struct event_base   *base;
	/* The client, for its PTR lookup: TCP peers only, so no
	 * sockaddr_storage (128 bytes) per session. */
	union {
		struct sockaddr     sa;
		struct sockaddr_in  v4;
		struct sockaddr_in6 v6;
	}                    client;
	struct id_addr       client_addr;
	struct id_addr       our_addr;      /* family 0: unknown */
	/* The current EHLO name and the previously accepted one (heap; NULL:
	 * none). Heap, not arrays: names are short. */
	char                *helo, *prev;
	bool                 is_ehlo;
	struct ans_store     st_ptr, st_a, st_aaaa, st_mx;
	/* st_paddr[i]: the address lookup of the i-th selected PTR name
	 * (ID_SLOT_PTR_ADDR, index i); n_paddr slots exist, the rest count
	 * as never asked. Most clients have one PTR name, some none. */
	struct ans_store    *st_paddr;
	size_t               n_paddr;
	struct qctx         *q;             /* lookups in flight */
	struct event        *timer;
	ident_ready_fn      *ready;
	void                *arg;
	bool                 waiting;       /* for an enforcing decision */
	bool                 settling;      /* for every answer (tagging) */
	bool                 expired;
	/*
	 * The verdict exists only inside one call (evaluate() ... release()):
	 * it is a pure function of the stores, 4 KiB for its ten PTR-name
	 * slots, and recomputing it costs microseconds. What outlives the
	 * call is the client name (cname) that ident_client_name() reports.
	 */
	struct id_verdict   *v;
	/* A refusal earned by an earlier HELO/EHLO name stays: a second HELO
	 * must not wash it away (the Haraka#3040 bypass). Heap (332 bytes),
	 * NULL until a refusal sticks. */
	struct policy_decision *sticky;
	/* The current name was accepted by the session (not refused at EHLO
	 * under smtpd_delay_reject = no); only accepted names count as the
	 * previous name (consistency) and can earn a sticky refusal. */
	bool                 accepted;
	char                *accepted_name; /* heap; NULL: none */
	struct helo_saved   *saved;         /* heap; NULL unless a name awaits its verdict */
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

/* The store behind a lookup slot; PTR_ADDR slots are made on first use. */
static struct ans_store *
slot_store(struct ident *id, enum id_lookup_slot slot, size_t index)
{
	switch (slot) {
	case ID_SLOT_PTR: return &id->st_ptr;
	case ID_SLOT_HELO_A: return &id->st_a;
	case ID_SLOT_HELO_AAAA: return &id->st_aaaa;
	case ID_SLOT_HELO_MX: return &id->st_mx;
	case ID_SLOT_PTR_ADDR:
		if (index >= ID_MAX_PTR)
			abort();
		if (index >= id->n_paddr) {
			id->st_paddr = xrealloc(id->st_paddr, (index + 1) * sizeof *id->st_paddr);
			memset(id->st_paddr + id->n_paddr, 0,
			    (index + 1 - id->n_paddr) * sizeof *id->st_paddr);
			id->n_paddr = index + 1;
		}
		return &id->st_paddr[index];
	}
	abort();
}

static void
saved_free(struct helo_saved **sp)
{
	struct helo_saved *sv = *sp;
	if (sv == NULL)
		return;
	free(sv->helo);
	free(sv->prev);
	store_free(&sv->st_a);
	store_free(&sv->st_aaaa);
	store_free(&sv->st_mx);
	x_free(sp);
}

static void
answer_from(struct id_dns_answer *a, const struct ans_store *st)
{
	a->status = st->status;
	a->n = st->n;
	a->names = (const char *const *)st->names;
	a->addrs = st->addrs;
}

/* The pure engine's input, from what the session keeps. It points into
 * id's stores: valid until the next change to them. */
static void
build_input(const struct ident *id, struct id_input *in)
{
	memset(in, 0, sizeof *in);
	in->helo = id->helo;
	in->is_ehlo = id->is_ehlo;
	in->prev_helo = id->prev;
	in->client = id->client_addr;
	in->our_names = &id->env->myhostname;
	in->n_our_names = 1;
	if (id->our_addr.family != 0) {
		in->our_addrs = &id->our_addr;
		in->n_our_addrs = 1;
	}
	in->ptr_match_exact = id->env->ptr_match_exact;
	answer_from(&in->ptr, &id->st_ptr);
	answer_from(&in->helo_a, &id->st_a);
	answer_from(&in->helo_aaaa, &id->st_aaaa);
	answer_from(&in->helo_mx, &id->st_mx);
	for (size_t i = 0; i < id->n_paddr; i++)
		answer_from(&in->ptr_addr[i], &id->st_paddr[i]);
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

/* Fills one answer's store from a DNS result; family 0 = names (PTR, MX). */
static void
fill(struct ans_store *st, const struct dns_result *r, int family)
{
	store_free(st);
	st->status = map_status(r->status);
	if (r->status != DNS_OK)
		return;
	if (family == 0) {
		st->names = xcalloc(r->n ? r->n : 1, sizeof *st->names);
		for (size_t i = 0; i < r->n; i++)
			if (r->rr[i].name)
				st->names[st->n++] = xstrdup(r->rr[i].name);
	} else {
		st->addrs = xcalloc(r->n ? r->n : 1, sizeof *st->addrs);
		for (size_t i = 0; i < r->n; i++)
			if (r->rr[i].addr.ss_family == family &&
			    id_addr_from_sockaddr((const struct sockaddr *)&r->rr[i].addr,
			    sizeof r->rr[i].addr, &st->addrs[st->n]))
				st->n++;
		/* One family answered and this one failed: not NODATA. */
		if (st->n == 0)
			st->status = r->partial ? ID_DNS_SERVFAIL : ID_DNS_NODATA;
	}
	if (st->n == 0 && st->status == ID_DNS_OK)
		st->status = ID_DNS_NODATA;
}

/* Takes c, whose answer came, off id's list of lookups in flight. */
static void
unlink_query(struct ident *id, struct qctx *c)
{
	for (struct qctx **pp = &id->q; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return;
		}
}

/* Cancels the lookup at *pp and takes it off its list. */
static void
cancel_query(struct qctx **pp)
{
	struct qctx *c = *pp;
	*pp = c->next;
	dns_cancel(&c->q);
	free(c);
}

static void start_lookups(struct ident *id);
static void reevaluate(struct ident *id);

static void
on_answer(const struct dns_result *r, void *arg)
{
	struct qctx *c = arg;
	struct ident *id = c->id;
	struct ans_store *st = slot_store(id, c->lk.slot, c->lk.index);
	if (c->both) {
		fill(&id->st_a, r, AF_INET);
		fill(&id->st_aaaa, r, AF_INET6);
	} else if (c->lk.type == ID_LOOKUP_A) {
		fill(st, r, AF_INET);
	} else if (c->lk.type == ID_LOOKUP_AAAA) {
		fill(st, r, AF_INET6);
	} else {
		fill(st, r, 0);
	}
	unlink_query(id, c);
	free(c);
	id->cname_valid = false;
	if (!id->expired)
		start_lookups(id);
	reevaluate(id);
}

/*
 * The checks whose lookups are made: the enabled ones, plus fcrdns's (the
 * PTR and the addresses of the PTR names) when helo_checks_exempt lists
 * host names: exemption by name needs a forward-confirmed PTR name even
 * when no enabled check asks for one.
 */
static unsigned
lookup_checks(const struct ident_env *env)
{
	unsigned m = env->checks;
	if (env->n_exempt_names > 0)
		m |= IDC_BIT(IDC_FCRDNS);
	return m;
}

static void
start_lookups(struct ident *id)
{
	if (id->dns == NULL)
		return;
	struct id_lookup lk[ID_MAX_LOOKUPS];
	struct id_input in;
	build_input(id, &in);
	size_t n = identity_lookups(&in, lookup_checks(id->env), lk, ID_MAX_LOOKUPS);
	size_t nq = 0;
	for (const struct qctx *c = id->q; c != NULL; c = c->next)
		nq++;
	bool helo_pair = false;
	for (size_t i = 0; i < n; i++) {
		if (lk[i].slot == ID_SLOT_HELO_AAAA && helo_pair)
			continue;   /* already covered by the merged A+AAAA lookup */
		if (nq >= ID_MAX_LOOKUPS)
			break;
		struct qctx *c = xcalloc(1, sizeof *c);
		c->id = id;
		c->lk = lk[i];
		slot_store(id, lk[i].slot, lk[i].index)->status = ID_DNS_PENDING;
		if (lk[i].slot == ID_SLOT_HELO_A) {
			for (size_t j = 0; j < n; j++)
				if (lk[j].slot == ID_SLOT_HELO_AAAA) {
					c->both = true;
					helo_pair = true;
					id->st_aaaa.status = ID_DNS_PENDING;
				}
		}
		c->next = id->q;
		id->q = c;
		nq++;
		switch (lk[i].type) {
		case ID_LOOKUP_PTR:
			c->q = dns_lookup_ptr(id->dns, &id->client.sa, on_answer, c);
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
	struct id_input in;
	build_input(id, &in);
	id->v = xmalloc(sizeof *id->v);
	identity_evaluate(&in, id->env->psl, id->env->gp, id->v);
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

/*
 * The policy decision on the current verdict (evaluates; the caller
 * releases). A refusal waits (POL_PENDING) while an exemption by name may
 * still come: the PTR names' forward-confirmation is pending (fcrdns is
 * then pending, at most until the deadline), so an exempt client is not
 * refused just because its DNS answers were slower than its RCPT.
 */
static void
decide(struct ident *id, struct policy_decision *d)
{
	evaluate(id);
	bool ex = exempt(id);
	policy_decide(&id->env->po, id->v, ex, d);
	if (!ex && id->env->n_exempt_names > 0 && id->v->c[IDC_FCRDNS].pending &&
	    (d->would == POL_REJECT || d->would == POL_TEMPFAIL))
		d->outcome = d->would = POL_PENDING;
}

static bool
in_flight(const struct ident *id)
{
	return id->q != NULL;
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
	decide(id, &d);
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
	while (id->q != NULL) {
		const struct qctx *c = id->q;
		slot_store(id, c->lk.slot, c->lk.index)->status = ID_DNS_TIMEOUT;
		if (c->both)
			id->st_aaaa.status = ID_DNS_TIMEOUT;
		cancel_query(&id->q);
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
	if (len <= sizeof id->client)
		memcpy(&id->client, client, len);
	else
		id->client.sa.sa_family = AF_UNSPEC;   /* no PTR to ask */
	id_addr_from_sockaddr(client, len, &id->client_addr);
	if (local != NULL && !id_addr_from_sockaddr(local, sockaddr_len(local), &id->our_addr))
		memset(&id->our_addr, 0, sizeof id->our_addr);
	if (dns == NULL) {
		/* No resolver: DNS-based checks cannot be answered. */
		id->st_ptr.status = ID_DNS_SERVFAIL;
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
	while (id->q != NULL)
		cancel_query(&id->q);
	if (id->timer)
		event_free(id->timer);
	store_free(&id->st_ptr);
	store_free(&id->st_a);
	store_free(&id->st_aaaa);
	store_free(&id->st_mx);
	for (size_t i = 0; i < id->n_paddr; i++)
		store_free(&id->st_paddr[i]);
	free(id->st_paddr);
	free(id->sticky);
	free(id->v);
	free(id->helo);
	free(id->prev);
	free(id->accepted_name);
	free(id->cname);
	saved_free(&id->saved);
	x_free(ip);
}

/* An answer that was in flight when its lookup was cancelled is asked
 * again if the name it was for comes back. */
static void
store_unpend(struct ans_store *st)
{
	if (st->status == ID_DNS_PENDING)
		st->status = ID_DNS_UNASKED;
}

/* Cancels the lookups made for the HELO/EHLO name (its A, AAAA, MX). */
static void
cancel_helo_lookups(struct ident *id)
{
	for (struct qctx **pp = &id->q; *pp != NULL;) {
		enum id_lookup_slot slot = (*pp)->lk.slot;
		if (slot == ID_SLOT_HELO_A || slot == ID_SLOT_HELO_AAAA || slot == ID_SLOT_HELO_MX)
			cancel_query(pp);
		else
			pp = &(*pp)->next;
	}
}

void
ident_helo(struct ident *id, const char *helo, bool is_ehlo)
{
	/* A name still awaiting its verdict (cannot normally happen: the
	 * session decides before it reads the next command) is dropped. */
	saved_free(&id->saved);
	struct helo_saved *sv = xcalloc(1, sizeof *sv);
	if (id->helo != NULL && id->helo[0] && id->accepted && id->sticky == NULL) {
		struct policy_decision d;
		decide(id, &d);
		release(id);
		if (d.outcome == POL_REJECT || d.outcome == POL_TEMPFAIL) {
			id->sticky = xmalloc(sizeof *id->sticky);
			*id->sticky = d;
			sv->made_sticky = true;
		}
	}
	sv->helo = id->helo;
	sv->prev = id->prev;
	sv->is_ehlo = id->is_ehlo;
	sv->accepted = id->accepted;
	sv->expired = id->expired;
	id->prev = NULL;
	if (id->accepted_name != NULL && id->accepted_name[0])
		id->prev = xstrdup(id->accepted_name);
	else if (sv->prev != NULL)
		id->prev = xstrdup(sv->prev);
	id->accepted = false;
	id->helo = xstrndup(helo, strnlen(helo, 255));
	id->is_ehlo = is_ehlo;
	/* A new name needs its own forward lookups. */
	cancel_helo_lookups(id);
	sv->st_a = id->st_a;
	sv->st_aaaa = id->st_aaaa;
	sv->st_mx = id->st_mx;
	store_unpend(&sv->st_a);
	store_unpend(&sv->st_aaaa);
	store_unpend(&sv->st_mx);
	memset(&id->st_a, 0, sizeof id->st_a);
	memset(&id->st_aaaa, 0, sizeof id->st_aaaa);
	memset(&id->st_mx, 0, sizeof id->st_mx);
	id->saved = sv;
	if (id->dns == NULL)
		id->st_a.status = id->st_aaaa.status = id->st_mx.status = ID_DNS_SERVFAIL;
	id->cname_valid = false;
	id->expired = false;
	start_lookups(id);
}

void
ident_helo_refused(struct ident *id)
{
	struct helo_saved *sv = id->saved;
	if (sv == NULL)
		return;
	id->saved = NULL;
	/* RFC 5321 §4.1.4: a refused EHLO changes nothing. The refused
	 * name's lookups go; the earlier name, its answers, the previous
	 * name and the sticky state come back as they were. */
	cancel_helo_lookups(id);
	store_free(&id->st_a);
	store_free(&id->st_aaaa);
	store_free(&id->st_mx);
	id->st_a = sv->st_a;
	id->st_aaaa = sv->st_aaaa;
	id->st_mx = sv->st_mx;
	memset(&sv->st_a, 0, sizeof sv->st_a);
	memset(&sv->st_aaaa, 0, sizeof sv->st_aaaa);
	memset(&sv->st_mx, 0, sizeof sv->st_mx);
	free(id->helo);
	free(id->prev);
	id->helo = sv->helo;
	id->prev = sv->prev;
	sv->helo = sv->prev = NULL;
	id->is_ehlo = sv->is_ehlo;
	id->accepted = sv->accepted;
	id->expired = sv->expired;
	if (sv->made_sticky)
		x_free(&id->sticky);
	saved_free(&sv);
	id->cname_valid = false;
	/* Answers that were in flight for the earlier name are asked again. */
	if (!id->expired)
		start_lookups(id);
}

void
ident_tls_reset(struct ident *id)
{
	/* RFC 3207 §4.2: after the TLS handshake the server MUST discard the
	 * knowledge obtained from the client, the EHLO argument included.
	 * Everything derived from a HELO/EHLO goes: the names, their answers
	 * and lookups, a name awaiting its verdict, and a refusal an earlier
	 * name earned. What the client's address gave (the PTR answers) is
	 * not from the client and stays. */
	cancel_helo_lookups(id);
	store_free(&id->st_a);
	store_free(&id->st_aaaa);
	store_free(&id->st_mx);
	x_free(&id->helo);
	x_free(&id->prev);
	x_free(&id->accepted_name);
	x_free(&id->sticky);
	saved_free(&id->saved);
	id->is_ehlo = false;
	id->accepted = false;
	id->cname_valid = false;
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
	saved_free(&id->saved);
	id->accepted = true;
	free(id->accepted_name);
	id->accepted_name = xstrdup(id->helo != NULL ? id->helo : "");
}

bool
ident_helo_switch_ready(struct ident *id)
{
	if (!id->accepted || id->sticky != NULL || id->helo == NULL || id->helo[0] == '\0')
		return true;
	struct policy_decision d;
	decide(id, &d);
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
	decide(id, d);
	release(id);
	if (id->sticky != NULL && d->outcome != POL_REJECT) {
		*d = *id->sticky;
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
ident_auth_results(struct ident *id, struct buf *out, bool *exempt_out)
{
	struct policy_decision d;
	struct id_input in;
	build_input(id, &in);
	decide(id, &d);
	*exempt_out = d.exempt;
	bool ok = d.tag && !d.exempt &&
	    identity_auth_results(out, id->env->myhostname, &in, id->v, "\n");
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
	decide(id, d);
	release(id);
}
