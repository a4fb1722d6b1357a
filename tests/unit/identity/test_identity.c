/*
 * The identity checks end to end through identity_evaluate(), with the
 * real public suffix list and the shipped data/generic-patterns.
 *
 * Each case starts from a session where everything holds (client
 * 192.0.2.10, EHLO mail.example.com, PTR mail.example.com confirmed by
 * its A record), changes what the case is about, and states the expected
 * result of the checks it concerns as "check=result" words; a result
 * followed by '*' must be pending (an awaited answer), without '*' it must
 * not be. An optional "check:text" names a substring of that check's
 * reason. Then the staging helper (identity_lookups) and the
 * Authentication-Results formatter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "identity/identity.h"
#include "identity/load.h"

static struct psl *psl;
static struct generic_patterns *gp;

static int
setup(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	psl = psl_load_file(ID_PSL_DEFAULT_PATH, &err);
	gp = generic_load_file(GENERIC_PATTERNS_FILE, &err);
	if (psl == NULL || gp == NULL)
		fail_msg("%s", buf_cstr(&err));
	buf_free(&err);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	psl_free(&psl);
	generic_free(&gp);
	return 0;
}

static struct id_addr
A(const char *s)
{
	struct id_addr a;
	if (!id_addr_parse(s, strlen(s), &a))
		fail_msg("bad test address %s", s);
	return a;
}

/* Storage the answers point into; rebuilt by base(). */
static struct id_addr our_addr[1], helo_addrs[4], helo6_addrs[4];
static struct id_addr ptr_addrs[ID_MAX_PTR][2];
static const char *our_names[] = { "mx.ours.example" };
static const char *ptr_names[16];
static const char *mx_names[2];
static char long_name[301];

static struct id_dns_answer
st(enum id_dns_status s)
{
	return (struct id_dns_answer){ .status = s };
}

static struct id_dns_answer
addrs(struct id_addr *v, size_t n)
{
	return (struct id_dns_answer){ .status = ID_DNS_OK, .n = n, .addrs = v };
}

static struct id_dns_answer
names(const char **v, size_t n)
{
	return (struct id_dns_answer){ .status = ID_DNS_OK, .n = n, .names = v };
}

static void
base(struct id_input *in)
{
	memset(in, 0, sizeof(*in));
	our_addr[0] = A("198.51.100.1");
	in->our_addrs = our_addr;
	in->n_our_addrs = 1;
	in->our_names = our_names;
	in->n_our_names = 1;
	in->client = A("192.0.2.10");
	in->helo = "mail.example.com";
	in->is_ehlo = true;
	ptr_names[0] = "mail.example.com.";
	in->ptr = names(ptr_names, 1);
	helo_addrs[0] = A("192.0.2.10");
	in->helo_a = addrs(helo_addrs, 1);
	in->helo_aaaa = st(ID_DNS_NODATA);
	ptr_addrs[0][0] = A("192.0.2.10");
	in->ptr_addr[0] = addrs(ptr_addrs[0], 1);
}

