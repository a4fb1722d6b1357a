/*
 * Host-name validation, address literals and addresses (identity/hostname.h).
 * id_hostname_check and id_literal_parse take (pointer, length): every case
 * is run from a heap copy of exactly that many bytes with no NUL after it
 * (ASan catches a read past the end), and also from each of its prefixes,
 * which must never crash and, for names, must agree with a whole-input
 * check of the same prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>

#include "identity/hostname.h"

#define TD  IDN_ALLOW_TRAILING_DOT
#define TLD IDN_REQUIRE_ALPHA_TLD

struct name_case {
	const char *in;
	size_t      len;     /* 0: strlen(in) */
	unsigned    flags;
	const char *why;     /* NULL = valid */
	const char *norm;    /* expected normalised form when valid */
};

static char long_label[70], name254[260], name253[260], name300[310];

static const struct name_case name_cases[] = {
	{ "mail.example.com", 0, 0, NULL, "mail.example.com" },
	{ "MAIL.Example.COM", 0, 0, NULL, "mail.example.com" },
	{ "a", 0, 0, NULL, "a" },
	{ "x-1.y2.z", 0, 0, NULL, "x-1.y2.z" },
	{ "a--b.example", 0, 0, NULL, "a--b.example" },
	{ "xn--p1ai.example", 0, 0, NULL, "xn--p1ai.example" },
	{ "192.0.2.1", 0, 0, NULL, "192.0.2.1" },
	{ "192.0.2.1", 0, TLD, "all-numeric top-level label", NULL },
	{ "host.123", 0, TLD, "all-numeric top-level label", NULL },
	{ "host.a123", 0, TLD, NULL, "host.a123" },
	/* Only the top-level label must have a letter (RFC 3696 §2):
	 * all-numeric labels further left are ordinary host names. */
	{ "mail.1.example.net", 0, TLD, NULL, "mail.1.example.net" },
	{ "1.2.3.example", 0, TLD, NULL, "1.2.3.example" },
	/* Trailing dots: only one, and only from DNS. */
	{ "mail.example.com.", 0, 0, "trailing dot", NULL },
	{ "mail.example.com.", 0, TD, NULL, "mail.example.com" },
	{ "mail.example.com..", 0, TD, "empty label", NULL },
	{ ".", 0, TD, "root name only", NULL },
	{ ".", 0, 0, "trailing dot", NULL },
	/* Hostile PTR-style names. */
	{ "", 0, 0, "empty name", NULL },
	{ "a..b", 0, 0, "empty label", NULL },
	{ ".a.b", 0, 0, "empty label", NULL },
	{ "a.b.", 0, 0, "trailing dot", NULL },
	{ "my_host.example", 0, 0, "underscore", NULL },
	{ "_dmarc.example", 0, TD, "underscore", NULL },
	{ "-a.example", 0, 0, "label begins or ends with a hyphen", NULL },
	{ "a-.example", 0, 0, "label begins or ends with a hyphen", NULL },
	{ "a.example\r\nX-Injected: 1", 0, 0, "control character", NULL },
	{ "a\tb.example", 0, 0, "control character", NULL },
	{ "a\x7f.example", 0, 0, "control character", NULL },
	{ "a\0b.example", 11, 0, "control character", NULL },
	{ "caf\xc3\xa9.example", 0, 0, "non-ASCII octet", NULL },
	{ "a b.example", 0, 0, "character not allowed in a host name", NULL },
	{ "a/b.example", 0, 0, "character not allowed in a host name", NULL },
	{ "[192.0.2.1]", 0, 0, "character not allowed in a host name", NULL },
	{ "a.example;rm", 0, 0, "character not allowed in a host name", NULL },
	{ long_label, 0, 0, "label longer than 63 octets", NULL },
	{ name254, 0, 0, "name longer than 253 octets", NULL },
	{ name253, 0, 0, NULL, name253 },
	{ name300, 0, TD, "name longer than 253 octets", NULL },
};

static int
setup_names(void **state)
{
	(void)state;
	memset(long_label, 'a', 64);
	memcpy(long_label + 64, ".com", 5);
	/* 253 = 63+1+63+1+63+1+61 */
	size_t k = 0;
	for (int i = 0; i < 3; i++) {
		memset(name253 + k, 'a' + i, 63);
		k += 63;
		name253[k++] = '.';
	}
	memset(name253 + k, 'd', 61);
	k += 61;
	name253[k] = '\0';
	memcpy(name254, name253, k);
	name254[k] = 'd';
	name254[k + 1] = '\0';
	/* 300 characters of short labels, with a trailing dot. */
	for (k = 0; k + 2 < 300; k += 2) {
		name300[k] = 'x';
		name300[k + 1] = '.';
	}
	name300[k] = '\0';
	return 0;
}

