/*
 * Public Suffix List matcher (identity/psl.h), against Debian's real list
 * (/usr/share/publicsuffix/public_suffix_list.dat, package publicsuffix)
 * and against small hand-made lists for the exact algorithm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "identity/load.h"
#include "identity/psl.h"
#include "lib/idna.h"

static struct psl *real;

static int
load_real(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	real = psl_load_file(ID_PSL_DEFAULT_PATH, &err);
	if (real == NULL)
		fail_msg("%s", buf_cstr(&err));
	buf_free(&err);
	return 0;
}

static int
free_real(void **state)
{
	(void)state;
	psl_free(&real);
	assert_null(real);
	return 0;
}

struct psl_case {
	const char *name;
	const char *suffix;   /* expected public suffix */
	const char *regdom;   /* expected registrable domain, NULL = none */
	bool        listed;
};

/* Expectations that hold for any recent list (rules stable for years). */
static const struct psl_case real_cases[] = {
	{ "com", "com", NULL, true },
	{ "example.com", "com", "example.com", true },
	{ "mail.example.com", "com", "example.com", true },
	{ "a.b.mail.example.com", "com", "example.com", true },
	{ "co.uk", "co.uk", NULL, true },
	{ "example.co.uk", "co.uk", "example.co.uk", true },
	{ "mail.example.co.uk", "co.uk", "example.co.uk", true },
	{ "mx.other.co.uk", "co.uk", "other.co.uk", true },
	/* Wildcard *.ck with exception !www.ck. */
	{ "foo.ck", "foo.ck", NULL, true },
	{ "bar.foo.ck", "foo.ck", "bar.foo.ck", true },
	{ "www.ck", "ck", "www.ck", true },
	{ "a.www.ck", "ck", "www.ck", true },
	/* *.kawasaki.jp with !city.kawasaki.jp. */
	{ "x.y.kawasaki.jp", "y.kawasaki.jp", "x.y.kawasaki.jp", true },
	{ "city.kawasaki.jp", "kawasaki.jp", "city.kawasaki.jp", true },
	{ "a.city.kawasaki.jp", "kawasaki.jp", "city.kawasaki.jp", true },
	/* Private section. */
	/* *.compute-1.amazonaws.com: each EC2 host name is a suffix. */
	{ "ec2-1-2-3-4.compute-1.amazonaws.com",
	  "ec2-1-2-3-4.compute-1.amazonaws.com", NULL, true },
	{ "m.ec2-1-2-3-4.compute-1.amazonaws.com",
	  "ec2-1-2-3-4.compute-1.amazonaws.com",
	  "m.ec2-1-2-3-4.compute-1.amazonaws.com", true },
	{ "foo.blogspot.com", "blogspot.com", "foo.blogspot.com", true },
	/* IDN rule, stored in Unicode in the file: 公司.cn = xn--55qx5d.cn. */
	{ "shop.xn--55qx5d.cn", "xn--55qx5d.cn", "shop.xn--55qx5d.cn", true },
	{ "xn--p1ai", "xn--p1ai", NULL, true },
	{ "mail.example.xn--p1ai", "xn--p1ai", "example.xn--p1ai", true },
	/* Unlisted top-level label: implicit "*" rule. */
	{ "localhost", "localhost", NULL, false },
	{ "localhost.localdomain", "localdomain", "localhost.localdomain", false },
	{ "box.lan", "lan", "box.lan", false },
	{ "in-addr.arpa", "in-addr.arpa", NULL, true },
	{ "4.3.2.1.in-addr.arpa", "in-addr.arpa", "1.in-addr.arpa", true },
};

/* The ICANN section alone: private suffixes are ordinary names. */
static const struct psl_case icann_cases[] = {
	{ "ec2-1-2-3-4.compute-1.amazonaws.com", "com", "amazonaws.com", true },
	{ "foo.blogspot.com", "com", "blogspot.com", true },
	{ "mail.example.co.uk", "co.uk", "example.co.uk", true },
	{ "www.ck", "ck", "www.ck", true },
	{ "box.lan", "lan", "box.lan", false },
};

static void
check_case(const struct psl *psl, const struct psl_case *c, unsigned opts)
{
	struct psl_match m;
	size_t n = strlen(c->name);
	char *copy = malloc(n);
	memcpy(copy, c->name, n);
	psl_lookup(psl, copy, n, opts, &m);
	assert_true(m.suffix_off <= n);
	if (strncmp(c->name + m.suffix_off, c->suffix, n - m.suffix_off) != 0 ||
	    strlen(c->suffix) != n - m.suffix_off)
		fail_msg("%s: suffix %s, want %s", c->name,
		    c->name + m.suffix_off, c->suffix);
	if (c->regdom == NULL) {
		if (m.has_regdom)
			fail_msg("%s: unexpected regdom %s", c->name,
			    c->name + m.regdom_off);
	} else {
		if (!m.has_regdom || strcmp(c->name + m.regdom_off, c->regdom) != 0)
			fail_msg("%s: regdom %s, want %s", c->name,
			    m.has_regdom ? c->name + m.regdom_off : "(none)",
			    c->regdom);
	}
	if (m.listed != c->listed)
		fail_msg("%s: listed %d, want %d", c->name, m.listed, c->listed);
	free(copy);
}

static void
test_real_list(void **state)
{
	(void)state;
	assert_true(psl_rule_count(real) > 5000);
	for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++)
		check_case(real, &real_cases[i], 0);
	for (size_t i = 0; i < sizeof(icann_cases) / sizeof(icann_cases[0]); i++)
		check_case(real, &icann_cases[i], PSL_ICANN_ONLY);
}

