/*
 * The DNS answer parser on hand-built packets: hostile names, compression
 * loops and forward pointers, lengths that overrun, every truncation of a
 * valid packet, TTL rules (RFC 2181 §8, RFC 2308 §5).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "dns/wire.h"

struct pkt {
	uint8_t b[4096];
	size_t  n;
};

static void
u8(struct pkt *p, unsigned v)
{
	assert_true(p->n < sizeof p->b);
	p->b[p->n++] = (uint8_t)v;
}

static void
u16(struct pkt *p, unsigned v)
{
	u8(p, v >> 8);
	u8(p, v & 0xff);
}

static void
u32(struct pkt *p, uint32_t v)
{
	u16(p, v >> 16);
	u16(p, v & 0xffff);
}

/* Dotted name to wire labels; "\\xHH" is not needed: raw bytes pass. */
static void
name(struct pkt *p, const char *s)
{
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		u8(p, (unsigned)n);
		for (size_t i = 0; i < n; i++)
			u8(p, (unsigned char)s[i]);
		s += n;
		if (*s == '.')
			s++;
	}
	u8(p, 0);
}

static void
header(struct pkt *p, unsigned rcode, unsigned an, unsigned ns)
{
	p->n = 0;
	u16(p, 0x1234);
	u16(p, 0x8180 | rcode);
	u16(p, 1);
	u16(p, an);
	u16(p, ns);
	u16(p, 0);
}

static void
question(struct pkt *p, const char *qname, unsigned type)
{
	name(p, qname);
	u16(p, type);
	u16(p, 1);
}

/* RR header with the owner as a pointer to the question (offset 12). */
static size_t
rr(struct pkt *p, unsigned type, uint32_t ttl, unsigned rdlen)
{
	u16(p, 0xc00c);
	u16(p, type);
	u16(p, 1);
	u32(p, ttl);
	u16(p, rdlen);
	return p->n;
}

static void
ptr_rr(struct pkt *p, uint32_t ttl, const char *target)
{
	size_t at = rr(p, WIRE_T_PTR, ttl, 0);
	name(p, target);
	size_t len = p->n - at;
	p->b[at - 2] = (uint8_t)(len >> 8);
	p->b[at - 1] = (uint8_t)len;
}

static struct wire_answer wa;

static int
parse(const struct pkt *p, unsigned qtype)
{
	return wire_parse_answer(p->b, p->n, (uint16_t)qtype, &wa);
}

static void
test_ptr_basic(void **state)
{
	struct pkt p;

	header(&p, 0, 3, 0);
	question(&p, "2.0.0.127.in-addr.arpa", WIRE_T_PTR);
	ptr_rr(&p, 300, "MX.Good.TEST");
	ptr_rr(&p, 200, "-bad.test");          /* leading hyphen */
	ptr_rr(&p, 100, "evil name.test");     /* space */
	assert_int_equal(parse(&p, WIRE_T_PTR), 0);
	assert_int_equal(wa.rcode, 0);
	assert_int_equal(wa.n, 1);
	assert_string_equal(wa.rr[0].name, "mx.good.test");
	assert_int_equal(wa.ninvalid, 2);
	assert_true(wa.have_ttl);
	assert_int_equal(wa.min_ttl, 100);
}

static const struct {
	const char *target;
	bool valid;
} host_cases[] = {
	{ "a.b", true },
	{ "x", true },
	{ "0-9.example", true },
	{ "a-.example", false },
	{ "under_score.example", false },
	{ "back\\slash.example", false },
	{ "ctl\x01.example", false },
	{ "hi\x7f.example", false },
	{ "utf8\xc3\xa9.example", false },
	{ "semi;colon.example", false },
	{ "<script>.example", false },
};

