/*
 * Generic/dynamic name detection (identity/generic.h): every encoding of
 * an embedded client address, the shipped data/generic-patterns file
 * against the real public suffix list, near misses that must not match,
 * and the pattern-file parser's errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "identity/generic.h"
#include "identity/load.h"
#include "identity/psl.h"

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

struct gcase {
	const char *client;
	const char *name;
	const char *why;    /* expected substring of the reason; NULL = not generic */
};

static const struct gcase cases[] = {
	/* IPv4 1.2.3.4 in every encoding. */
	{ "1.2.3.4", "1-2-3-4.isp.example.net", "(dashed)" },
	{ "1.2.3.4", "host-1.2.3.4.isp.example.net", "(dotted)" },
	{ "1.2.3.4", "001.002.003.004.isp.example.net", "(dotted, zero-padded)" },
	{ "1.2.3.4", "001-002-003-004.example.com", "(dashed, zero-padded)" },
	{ "1.2.3.4", "4-3-2-1.static.isp.example.com", "(dashed, reversed)" },
	{ "1.2.3.4", "4.3.2.1.in-addr.arpa", "(dotted, reversed)" },
	{ "1.2.3.4", "ip1-2.3-4.example.com", "(separated)" },
	{ "1.2.3.4", "ip01020304.isp.example.com", "(hex)" },
	{ "1.2.3.4", "dyn-04030201.isp.example.com", "(hex, reversed)" },
	{ "10.171.205.239", "x0aabcdef.isp.example.com", "(hex)" },
	{ "10.171.205.239", "x0AABCDEF.isp.example.com", NULL },  /* names arrive lowercased */
	{ "1.2.3.4", "16909060.isp.example.com", "(decimal)" },
	{ "1.2.3.4", "h16909060.example.com", "(decimal)" },
	{ "1.2.3.4", "001002003004.example.com", "(zero-padded digits)" },
	{ "1.2.3.4", "c004003002001.example.com", "(zero-padded digits, reversed)" },
	{ "1.2.3.4", "pool-1-2-3-4.example.com", "(dashed)" },
	{ "192.0.2.10", "c-192-0-2-10.hsd1.wa.example.net", "(dashed)" },
	/* Near misses: digit runs must be whole, all four octets present. */
	{ "1.2.3.4", "11-2-3-4.example.com", NULL },
	{ "1.2.3.4", "1-2-3-45.example.com", NULL },
	{ "1.2.3.4", "1-2-3.example.com", NULL },
	{ "1.2.3.4", "1x2x3x4.example.com", NULL },
	{ "1.2.3.4", "ab01020304.example.com", NULL },   /* 'b' is a hex digit */
	{ "1.2.3.4", "0102030405.example.com", NULL },
	{ "1.2.3.4", "169090601.example.com", NULL },
	{ "1.2.3.4", "mail.example.com", NULL },
	/* The address only in the registrable domain still counts; in the
	 * public suffix it does not. */
	{ "1.2.3.4", "mail.1-2-3-4.com", "(dashed)" },
	/* IPv6 2001:db8::1. */
	{ "2001:db8::1", "2001-db8--1.pool.example.net", "(IPv6 dashed)" },
	{ "2001:db8::1", "2001-db8-0-0-0-0-0-1.example.net", "(IPv6 dashed)" },
	{ "2001:db8::1", "2001-0db8-0000-0000-0000-0000-0000-0001.example.net",
	  "(IPv6 dashed, zero-padded)" },
	{ "2001:db8::1", "x20010db8000000000000000000000001.example.net",
	  "(IPv6 hex)" },
	{ "2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	  "8.b.d.0.1.0.0.2.ip6.arpa", "(IPv6 nibbles, reversed)" },
	{ "2001:db8::1", "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	  "0.0.0.0.0.0.0.1.v6.example.net", "(IPv6 nibbles)" },
	{ "2001:db8::1", "a2001-db8--1.example.net", NULL },
	{ "2001:db8::1", "2001-db8--10.example.net", NULL },
	{ "2001:db8::1", "2001-db8--1.example.net", "(IPv6 dashed)" },
	{ "2001:db8::1:5", "host-2001-db8--1-5.example.net", "(IPv6 dashed)" },
	/* EC2: a private-section suffix, but the ICANN view sees the
	 * address. */
	{ "1.2.3.4", "ec2-1-2-3-4.compute-1.amazonaws.com", "(dashed)" },
	/* Word patterns from data/generic-patterns. */
	{ "192.0.2.1", "dsl-12-34.isp.example.com", "token \"dsl\"" },
	{ "192.0.2.1", "adsl12.isp.example.com", "token \"adsl\"" },
	{ "192.0.2.1", "dsl7.example.com", "token \"dsl\"" },
	{ "192.0.2.1", "pppoe-77.example.co.uk", "token \"pppoe\"" },
	{ "192.0.2.1", "host7.dynamic.isp.example.com", "label \"dynamic\"" },
	{ "192.0.2.1", "a.pool.example.com", "label \"pool\"" },
	{ "192.0.2.1", "dsl-support.isp.example.com", NULL },
	{ "192.0.2.1", "dsl7.com", NULL },
	{ "192.0.2.1", "pool.example.com", "label \"pool\"" },
	/* A label pattern is a whole label, not a prefix of one. */
	{ "192.0.2.1", "dynamo.isp.example.com", NULL },
	{ "192.0.2.1", "mail.poolside.example.com", NULL },
	{ "192.0.2.1", "mail.dynamics.com", NULL },
	{ "192.0.2.1", "generaldynamics.com", NULL },
	{ "192.0.2.1", "mx1.generaldynamics.com", NULL },
	{ "192.0.2.1", "mx1.liverpool.ac.uk", NULL },
	{ "192.0.2.1", "mail-sor-f41.google.com", NULL },
	{ "192.0.2.1", "mail-db8eur05on2001.outbound.protection.outlook.com", NULL },
	{ "192.0.2.1", "a8-30.smtp-out.amazonses.com", NULL },
};

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gcase *c = &cases[i];
		struct id_addr a;
		assert_true(id_addr_parse(c->client, strlen(c->client), &a));
		char why[96] = "";
		bool g = generic_match(gp, psl, c->name, &a, why, sizeof(why));
		if (c->why == NULL && g)
			fail_msg("case %zu %s: unexpectedly generic: %s", i,
			    c->name, why);
		if (c->why != NULL && (!g || strstr(why, c->why) == NULL))
			fail_msg("case %zu %s: got %s (%s), want %s", i, c->name,
			    g ? "generic" : "not generic", why, c->why);
	}
}

