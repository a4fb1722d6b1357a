/*
 * Path parser tests (RFC 5321 §4.1.2, §4.1.3, §4.5.3.1; RFC 6531).
 * path_parse takes a complete argument, so "one byte at a time" here means:
 * every case is also parsed from each of its prefixes, copied to a buffer
 * of exactly that size (ASan catches any read past it), and a prefix that
 * stops before the '>' must never parse. Every success must survive a
 * path_format -> path_parse round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "proto/path.h"

#define NUL_OK   PATH_ALLOW_NULL
#define PM_OK    PATH_ALLOW_POSTMASTER
#define U8       PATH_ALLOW_UTF8

struct path_case {
	const char   *in;
	unsigned      flags;
	enum path_err err;
	const char   *local;     /* expected on PATH_OK */
	const char   *domain;
	size_t        end;       /* 0: strlen(in) */
	unsigned      attrs;     /* A_* below */
};

#define A_QUOTED  1u
#define A_LITERAL 2u
#define A_UTF8    4u
#define A_NULL    8u

static const struct path_case cases[] = {
	/* Plain mailboxes. */
	{ "<a@b.c>", 0, PATH_OK, "a", "b.c", 0, 0 },
	{ "<A.B-c+d_e@Example.COM>", 0, PATH_OK, "A.B-c+d_e", "Example.COM", 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x>", 0, PATH_OK, "!#$%&'*+-/=?^_`{|}~", "x", 0, 0 },
	{ "<a@b> SIZE=10", 0, PATH_OK, "a", "b", 5, 0 },
	{ "<a@0-9.x1>", 0, PATH_OK, "a", "0-9.x1", 0, 0 },
	{ "<a@b--c.d>", 0, PATH_OK, "a", "b--c.d", 0, 0 },
	/* Quoted local parts, quoted-pairs resolved. */
	{ "<\"a b\"@x.y>", 0, PATH_OK, "a b", "x.y", 0, A_QUOTED },
	{ "<\"a\\\"b\\\\c\"@x>", 0, PATH_OK, "a\"b\\c", "x", 0, A_QUOTED },
	{ "<\"\\a\"@x>", 0, PATH_OK, "a", "x", 0, A_QUOTED },
	{ "<\"\"@x>", 0, PATH_OK, "", "x", 0, A_QUOTED },
	{ "<\"a@b\"@x>", 0, PATH_OK, "a@b", "x", 0, A_QUOTED },
	{ "<\"a>\"@x> X", 0, PATH_OK, "a>", "x", 8, A_QUOTED },
	/* Source routes are accepted and ignored. */
	{ "<@r1.example:u@d.example>", 0, PATH_OK, "u", "d.example", 0, 0 },
	{ "<@r1.example,@r2.example:u@d.example>", 0, PATH_OK, "u", "d.example", 0, 0 },
	/* Address literals. */
	{ "<u@[1.2.3.4]>", 0, PATH_OK, "u", "[1.2.3.4]", 0, A_LITERAL },
	{ "<u@[255.0.00.001]>", 0, PATH_OK, "u", "[255.0.00.001]", 0, A_LITERAL },
	{ "<u@[IPv6:::1]>", 0, PATH_OK, "u", "[IPv6:::1]", 0, A_LITERAL },
	{ "<u@[IPv6:::]>", 0, PATH_OK, "u", "[IPv6:::]", 0, A_LITERAL },
	{ "<u@[IPv6:1:2:3:4:5:6:1.2.3.4]>", 0, PATH_OK, "u", "[IPv6:1:2:3:4:5:6:1.2.3.4]", 0, A_LITERAL },
	{ "<u@[ipv6:2001:DB8::ffff:1.2.3.4]>", 0, PATH_OK, "u", "[ipv6:2001:DB8::ffff:1.2.3.4]", 0, A_LITERAL },
	{ "<u@[IPv6:::1.2.3.4]>", 0, PATH_OK, "u", "[IPv6:::1.2.3.4]", 0, A_LITERAL },
	{ "<u@[IPv6:1:2:3:4::1.2.3.4]>", 0, PATH_OK, "u", "[IPv6:1:2:3:4::1.2.3.4]", 0, A_LITERAL },
	{ "<u@[IPv6:1:2:3:4:5:6:7:8]>", 0, PATH_OK, "u", "[IPv6:1:2:3:4:5:6:7:8]", 0, A_LITERAL },
	{ "<u@[IPv6:fe80::]>", 0, PATH_OK, "u", "[IPv6:fe80::]", 0, A_LITERAL },
	{ "<u@[IPv6:1:2:3::4:5:6]>", 0, PATH_OK, "u", "[IPv6:1:2:3::4:5:6]", 0, A_LITERAL },
	/* Null path and postmaster. */
	{ "<>", NUL_OK, PATH_OK, "", "", 0, A_NULL },
	{ "<> SIZE=1", NUL_OK, PATH_OK, "", "", 2, A_NULL },
	{ "<>", 0, PATH_ERR_NULL, NULL, NULL, 0, 0 },
	{ "<>", PM_OK | U8, PATH_ERR_NULL, NULL, NULL, 0, 0 },
	{ "<postmaster>", PM_OK, PATH_OK, "postmaster", "", 0, 0 },
	{ "<PostMaster>", PM_OK, PATH_OK, "postmaster", "", 0, 0 },
	{ "<postmaster>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<postmaster>", NUL_OK, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<Postmaster@Example.org>", 0, PATH_OK, "Postmaster", "Example.org", 0, 0 },
	{ "<\"postmaster\">", PM_OK, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a:postmaster>", PM_OK, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<postmasters>", PM_OK, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* UTF-8 (RFC 6531). */
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", U8, PATH_OK,
	  "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", 0, A_UTF8 },
	{ "<\"\xc3\xbc x\"@x>", U8, PATH_OK, "\xc3\xbc x", "x", 0, A_QUOTED | A_UTF8 },
	{ "<j\xc3\xb6rg@b\xc3\xbc-cher.de>", U8, PATH_OK, "j\xc3\xb6rg", "b\xc3\xbc-cher.de", 0, A_UTF8 },
	{ "<\xf0\x9f\x98\x80@x>", U8, PATH_OK, "\xf0\x9f\x98\x80", "x", 0, A_UTF8 },
	{ "<@r\xc3\xbc.x:a@b>", U8, PATH_OK, "a", "b", 0, 0 },
	{ "<j\xc3\xb6rg@x>", 0, PATH_ERR_UTF8, NULL, NULL, 0, 0 },
	{ "<a@b\xc3\xbc.de>", 0, PATH_ERR_UTF8, NULL, NULL, 0, 0 },
	{ "<\"\xc3\xbc\"@x>", 0, PATH_ERR_UTF8, NULL, NULL, 0, 0 },
	{ "<\xc0\xaf@x>", 0, PATH_ERR_UTF8, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.\xc3\xbc]>", 0, PATH_ERR_UTF8, NULL, NULL, 0, 0 },
	{ "<\xc3@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a\xc3>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\xc0\xaf@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },          /* overlong */
	{ "<\xe0\x80\xaf@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },      /* overlong */
	{ "<\xed\xa0\x80@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },      /* surrogate */
	{ "<\xf4\x90\x80\x80@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },  /* > U+10FFFF */
	{ "<\xff@x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@\x80x>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.\xc3\xbc]>", U8, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Syntax errors. */
	{ "", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "a@b", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ " <a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b >", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "< a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@.b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b..c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@-b.c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b-.c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b_c.d>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a..b@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<.a@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a.@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a b@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a(b)@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\"b@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\".b@c>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\\\x01\"@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\x7f\"@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\tb\"@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\\\">", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a\x01@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<<a@b>>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a,b:c@d>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@:a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a,@:a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a,:a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@a:>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<@[1.2.3.4]:a@b>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Bad address literals. */
	{ "<a@[1.2.3.256]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.4.5]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1234.1.1.1]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[0001.1.1.1]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.4>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.4]x>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@x[1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:6:7]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1::2::3]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:12345::]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:6:7::]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3::4:5:6:7]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5::1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:2:3:4:5:6:7:1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:::1.2.3]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1.2.3.4::]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6::1]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1:::2]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:g::]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6: ::1]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv4:1.2.3.4]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[x-tag:foo]>", 0, PATH_ERR_SYNTAX, NULL, NULL, 0, 0 },
};

static void
check_same(const struct smtp_path *a, const struct smtp_path *b)
{
	assert_int_equal(a->null, b->null);
	assert_string_equal(a->local, b->local);
	assert_string_equal(a->domain, b->domain);
	assert_int_equal(a->literal, b->literal);
	assert_int_equal(a->utf8, b->utf8);
}

/* Formats p and parses "<" format ">" again with the same flags. */
static void
check_round_trip(const struct smtp_path *p, unsigned flags)
{
	char f[600], again[610];
	struct smtp_path q;
	size_t end;
	int len = path_format(p, f, sizeof f);

	assert_true(len >= 0);
	assert_int_equal((size_t)len, strlen(f));
	snprintf(again, sizeof again, "<%s>", f);
	assert_int_equal(path_parse(again, strlen(again), flags, &q, &end), PATH_OK);
	assert_int_equal(end, strlen(again));
	check_same(p, &q);
}

/* Parses exactly s[0..n) from a heap copy of that size. */
static enum path_err
parse_exact(const char *s, size_t n, unsigned flags, struct smtp_path *out, size_t *end)
{
	char *copy = malloc(n ? n : 1);
	enum path_err e;

	assert_non_null(copy);
	memcpy(copy, s, n);
	e = path_parse(copy, n, flags, out, end);
	free(copy);
	return e;
}

static void
run_case(const char *in, size_t n, unsigned flags, enum path_err err,
         const char *local, const char *domain, size_t want_end, unsigned attrs)
{
	struct smtp_path p;
	size_t end = 12345;
	enum path_err e;

	memset(&p, 0x5a, sizeof p);
	e = parse_exact(in, n, flags, &p, &end);
	if (e != err)
		fail_msg("\"%s\" flags %u: got %d, want %d", in, flags, e, err);
	if (err == PATH_OK) {
		assert_int_equal(end, want_end ? want_end : n);
		assert_string_equal(p.local, local);
		assert_string_equal(p.domain, domain);
		assert_int_equal(p.quoted, (attrs & A_QUOTED) != 0);
		assert_int_equal(p.literal, (attrs & A_LITERAL) != 0);
		assert_int_equal(p.utf8, (attrs & A_UTF8) != 0);
		assert_int_equal(p.null, (attrs & A_NULL) != 0);
		check_round_trip(&p, flags);
	} else
		assert_int_equal(end, 12345);      /* nothing written on error */

	/* Every prefix: no read past it, and none that lacks the '>' parses. */
	for (size_t k = 0; k < n; k++) {
		e = parse_exact(in, k, flags, &p, &end);
		if (err == PATH_OK && k < (want_end ? want_end : n))
			assert_int_not_equal(e, PATH_OK);
		if (e == PATH_OK)
			assert_true(end <= k);
	}
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct path_case *c = &cases[i];

		run_case(c->in, strlen(c->in), c->flags, c->err, c->local, c->domain,
		    c->end, c->attrs);
	}
}

/* "<" + local + "@" + domain + ">" where local/domain are runs of letters. */
static char *
make_path(size_t local_len, size_t domain_len, size_t *n)
{
	char *s = malloc(local_len + domain_len + 4);
	size_t o = 0;

	assert_non_null(s);
	s[o++] = '<';
	memset(s + o, 'l', local_len);
	o += local_len;
	s[o++] = '@';
	/* Labels of 50 letters separated by dots. */
	for (size_t i = 0; i < domain_len; i++)
		s[o + i] = (i % 51 == 50 && i + 1 < domain_len) ? '.' : 'd';
	o += domain_len;
	s[o++] = '>';
	s[o] = '\0';
	*n = o;
	return s;
}

static void
check_lengths(size_t local_len, size_t domain_len, enum path_err err)
{
	size_t n;
	char *s = make_path(local_len, domain_len, &n);
	struct smtp_path p;
	size_t end;

	if (path_parse(s, n, 0, &p, &end) != err)
		fail_msg("local %zu domain %zu: got %d want %d", local_len, domain_len,
		    path_parse(s, n, 0, &p, &end), err);
	if (err == PATH_OK) {
		assert_int_equal(strlen(p.local), local_len);
		assert_int_equal(strlen(p.domain), domain_len);
		check_round_trip(&p, 0);
	}
	free(s);
}

static void
test_lengths(void **state)
{
	char buf[400];
	struct smtp_path p;
	size_t end;

	(void)state;
	check_lengths(64, 10, PATH_OK);
	check_lengths(65, 10, PATH_ERR_LOCAL_TOO_LONG);
	check_lengths(65, 300, PATH_ERR_LOCAL_TOO_LONG);     /* local reported first */
	/* The path is 256 octets with its brackets: 1 + 1 + 1 + 253 + 1 = 257. */
	check_lengths(1, 252, PATH_OK);
	check_lengths(1, 253, PATH_ERR_PATH_TOO_LONG);
	check_lengths(64, 189, PATH_OK);
	check_lengths(64, 190, PATH_ERR_PATH_TOO_LONG);
	check_lengths(1, 255, PATH_ERR_PATH_TOO_LONG);
	check_lengths(1, 256, PATH_ERR_DOMAIN_TOO_LONG);
	check_lengths(1, 1000, PATH_ERR_DOMAIN_TOO_LONG);

	/* A quoted local part counts its quotes: 62 letters + 2 quotes = 64. */
	memset(buf, 0, sizeof buf);
	buf[0] = '<';
	buf[1] = '"';
	memset(buf + 2, 'q', 62);
	memcpy(buf + 64, "\"@x>", 5);
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_OK);
	assert_int_equal(strlen(p.local), 62);
	assert_true(p.quoted);
	buf[1 + 63] = 'q';
	memcpy(buf + 65, "\"@x>", 5);
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_ERR_LOCAL_TOO_LONG);

	/* A source route counts toward the path length. */
	snprintf(buf, sizeof buf, "<@%0200d:a@b.c>", 0);
	memset(buf + 2, 'r', 200);
	for (size_t i = 52; i < 200; i += 51)
		buf[i] = '.';
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_OK);
	snprintf(buf, sizeof buf, "<@%0250d:a@b.c>", 0);
	memset(buf + 2, 'r', 250);
	for (size_t i = 52; i < 250; i += 51)
		buf[i] = '.';
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_ERR_PATH_TOO_LONG);

	/* Labels: 63 octets fit, 64 do not (RFC 1035). */
	memset(buf, 0, sizeof buf);
	memcpy(buf, "<a@", 3);
	memset(buf + 3, 'x', 63);
	memcpy(buf + 66, ".y>", 4);
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_OK);
	memset(buf + 3, 'x', 64);
	memcpy(buf + 67, ".y>", 4);
	assert_int_equal(path_parse(buf, strlen(buf), 0, &p, &end), PATH_ERR_SYNTAX);
}

static void
test_format(void **state)
{
	struct smtp_path p;
	char out[64];
	size_t end;

	(void)state;
	assert_int_equal(path_parse("<\"a b\"@x.y>", 11, 0, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, sizeof out), 9);
	assert_string_equal(out, "\"a b\"@x.y");

	assert_int_equal(path_parse("<\"a\\\"b\\\\c\"@x>", 14, 0, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, sizeof out), 11);
	assert_string_equal(out, "\"a\\\"b\\\\c\"@x");

	/* Quoting that was not needed is dropped. */
	assert_int_equal(path_parse("<\"abc.d\"@x>", 11, 0, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, sizeof out), 7);
	assert_string_equal(out, "abc.d@x");
	assert_int_equal(path_parse("<\"a..b\"@x>", 10, 0, &p, &end), PATH_OK);
	path_format(&p, out, sizeof out);
	assert_string_equal(out, "\"a..b\"@x");
	assert_int_equal(path_parse("<\"\"@x>", 6, 0, &p, &end), PATH_OK);
	path_format(&p, out, sizeof out);
	assert_string_equal(out, "\"\"@x");

	/* The source route is gone. */
	assert_int_equal(path_parse("<@r.s:u@d>", 10, 0, &p, &end), PATH_OK);
	path_format(&p, out, sizeof out);
	assert_string_equal(out, "u@d");

	assert_int_equal(path_parse("<>", 2, NUL_OK, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, sizeof out), 0);
	assert_string_equal(out, "");

	assert_int_equal(path_parse("<postmaster>", 12, PM_OK, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, sizeof out), 10);
	assert_string_equal(out, "postmaster");

	/* Exactly fitting, one short. */
	assert_int_equal(path_parse("<ab@cd>", 7, 0, &p, &end), PATH_OK);
	assert_int_equal(path_format(&p, out, 6), 5);
	assert_string_equal(out, "ab@cd");
	assert_int_equal(path_format(&p, out, 5), -1);
	assert_int_equal(path_format(&p, out, 0), -1);
}

static void
test_domain_valid(void **state)
{
	char d[300];

	(void)state;
	assert_true(smtp_domain_valid("a", 1, false));
	assert_true(smtp_domain_valid("mx.example.org", 14, false));
	assert_true(smtp_domain_valid("1-2.3x", 6, false));
	assert_true(smtp_domain_valid("1.2.3.4", 7, false));
	assert_false(smtp_domain_valid("", 0, false));
	assert_false(smtp_domain_valid(".", 1, false));
	assert_false(smtp_domain_valid("a.", 2, false));
	assert_false(smtp_domain_valid(".a", 2, false));
	assert_false(smtp_domain_valid("a..b", 4, false));
	assert_false(smtp_domain_valid("-a", 2, false));
	assert_false(smtp_domain_valid("a-", 2, false));
	assert_false(smtp_domain_valid("a_b", 3, false));
	assert_false(smtp_domain_valid("a b", 3, false));
	assert_false(smtp_domain_valid("a\0b", 3, false));
	assert_false(smtp_domain_valid("[1.2.3.4]", 9, false));
	assert_true(smtp_domain_valid("b\xc3\xbc" "cher.de", 10, true));
	assert_false(smtp_domain_valid("b\xc3\xbc" "cher.de", 10, false));
	assert_false(smtp_domain_valid("b\xc3" "cher.de", 9, true));

	/* 255 octets fit, 256 do not. */
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (i % 50 == 49) ? '.' : 'd';
	assert_true(smtp_domain_valid(d, 255, false));
	assert_false(smtp_domain_valid(d, 256, false));
	/* Labels of 63 and 64 octets. */
	memset(d, 'x', 64);
	assert_true(smtp_domain_valid(d, 63, false));
	assert_false(smtp_domain_valid(d, 64, false));
	/* A U-label of 59 code points may fit an A-label, 60 cannot. */
	for (size_t i = 0; i < 60; i++)
		memcpy(d + 2 * i, "\xc3\xbc", 2);
	assert_true(smtp_domain_valid(d, 118, true));
	assert_false(smtp_domain_valid(d, 120, true));
}

static void
test_literal_and_utf8(void **state)
{
	(void)state;
	assert_true(smtp_address_literal_valid("[127.0.0.1]", 11));
	assert_true(smtp_address_literal_valid("[IPv6:::1]", 10));
	assert_true(smtp_address_literal_valid("[IPV6:0:0:0:0:0:0:0:1]", 22));
	assert_false(smtp_address_literal_valid("127.0.0.1", 9));
	assert_false(smtp_address_literal_valid("[127.0.0.1", 10));
	assert_false(smtp_address_literal_valid("[", 1));
	assert_false(smtp_address_literal_valid("[]", 2));
	assert_false(smtp_address_literal_valid("[IPv6:::1", 9));
	assert_false(smtp_address_literal_valid("[tag:x]", 7));
	assert_false(smtp_address_literal_valid("[1.2.3.4] ", 10));

	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid("abc", 3));
	assert_true(utf8_valid("\xc2\x80\xdf\xbf", 4));
	assert_true(utf8_valid("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7));
	assert_true(utf8_valid("\xed\x9f\xbf", 3));            /* U+D7FF */
	assert_false(utf8_valid("\xc1\xbf", 2));
	assert_false(utf8_valid("\xc2", 1));
	assert_false(utf8_valid("\xc2\xc2", 2));
	assert_false(utf8_valid("\xe0\x9f\xbf", 3));
	assert_false(utf8_valid("\xed\xbf\xbf", 3));
	assert_false(utf8_valid("\xf0\x8f\xbf\xbf", 4));
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(utf8_valid("\x80", 1));
	assert_false(utf8_valid("\xe2\x82", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_literal_and_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