static void
test_algorithm(void **state)
{
	(void)state;
	static const char list[] =
	    "// comment line\n"
	    "// ===BEGIN ICANN DOMAINS===\n"
	    "com\n"
	    "  uk   trailing words are ignored\n"
	    "co.uk\r\n"
	    "*.jp\n"
	    "!city.a.jp\n"
	    "*.a.jp\n"
	    "b.jp\n"
	    "*.*.bad\n"
	    "foo.*.bad\n"
	    "!single\n"
	    "under_score.com\n"
	    "\xff\xfe.bad\n"
	    "\n"
	    "EXAMPLE.NET\n"
	    "// ===END ICANN DOMAINS===\n"
	    "// ===BEGIN PRIVATE DOMAINS===\n"
	    "*.cloud.example.net\n"
	    "priv.com\n"
	    "// ===END PRIVATE DOMAINS===\n"
	    "after.com\n";
	struct psl *p = psl_parse(list, sizeof(list) - 1);
	assert_int_equal(psl_rule_count(p), 11);
	assert_int_equal(psl_skipped(p), 5);
	static const struct psl_case cases[] = {
		{ "x.com", "com", "x.com", true },
		{ "x.co.uk", "co.uk", "x.co.uk", true },
		{ "x.uk", "uk", "x.uk", true },
		{ "jp", "jp", NULL, false },
		{ "q.jp", "q.jp", NULL, true },
		{ "r.q.jp", "q.jp", "r.q.jp", true },
		{ "b.jp", "b.jp", NULL, true },
		{ "x.b.jp", "b.jp", "x.b.jp", true },
		{ "z.a.jp", "z.a.jp", NULL, true },
		{ "y.z.a.jp", "z.a.jp", "y.z.a.jp", true },
		{ "city.a.jp", "a.jp", "city.a.jp", true },
		{ "w.city.a.jp", "a.jp", "city.a.jp", true },
		{ "example.net", "example.net", NULL, true },
		{ "m.example.net", "example.net", "m.example.net", true },
		{ "x.org", "org", "x.org", false },
		{ "single", "single", NULL, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_case(p, &cases[i], 0);
		check_case(p, &cases[i], PSL_ICANN_ONLY);
	}
	/* Sections: private rules apply only to full-list lookups; a rule
	 * after the private section's end is ICANN again. */
	static const struct psl_case priv_full[] = {
		{ "h.cloud.example.net", "h.cloud.example.net", NULL, true },
		{ "x.h.cloud.example.net", "h.cloud.example.net",
		  "x.h.cloud.example.net", true },
		{ "a.priv.com", "priv.com", "a.priv.com", true },
		{ "a.after.com", "after.com", "a.after.com", true },
	};
	static const struct psl_case priv_icann[] = {
		{ "h.cloud.example.net", "example.net", "cloud.example.net", true },
		{ "a.priv.com", "com", "priv.com", true },
		{ "a.after.com", "after.com", "a.after.com", true },
	};
	for (size_t i = 0; i < sizeof(priv_full) / sizeof(priv_full[0]); i++)
		check_case(p, &priv_full[i], 0);
	for (size_t i = 0; i < sizeof(priv_icann) / sizeof(priv_icann[0]); i++)
		check_case(p, &priv_icann[i], PSL_ICANN_ONLY);
	/* No list at all: only the implicit rule. */
	check_case(NULL, &(struct psl_case){ "a.b.c", "c", "b.c", false }, 0);
	psl_free(&p);
	/* An empty list parses to nothing. */
	p = psl_parse("", 0);
	assert_int_equal(psl_rule_count(p), 0);
	psl_free(&p);
}

static void
test_punycode(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{ "\xe4\xb8\xad\xe5\x9b\xbd", "xn--fiqs8s" },          /* 中国 */
		{ "\xd1\x80\xd1\x84", "xn--p1ai" },                    /* рф */
		{ "\xe5\x85\xac\xe5\x8f\xb8", "xn--55qx5d" },          /* 公司 */
		{ "b\xc3\xbc" "cher", "xn--bcher-kva" },               /* bücher */
		{ "m\xc3\xbcnchen", "xn--mnchen-3ya" },                /* münchen */
		{ "example", "example" },
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = idna_punycode_label(cases[i].in, strlen(cases[i].in),
		    out, sizeof(out));
		assert_int_equal(n, strlen(cases[i].out));
		assert_string_equal(out, cases[i].out);
	}
	/* Bad UTF-8: truncated, overlong, surrogate, lone continuation. */
	assert_int_equal(idna_punycode_label("\xe4\xb8", 2, out, sizeof(out)), 0);
	assert_int_equal(idna_punycode_label("\xc0\xaf", 2, out, sizeof(out)), 0);
	assert_int_equal(idna_punycode_label("\xed\xa0\x80", 3, out, sizeof(out)), 0);
	assert_int_equal(idna_punycode_label("\x80", 1, out, sizeof(out)), 0);
	/* Does not fit. */
	assert_int_equal(idna_punycode_label("\xe4\xb8\xad\xe5\x9b\xbd", 6, out, 8), 0);
}

static void
test_load_errors(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	assert_null(psl_load_file("/nonexistent/psl.dat", &err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/psl.dat"));
	buf_reset(&err);
	assert_null(psl_load_file("/dev/null", &err));
	assert_non_null(strstr(buf_cstr(&err), "no public suffix rules"));
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_list),
		cmocka_unit_test(test_algorithm),
		cmocka_unit_test(test_punycode),
		cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, load_real, free_real);
}