/* ---- modifications, one per case ---- */
static void m_none(struct id_input *in) { (void)in; }
static void m_no_helo(struct id_input *in) { in->helo = NULL; }
static void m_localhost(struct id_input *in) { in->helo = "localhost"; }
static void m_localhost_lo(struct id_input *in)
{ in->helo = "localhost"; in->client = A("127.0.0.1"); }
static void m_localhost_ld(struct id_input *in) { in->helo = "localhost.localdomain"; }
static void m_sub_localhost(struct id_input *in) { in->helo = "foo.localhost"; }
static void m_lit_lo_lo(struct id_input *in)
{ in->helo = "[127.0.0.1]"; in->client = A("127.0.0.1"); }
static void m_lit_lo_remote(struct id_input *in) { in->helo = "[127.0.0.1]"; }
static void m_lit_ours(struct id_input *in) { in->helo = "[198.51.100.1]"; }
static void m_our_name(struct id_input *in) { in->helo = "MX.Ours.Example"; }
static void m_our_name_from_us(struct id_input *in)
{ in->helo = "mx.ours.example"; in->client = A("198.51.100.1"); }
static void m_bare_ip(struct id_input *in) { in->helo = "192.0.2.10"; }
static void m_lit_ok(struct id_input *in) { in->helo = "[192.0.2.10]"; }
static void m_lit_padded(struct id_input *in) { in->helo = "[192.000.002.010]"; }
static void m_lit_helo(struct id_input *in)
{ in->helo = "[192.0.2.10]"; in->is_ehlo = false; }
static void m_lit_v6(struct id_input *in)
{
	in->helo = "[IPv6:2001:DB8::1]";
	in->client = A("2001:db8::1");
}
static void m_lit_tag(struct id_input *in) { in->helo = "[x-foo:bar]"; }
static void m_lit_bad(struct id_input *in) { in->helo = "[192.0.2.300]"; }
static void m_underscore(struct id_input *in) { in->helo = "mail_1.example.com"; }
static void m_trailing_dot(struct id_input *in) { in->helo = "mail.example.com."; }
static void m_ctl(struct id_input *in) { in->helo = "mail.example.com\r\nRCPT TO:<x>"; }
static void m_single(struct id_input *in) { in->helo = "DESKTOP-AB12CD"; }
static void m_suffix(struct id_input *in) { in->helo = "co.uk"; }
static void m_unlisted(struct id_input *in) { in->helo = "box.lan"; }
static void m_numeric_tld(struct id_input *in) { in->helo = "host.123"; }
static void m_nx(struct id_input *in)
{ in->helo_a = st(ID_DNS_NXDOMAIN); in->helo_aaaa = st(ID_DNS_NXDOMAIN); }
static void m_nodata_mx_unasked(struct id_input *in)
{ in->helo_a = st(ID_DNS_NODATA); }
static void m_nodata_mx_ok(struct id_input *in)
{
	in->helo_a = st(ID_DNS_NODATA);
	mx_names[0] = "mx1.example.com.";
	in->helo_mx = names(mx_names, 1);
}
static void m_nodata_mx_null(struct id_input *in)
{
	in->helo_a = (struct id_dns_answer){ .status = ID_DNS_OK, .n = 0 };
	mx_names[0] = ".";
	in->helo_mx = names(mx_names, 1);
}
static void m_nodata_mx_nx(struct id_input *in)
{ in->helo_a = st(ID_DNS_NODATA); in->helo_mx = st(ID_DNS_NXDOMAIN); }
static void m_nodata_mx_servfail(struct id_input *in)
{ in->helo_a = st(ID_DNS_NODATA); in->helo_mx = st(ID_DNS_SERVFAIL); }
static void m_a_timeout(struct id_input *in) { in->helo_a = st(ID_DNS_TIMEOUT); }
static void m_a_servfail_aaaa_ok(struct id_input *in)
{
	in->helo_a = st(ID_DNS_SERVFAIL);
	helo6_addrs[0] = A("2001:db8::5");
	in->helo_aaaa = addrs(helo6_addrs, 1);
}
static void m_a_other(struct id_input *in)
{
	helo_addrs[0] = A("192.0.2.99");
	helo_addrs[1] = A("192.0.2.98");
	in->helo_a = addrs(helo_addrs, 2);
}
static void m_a_second(struct id_input *in)
{
	helo_addrs[0] = A("192.0.2.99");
	helo_addrs[1] = A("192.0.2.10");
	in->helo_a = addrs(helo_addrs, 2);
}
static void m_a_pending(struct id_input *in) { in->helo_a = st(ID_DNS_PENDING); }
static void m_a_bogus(struct id_input *in) { in->helo_a = st(ID_DNS_BOGUS); }
static void m_ptr_nx(struct id_input *in) { in->ptr = st(ID_DNS_NXDOMAIN); }
static void m_ptr_nodata(struct id_input *in) { in->ptr = st(ID_DNS_NODATA); }
static void m_ptr_servfail(struct id_input *in) { in->ptr = st(ID_DNS_SERVFAIL); }
static void m_ptr_timeout(struct id_input *in) { in->ptr = st(ID_DNS_TIMEOUT); }
static void m_ptr_pending(struct id_input *in) { in->ptr = st(ID_DNS_PENDING); }
static void m_ptr_unasked(struct id_input *in) { in->ptr = st(ID_DNS_UNASKED); }
static void m_fwd_nx(struct id_input *in) { in->ptr_addr[0] = st(ID_DNS_NXDOMAIN); }
static void m_fwd_timeout(struct id_input *in) { in->ptr_addr[0] = st(ID_DNS_TIMEOUT); }
static void m_fwd_pending(struct id_input *in) { in->ptr_addr[0] = st(ID_DNS_PENDING); }
static void m_fwd_lie(struct id_input *in)
{ ptr_addrs[0][0] = A("192.0.2.99"); }
static void m_ptr_hostile(struct id_input *in)
{
	memset(long_name, 'a', 300);
	long_name[300] = '\0';
	for (size_t i = 50; i < 300; i += 50)
		long_name[i] = '.';
	ptr_names[0] = "bad_name.example.com";
	ptr_names[1] = "a..b.example.com";
	ptr_names[2] = "\x01evil.example.com";
	ptr_names[3] = "192.0.2.10";
	ptr_names[4] = long_name;
	ptr_names[5] = "";
	ptr_names[6] = "mail.example.com..";
	ptr_names[7] = "x.example.com\r\nInjected: yes";
	ptr_names[8] = NULL;
	ptr_names[9] = ".";
	in->ptr = names(ptr_names, 10);
}
static void m_ptr_cap(struct id_input *in)
{
	static char buf[ID_MAX_PTR][32];
	for (int i = 0; i < ID_MAX_PTR; i++) {
		snprintf(buf[i], sizeof(buf[i]), "other%d.example.net", i);
		ptr_names[i] = buf[i];
		in->ptr_addr[i] = st(ID_DNS_NXDOMAIN);
	}
	ptr_names[ID_MAX_PTR] = "mail.example.com";
	in->ptr = names(ptr_names, ID_MAX_PTR + 1);
}
static void m_ptr_dup(struct id_input *in)
{
	ptr_names[0] = "MAIL.example.com";
	ptr_names[1] = "mail.example.com.";
	ptr_names[2] = "bad_name.example.com";
	ptr_names[3] = "mx.example.com";
	in->ptr = names(ptr_names, 4);
	in->ptr_addr[1] = st(ID_DNS_NXDOMAIN);
}
static void m_second_confirms(struct id_input *in)
{
	ptr_names[0] = "lb.example.org";
	ptr_names[1] = "mail.example.com";
	in->ptr = names(ptr_names, 2);
	in->ptr_addr[0] = st(ID_DNS_NXDOMAIN);
	ptr_addrs[1][0] = A("192.0.2.10");
	in->ptr_addr[1] = addrs(ptr_addrs[1], 1);
}
static void m_org_uk(struct id_input *in)
{
	in->helo = "mail.example.co.uk";
	ptr_names[0] = "mx.example.co.uk";
}
static void m_org_uk_exact(struct id_input *in)
{ m_org_uk(in); in->ptr_match_exact = true; }
static void m_org_other(struct id_input *in)
{
	in->helo = "example.co.uk";
	ptr_names[0] = "other.co.uk";
}
static void m_org_pending(struct id_input *in)
{ m_org_uk(in); in->ptr_addr[0] = st(ID_DNS_PENDING); }
static void m_org_unconfirmed(struct id_input *in)
{ m_org_uk(in); in->ptr_addr[0] = st(ID_DNS_NXDOMAIN); }
static void m_org_com(struct id_input *in)
{
	in->helo = "smtp.example.com";
	ptr_names[0] = "out-7.mail.example.com";
}
static void m_ptr_other_org(struct id_input *in)
{ ptr_names[0] = "mail.example.net"; }
static void m_generic_ptr(struct id_input *in)
{ ptr_names[0] = "192-0-2-10.dsl.isp.example.net"; }
static void m_generic_ehlo(struct id_input *in)
{ in->helo = "dsl-10-2-0-192.isp.example.net"; }
static void m_generic_token(struct id_input *in)
{ ptr_names[0] = "pool-77.isp.example.net"; }
static void m_generic_none(struct id_input *in)
{ in->helo = "[192.0.2.10]"; in->ptr = st(ID_DNS_NXDOMAIN); }
static void m_generic_ehlo_ptr_timeout(struct id_input *in)
{ in->helo = "dsl-10-2-0-192.isp.example.net"; in->ptr = st(ID_DNS_TIMEOUT); }
static void m_same(struct id_input *in) { in->prev_helo = "MAIL.example.com"; }
static void m_changed(struct id_input *in) { in->prev_helo = "other.example.com"; }
static void m_changed_bad(struct id_input *in) { in->prev_helo = "evil\r\nname"; }
static void m_changed_lit(struct id_input *in)
{ in->prev_helo = "[IPv6:2001:db8::1]"; }
static void m_v6(struct id_input *in)
{
	in->client = A("2001:db8::1");
	in->helo = "mail6.example.com";
	in->helo_a = st(ID_DNS_NODATA);
	helo6_addrs[0] = A("2001:db8::1");
	in->helo_aaaa = addrs(helo6_addrs, 1);
	ptr_names[0] = "mail6.example.com";
	ptr_addrs[0][0] = A("2001:db8::1");
}
static void m_v6_a_only(struct id_input *in)
{
	m_v6(in);
	helo_addrs[0] = A("192.0.2.10");
	in->helo_a = addrs(helo_addrs, 1);
	in->helo_aaaa = st(ID_DNS_NODATA);
}
static void m_v6_loopback(struct id_input *in)
{ in->client = A("::1"); in->helo = "localhost"; }
static void m_v6_lit_lo_remote(struct id_input *in)
{ in->client = A("2001:db8::1"); in->helo = "[IPv6:::1]"; }
static void m_v6_generic(struct id_input *in)
{ m_v6(in); ptr_names[0] = "2001-db8--1.pool.example.net"; }
static void m_v6_generic_hex(struct id_input *in)
{ m_v6(in); in->helo = "h20010db8000000000000000000000001.example.net"; }
static void m_ec2(struct id_input *in)
{
	in->helo = "ec2-192-0-2-10.compute-1.amazonaws.com";
	ptr_names[0] = "ec2-192-0-2-10.compute-1.amazonaws.com";
}
static void m_ec2_other(struct id_input *in)
{
	in->helo = "ec2-192-0-2-11.compute-1.amazonaws.com";
	ptr_names[0] = "ec2-192-0-2-10.compute-1.amazonaws.com";
}
static void m_mapped(struct id_input *in) { in->client = A("::ffff:192.0.2.10"); }
static void m_no_client(struct id_input *in)
{ memset(&in->client, 0, sizeof(in->client)); }