static void
test_host_validation(void **state)
{
	for (size_t i = 0; i < sizeof host_cases / sizeof host_cases[0]; i++) {
		struct pkt p;
		header(&p, 0, 1, 0);
		question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
		ptr_rr(&p, 60, host_cases[i].target);
		assert_int_equal(parse(&p, WIRE_T_PTR), 0);
		if ((wa.n == 1) != host_cases[i].valid)
			fail_msg("'%s': n=%zu", host_cases[i].target, wa.n);
	}
}

/* A label byte '.' inside a label is not a separator: invalid. */
static void
test_dot_inside_label(void **state)
{
	struct pkt p;
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	size_t at = rr(&p, WIRE_T_PTR, 60, 9);
	(void)at;
	u8(&p, 3);
	u8(&p, 'a'); u8(&p, '.'); u8(&p, 'b');
	u8(&p, 3);
	u8(&p, 'c'); u8(&p, 'o'); u8(&p, 'm');
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_PTR), 0);
	assert_int_equal(wa.n, 0);
	assert_int_equal(wa.ninvalid, 1);
}

static void
test_name_lengths(void **state)
{
	char l63[64], l61[62], l62[63], nm[300];
	memset(l63, 'a', 63); l63[63] = '\0';
	memset(l61, 'b', 61); l61[61] = '\0';
	memset(l62, 'c', 62); l62[62] = '\0';
	struct pkt p;

	/* 253 characters, 255 octets on the wire: the longest valid name. */
	snprintf(nm, sizeof nm, "%s.%s.%s.%s", l63, l63, l63, l61);
	assert_int_equal(strlen(nm), 253);
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	ptr_rr(&p, 60, nm);
	assert_int_equal(parse(&p, WIRE_T_PTR), 0);
	assert_int_equal(wa.n, 1);
	assert_string_equal(wa.rr[0].name, nm);

	/* 256 octets on the wire: malformed. */
	snprintf(nm, sizeof nm, "%s.%s.%s.%s", l63, l63, l63, l62);
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	ptr_rr(&p, 60, nm);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* A label of 64 octets uses the 0x40 type bits: malformed. */
	char l64[65];
	memset(l64, 'd', 64); l64[64] = '\0';
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	ptr_rr(&p, 60, l64);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);
}

static void
test_compression_attacks(void **state)
{
	struct pkt p;
	size_t at;

	/* A pointer to itself. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	at = rr(&p, WIRE_T_PTR, 60, 2);
	u16(&p, 0xc000 | (unsigned)at);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* A forward pointer. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	at = rr(&p, WIRE_T_PTR, 60, 2);
	u16(&p, 0xc000 | (unsigned)(at + 2));
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* A label then a pointer back to that label: a loop. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	at = rr(&p, WIRE_T_PTR, 60, 4);
	u8(&p, 1);
	u8(&p, 'a');
	u16(&p, 0xc000 | (unsigned)at);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* Two pointers bouncing between each other. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	at = rr(&p, WIRE_T_PTR, 60, 6);
	u8(&p, 1);
	u8(&p, 'a');
	u16(&p, 0xc000 | (unsigned)(at + 4));
	u8(&p, 1);
	u16(&p, 0xc000 | (unsigned)at);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* A legitimate pointer into the question: the PTR target is the
	 * question name's suffix "in-addr.arpa". */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	at = rr(&p, WIRE_T_PTR, 60, 4);
	u8(&p, 1);
	u8(&p, 'x');
	u16(&p, 0xc000 | (12 + 2 + 2 + 2 + 4));     /* "in-addr.arpa" */
	assert_int_equal(parse(&p, WIRE_T_PTR), 0);
	assert_int_equal(wa.n, 1);
	assert_string_equal(wa.rr[0].name, "x.in-addr.arpa");
}