static void
test_no_psl_no_patterns(void **state)
{
	(void)state;
	struct id_addr a;
	char why[96];
	assert_true(id_addr_parse("1.2.3.4", 7, &a));
	assert_true(generic_match(NULL, NULL, "1-2-3-4.isp.example", &a, why,
	    sizeof(why)));
	assert_false(generic_match(NULL, NULL, "dsl-12.isp.example", &a, why,
	    sizeof(why)));
	/* Without a PSL the last two labels are the organisation. */
	assert_int_equal(id_host_part_len(NULL, "a.b.example.com"), 3);
	assert_int_equal(id_host_part_len(NULL, "example.com"), 0);
	assert_int_equal(id_host_part_len(NULL, "com"), 0);
	assert_int_equal(id_host_part_len(psl, "a.b.example.co.uk"), 3);
	assert_int_equal(id_host_part_len(psl, "co.uk"), 0);
	/* No address family: only patterns. */
	struct id_addr z;
	memset(&z, 0, sizeof(z));
	assert_null(id_name_embeds_addr("1-2-3-4", 7, &z));
}

static void
test_suffix_exempt(void **state)
{
	(void)state;
	static const char text[] =
	    "# local rules\n"
	    "format 1\n"
	    "\n"
	    "suffix dyn.example.org.   # trailing dot allowed\n"
	    "exempt example.net\n"
	    "TOKEN Dsl\n";
	struct buf err = BUF_INIT;
	struct generic_patterns *p = generic_parse(text, sizeof(text) - 1, &err);
	assert_non_null(p);
	assert_int_equal(generic_rule_count(p), 3);
	struct id_addr a;
	char why[96];
	assert_true(id_addr_parse("1.2.3.4", 7, &a));
	assert_true(generic_match(p, psl, "a.dyn.example.org", &a, why, sizeof(why)));
	assert_non_null(strstr(why, "under generic domain dyn.example.org"));
	assert_true(generic_match(p, psl, "dyn.example.org", &a, why, sizeof(why)));
	assert_false(generic_match(p, psl, "xdyn.example.org", &a, why, sizeof(why)));
	assert_false(generic_match(p, psl, "1-2-3-4.example.net", &a, why, sizeof(why)));
	assert_false(generic_match(p, psl, "dsl-1.example.net", &a, why, sizeof(why)));
	assert_true(generic_match(p, psl, "dsl-1.example.com", &a, why, sizeof(why)));
	generic_free(&p);
	assert_null(p);
	buf_free(&err);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	static const struct { const char *text, *err; } bad[] = {
		{ "bogus x\n", "line 1: unknown kind" },
		{ "# c\n\ntoken dsl1\n", "line 3: bad token value" },
		{ "label a.b\n", "line 1: bad label value" },
		{ "label -a\n", "line 1: bad label value" },
		{ "suffix a..b\n", "line 1: bad suffix value" },
		{ "exempt a_b.com\n", "line 1: bad exempt value" },
		{ "format 2\n", "line 1: unsupported format" },
		{ "token\n", "line 1: expected \"KIND VALUE\"" },
		{ "token a b\n", "line 1: expected \"KIND VALUE\"" },
		{ "token a\0b\n", "line 1: NUL byte" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf err = BUF_INIT;
		size_t n = strlen(bad[i].text);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			n = 10;
		assert_null(generic_parse(bad[i].text, n, &err));
		if (strstr(buf_cstr(&err), bad[i].err) == NULL)
			fail_msg("case %zu: %s, want %s", i, buf_cstr(&err),
			    bad[i].err);
		buf_free(&err);
	}
	/* A long line. */
	char big[700];
	memset(big, 'a', sizeof(big));
	memcpy(big, "token ", 6);
	struct buf err = BUF_INIT;
	assert_null(generic_parse(big, sizeof(big), &err));
	assert_non_null(strstr(buf_cstr(&err), "line too long"));
	buf_reset(&err);
	assert_null(generic_load_file("/nonexistent/patterns", &err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/patterns"));
	buf_free(&err);
	/* Comments and blank lines only: a valid, empty file. */
	struct generic_patterns *p = generic_parse("# x\n\n  \n", 8, &err);
	assert_non_null(p);
	assert_int_equal(generic_rule_count(p), 0);
	generic_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_no_psl_no_patterns),
		cmocka_unit_test(test_suffix_exempt),
		cmocka_unit_test(test_parse_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
