/*
 * The identity checks (see identity.h for the contract and
 * docs/identity.md for the reasoning behind each result).
 *
 * Every name that reaches a comparison, a reason string or a header went
 * through id_hostname_check() or id_literal_parse() first; raw peer or DNS
 * bytes never do. A DNS trouble (timeout, SERVFAIL, bogus) yields
 * temperror and an unanswered lookup yields temperror with pending set:
 * neither may ever become "fail".
 */
#include "identity/identity.h"
#include "proto/data.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

static const char *const check_names[IDC_COUNT] = {
	[IDC_SYNTAX] = "syntax",
	[IDC_FQDN] = "fqdn",
	[IDC_LITERAL_MATCH] = "literal_match",
	[IDC_RESOLVES] = "resolves",
	[IDC_FORWARD_MATCH] = "forward_match",
	[IDC_PTR] = "ptr",
	[IDC_FCRDNS] = "fcrdns",
	[IDC_PTR_MATCH] = "ptr_match",
	[IDC_GENERIC] = "generic",
	[IDC_SELF_CLAIM] = "self_claim",
	[IDC_CONSISTENCY] = "consistency",
};

const char *
id_check_name(enum id_check c)
{
	return (unsigned)c < IDC_COUNT ? check_names[c] : NULL;
}

bool
id_check_from_name(const char *name, enum id_check *out)
{
	for (int c = 0; c < IDC_COUNT; c++)
		if (strcmp(name, check_names[c]) == 0) {
			*out = (enum id_check)c;
			return true;
		}
	return false;
}

const char *
id_result_name(enum id_result r)
{
	switch (r) {
	case ID_NONE:      return "none";
	case ID_PASS:      return "pass";
	case ID_FAIL:      return "fail";
	case ID_TEMPERROR: return "temperror";
	case ID_PERMERROR: return "permerror";
	}
	return "none";
}