static void
test_bad_lengths(void **state)
{
	struct pkt p;

	/* RDLENGTH past the end. */
	header(&p, 0, 1, 0);
	question(&p, "h.test", WIRE_T_A);
	rr(&p, WIRE_T_A, 60, 40);
	u32(&p, 0x7f000001);
	assert_int_equal(parse(&p, WIRE_T_A), -1);

	/* A with 5 bytes. */
	header(&p, 0, 1, 0);
	question(&p, "h.test", WIRE_T_A);
	rr(&p, WIRE_T_A, 60, 5);
	u32(&p, 0x7f000001);
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_A), -1);

	/* PTR whose name ends before RDLENGTH does. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	rr(&p, WIRE_T_PTR, 60, 5);
	name(&p, "ab");
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* PTR with empty RDATA. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	rr(&p, WIRE_T_PTR, 60, 0);
	assert_int_equal(parse(&p, WIRE_T_PTR), -1);

	/* More answers announced than present. */
	header(&p, 0, 3, 0);
	question(&p, "h.test", WIRE_T_A);
	rr(&p, WIRE_T_A, 60, 4);
	u32(&p, 0x7f000001);
	assert_int_equal(parse(&p, WIRE_T_A), -1);

	/* Shorter than a header. */
	assert_int_equal(wire_parse_answer((const uint8_t *)"\x12\x34\x81", 3,
	    WIRE_T_A, &wa), -1);
}

/* Every prefix of a valid packet parses or fails cleanly. */
static void
test_every_truncation(void **state)
{
	struct pkt p;

	header(&p, 0, 3, 1);
	question(&p, "good.test", WIRE_T_MX);
	size_t at = rr(&p, WIRE_T_MX, 60, 0);
	u16(&p, 10);
	name(&p, "mx.good.test");
	p.b[at - 1] = (uint8_t)(p.n - at);
	at = rr(&p, WIRE_T_MX, 60, 4);
	u16(&p, 5);
	u16(&p, 0xc000 | 12);
	at = rr(&p, WIRE_T_CNAME, 30, 2);
	u16(&p, 0xc00c);
	at = rr(&p, WIRE_T_SOA, 60, 0);
	name(&p, "ns.test");
	name(&p, "h.test");
	for (int i = 0; i < 5; i++)
		u32(&p, 100);
	p.b[at - 1] = (uint8_t)(p.n - at);
	assert_int_equal(parse(&p, WIRE_T_MX), 0);
	assert_int_equal(wa.n, 2);
	assert_int_equal(wa.min_ttl, 30);
	size_t full = p.n;
	for (size_t cut = 0; cut < full; cut++) {
		p.n = cut;
		assert_int_equal(parse(&p, WIRE_T_MX), -1);
	}
}

static void
test_negative_ttl(void **state)
{
	struct pkt p;
	size_t at;

	header(&p, 3, 0, 1);
	question(&p, "nothing.test", WIRE_T_A);
	at = rr(&p, WIRE_T_SOA, 3600, 0);
	name(&p, "ns.test");
	name(&p, "hostmaster.test");
	u32(&p, 1); u32(&p, 3600); u32(&p, 600); u32(&p, 86400);
	u32(&p, 45);                    /* MINIMUM */
	p.b[at - 1] = (uint8_t)(p.n - at);
	assert_int_equal(parse(&p, WIRE_T_A), 0);
	assert_int_equal(wa.rcode, 3);
	assert_true(wa.have_soa);
	assert_int_equal(wa.soa_neg_ttl, 45);

	/* SOA TTL lower than MINIMUM wins; a bad SOA RDATA length is
	 * malformed. */
	header(&p, 0, 0, 1);
	question(&p, "nothing.test", WIRE_T_A);
	at = rr(&p, WIRE_T_SOA, 10, 0);
	name(&p, "ns.test");
	name(&p, "hostmaster.test");
	u32(&p, 1); u32(&p, 3600); u32(&p, 600); u32(&p, 86400); u32(&p, 45);
	p.b[at - 1] = (uint8_t)(p.n - at);
	assert_int_equal(parse(&p, WIRE_T_A), 0);
	assert_int_equal(wa.soa_neg_ttl, 10);
	p.b[at - 1]--;
	p.n--;
	assert_int_equal(parse(&p, WIRE_T_A), -1);
}

