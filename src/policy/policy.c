/*
 * Identity policy decisions. See policy.h for the rules; the reply codes:
 *   syntax        501 5.5.2  (Postfix reject_invalid_helo_hostname)
 *   fqdn          504 5.5.2  (Postfix reject_non_fqdn_helo_hostname)
 *   ptr, fcrdns, generic
 *                 550 5.7.25 (RFC 7372 §3: reverse DNS validation failed)
 *   everything else 550 5.7.1
 * Under "tempfail" the same text with 450 and the 4.x.x twin. A temperror
 * under an enforcing action: 450 4.7.25 for the reverse-DNS checks and
 * 450 4.7.1 otherwise (Postfix answers 450 for DNS trouble too).
 */
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

struct check_reply {
	unsigned code;
	const char *enh;
	const char *text;   /* after "<name>: " when the text starts with '<' */
};

static const struct check_reply replies[IDC_COUNT] = {
	[IDC_SYNTAX]        = { 501, "5.5.2", "<Helo command rejected: Invalid name" },
	[IDC_FQDN]          = { 504, "5.5.2", "<Helo command rejected: need fully-qualified hostname" },
	[IDC_LITERAL_MATCH] = { 550, "5.7.1", "<Helo command rejected: address literal is not your address" },
	[IDC_RESOLVES]      = { 550, "5.7.1", "<Helo command rejected: Host not found" },
	[IDC_FORWARD_MATCH] = { 550, "5.7.1", "<Helo command rejected: name does not resolve to your address" },
	[IDC_PTR]           = { 550, "5.7.25", "Client host rejected: no reverse DNS (PTR) for your address" },
	[IDC_FCRDNS]        = { 550, "5.7.25", "Client host rejected: reverse DNS is not forward-confirmed" },
	[IDC_PTR_MATCH]     = { 550, "5.7.1", "<Helo command rejected: name does not match your reverse DNS" },
	[IDC_GENERIC]       = { 550, "5.7.25", "Client host rejected: generic or dynamic reverse DNS name" },
	[IDC_SELF_CLAIM]    = { 550, "5.7.1", "<Helo command rejected: you are not me" },
	[IDC_CONSISTENCY]   = { 550, "5.7.1", "<Helo command rejected: name changed within the session" },
};

static bool
reverse_dns_check(enum id_check c)
{
	return c == IDC_PTR || c == IDC_FCRDNS || c == IDC_GENERIC;
}

void
policy_opts_from_config(struct policy_opts *o, const struct ehlo_config *cfg)
{
	o->action[IDC_SYNTAX] = cfg->helo_check_syntax;
	o->action[IDC_FQDN] = cfg->helo_check_fqdn;
	o->action[IDC_LITERAL_MATCH] = cfg->helo_check_literal_match;
	o->action[IDC_RESOLVES] = cfg->helo_check_resolves;
	o->action[IDC_FORWARD_MATCH] = cfg->helo_check_forward_match;
	o->action[IDC_PTR] = cfg->helo_check_ptr;
	o->action[IDC_FCRDNS] = cfg->helo_check_fcrdns;
	o->action[IDC_PTR_MATCH] = cfg->helo_check_ptr_match;
	o->action[IDC_GENERIC] = cfg->helo_check_generic;
	o->action[IDC_SELF_CLAIM] = cfg->helo_check_self_claim;
	o->action[IDC_CONSISTENCY] = cfg->helo_check_consistency;
	o->shadow = cfg->helo_checks_shadow;
}

unsigned
policy_checks(const struct policy_opts *o)
{
	unsigned m = 0;
	for (int c = 0; c < IDC_COUNT; c++)
		if (o->action[c] != ACT_OFF)
			m |= IDC_BIT(c);
	return m;
}

unsigned
policy_enforcing(const struct policy_opts *o)
{
	unsigned m = 0;
	for (int c = 0; c < IDC_COUNT; c++)
		if (o->action[c] == ACT_TEMPFAIL || o->action[c] == ACT_REJECT)
			m |= IDC_BIT(c);
	return m;
}

const char *
policy_outcome_name(enum policy_outcome p)
{
	switch (p) {
	case POL_ACCEPT: return "accept";
	case POL_TEMPFAIL: return "tempfail";
	case POL_REJECT: return "reject";
	case POL_PENDING: return "pending";
	}
	return "?";
}

static void
set_reply(struct policy_decision *d, const struct id_verdict *v, enum id_check c,
          enum policy_outcome out, bool temperror)
{
	const struct check_reply *r = &replies[c];
	d->check = c;
	d->would = out;
	/* The validated name, else the sanitised echo of an invalid one
	 * (Postfix names it too), else "unknown". */
	const char *name = v->helo[0] ? v->helo : v->helo_echo[0] ? v->helo_echo : "unknown";
	char text[300];
	if (temperror) {
		d->code = 450;
		snprintf(d->enh, sizeof d->enh, "%s", reverse_dns_check(c) ? "4.7.25" : "4.7.1");
		snprintf(text, sizeof text, "Client host rejected: cannot verify %s: temporary DNS failure",
		    id_check_name(c));
	} else {
		/* Texts about the EHLO name start with "<": name them. */
		if (r->text[0] == '<')
			snprintf(text, sizeof text, "<%s>: %s", name, r->text + 1);
		else
			snprintf(text, sizeof text, "%s", r->text);
		if (out == POL_TEMPFAIL) {
			d->code = 450;
			snprintf(d->enh, sizeof d->enh, "4%s", r->enh + 1);
		} else {
			d->code = r->code;
			snprintf(d->enh, sizeof d->enh, "%s", r->enh);
		}
	}
	snprintf(d->text, sizeof d->text, "%s", text);
}

void
policy_decide(const struct policy_opts *o, const struct id_verdict *v, bool exempt,
              struct policy_decision *out)
{
	memset(out, 0, sizeof *out);
	out->outcome = out->would = POL_ACCEPT;
	out->check = IDC_COUNT;
	if (exempt) {
		out->exempt = true;
		return;
	}
	bool decided = false;
	for (int c = 0; c < IDC_COUNT; c++) {
		enum check_action a = o->action[c];
		if (a == ACT_OFF)
			continue;
		if (a == ACT_TAG)
			out->tag = true;
		const struct id_check_result *r = &v->c[c];
		bool failing = r->r == ID_FAIL || r->r == ID_PERMERROR;
		bool temp = r->r == ID_TEMPERROR;
		if (failing || (temp && !r->pending))
			out->failed_mask |= IDC_BIT(c);
		if (decided || (a != ACT_TEMPFAIL && a != ACT_REJECT))
			continue;
		if (temp && r->pending) {
			/* Wait for this answer before deciding on later checks. */
			out->would = POL_PENDING;
			out->check = (enum id_check)c;
			decided = true;
		} else if (temp) {
			set_reply(out, v, (enum id_check)c, POL_TEMPFAIL, true);
			decided = true;
		} else if (failing) {
			set_reply(out, v, (enum id_check)c,
			    a == ACT_REJECT ? POL_REJECT : POL_TEMPFAIL, false);
			decided = true;
		}
	}
	/* Shadow mode: report, never enforce (but still wait for pending
	 * answers, so the "would have" count is meaningful). */
	if (o->shadow && out->would != POL_PENDING)
		out->outcome = POL_ACCEPT;
	else
		out->outcome = out->would;
}