struct icase {
	const char *name;
	void      (*mod)(struct id_input *);
	const char *expect;
	const char *reason;   /* "check:substring" or NULL */
};

#define ALLPASS "syntax=pass fqdn=pass literal_match=none resolves=pass " \
    "forward_match=pass ptr=pass fcrdns=pass ptr_match=pass generic=pass " \
    "self_claim=pass consistency=none"
/* An invalid name is judged by syntax alone: the other name checks are
 * none for it, never permerror (which policy would refuse in syntax's
 * place even with helo_check_syntax = off). */
#define DOMAIN_UNEVAL "fqdn=none resolves=none " \
    "forward_match=none ptr_match=none self_claim=none " \
    "literal_match=none"
#define LITERAL_NONE "fqdn=none resolves=none forward_match=none ptr_match=none"

static const struct icase cases[] = {
	{ "all good", m_none, ALLPASS, "fcrdns:mail.example.com resolves back" },
	{ "no HELO yet", m_no_helo, "syntax=none fqdn=none literal_match=none "
	  "resolves=none forward_match=none ptr=pass fcrdns=pass ptr_match=none "
	  "generic=pass self_claim=none consistency=none", NULL },
	/* self_claim */
	{ "localhost remote", m_localhost, "syntax=pass fqdn=fail self_claim=fail",
	  "self_claim:claims localhost" },
	{ "localhost from loopback", m_localhost_lo, "self_claim=pass",
	  "self_claim:the client is this host" },
	{ "localhost.localdomain", m_localhost_ld, "fqdn=fail self_claim=fail",
	  "fqdn:not in the public suffix list" },
	{ "foo.localhost", m_sub_localhost, "self_claim=fail", NULL },
	{ "[127.0.0.1] from loopback", m_lit_lo_lo, "literal_match=pass "
	  "self_claim=pass " LITERAL_NONE, NULL },
	{ "[127.0.0.1] from remote", m_lit_lo_remote, "literal_match=fail "
	  "self_claim=fail", "self_claim:loopback" },
	{ "literal of our address", m_lit_ours, "literal_match=fail self_claim=fail",
	  "self_claim:claims our address 198.51.100.1" },
	{ "our name", m_our_name, "self_claim=fail", "self_claim:mx.ours.example" },
	{ "our name from us", m_our_name_from_us, "self_claim=pass", NULL },
	{ "v6 ::1 localhost", m_v6_loopback, "self_claim=pass", NULL },
	{ "v6 [::1] from remote", m_v6_lit_lo_remote, "self_claim=fail "
	  "literal_match=fail", NULL },
	/* syntax, fqdn, literal_match */
	{ "bare IP", m_bare_ip, "syntax=pass fqdn=fail", "fqdn:bare IP" },
	{ "literal", m_lit_ok, "syntax=pass literal_match=pass self_claim=pass "
	  LITERAL_NONE, "syntax:address literal" },
	{ "zero-padded literal", m_lit_padded, "syntax=pass literal_match=pass", NULL },
	{ "literal in HELO", m_lit_helo, "syntax=pass literal_match=pass",
	  "syntax:HELO" },
	{ "IPv6 literal", m_lit_v6, "syntax=pass literal_match=pass", NULL },
	{ "unknown literal tag", m_lit_tag, "syntax=fail literal_match=none "
	  "fqdn=none self_claim=none", "syntax:unknown tag" },
	{ "bad literal", m_lit_bad, "syntax=fail literal_match=none "
	  "self_claim=none", "literal_match:not evaluated" },
	{ "underscore", m_underscore, "syntax=fail " DOMAIN_UNEVAL,
	  "syntax:underscore" },
	{ "trailing dot", m_trailing_dot, "syntax=fail", "syntax:trailing dot" },
	{ "CRLF injection", m_ctl, "syntax=fail consistency=none",
	  "syntax:control character" },
	{ "single label", m_single, "syntax=pass fqdn=fail", "fqdn:single label" },
	{ "public suffix", m_suffix, "fqdn=fail", "fqdn:public suffix" },
	{ "unlisted TLD", m_unlisted, "fqdn=fail", "fqdn:.lan" },
	{ "numeric TLD", m_numeric_tld, "fqdn=fail", "fqdn:all-numeric" },
	/* resolves, forward_match */
	{ "NXDOMAIN", m_nx, "resolves=fail forward_match=fail", "resolves:NXDOMAIN" },
	{ "NODATA, MX not asked", m_nodata_mx_unasked, "resolves=temperror* "
	  "forward_match=fail", NULL },
	{ "MX only", m_nodata_mx_ok, "resolves=pass forward_match=fail",
	  "resolves:MX records only" },
	{ "null MX", m_nodata_mx_null, "resolves=fail", NULL },
	{ "MX NXDOMAIN", m_nodata_mx_nx, "resolves=fail", NULL },
	{ "MX SERVFAIL", m_nodata_mx_servfail, "resolves=temperror", NULL },
	{ "A timeout", m_a_timeout, "resolves=temperror forward_match=temperror",
	  "forward_match:timeout" },
	{ "A bogus", m_a_bogus, "resolves=temperror forward_match=temperror", NULL },
	{ "A SERVFAIL, AAAA ok", m_a_servfail_aaaa_ok, "resolves=pass "
	  "forward_match=temperror", NULL },
	{ "A elsewhere", m_a_other, "resolves=pass forward_match=fail", NULL },
	{ "A second record", m_a_second, "forward_match=pass", NULL },
	{ "A pending", m_a_pending, "resolves=temperror* forward_match=temperror*",
	  NULL },
	/* ptr, fcrdns */
	{ "PTR NXDOMAIN", m_ptr_nx, "ptr=fail fcrdns=permerror ptr_match=fail "
	  "generic=pass", "fcrdns:no PTR data" },
	{ "PTR NODATA", m_ptr_nodata, "ptr=fail fcrdns=permerror", NULL },
	{ "PTR SERVFAIL", m_ptr_servfail, "ptr=temperror fcrdns=temperror "
	  "ptr_match=temperror generic=temperror", "ptr:SERVFAIL" },
	{ "PTR timeout", m_ptr_timeout, "ptr=temperror fcrdns=temperror "
	  "ptr_match=temperror generic=temperror", NULL },
	{ "PTR pending", m_ptr_pending, "ptr=temperror* fcrdns=temperror* "
	  "ptr_match=temperror* generic=temperror*", NULL },
	{ "PTR unasked", m_ptr_unasked, "ptr=temperror* fcrdns=temperror*", NULL },
	{ "forward NXDOMAIN", m_fwd_nx, "ptr=pass fcrdns=fail ptr_match=fail", NULL },
	{ "forward timeout", m_fwd_timeout, "fcrdns=temperror ptr_match=temperror",
	  NULL },
	{ "forward pending", m_fwd_pending, "fcrdns=temperror* "
	  "ptr_match=temperror*", NULL },
	{ "lying PTR", m_fwd_lie, "ptr=pass fcrdns=fail ptr_match=fail",
	  "fcrdns:no PTR name resolves back" },
	{ "hostile PTR names", m_ptr_hostile, "ptr=fail fcrdns=fail ptr_match=fail",
	  "ptr:underscore" },
	{ "PTR cap", m_ptr_cap, "ptr=pass fcrdns=fail ptr_match=fail", NULL },
	{ "PTR duplicates", m_ptr_dup, "ptr=pass fcrdns=pass ptr_match=pass", NULL },
	{ "second PTR confirms", m_second_confirms, "fcrdns=pass ptr_match=pass",
	  "fcrdns:mail.example.com" },
	{ "no client address", m_no_client, "ptr=permerror fcrdns=permerror "
	  "forward_match=permerror", NULL },
	/* ptr_match */
	{ "org domain co.uk", m_org_uk, "ptr_match=pass",
	  "ptr_match:shares the organisational domain" },
	{ "org domain exact", m_org_uk_exact, "ptr_match=fail", NULL },
	{ "other org co.uk", m_org_other, "ptr_match=fail", NULL },
	{ "org pending", m_org_pending, "ptr_match=temperror*", NULL },
	{ "org unconfirmed", m_org_unconfirmed, "fcrdns=fail ptr_match=fail",
	  "ptr_match:no forward-confirmed" },
	{ "org domain .com", m_org_com, "ptr_match=pass", NULL },
	/* Private-section suffixes: an EC2 host name is an FQDN, but two
	 * EC2 hosts are not one organisation. */
	{ "EC2 name", m_ec2, "fqdn=pass ptr_match=pass generic=fail", NULL },
	{ "EC2 other host", m_ec2_other, "fqdn=pass ptr_match=fail", NULL },
	{ "PTR other org", m_ptr_other_org, "fcrdns=pass ptr_match=fail",
	  "ptr_match:does not share" },
	/* generic */
	{ "generic PTR", m_generic_ptr, "generic=fail", "generic:(dashed)" },
	{ "generic EHLO", m_generic_ehlo, "generic=fail",
	  "generic:EHLO name dsl-10-2-0-192.isp.example.net" },
	{ "generic token", m_generic_token, "generic=fail", "generic:token" },
	{ "generic nothing", m_generic_none, "generic=none", NULL },
	{ "generic EHLO, PTR timeout", m_generic_ehlo_ptr_timeout, "generic=fail",
	  NULL },
	/* consistency */
	{ "same name", m_same, "consistency=pass", NULL },
	{ "changed", m_changed, "consistency=fail",
	  "consistency:from other.example.com to mail.example.com" },
	{ "changed from invalid", m_changed_bad, "consistency=fail",
	  "consistency:from (invalid name)" },
	{ "changed from literal", m_changed_lit, "consistency=fail",
	  "consistency:[IPv6:2001:db8::1]" },
	/* IPv6 clients */
	{ "IPv6 good", m_v6, ALLPASS, NULL },
	{ "IPv6 client, EHLO has A only", m_v6_a_only, "resolves=pass "
	  "forward_match=fail", "forward_match:AAAA" },
	{ "IPv6 generic PTR", m_v6_generic, "generic=fail",
	  "generic:IPv6 dashed" },
	{ "IPv6 generic hex EHLO", m_v6_generic_hex, "generic=fail",
	  "generic:IPv6 hex" },
	{ "v4-mapped client", m_mapped, ALLPASS, NULL },
};