static void
test_hostname_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		size_t n = c->len ? c->len : strlen(c->in);
		char *copy = malloc(n ? n : 1);
		memcpy(copy, c->in, n);
		char out[ID_NAME_MAX + 1] = "untouched";
		const char *why = id_hostname_check(copy, n, c->flags, out);
		if (c->why == NULL) {
			if (why != NULL)
				fail_msg("case %zu (%.40s): unexpected %s", i, c->in, why);
			assert_string_equal(out, c->norm);
		} else {
			if (why == NULL || strcmp(why, c->why) != 0)
				fail_msg("case %zu (%.40s): got %s, want %s", i,
				    c->in, why ? why : "valid", c->why);
			assert_string_equal(out, "untouched");
		}
		/* Every prefix, from an exact-size buffer. */
		for (size_t p = 0; p < n; p++) {
			char *pre = malloc(p ? p : 1);
			memcpy(pre, c->in, p);
			char o2[ID_NAME_MAX + 1];
			(void)id_hostname_check(pre, p, c->flags, o2);
			struct id_addr a;
			(void)id_literal_parse(pre, p, &a);
			free(pre);
		}
		free(copy);
	}
}

static void
test_label_count_and_bare_ip(void **state)
{
	(void)state;
	assert_int_equal(id_label_count(""), 0);
	assert_int_equal(id_label_count("a"), 1);
	assert_int_equal(id_label_count("a.b.c"), 3);
	assert_true(id_is_bare_ipv4("192.0.2.1", 9));
	assert_true(id_is_bare_ipv4("192.0.2.1.", 10));
	assert_true(id_is_bare_ipv4("001.002.003.004", 15));
	assert_false(id_is_bare_ipv4("192.0.2", 7));
	assert_false(id_is_bare_ipv4("192.0.2.256", 11));
	assert_false(id_is_bare_ipv4("1.2.3.4.5", 9));
	assert_false(id_is_bare_ipv4("a.b.c.d", 7));
}

struct lit_case {
	const char     *in;
	enum id_literal r;
	const char     *addr;   /* expected text form on IDL_VALID */
};

static const struct lit_case lit_cases[] = {
	{ "[192.0.2.1]", IDL_VALID, "192.0.2.1" },
	{ "[001.002.003.004]", IDL_VALID, "1.2.3.4" },
	{ "[0.0.0.0]", IDL_VALID, "0.0.0.0" },
	{ "[IPv6:2001:db8::1]", IDL_VALID, "2001:db8::1" },
	{ "[ipv6:2001:DB8::1]", IDL_VALID, "2001:db8::1" },
	{ "[IPv6:::1]", IDL_VALID, "::1" },
	{ "[IPv6:::ffff:192.0.2.1]", IDL_VALID, "192.0.2.1" },
	{ "[IPv6:2001:db8:0:0:0:0:2:1]", IDL_VALID, "2001:db8::2:1" },
	{ "[IPv6:1:2:3:4:5:6:1.2.3.4]", IDL_VALID, "1:2:3:4:5:6:102:304" },
	{ "[IPv6:1:2:3:4:5:6::]", IDL_VALID, "1:2:3:4:5:6::" },
	{ "[IPv6:1:2:3::4:5:6]", IDL_VALID, "1:2:3::4:5:6" },
	{ "[IPv6:1:2:3:4::1.2.3.4]", IDL_VALID, "1:2:3:4::102:304" },
	{ "mail.example.com", IDL_NOT_LITERAL, NULL },
	{ "", IDL_NOT_LITERAL, NULL },
	{ "[", IDL_BAD, NULL },
	{ "[]", IDL_BAD, NULL },
	{ "[192.0.2.1", IDL_BAD, NULL },
	{ "[192.0.2]", IDL_BAD, NULL },
	{ "[192.0.2.256]", IDL_BAD, NULL },
	{ "[1.2.3.4.5]", IDL_BAD, NULL },
	{ "[0001.2.3.4]", IDL_BAD, NULL },
	{ "[2001:db8::1]", IDL_BAD, NULL },      /* no IPv6: tag */
	{ "[IPv6:2001:db8::g]", IDL_BAD, NULL },
	{ "[IPv6:1:2:3:4:5:6:7:8:9]", IDL_BAD, NULL },
	/* RFC 5321 §4.1.3, as the path parser: "::" with at most 6 groups
	 * (IPv6v4-comp: 4); inet_pton takes these. */
	{ "[IPv6:1:2:3:4:5:6:7::]", IDL_BAD, NULL },
	{ "[IPv6:::1:2:3:4:5:6:7]", IDL_BAD, NULL },
	{ "[IPv6:1:2:3::4:5:6:7]", IDL_BAD, NULL },
	{ "[IPv6:1:2:3:4:5::1.2.3.4]", IDL_BAD, NULL },
	{ "[IPv6:::1:2:3:4:5:1.2.3.4]", IDL_BAD, NULL },
	{ "[IPv6:]", IDL_BAD, NULL },
	{ "[192.0.2.1] ", IDL_BAD, NULL },
	{ "[1.2.3.4]\r\n", IDL_BAD, NULL },
	{ "[x-tag:abc]", IDL_UNKNOWN_TAG, NULL },
	{ "[x_tag:abc]", IDL_BAD, NULL },
	{ "[x:a b]", IDL_BAD, NULL },
	{ "[x:]", IDL_BAD, NULL },
};