static void __attribute__((format(printf, 4, 5)))
set(struct id_verdict *v, enum id_check c, enum id_result r,
    const char *fmt, ...)
{
	struct id_check_result *cr = &v->c[c];
	va_list ap;
	cr->r = r;
	cr->pending = false;
	va_start(ap, fmt);
	vsnprintf(cr->reason, sizeof(cr->reason), fmt, ap);
	va_end(ap);
	/* Defence in depth: reasons hold only validated names, but they go
	 * to logs and replies, so nothing unprintable may survive. */
	for (char *p = cr->reason; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

static void
set_pending(struct id_verdict *v, enum id_check c, const char *what)
{
	set(v, c, ID_TEMPERROR, "%s lookup not answered yet", what);
	v->c[c].pending = true;
}

/*
 * A check on the EHLO name when the name fails syntax: none, not
 * permerror. The name is judged once, by the syntax check, whose own
 * action (helo_check_syntax) decides what happens to it; the other name
 * checks cannot be evaluated on it and must not refuse it in its place,
 * or "helo_check_syntax = off" would still refuse "my_host.example" as
 * "you are not me". RFC 8601 §2.7.1 "none": no evaluation was possible.
 */
static void
set_unevaluated(struct id_verdict *v, enum id_check c)
{
	set(v, c, ID_NONE, "not evaluated: the name fails syntax");
}

static bool
waiting(enum id_dns_status s)
{
	return s == ID_DNS_UNASKED || s == ID_DNS_PENDING;
}

static bool
tempfail(enum id_dns_status s)
{
	return s == ID_DNS_SERVFAIL || s == ID_DNS_TIMEOUT || s == ID_DNS_BOGUS;
}

static bool
positive(const struct id_dns_answer *a)
{
	return a->status == ID_DNS_OK && a->n > 0;
}

static bool
negative(const struct id_dns_answer *a)
{
	return a->status == ID_DNS_NXDOMAIN || a->status == ID_DNS_NODATA ||
	    (a->status == ID_DNS_OK && a->n == 0);
}

static const char *
status_name(enum id_dns_status s)
{
	switch (s) {
	case ID_DNS_UNASKED:  return "unasked";
	case ID_DNS_PENDING:  return "pending";
	case ID_DNS_OK:       return "ok";
	case ID_DNS_NXDOMAIN: return "NXDOMAIN";
	case ID_DNS_NODATA:   return "NODATA";
	case ID_DNS_SERVFAIL: return "SERVFAIL";
	case ID_DNS_TIMEOUT:  return "timeout";
	case ID_DNS_BOGUS:    return "DNSSEC bogus";
	}
	return "?";
}

static bool
contains(const struct id_dns_answer *a, const struct id_addr *x)
{
	if (!positive(a) || a->addrs == NULL)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (id_addr_eq(&a->addrs[i], x))
			return true;
	return false;
}

enum helo_kind { H_ABSENT, H_INVALID, H_LITERAL, H_DOMAIN };

struct helo {
	enum helo_kind  kind;
	bool            bracketed;   /* began with '[' */
	const char     *why;         /* H_INVALID */
	struct id_addr  lit;         /* H_LITERAL */
	char            name[ID_NAME_MAX + 1];  /* H_DOMAIN */
};

static void
helo_classify(const char *s, struct helo *h)
{
	memset(h, 0, sizeof(*h));
	if (s == NULL) {
		h->kind = H_ABSENT;
		return;
	}
	size_t n = strlen(s);
	switch (id_literal_parse(s, n, &h->lit)) {
	case IDL_VALID:
		h->kind = H_LITERAL;
		h->bracketed = true;
		return;
	case IDL_BAD:
		h->kind = H_INVALID;
		h->bracketed = true;
		h->why = "malformed address literal";
		return;
	case IDL_UNKNOWN_TAG:
		h->kind = H_INVALID;
		h->bracketed = true;
		h->why = "address literal with an unknown tag";
		return;
	case IDL_NOT_LITERAL:
		break;
	}
	h->why = id_hostname_check(s, n, 0, h->name);
	h->kind = h->why ? H_INVALID : H_DOMAIN;
}

/* A validated rendering of a peer-supplied name for a reason string. */
static const char *
safe_name(const char *s, char *out)
{
	struct id_addr a;
	size_t n = strlen(s);
	if (id_literal_parse(s, n, &a) == IDL_VALID) {
		char t[ID_ADDR_STRLEN];
		id_addr_format(&a, t);
		snprintf(out, ID_NAME_MAX + 1, "[%s%s]",
		    a.family == AF_INET6 ? "IPv6:" : "", t);
		return out;
	}
	if (id_hostname_check(s, n, IDN_ALLOW_TRAILING_DOT, out) == NULL)
		return out;
	return "(invalid name)";
}

/* The echo of an argument that failed validation (see helo_echo in
 * identity.h): Postfix names the refused name in its reply, and so do we,
 * but only with the bytes that cannot break the reply line. */
static void
echo_name(const char *s, char out[ID_ECHO_MAX + 1])
{
	size_t k = 0;
	for (size_t i = 0; s[i] != '\0' && i < ID_NAME_MAX * 4 && k < ID_ECHO_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c > 0x20 && c < 0x7f && c != '<' && c != '>')
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

/* The organisational (registrable) domain of a valid lowercase name by
 * the whole list, private section included, or NULL. Without a list, the
 * last two labels. */
static const char *
regdom(const struct psl *psl, const char *name)
{
	if (psl != NULL) {
		struct psl_match m;
		psl_lookup(psl, name, strlen(name), 0, &m);
		return m.has_regdom ? name + m.regdom_off : NULL;
	}
	const char *last = strrchr(name, '.');
	if (last == NULL)
		return NULL;
	const char *p = last;
	while (p > name && p[-1] != '.')
		p--;
	return p;
}

size_t
id_ptr_select(const struct id_input *in,
              char names[ID_MAX_PTR][ID_NAME_MAX + 1])
{
	size_t k = 0;
	if (in->ptr.status != ID_DNS_OK || in->ptr.names == NULL)
		return 0;
	for (size_t i = 0; i < in->ptr.n && k < ID_MAX_PTR; i++) {
		const char *s = in->ptr.names[i];
		if (s == NULL)
			continue;
		/* A PTR name is hostile input (nginx CVE-2026-28753): length,
		 * label syntax, no control or non-ASCII octets, and a real
		 * host name (an all-numeric last label would be an address
		 * pretending to be a name). strnlen bounds a missing NUL. */
		size_t n = strnlen(s, ID_NAME_MAX + 2);
		if (id_hostname_check(s, n, IDN_ALLOW_TRAILING_DOT |
		    IDN_REQUIRE_ALPHA_TLD, names[k]) != NULL)
			continue;
		bool dup = false;
		for (size_t j = 0; j < k; j++)
			if (strcmp(names[j], names[k]) == 0)
				dup = true;
		if (!dup)
			k++;
	}
	return k;
}

static void
check_syntax(const struct id_input *in, const struct helo *h,
             struct id_verdict *v)
{
	switch (h->kind) {
	case H_ABSENT:
		set(v, IDC_SYNTAX, ID_NONE, "no HELO/EHLO yet");
		break;
	case H_INVALID:
		set(v, IDC_SYNTAX, ID_FAIL, "%s", h->why);
		break;
	case H_LITERAL:
		if (in->is_ehlo)
			set(v, IDC_SYNTAX, ID_PASS, "address literal");
		else
			set(v, IDC_SYNTAX, ID_PASS, "address literal in HELO "
			    "(RFC 5321 grammar has it only in EHLO; accepted)");
		break;
	case H_DOMAIN:
		set(v, IDC_SYNTAX, ID_PASS, "valid domain name");
		break;
	}
}

static void
check_fqdn(const struct helo *h, const struct psl *psl, struct id_verdict *v)
{
	switch (h->kind) {
	case H_ABSENT:
		set(v, IDC_FQDN, ID_NONE, "no HELO/EHLO yet");
		return;
	case H_INVALID:
		set_unevaluated(v, IDC_FQDN);
		return;
	case H_LITERAL:
		set(v, IDC_FQDN, ID_NONE, "address literal");
		return;
	case H_DOMAIN:
		break;
	}
	size_t len = strlen(h->name);
	if (id_is_bare_ipv4(h->name, len)) {
		set(v, IDC_FQDN, ID_FAIL, "bare IP address without brackets");
		return;
	}
	if (strchr(h->name, '.') == NULL) {
		set(v, IDC_FQDN, ID_FAIL, "single label, not fully qualified");
		return;
	}
	const char *tld = strrchr(h->name, '.') + 1;
	bool numeric = true;
	for (const char *p = tld; *p; p++)
		if (!ascii_isdigit(*p))
			numeric = false;
	if (numeric) {
		set(v, IDC_FQDN, ID_FAIL, "all-numeric top-level label");
		return;
	}
	if (psl == NULL) {
		set(v, IDC_FQDN, ID_PASS, "two or more labels (no public "
		    "suffix list loaded)");
		return;
	}
	struct psl_match m;
	/* ICANN section only: "ec2-192-0-2-1.compute-1.amazonaws.com" is a
	 * suffix in the private section but a fine host name. */
	psl_lookup(psl, h->name, len, PSL_ICANN_ONLY, &m);
	if (!m.listed)
		set(v, IDC_FQDN, ID_FAIL, "top-level domain .%s is not in the "
		    "public suffix list", tld);
	else if (!m.has_regdom)
		set(v, IDC_FQDN, ID_FAIL, "%s is a public suffix, not a host",
		    h->name);
	else
		set(v, IDC_FQDN, ID_PASS, "under registrable domain %s",
		    h->name + m.regdom_off);
}

static void
check_literal(const struct id_input *in, const struct helo *h,
              struct id_verdict *v)
{
	char a[ID_ADDR_STRLEN], c[ID_ADDR_STRLEN];
	if (h->kind == H_ABSENT) {
		set(v, IDC_LITERAL_MATCH, ID_NONE, "no HELO/EHLO yet");
	} else if (!h->bracketed) {
		set(v, IDC_LITERAL_MATCH, ID_NONE, "not an address literal");
	} else if (h->kind == H_INVALID) {
		set_unevaluated(v, IDC_LITERAL_MATCH);
	} else if (id_addr_eq(&h->lit, &in->client)) {
		set(v, IDC_LITERAL_MATCH, ID_PASS,
		    "address literal is the client address");
	} else {
		id_addr_format(&h->lit, a);
		id_addr_format(&in->client, c);
		set(v, IDC_LITERAL_MATCH, ID_FAIL,
		    "address literal %s is not the client address %s", a, c);
	}
}

/* The common preamble of the checks on a domain name: returns false when
 * it already set the result. */
static bool
domain_applies(const struct helo *h, enum id_check c, struct id_verdict *v)
{
	switch (h->kind) {
	case H_ABSENT:
		set(v, c, ID_NONE, "no HELO/EHLO yet");
		return false;
	case H_INVALID:
		set_unevaluated(v, c);
		return false;
	case H_LITERAL:
		set(v, c, ID_NONE, "address literal");
		return false;
	case H_DOMAIN:
		break;
	}
	return true;
}

/* An MX answer that names at least one host ("." is RFC 7505 null MX). */
static bool
mx_has_host(const struct id_dns_answer *mx)
{
	if (!positive(mx) || mx->names == NULL)
		return false;
	for (size_t i = 0; i < mx->n; i++) {
		const char *s = mx->names[i];
		if (s != NULL && id_hostname_check(s, strnlen(s, ID_NAME_MAX + 2),
		    IDN_ALLOW_TRAILING_DOT, NULL) == NULL)
			return true;
	}
	return false;
}

static void
check_resolves(const struct id_input *in, const struct helo *h,
               struct id_verdict *v)
{
	if (!domain_applies(h, IDC_RESOLVES, v))
		return;
	const struct id_dns_answer *a = &in->helo_a, *q = &in->helo_aaaa;
	if (positive(a) || positive(q)) {
		set(v, IDC_RESOLVES, ID_PASS, "%s has %s records", h->name,
		    positive(a) ? "A" : "AAAA");
		return;
	}
	if (waiting(a->status) || waiting(q->status)) {
		set_pending(v, IDC_RESOLVES, "A/AAAA");
		return;
	}
	if (tempfail(a->status) || tempfail(q->status)) {
		set(v, IDC_RESOLVES, ID_TEMPERROR, "A/AAAA lookup: %s",
		    status_name(tempfail(a->status) ? a->status : q->status));
		return;
	}
	if (a->status == ID_DNS_NXDOMAIN || q->status == ID_DNS_NXDOMAIN) {
		set(v, IDC_RESOLVES, ID_FAIL, "%s does not exist (NXDOMAIN)",
		    h->name);
		return;
	}
	/* The name exists without addresses: an MX still shows that it is
	 * a mail domain (RFC 5321 §2.3.5 speaks of a name that resolves). */
	const struct id_dns_answer *mx = &in->helo_mx;
	if (mx_has_host(mx))
		set(v, IDC_RESOLVES, ID_PASS, "%s has MX records only", h->name);
	else if (waiting(mx->status))
		set_pending(v, IDC_RESOLVES, "MX");
	else if (tempfail(mx->status))
		set(v, IDC_RESOLVES, ID_TEMPERROR, "MX lookup: %s",
		    status_name(mx->status));
	else
		set(v, IDC_RESOLVES, ID_FAIL, "%s has no A, AAAA or MX records",
		    h->name);
}

static void
check_forward(const struct id_input *in, const struct helo *h,
              struct id_verdict *v)
{
	if (!domain_applies(h, IDC_FORWARD_MATCH, v))
		return;
	if (in->client.family == 0) {
		set(v, IDC_FORWARD_MATCH, ID_PERMERROR, "no client address");
		return;
	}
	bool v4 = in->client.family == AF_INET;
	const struct id_dns_answer *a = v4 ? &in->helo_a : &in->helo_aaaa;
	const char *type = v4 ? "A" : "AAAA";
	if (contains(a, &in->client))
		set(v, IDC_FORWARD_MATCH, ID_PASS,
		    "%s records of %s include the client address", type, h->name);
	else if (positive(a))
		set(v, IDC_FORWARD_MATCH, ID_FAIL, "%s records of %s do not "
		    "include the client address", type, h->name);
	else if (waiting(a->status))
		set_pending(v, IDC_FORWARD_MATCH, type);
	else if (tempfail(a->status))
		set(v, IDC_FORWARD_MATCH, ID_TEMPERROR, "%s lookup: %s", type,
		    status_name(a->status));
	else
		set(v, IDC_FORWARD_MATCH, ID_FAIL, "%s has no %s records (%s)",
		    h->name, type, status_name(a->status == ID_DNS_OK ?
		    ID_DNS_NODATA : a->status));
}

/* The first validation failure among the PTR names, for a reason. */
static const char *
ptr_invalid_reason(const struct id_input *in)
{
	for (size_t i = 0; i < in->ptr.n && in->ptr.names != NULL; i++) {
		const char *s = in->ptr.names[i];
		if (s == NULL)
			return "empty name";
		const char *why = id_hostname_check(s, strnlen(s,
		    ID_NAME_MAX + 2), IDN_ALLOW_TRAILING_DOT |
		    IDN_REQUIRE_ALPHA_TLD, NULL);
		if (why != NULL)
			return why;
	}
	return "no usable name";
}

static void
check_ptr(const struct id_input *in, struct id_verdict *v)
{
	const struct id_dns_answer *p = &in->ptr;
	if (in->client.family == 0)
		set(v, IDC_PTR, ID_PERMERROR, "no client address");
	else if (v->n_ptr > 0)
		set(v, IDC_PTR, ID_PASS, "PTR %s%s", v->ptr_names[0],
		    v->n_ptr > 1 ? " and others" : "");
	else if (waiting(p->status))
		set_pending(v, IDC_PTR, "PTR");
	else if (tempfail(p->status))
		set(v, IDC_PTR, ID_TEMPERROR, "PTR lookup: %s",
		    status_name(p->status));
	else if (positive(p))
		set(v, IDC_PTR, ID_FAIL, "PTR names invalid (%s)",
		    ptr_invalid_reason(in));
	else
		set(v, IDC_PTR, ID_FAIL, "no PTR record (%s)",
		    status_name(p->status == ID_DNS_OK ? ID_DNS_NODATA :
		    p->status));
}

/* fcrdns is RFC 8601 §2.7.3 iprev exactly; v->iprev mirrors it. */
static void
check_fcrdns(const struct id_input *in, struct id_verdict *v)
{
	const struct id_dns_answer *p = &in->ptr;
	const char *type = in->client.family == AF_INET ? "A" : "AAAA";
	size_t confirmed = 0, wait = 0, temp = 0;
	for (size_t i = 0; i < v->n_ptr; i++) {
		const struct id_dns_answer *a = &in->ptr_addr[i];
		if (contains(a, &in->client)) {
			v->ptr_confirmed[i] = true;
			if (confirmed++ == 0)
				set(v, IDC_FCRDNS, ID_PASS, "%s resolves back to "
				    "the client address", v->ptr_names[i]);
		} else if (waiting(a->status)) {
			wait++;
		} else if (tempfail(a->status)) {
			temp++;
		}
	}
	if (in->client.family == 0)
		set(v, IDC_FCRDNS, ID_PERMERROR, "no client address");
	else if (confirmed > 0)
		;
	else if (waiting(p->status))
		set_pending(v, IDC_FCRDNS, "PTR");
	else if (tempfail(p->status))
		set(v, IDC_FCRDNS, ID_TEMPERROR, "PTR lookup: %s",
		    status_name(p->status));
	else if (negative(p))
		set(v, IDC_FCRDNS, ID_PERMERROR, "no PTR data for the client "
		    "address (%s)", status_name(p->status == ID_DNS_OK ?
		    ID_DNS_NODATA : p->status));
	else if (v->n_ptr == 0)
		set(v, IDC_FCRDNS, ID_FAIL, "no valid PTR name (%s)",
		    ptr_invalid_reason(in));
	else if (wait > 0)
		set_pending(v, IDC_FCRDNS, type);
	else if (temp > 0)
		set(v, IDC_FCRDNS, ID_TEMPERROR, "%s lookup of a PTR name "
		    "failed temporarily", type);
	else
		set(v, IDC_FCRDNS, ID_FAIL, "no PTR name resolves back to the "
		    "client address");

	v->iprev = v->c[IDC_FCRDNS].r;
	v->iprev_pending = v->c[IDC_FCRDNS].pending;
	if (p->status == ID_DNS_UNASKED && confirmed == 0) {
		v->iprev = ID_NONE;
		v->iprev_pending = false;
	}
}

/* Does the EHLO name match PTR name n (exactly, or by organisation)? */
static const char *
name_match(const char *helo, const char *n, bool exact, const struct psl *psl)
{
	if (strcmp(helo, n) == 0)
		return "equals";
	if (exact)
		return NULL;
	const char *a = regdom(psl, helo), *b = regdom(psl, n);
	if (a != NULL && b != NULL && strcmp(a, b) == 0)
		return "shares the organisational domain of";
	return NULL;
}

static void
check_ptr_match(const struct id_input *in, const struct helo *h,
                const struct psl *psl, struct id_verdict *v)
{
	if (!domain_applies(h, IDC_PTR_MATCH, v))
		return;
	bool exact = in->ptr_match_exact;
	bool open = false;   /* a matching name awaits confirmation */
	for (size_t i = 0; i < v->n_ptr; i++) {
		const char *how = name_match(h->name, v->ptr_names[i], exact, psl);
		if (how == NULL)
			continue;
		if (v->ptr_confirmed[i]) {
			set(v, IDC_PTR_MATCH, ID_PASS, "%s %s forward-confirmed "
			    "PTR %s", h->name, how, v->ptr_names[i]);
			return;
		}
		const struct id_dns_answer *a = &in->ptr_addr[i];
		if (waiting(a->status) || tempfail(a->status))
			open = true;
	}
	const struct id_check_result *f = &v->c[IDC_FCRDNS];
	if (f->r == ID_TEMPERROR && (waiting(in->ptr.status) ||
	    tempfail(in->ptr.status))) {
		set(v, IDC_PTR_MATCH, ID_TEMPERROR, "%s", f->reason);
		v->c[IDC_PTR_MATCH].pending = f->pending;
	} else if (open) {
		set(v, IDC_PTR_MATCH, ID_TEMPERROR, "a matching PTR name is "
		    "not forward-confirmed yet");
		v->c[IDC_PTR_MATCH].pending = f->pending;
	} else {
		size_t nc = 0;
		for (size_t i = 0; i < v->n_ptr; i++)
			nc += v->ptr_confirmed[i];
		if (nc == 0)
			set(v, IDC_PTR_MATCH, ID_FAIL, "no forward-confirmed PTR "
			    "name");
		else
			set(v, IDC_PTR_MATCH, ID_FAIL, "%s does not %s any "
			    "forward-confirmed PTR name", h->name,
			    exact ? "equal" : "share an organisation with");
	}
}

static void
check_generic(const struct id_input *in, const struct helo *h,
              const struct psl *psl, const struct generic_patterns *gp,
              struct id_verdict *v)
{
	char why[96];
	bool tested = false;
	if (h->kind == H_DOMAIN) {
		tested = true;
		if (generic_match(gp, psl, h->name, &in->client, why,
		    sizeof(why))) {
			set(v, IDC_GENERIC, ID_FAIL, "EHLO name %s: %s", h->name,
			    why);
			return;
		}
	}
	for (size_t i = 0; i < v->n_ptr; i++) {
		tested = true;
		if (generic_match(gp, psl, v->ptr_names[i], &in->client, why,
		    sizeof(why))) {
			set(v, IDC_GENERIC, ID_FAIL, "PTR %s: %s",
			    v->ptr_names[i], why);
			return;
		}
	}
	if (in->client.family != 0 && waiting(in->ptr.status))
		set_pending(v, IDC_GENERIC, "PTR");
	else if (tempfail(in->ptr.status))
		set(v, IDC_GENERIC, ID_TEMPERROR, "PTR lookup: %s",
		    status_name(in->ptr.status));
	else if (tested)
		set(v, IDC_GENERIC, ID_PASS, "no generic name");
	else
		set(v, IDC_GENERIC, ID_NONE, "no name to test");
}

static bool
is_localhost(const char *name)
{
	/* RFC 6761 §6.3: localhost and every name under it. */
	size_t n = strlen(name);
	return strcmp(name, "localhost") == 0 ||
	    strcmp(name, "localhost.localdomain") == 0 ||
	    (n > 10 && strcmp(name + n - 10, ".localhost") == 0);
}

static void
check_self(const struct id_input *in, const struct helo *h,
           struct id_verdict *v)
{
	if (h->kind == H_ABSENT) {
		set(v, IDC_SELF_CLAIM, ID_NONE, "no HELO/EHLO yet");
		return;
	}
	if (h->kind == H_INVALID) {
		set_unevaluated(v, IDC_SELF_CLAIM);
		return;
	}
	/* A client that is this host (loopback, or one of our addresses)
	 * tells the truth when it says localhost or our name: local
	 * submission and the "EHLO [127.0.0.1]" of a local script are not
	 * forgeries. */
	bool ours = id_addr_is_loopback(&in->client);
	for (size_t i = 0; i < in->n_our_addrs && !ours; i++)
		if (id_addr_eq(&in->our_addrs[i], &in->client))
			ours = true;
	if (ours) {
		set(v, IDC_SELF_CLAIM, ID_PASS, "the client is this host");
		return;
	}
	if (h->kind == H_LITERAL) {
		char a[ID_ADDR_STRLEN];
		id_addr_format(&h->lit, a);
		for (size_t i = 0; i < in->n_our_addrs; i++)
			if (id_addr_eq(&in->our_addrs[i], &h->lit)) {
				set(v, IDC_SELF_CLAIM, ID_FAIL, "claims our "
				    "address %s", a);
				return;
			}
		if (id_addr_is_loopback(&h->lit)) {
			set(v, IDC_SELF_CLAIM, ID_FAIL, "claims loopback address "
			    "%s from a remote client", a);
			return;
		}
		set(v, IDC_SELF_CLAIM, ID_PASS, "not one of our addresses");
		return;
	}
	for (size_t i = 0; i < in->n_our_names; i++) {
		char ours_n[ID_NAME_MAX + 1];
		const char *s = in->our_names[i];
		if (s != NULL && id_hostname_check(s, strlen(s),
		    IDN_ALLOW_TRAILING_DOT, ours_n) == NULL &&
		    strcmp(ours_n, h->name) == 0) {
			set(v, IDC_SELF_CLAIM, ID_FAIL, "claims our host name %s",
			    h->name);
			return;
		}
	}
	if (is_localhost(h->name))
		set(v, IDC_SELF_CLAIM, ID_FAIL, "claims %s from a remote client",
		    h->name);
	else
		set(v, IDC_SELF_CLAIM, ID_PASS, "not one of our names");
}

static bool
same_helo(const char *a, const char *b)
{
	size_t an = strlen(a), bn = strlen(b);
	if (an > 0 && a[an - 1] == '.')
		an--;
	if (bn > 0 && b[bn - 1] == '.')
		bn--;
	/* ehlod never calls setlocale(): the C locale makes this ASCII. */
	return an == bn && strncasecmp(a, b, an) == 0;
}

static void
check_consistency(const struct id_input *in, struct id_verdict *v)
{
	char a[ID_NAME_MAX + 1], b[ID_NAME_MAX + 1];
	if (in->helo == NULL)
		set(v, IDC_CONSISTENCY, ID_NONE, "no HELO/EHLO yet");
	else if (in->prev_helo == NULL)
		set(v, IDC_CONSISTENCY, ID_NONE, "first HELO/EHLO");
	else if (same_helo(in->helo, in->prev_helo))
		set(v, IDC_CONSISTENCY, ID_PASS, "same name as before");
	else
		set(v, IDC_CONSISTENCY, ID_FAIL, "changed from %.60s to %.60s",
		    safe_name(in->prev_helo, a), safe_name(in->helo, b));
}

void
identity_evaluate(const struct id_input *in, const struct psl *psl,
                  const struct generic_patterns *gp, struct id_verdict *out)
{
	struct helo h;
	memset(out, 0, sizeof(*out));
	helo_classify(in->helo, &h);
	if (h.kind == H_DOMAIN) {
		memcpy(out->helo, h.name, sizeof(out->helo));
	} else if (h.kind == H_LITERAL) {
		char t[ID_ADDR_STRLEN];
		id_addr_format(&h.lit, t);
		snprintf(out->helo, sizeof(out->helo), "[%s%s]",
		    h.lit.family == AF_INET6 ? "IPv6:" : "", t);
	}
	if (h.kind == H_INVALID)
		echo_name(in->helo, out->helo_echo);
	out->n_ptr = id_ptr_select(in, out->ptr_names);

	check_syntax(in, &h, out);
	check_fqdn(&h, psl, out);
	check_literal(in, &h, out);
	check_resolves(in, &h, out);
	check_forward(in, &h, out);
	check_ptr(in, out);
	check_fcrdns(in, out);
	check_ptr_match(in, &h, psl, out);
	check_generic(in, &h, psl, gp, out);
	check_self(in, &h, out);
	check_consistency(in, out);
}

static void
add_lookup(struct id_lookup *out, size_t max, size_t *k,
           enum id_lookup_type type, enum id_lookup_slot slot, size_t index,
           const char *qname)
{
	if (*k >= max)
		return;
	struct id_lookup *l = &out[(*k)++];
	l->type = type;
	l->slot = slot;
	l->index = index;
	/* qname is a validated name or reverse name: at most ID_NAME_MAX. */
	size_t n = strnlen(qname, ID_NAME_MAX);
	memcpy(l->qname, qname, n);
	l->qname[n] = '\0';
}

size_t
identity_lookups(const struct id_input *in, unsigned checks,
                 struct id_lookup *out, size_t max)
{
	size_t k = 0;
	bool v4 = in->client.family == AF_INET;
	bool have_client = in->client.family != 0;

	if (have_client && in->ptr.status == ID_DNS_UNASKED &&
	    (checks & (IDC_BIT(IDC_PTR) | IDC_BIT(IDC_FCRDNS) |
	    IDC_BIT(IDC_PTR_MATCH) | IDC_BIT(IDC_GENERIC)))) {
		char rev[ID_REVNAME_MAX];
		id_reverse_name(&in->client, rev);
		add_lookup(out, max, &k, ID_LOOKUP_PTR, ID_SLOT_PTR, 0, rev);
	}

	struct helo h;
	helo_classify(in->helo, &h);
	if (h.kind == H_DOMAIN) {
		bool res = checks & IDC_BIT(IDC_RESOLVES);
		bool fwd = have_client && (checks & IDC_BIT(IDC_FORWARD_MATCH));
		if ((res || (fwd && v4)) && in->helo_a.status == ID_DNS_UNASKED)
			add_lookup(out, max, &k, ID_LOOKUP_A, ID_SLOT_HELO_A, 0,
			    h.name);
		if ((res || (fwd && !v4)) &&
		    in->helo_aaaa.status == ID_DNS_UNASKED)
			add_lookup(out, max, &k, ID_LOOKUP_AAAA,
			    ID_SLOT_HELO_AAAA, 0, h.name);
		/* MX only for a name that exists without addresses. */
		bool nodata_a = in->helo_a.status == ID_DNS_NODATA ||
		    (in->helo_a.status == ID_DNS_OK && in->helo_a.n == 0);
		bool nodata_q = in->helo_aaaa.status == ID_DNS_NODATA ||
		    (in->helo_aaaa.status == ID_DNS_OK && in->helo_aaaa.n == 0);
		if (res && nodata_a && nodata_q &&
		    in->helo_mx.status == ID_DNS_UNASKED)
			add_lookup(out, max, &k, ID_LOOKUP_MX, ID_SLOT_HELO_MX, 0,
			    h.name);
	}

	if (have_client && (checks & (IDC_BIT(IDC_FCRDNS) |
	    IDC_BIT(IDC_PTR_MATCH)))) {
		char names[ID_MAX_PTR][ID_NAME_MAX + 1];
		size_t n = id_ptr_select(in, names);
		for (size_t i = 0; i < n; i++)
			if (in->ptr_addr[i].status == ID_DNS_UNASKED)
				add_lookup(out, max, &k, v4 ? ID_LOOKUP_A :
				    ID_LOOKUP_AAAA, ID_SLOT_PTR_ADDR, i, names[i]);
	}
	return k;
}

/* Appends item, folding first if the line would pass 78 characters. */
static void
fold_add(struct buf *out, size_t *col, const char *eol, const char *item)
{
	size_t n = strlen(item);
	if (*col + 1 + n > 78) {
		buf_append_str(out, eol);
		buf_append_str(out, "\t ");
		*col = 9;
	} else if (*col > 0) {
		buf_append_char(out, ' ');
		(*col)++;
	}
	buf_append_str(out, item);
	*col += n;
}

bool
identity_auth_results(struct buf *out, const char *authserv_id,
                      const struct id_input *in, const struct id_verdict *v,
                      const char *eol)
{
	if (authserv_id == NULL || id_hostname_check(authserv_id,
	    strlen(authserv_id), 0, NULL) != NULL)
		return false;
	buf_appendf(out, "Authentication-Results: %s;%s\t", authserv_id, eol);
	size_t col = 8;
	char item[ID_NAME_MAX + 64];
	if (v->iprev == ID_NONE) {
		buf_append_str(out, "none");
		col += 4;
	} else {
		char ip[ID_ADDR_STRLEN];
		id_addr_format(&in->client, ip);
		enum id_result r = v->iprev;
		/* iprev has no "none"; a pending answer is a temperror. */
		snprintf(item, sizeof(item), "iprev=%s", id_result_name(r));
		buf_append_str(out, item);
		col += strlen(item);
		/* ':' is a tspecial (RFC 2045), so an IPv6 pvalue must be a
		 * quoted-string (RFC 8601 §2.2 value). */
		if (in->client.family == AF_INET6)
			snprintf(item, sizeof(item), "policy.iprev=\"%s\"", ip);
		else
			snprintf(item, sizeof(item), "policy.iprev=%s", ip);
		fold_add(out, &col, eol, item);
	}
	buf_append_str(out, eol);
	buf_append_str(out, "\t(");
	col = 9;
	bool first = true;
	if (v->helo[0] != '\0') {
		snprintf(item, sizeof(item), "ehlo=%s", v->helo);
		buf_append_str(out, item);
		col += strlen(item);
		first = false;
	}
	for (size_t i = 0; i < v->n_ptr; i++)
		if (v->ptr_confirmed[i]) {
			snprintf(item, sizeof(item), "rdns=%s", v->ptr_names[i]);
			if (first) {
				buf_append_str(out, item);
				col += strlen(item);
				first = false;
			} else {
				fold_add(out, &col, eol, item);
			}
			break;
		}
	for (int c = 0; c < IDC_COUNT; c++) {
		snprintf(item, sizeof(item), "%s=%s%s", check_names[c],
		    id_result_name(v->c[c].r), c == IDC_COUNT - 1 ? ")" : "");
		if (first) {
			buf_append_str(out, item);
			col += strlen(item);
			first = false;
		} else {
			fold_add(out, &col, eol, item);
		}
	}
	return true;
}

/* Is the field starting at p (LF-terminated lines, header section) an
 * Authentication-Results field for authserv_id? */
static bool
ar_is_ours(const char *p, size_t n, const char *authserv_id)
{
	static const char name[] = "authentication-results";
	size_t nl = sizeof name - 1;
	if (n < nl + 1)
		return false;
	for (size_t i = 0; i < nl; i++)
		if (ascii_lower(p[i]) != name[i])
			return false;
	size_t i = nl;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i >= n || p[i] != ':')
		return false;
	i++;
	/* authserv-id, possibly after folding white space; ends at ';', white
	 * space or a comment. */
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n'))
		i++;
	size_t start = i;
	while (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
	    p[i] != '(')
		i++;
	size_t idlen = i - start;
	return idlen == strlen(authserv_id) && idlen > 0 &&
	    ascii_ieqn(p + start, idlen, authserv_id);
}

static bool
ar_drop(const char *f, size_t flen, void *arg)
{
	return ar_is_ours(f, flen, arg);
}

size_t
identity_strip_auth_results(char *msg, size_t *len, const char *authserv_id)
{
	return data_strip_fields(msg, len, ar_drop, (void *)authserv_id);
}