static void
expect(const struct icase *c, const struct id_verdict *v)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "%s", c->expect);
	char *save = NULL;
	for (char *w = strtok_r(spec, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(w, '=');
		assert_non_null(eq);
		*eq = '\0';
		enum id_check k;
		if (!id_check_from_name(w, &k))
			fail_msg("%s: bad check %s", c->name, w);
		bool pend = eq[strlen(eq + 1)] == '*';
		if (pend)
			eq[strlen(eq + 1)] = '\0';
		const char *got = id_result_name(v->c[k].r);
		if (strcmp(got, eq + 1) != 0 || v->c[k].pending != pend)
			fail_msg("%s: %s=%s%s (%s), want %s%s", c->name, w, got,
			    v->c[k].pending ? "*" : "", v->c[k].reason, eq + 1,
			    pend ? "*" : "");
	}
	if (c->reason != NULL) {
		char r[128];
		snprintf(r, sizeof(r), "%s", c->reason);
		char *colon = strchr(r, ':');
		*colon = '\0';
		enum id_check k;
		assert_true(id_check_from_name(r, &k));
		if (strstr(v->c[k].reason, colon + 1) == NULL)
			fail_msg("%s: %s reason \"%s\" lacks \"%s\"", c->name, r,
			    v->c[k].reason, colon + 1);
	}
	/* Every reason is printable ASCII, every result in range. */
	for (int k = 0; k < IDC_COUNT; k++) {
		assert_true(v->c[k].r <= ID_PERMERROR);
		assert_true(v->c[k].reason[0] != '\0');
		for (const char *p = v->c[k].reason; *p; p++)
			assert_true(*p >= 0x20 && *p <= 0x7e);
		if (v->c[k].pending)
			assert_int_equal(v->c[k].r, ID_TEMPERROR);
	}
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct id_input in;
		struct id_verdict v;
		base(&in);
		cases[i].mod(&in);
		identity_evaluate(&in, psl, gp, &v);
		expect(&cases[i], &v);
	}
}