static void
test_literal_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(lit_cases) / sizeof(lit_cases[0]); i++) {
		const struct lit_case *c = &lit_cases[i];
		size_t n = strlen(c->in);
		char *copy = malloc(n ? n : 1);
		memcpy(copy, c->in, n);
		struct id_addr a;
		memset(&a, 0, sizeof(a));
		enum id_literal r = id_literal_parse(copy, n, &a);
		if (r != c->r)
			fail_msg("case %zu (%s): got %d want %d", i, c->in, r, c->r);
		if (r == IDL_VALID) {
			char t[ID_ADDR_STRLEN];
			id_addr_format(&a, t);
			assert_string_equal(t, c->addr);
		}
		free(copy);
	}
}

static void
test_addr(void **state)
{
	(void)state;
	struct id_addr a, b;
	assert_true(id_addr_parse("192.0.2.1", 9, &a));
	assert_int_equal(a.family, AF_INET);
	assert_false(id_addr_parse("192.0.2.01", 10, &a));
	assert_false(id_addr_parse("010.0.2.1", 9, &a));
	assert_true(id_addr_parse("10.0.2.1", 8, &a));
	assert_false(id_addr_parse("1.2.3", 5, &a));
	assert_false(id_addr_parse("x", 1, &a));
	/* v4-mapped folds to v4 and compares equal. */
	assert_true(id_addr_parse("::ffff:192.0.2.1", 16, &b));
	assert_int_equal(b.family, AF_INET);
	assert_true(id_addr_parse("192.0.2.1", 9, &a));
	assert_true(id_addr_eq(&a, &b));
	assert_true(id_addr_parse("2001:db8::1", 11, &a));
	assert_int_equal(a.family, AF_INET6);
	assert_false(id_addr_eq(&a, &b));
	struct id_addr z;
	memset(&z, 0, sizeof(z));
	assert_false(id_addr_eq(&z, &z));

	assert_true(id_addr_parse("127.0.0.1", 9, &a));
	assert_true(id_addr_is_loopback(&a));
	assert_true(id_addr_parse("127.255.0.9", 11, &a));
	assert_true(id_addr_is_loopback(&a));
	assert_true(id_addr_parse("::1", 3, &a));
	assert_true(id_addr_is_loopback(&a));
	assert_true(id_addr_parse("::2", 3, &a));
	assert_false(id_addr_is_loopback(&a));
	assert_true(id_addr_parse("128.0.0.1", 9, &a));
	assert_false(id_addr_is_loopback(&a));

	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:203.0.113.7", &s6.sin6_addr);
	assert_true(id_addr_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &a));
	char t[ID_ADDR_STRLEN];
	id_addr_format(&a, t);
	assert_string_equal(t, "203.0.113.7");
	assert_false(id_addr_from_sockaddr((struct sockaddr *)&s6, 4, &a));
	struct sockaddr_in s4;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.2", &s4.sin_addr);
	assert_true(id_addr_from_sockaddr((struct sockaddr *)&s4, sizeof(s4), &a));
	id_addr_format(&a, t);
	assert_string_equal(t, "198.51.100.2");
	assert_false(id_addr_from_bytes("abc", 3, &a));
}

static void
test_reverse_name(void **state)
{
	(void)state;
	struct id_addr a;
	char r[ID_REVNAME_MAX];
	assert_true(id_addr_parse("192.0.2.10", 10, &a));
	assert_int_equal(id_reverse_name(&a, r), strlen("10.2.0.192.in-addr.arpa"));
	assert_string_equal(r, "10.2.0.192.in-addr.arpa");
	assert_true(id_addr_parse("255.255.255.255", 15, &a));
	id_reverse_name(&a, r);
	assert_string_equal(r, "255.255.255.255.in-addr.arpa");
	assert_true(id_addr_parse("2001:db8::567:89ab", 18, &a));
	size_t n = id_reverse_name(&a, r);
	assert_string_equal(r, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(n, ID_REVNAME_MAX - 1);
	memset(&a, 0, sizeof(a));
	assert_int_equal(id_reverse_name(&a, r), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hostname_table, setup_names),
		cmocka_unit_test(test_label_count_and_bare_ip),
		cmocka_unit_test(test_literal_table),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_reverse_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
