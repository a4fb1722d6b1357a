/* CIDR entry parsing and list matching tables. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "net/cidr.h"

static const struct {
	const char *entry;
	bool ok;
} parse_cases[] = {
	{ "192.0.2.1", true },
	{ "192.0.2.0/24", true },
	{ "0.0.0.0/0", true },
	{ "10.0.0.0/8", true },
	{ "2001:db8::1", true },
	{ "2001:db8::/32", true },
	{ "[2001:db8::1]", true },
	{ "[2001:db8::]/32", true },
	{ "::/0", true },
	{ "::ffff:192.0.2.1", true },
	{ "192.0.2.1/24", false },      /* host bits set */
	{ "2001:db8::1/32", false },
	{ "192.0.2.0/33", false },
	{ "2001:db8::/129", false },
	{ "192.0.2.0/", false },
	{ "192.0.2.0/-1", false },
	{ "192.0.2.0/8x", false },
	{ "192.0.2", false },
	{ "192.0.2.256", false },
	{ "mail.example.com", false },
	{ "", false },
	{ "[]", false },
	{ "[192.0.2.1", false },
	{ "1:2:3:4:5:6:7:8:9", false },
	{ "/24", false },
	/* 46 characters: one more than the longest IPv6 text (a bounded copy). */
	{ "1111:2222:3333:4444:5555:6666:7777:8888:99999", false },
	{ "[1111:2222:3333:4444:5555:6666:7777:8888:99999]", false },
};

static void
test_parse(void **state)
{
	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		struct cidr c;
		struct buf err = BUF_INIT;
		bool ok = cidr_parse(parse_cases[i].entry,
		    strlen(parse_cases[i].entry), &c, &err);
		if (ok != parse_cases[i].ok)
			fail_msg("'%s': got %d want %d (%s)", parse_cases[i].entry,
			    ok, parse_cases[i].ok, buf_cstr(&err));
		if (!ok)
			assert_true(err.len > 0);
		buf_free(&err);
	}
}

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return ss;
}

static const struct {
	const char *list, *ip;
	bool match;
} match_cases[] = {
	{ "192.0.2.0/24", "192.0.2.77", true },
	{ "192.0.2.0/24", "192.0.3.1", false },
	{ "192.0.2.0/25", "192.0.2.127", true },
	{ "192.0.2.0/25", "192.0.2.128", false },
	{ "192.0.2.1", "192.0.2.1", true },
	{ "192.0.2.1", "192.0.2.2", false },
	{ "10.0.0.0/8, 127.0.0.1", "127.0.0.1", true },
	{ "10.0.0.0/8 127.0.0.1", "10.255.255.255", true },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "::/0", "2001:db8::1", true },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "[::1]", "::1", true },
	{ "192.0.2.0/24", "::ffff:192.0.2.5", true },   /* v4-mapped */
	{ "192.0.2.0/24", "::192.0.2.5", false },       /* v4-compatible is not */
	{ "::ffff:192.0.2.5", "192.0.2.5", false },     /* a v6 entry stays v6 */
	{ "127.0.0.0/8", "192.0.2.1", false },
	{ "", "127.0.0.1", false },
	{ "10.1.2.3/31", "10.1.2.3", false },           /* host bits: refused */
};

static void
test_match(void **state)
{
	for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
		struct cidr_list l = CIDR_LIST_INIT;
		struct sockaddr_storage ss = addr(match_cases[i].ip);
		(void)cidr_list_add(&l, match_cases[i].list, NULL);
		bool m = cidr_list_match(&l, (struct sockaddr *)&ss);
		if (m != match_cases[i].match)
			fail_msg("'%s' vs %s: got %d", match_cases[i].list,
			    match_cases[i].ip, m);
		cidr_list_clear(&l);
	}
}

/* cidr_of_client: the client's network at the configured prefix lengths,
 * checked by parsing the expected network and by matching it back. */
static const struct {
	const char *ip;
	unsigned v4, v6;
	const char *net;        /* NULL: not an IP address family */
} client_cases[] = {
	{ "192.0.2.77", 32, 128, "192.0.2.77/32" },
	{ "192.0.2.77", 24, 128, "192.0.2.0/24" },
	{ "192.0.2.77", 20, 128, "192.0.0.0/20" },
	{ "10.1.31.5", 20, 128, "10.1.16.0/20" },      /* a mask inside an octet */
	{ "10.1.31.5", 19, 128, "10.1.0.0/19" },
	{ "192.0.2.77", 0, 128, "0.0.0.0/0" },
	{ "192.0.2.77", 40, 128, "192.0.2.77/32" },      /* over 32: the address */
	{ "::ffff:192.0.2.77", 24, 64, "192.0.2.0/24" }, /* mapped: IPv4 rules */
	{ "2001:db8:1:2:f3c4:5:6:7", 32, 84, "2001:db8:1:2:f3c4::/84" },
	{ "2001:db8:1:2:f3c4:f005:6:7", 32, 84, "2001:db8:1:2:f3c4:f000::/84" },
	{ "2001:db8:1:2:f3c4:f005:6:7", 32, 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:f3c4:f005:6:7", 32, 128, "2001:db8:1:2:f3c4:f005:6:7/128" },
	{ "2001:db8:1:2:f3c4:f005:6:7", 32, 0, "::/0" },
	{ "::1", 32, 84, "::/84" },
};

static void
test_of_client(void **state)
{
	for (size_t i = 0; i < sizeof client_cases / sizeof client_cases[0]; i++) {
		struct sockaddr_storage ss = addr(client_cases[i].ip);
		struct cidr got, want;
		assert_true(cidr_of_client((struct sockaddr *)&ss, client_cases[i].v4,
		    client_cases[i].v6, &got));
		const char *n = client_cases[i].net;
		assert_true(cidr_parse(n, strlen(n), &want, NULL));
		if (got.family != want.family || got.prefix != want.prefix ||
		    memcmp(got.addr, want.addr, sizeof got.addr) != 0)
			fail_msg("%s at /%u, /%u: not %s (family %d, /%u)", client_cases[i].ip,
			    client_cases[i].v4, client_cases[i].v6, n, got.family, got.prefix);
		assert_true(cidr_match(&got, (struct sockaddr *)&ss));
	}
	struct sockaddr_storage unix_ss;
	memset(&unix_ss, 0, sizeof unix_ss);
	unix_ss.ss_family = AF_UNIX;
	struct cidr c;
	assert_false(cidr_of_client((struct sockaddr *)&unix_ss, 32, 128, &c));
}

static void
test_list_errors(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;
	struct buf err = BUF_INIT;

	assert_true(cidr_list_add(&l, " ,\t\n", &err));
	assert_int_equal(l.n, 0);
	assert_false(cidr_list_add(&l, "192.0.2.0/24, bogus\x01name, ::1", &err));
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(buf_cstr(&err), "bogus\\x01name"));
	buf_free(&err);
	/* Growth past the initial capacity. */
	for (int i = 0; i < 40; i++)
		assert_true(cidr_list_add(&l, "10.0.0.0/8", NULL));
	assert_int_equal(l.n, 41);
	struct sockaddr_storage u;
	memset(&u, 0, sizeof u);
	u.ss_family = AF_UNIX;
	assert_false(cidr_list_match(&l, (struct sockaddr *)&u));
	cidr_list_clear(&l);
	assert_int_equal(l.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_of_client),
		cmocka_unit_test(test_list_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