static void
test_verdict_details(void **state)
{
	(void)state;
	struct id_input in;
	struct id_verdict v;
	base(&in);
	m_ptr_dup(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_int_equal(v.n_ptr, 2);
	assert_string_equal(v.ptr_names[0], "mail.example.com");
	assert_string_equal(v.ptr_names[1], "mx.example.com");
	assert_true(v.ptr_confirmed[0]);
	assert_false(v.ptr_confirmed[1]);
	assert_string_equal(v.helo, "mail.example.com");
	assert_int_equal(v.iprev, ID_PASS);

	base(&in);
	m_ptr_cap(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_int_equal(v.n_ptr, ID_MAX_PTR);

	base(&in);
	m_ptr_hostile(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_int_equal(v.n_ptr, 0);

	base(&in);
	m_lit_v6(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_string_equal(v.helo, "[IPv6:2001:db8::1]");
	base(&in);
	m_lit_padded(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_string_equal(v.helo, "[192.0.2.10]");
	base(&in);
	m_ctl(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_string_equal(v.helo, "");

	/* iprev follows RFC 8601 §2.7.3. */
	static const struct { void (*mod)(struct id_input *); enum id_result r;
	    bool pending; } ip[] = {
		{ m_none, ID_PASS, false },
		{ m_ptr_nx, ID_PERMERROR, false },
		{ m_ptr_servfail, ID_TEMPERROR, false },
		{ m_ptr_pending, ID_TEMPERROR, true },
		{ m_ptr_unasked, ID_NONE, false },
		{ m_fwd_lie, ID_FAIL, false },
		{ m_fwd_nx, ID_FAIL, false },
		{ m_fwd_timeout, ID_TEMPERROR, false },
	};
	for (size_t i = 0; i < sizeof(ip) / sizeof(ip[0]); i++) {
		base(&in);
		ip[i].mod(&in);
		identity_evaluate(&in, psl, gp, &v);
		assert_int_equal(v.iprev, ip[i].r);
		assert_int_equal(v.iprev_pending, ip[i].pending);
	}

	/* Without data files the module still works. */
	base(&in);
	identity_evaluate(&in, NULL, NULL, &v);
	assert_int_equal(v.c[IDC_FQDN].r, ID_PASS);
	assert_int_equal(v.c[IDC_PTR_MATCH].r, ID_PASS);
	base(&in);
	m_org_uk(&in);
	identity_evaluate(&in, NULL, NULL, &v);
	/* Without the list "co.uk" is taken as the organisation: a known,
	 * documented weakness of running without it. */
	assert_int_equal(v.c[IDC_PTR_MATCH].r, ID_PASS);
	base(&in);
	m_generic_token(&in);
	identity_evaluate(&in, psl, NULL, &v);
	assert_int_equal(v.c[IDC_GENERIC].r, ID_PASS);
}

static void
test_names(void **state)
{
	(void)state;
	static const char *const n[IDC_COUNT] = { "syntax", "fqdn",
	    "literal_match", "resolves", "forward_match", "ptr", "fcrdns",
	    "ptr_match", "generic", "self_claim", "consistency" };
	for (int c = 0; c < IDC_COUNT; c++) {
		enum id_check k;
		assert_string_equal(id_check_name((enum id_check)c), n[c]);
		assert_true(id_check_from_name(n[c], &k));
		assert_int_equal(k, c);
	}
	enum id_check k;
	assert_false(id_check_from_name("iprev", &k));
	assert_null(id_check_name(IDC_COUNT));
	assert_string_equal(id_result_name(ID_NONE), "none");
	assert_string_equal(id_result_name(ID_PASS), "pass");
	assert_string_equal(id_result_name(ID_FAIL), "fail");
	assert_string_equal(id_result_name(ID_TEMPERROR), "temperror");
	assert_string_equal(id_result_name(ID_PERMERROR), "permerror");
}

static bool
has_lookup(const struct id_lookup *l, size_t n, enum id_lookup_type t,
           enum id_lookup_slot s, size_t index, const char *qname)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].type == t && l[i].slot == s && l[i].index == index &&
		    strcmp(l[i].qname, qname) == 0)
			return true;
	return false;
}

static void
test_lookups(void **state)
{
	(void)state;
	struct id_input in;
	struct id_lookup l[ID_MAX_LOOKUPS];
	size_t n;

	/* At connect: only the PTR. */
	memset(&in, 0, sizeof(in));
	in.client = A("192.0.2.10");
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1);
	assert_true(has_lookup(l, n, ID_LOOKUP_PTR, ID_SLOT_PTR, 0,
	    "10.2.0.192.in-addr.arpa"));
	/* Not for checks that need no PTR. */
	assert_int_equal(identity_lookups(&in, IDC_BIT(IDC_SYNTAX) |
	    IDC_BIT(IDC_RESOLVES), l, ID_MAX_LOOKUPS), 0);
	assert_int_equal(identity_lookups(&in, IDC_BIT(IDC_GENERIC), l,
	    ID_MAX_LOOKUPS), 1);
	/* Sent: nothing more until an answer. */
	in.ptr.status = ID_DNS_PENDING;
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS), 0);

	/* EHLO arrives: A and AAAA. */
	in.helo = "Mail.Example.com";
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 2);
	assert_true(has_lookup(l, n, ID_LOOKUP_A, ID_SLOT_HELO_A, 0,
	    "mail.example.com"));
	assert_true(has_lookup(l, n, ID_LOOKUP_AAAA, ID_SLOT_HELO_AAAA, 0,
	    "mail.example.com"));
	/* forward_match alone for an IPv4 client needs only A. */
	n = identity_lookups(&in, IDC_BIT(IDC_FORWARD_MATCH), l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].type, ID_LOOKUP_A);
	/* max is honoured. */
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, 1), 1);

	/* PTR answer: one forward lookup per valid, distinct name. */
	ptr_names[0] = "MX.example.com.";
	ptr_names[1] = "bad_name.example.com";
	ptr_names[2] = "mx.example.com";
	ptr_names[3] = "mx2.example.com";
	in.ptr = names(ptr_names, 4);
	in.helo_a.status = ID_DNS_PENDING;
	in.helo_aaaa.status = ID_DNS_PENDING;
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 2);
	assert_true(has_lookup(l, n, ID_LOOKUP_A, ID_SLOT_PTR_ADDR, 0,
	    "mx.example.com"));
	assert_true(has_lookup(l, n, ID_LOOKUP_A, ID_SLOT_PTR_ADDR, 1,
	    "mx2.example.com"));
	assert_int_equal(identity_lookups(&in, IDC_BIT(IDC_PTR), l,
	    ID_MAX_LOOKUPS), 0);

	/* MX only after A and AAAA are both NODATA. */
	in.ptr_addr[0].status = ID_DNS_PENDING;
	in.ptr_addr[1].status = ID_DNS_PENDING;
	in.helo_a = st(ID_DNS_NODATA);
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS), 0);
	in.helo_aaaa = st(ID_DNS_NODATA);
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1);
	assert_true(has_lookup(l, n, ID_LOOKUP_MX, ID_SLOT_HELO_MX, 0,
	    "mail.example.com"));
	in.helo_a = st(ID_DNS_NXDOMAIN);
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS), 0);

	/* No lookups for an address literal or an invalid name. */
	memset(&in, 0, sizeof(in));
	in.client = A("192.0.2.10");
	in.ptr.status = ID_DNS_PENDING;
	in.helo = "[192.0.2.10]";
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS), 0);
	in.helo = "bad_name\r\n";
	assert_int_equal(identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS), 0);

	/* IPv6 client: ip6.arpa PTR and AAAA forward lookups. */
	memset(&in, 0, sizeof(in));
	in.client = A("2001:db8::1");
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].qname, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	ptr_names[0] = "mail6.example.com";
	in.ptr = names(ptr_names, 1);
	n = identity_lookups(&in, IDC_BIT(IDC_FCRDNS), l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].type, ID_LOOKUP_AAAA);

	/* The full set fits in ID_MAX_LOOKUPS. */
	memset(&in, 0, sizeof(in));
	in.client = A("192.0.2.10");
	static char many[ID_MAX_PTR + 5][24];
	static const char *mp[ID_MAX_PTR + 5];
	for (int i = 0; i < ID_MAX_PTR + 5; i++) {
		snprintf(many[i], sizeof(many[i]), "h%d.example.com", i);
		mp[i] = many[i];
	}
	in.ptr = names(mp, ID_MAX_PTR + 5);
	in.helo = "mail.example.com";
	in.helo_a = st(ID_DNS_NODATA);
	in.helo_aaaa = st(ID_DNS_NODATA);
	n = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	assert_int_equal(n, 1 + ID_MAX_PTR);
}