static void
test_ttl_and_many_records(void **state)
{
	struct pkt p;

	header(&p, 0, 40, 0);
	question(&p, "many.test", WIRE_T_A);
	for (unsigned i = 0; i < 40; i++) {
		rr(&p, WIRE_T_A, i == 7 ? 0x80000010u : 300, 4);
		u32(&p, 0x7f000000u + i);
	}
	assert_int_equal(parse(&p, WIRE_T_A), 0);
	assert_int_equal(wa.n, DNS_MAX_RECORDS);
	assert_true(wa.truncated);
	assert_int_equal(wa.min_ttl, 0);   /* RFC 2181 §8: top bit -> 0 */
	char s[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &((struct sockaddr_in *)&wa.rr[3].addr)->sin_addr,
	    s, sizeof s);
	assert_string_equal(s, "127.0.0.3");
}

static void
test_mx_null_and_aaaa(void **state)
{
	struct pkt p;

	header(&p, 0, 1, 0);
	question(&p, "nomail.test", WIRE_T_MX);
	rr(&p, WIRE_T_MX, 60, 3);
	u16(&p, 0);
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_MX), 0);
	assert_int_equal(wa.n, 1);
	assert_string_equal(wa.rr[0].name, "");

	/* A root PTR target is not a host name. */
	header(&p, 0, 1, 0);
	question(&p, "1.0.0.127.in-addr.arpa", WIRE_T_PTR);
	rr(&p, WIRE_T_PTR, 60, 1);
	u8(&p, 0);
	assert_int_equal(parse(&p, WIRE_T_PTR), 0);
	assert_int_equal(wa.n, 0);
	assert_int_equal(wa.ninvalid, 1);

	/* AAAA records of another type in the answer are ignored. */
	header(&p, 0, 2, 0);
	question(&p, "v6.test", WIRE_T_AAAA);
	rr(&p, WIRE_T_A, 60, 4);
	u32(&p, 0x7f000001);
	rr(&p, WIRE_T_AAAA, 60, 16);
	for (int i = 0; i < 15; i++)
		u8(&p, 0);
	u8(&p, 1);
	assert_int_equal(parse(&p, WIRE_T_AAAA), 0);
	assert_int_equal(wa.n, 1);
	assert_int_equal(wa.rr[0].addr.ss_family, AF_INET6);
}

static const struct {
	const char *name;
	bool ok;
} qname_cases[] = {
	{ "mx.good.test", true },
	{ "x", true },
	{ "_dmarc.example", true },
	{ "a..b", false },
	{ ".a", false },
	{ "", false },
	{ "a b", false },
	{ "a\r\nb", false },
	{ "[127.0.0.1]", false },
	{ "a.b.", false },              /* the caller strips one dot */
	{ "\xc3\xa9.example", false },
};

static void
test_query_names(void **state)
{
	for (size_t i = 0; i < sizeof qname_cases / sizeof qname_cases[0]; i++)
		if (wire_query_name_ok(qname_cases[i].name,
		    strlen(qname_cases[i].name)) != qname_cases[i].ok)
			fail_msg("'%s'", qname_cases[i].name);
	char lab[70];
	memset(lab, 'a', 64);
	lab[64] = '\0';
	assert_false(wire_query_name_ok(lab, 64));
	assert_true(wire_query_name_ok(lab, 63));
	char big[300];
	memset(big, 'a', sizeof big);
	for (size_t i = 50; i < sizeof big; i += 51)
		big[i] = '.';
	assert_true(wire_query_name_ok(big, 253));
	assert_false(wire_query_name_ok(big, 254));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ptr_basic),
		cmocka_unit_test(test_host_validation),
		cmocka_unit_test(test_dot_inside_label),
		cmocka_unit_test(test_name_lengths),
		cmocka_unit_test(test_compression_attacks),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_negative_ttl),
		cmocka_unit_test(test_ttl_and_many_records),
		cmocka_unit_test(test_mx_null_and_aaaa),
		cmocka_unit_test(test_query_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