static void
check_header_shape(const char *h, const char *eol)
{
	/* Lines of at most 78 characters, continuations start with a tab,
	 * parentheses balance, no stray line ends. */
	size_t el = strlen(eol);
	int depth = 0;
	const char *line = h;
	for (const char *p = h;; p++) {
		if (*p == '\0' || strncmp(p, eol, el) == 0) {
			assert_true((size_t)(p - line) <= 78);
			if (*p == '\0')
				break;
			p += el;
			assert_int_equal(*p, '\t');
			line = p;
		}
		assert_true(*p != '\r' && *p != '\n');
		if (*p == '(')
			depth++;
		if (*p == ')')
			depth--;
		assert_true(depth >= 0);
	}
	assert_int_equal(depth, 0);
}

static void
test_auth_results(void **state)
{
	(void)state;
	struct id_input in;
	struct id_verdict v;
	struct buf b = BUF_INIT;

	base(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_true(identity_auth_results(&b, "mx.ours.example", &in, &v, "\r\n"));
	const char *h = buf_cstr(&b);
	assert_true(strncmp(h, "Authentication-Results: mx.ours.example;\r\n"
	    "\tiprev=pass policy.iprev=192.0.2.10\r\n\t(ehlo=mail.example.com "
	    "rdns=mail.example.com", strlen("Authentication-Results: "
	    "mx.ours.example;\r\n\tiprev=pass policy.iprev=192.0.2.10\r\n\t("
	    "ehlo=mail.example.com rdns=mail.example.com")) == 0);
	for (int c = 0; c < IDC_COUNT; c++) {
		char item[64];
		snprintf(item, sizeof(item), "%s=%s", id_check_name((enum id_check)c),
		    id_result_name(v.c[c].r));
		assert_non_null(strstr(h, item));
	}
	assert_int_equal(h[strlen(h) - 1], ')');
	check_header_shape(h, "\r\n");

	/* IPv6: the pvalue is quoted. */
	buf_reset(&b);
	base(&in);
	m_v6(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_true(identity_auth_results(&b, "mx.ours.example", &in, &v, "\n"));
	assert_non_null(strstr(buf_cstr(&b), "iprev=pass policy.iprev=\"2001:db8::1\""));
	check_header_shape(buf_cstr(&b), "\n");

	/* No PTR data: permerror. */
	buf_reset(&b);
	base(&in);
	m_ptr_nx(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_true(identity_auth_results(&b, "mx.ours.example", &in, &v, "\r\n"));
	assert_non_null(strstr(buf_cstr(&b), "iprev=permerror policy.iprev=192.0.2.10"));
	assert_null(strstr(buf_cstr(&b), " rdns="));
	assert_non_null(strstr(buf_cstr(&b), "(ehlo=mail.example.com syntax=pass"));

	/* PTR never asked: the RFC 8601 "none" form. */
	buf_reset(&b);
	base(&in);
	m_ptr_unasked(&in);
	in.helo = "bad\r\nX-Evil: 1";
	identity_evaluate(&in, psl, gp, &v);
	assert_true(identity_auth_results(&b, "mx.ours.example", &in, &v, "\r\n"));
	assert_true(strncmp(buf_cstr(&b), "Authentication-Results: mx.ours.example;"
	    "\r\n\tnone\r\n\t(syntax=fail", 62) == 0);
	assert_null(strstr(buf_cstr(&b), "Evil"));
	check_header_shape(buf_cstr(&b), "\r\n");

	/* A pending iprev is reported as temperror. */
	buf_reset(&b);
	base(&in);
	m_fwd_pending(&in);
	identity_evaluate(&in, psl, gp, &v);
	assert_true(identity_auth_results(&b, "mx.ours.example", &in, &v, "\r\n"));
	assert_non_null(strstr(buf_cstr(&b), "iprev=temperror"));

	/* A bad authserv-id is refused and nothing is written. */
	buf_reset(&b);
	assert_false(identity_auth_results(&b, "mx ours", &in, &v, "\r\n"));
	assert_false(identity_auth_results(&b, "mx.ours\r\nX: y", &in, &v, "\r\n"));
	assert_false(identity_auth_results(&b, "", &in, &v, "\r\n"));
	assert_false(identity_auth_results(&b, NULL, &in, &v, "\r\n"));
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_verdict_details),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_auth_results),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
