/*
 * PROXY protocol parser tables. Every case is fed whole, one byte at a time
 * and split at every position, each followed by SMTP data that must not be
 * consumed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "net/proxy.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

struct pcase {
	const char *name;
	const char *in;
	size_t      inlen;      /* header (+ anything after it) */
	enum proxy_status want;
	size_t      hdrlen;     /* DONE: header length */
	bool        local;
	int         family;
	const char *src, *dst;  /* textual addresses (inet/inet6/unix path) */
	unsigned    sport, dport;
};

#define S(x) x, sizeof(x) - 1
#define BAD(n, lit, st) \
	{ .name = n, .in = lit, .inlen = sizeof(lit) - 1, .want = st }

static const struct pcase cases[] = {
	/* v1 good */
	{ "v1 tcp4", S("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"),
	  PROXY_DONE, 44, false, AF_INET, "192.0.2.1", "198.51.100.2", 56324, 25 },
	{ "v1 tcp4 max", S("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
	  PROXY_DONE, 56, false, AF_INET, "255.255.255.255", "255.255.255.255", 65535, 65535 },
	{ "v1 tcp4 zeros", S("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n"),
	  PROXY_DONE, 33, false, AF_INET, "0.0.0.0", "10.0.0.1", 0, 0 },
	{ "v1 tcp6", S("PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\r\n"),
	  PROXY_DONE, 44, false, AF_INET6, "2001:db8::1", "2001:db8::2", 4000, 25 },
	{ "v1 tcp6 full", S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	  PROXY_DONE, 104, false, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "v1 unknown short", S("PROXY UNKNOWN\r\n"), PROXY_DONE, 15, true, 0, NULL, NULL, 0, 0 },
	{ "v1 unknown worst case 107", S("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	  PROXY_DONE, 107, true, 0, NULL, NULL, 0, 0 },
	{ "v1 unknown junk ignored", S("PROXY UNKNOWN whatever here\r\n"), PROXY_DONE, 29, true, 0, NULL, NULL, 0, 0 },
	/* v1 bad */
	BAD("v1 too long", "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n",
	  PROXY_ERROR),
	BAD("v1 bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_ERROR),
	BAD("v1 bare CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n", PROXY_ERROR),
	BAD("v1 NUL byte", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", PROXY_ERROR),
	BAD("v1 tcp5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERROR),
	BAD("v1 lower case", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_ERROR),
	BAD("v1 unknownx", "PROXY UNKNOWNX\r\n", PROXY_ERROR),
	BAD("v1 missing port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_ERROR),
	BAD("v1 extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_ERROR),
	BAD("v1 double space", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PROXY_ERROR),
	BAD("v1 trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXY_ERROR),
	BAD("v1 port too big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n", PROXY_ERROR),
	BAD("v1 port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 025 25\r\n", PROXY_ERROR),
	BAD("v1 octet leading zero", "PROXY TCP4 1.2.3.04 5.6.7.8 1 25\r\n", PROXY_ERROR),
	BAD("v1 octet 256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 25\r\n", PROXY_ERROR),
	BAD("v1 three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 25\r\n", PROXY_ERROR),
	BAD("v1 five octets", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 25\r\n", PROXY_ERROR),
	BAD("v1 tcp4 with ipv6", "PROXY TCP4 ::1 5.6.7.8 1 25\r\n", PROXY_ERROR),
	BAD("v1 tcp6 with ipv4", "PROXY TCP6 1.2.3.4 ::1 1 25\r\n", PROXY_ERROR),
	BAD("v1 tcp6 bad", "PROXY TCP6 1:::2 ::1 1 25\r\n", PROXY_ERROR),
	BAD("v1 empty", "PROXY \r\n", PROXY_ERROR),
	BAD("v1 negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n", PROXY_ERROR),
	/* UNKNOWN ignores the rest of the line, but not its bytes: the line
	 * itself must still be printable ASCII ending in CRLF. */
	BAD("v1 unknown DEL", "PROXY UNKNOWN \x7f\r\n", PROXY_ERROR),
	BAD("v1 unknown bare CR", "PROXY UNKNOWN \rX\r\n", PROXY_ERROR),
	BAD("v1 tcp6 46-char address", "PROXY TCP6 1111:2222:3333:4444:5555:6666:7777:8888:99999 ::1 1 25\r\n",
	  PROXY_ERROR),
	/* not PROXY at all: direct SMTP clients */
	BAD("smtp EHLO", "EHLO client.example\r\n", PROXY_NOT_PROXY),
	BAD("smtp QUIT", "QUIT\r\n", PROXY_NOT_PROXY),
	BAD("PROXX", "PROXX TCP4\r\n", PROXY_NOT_PROXY),
	BAD("PROXY without space", "PROXY\r\n", PROXY_NOT_PROXY),
	BAD("empty line", "\r\n\r\nEHLO x\r\n", PROXY_NOT_PROXY),
	BAD("bad signature", "\r\n\r\n\0\r\nQUIX\n\x21\x11\0\x0c", PROXY_NOT_PROXY),
	/* v2 good */
	{ "v2 tcp4", S(SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\xdc\x04" "\x00\x19"),
	  PROXY_DONE, 28, false, AF_INET, "192.0.2.1", "198.51.100.2", 56324, 25 },
	{ "v2 tcp6", S(SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02" "\x0f\xa0" "\x00\x19"),
	  PROXY_DONE, 52, false, AF_INET6, "2001:db8::1", "2001:db8::2", 4000, 25 },
	{ "v2 tcp4 with TLVs", S(SIG "\x21\x11\x00\x1d" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"
	    "\x02\x00\x07" "mx.test" "\x04\x00\x00" "\x05\x00\x01" "X"),
	  PROXY_DONE, 45, false, AF_INET, "127.0.0.2", "127.0.0.1", 12345, 25 },
	{ "v2 tcp4 address padding no TLV", S(SIG "\x21\x11\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"),
	  PROXY_DONE, 28, false, AF_INET, "127.0.0.2", "127.0.0.1", 12345, 25 },
	{ "v2 local no addr", S(SIG "\x20\x00\x00\x00"), PROXY_DONE, 16, true, 0, NULL, NULL, 0, 0 },
	{ "v2 local with addr", S(SIG "\x20\x11\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"),
	  PROXY_DONE, 28, true, 0, NULL, NULL, 0, 0 },
	{ "v2 local junk skipped", S(SIG "\x20\x00\x00\x05" "\xff\xff\xff\xff\xff"), PROXY_DONE, 21, true, 0, NULL, NULL, 0, 0 },
	{ "v2 proxy unspec", S(SIG "\x21\x00\x00\x00"), PROXY_DONE, 16, true, 0, NULL, NULL, 0, 0 },
	{ "v2 proxy inet unspec transport", S(SIG "\x21\x10\x00\x02" "ab"), PROXY_DONE, 18, true, 0, NULL, NULL, 0, 0 },
	/* v2 bad */
	BAD("v2 version 1", SIG "\x11\x11\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19", PROXY_ERROR),
	BAD("v2 version 3", SIG "\x31\x11\x00\x00", PROXY_ERROR),
	BAD("v2 command 2", SIG "\x22\x11\x00\x00", PROXY_ERROR),
	BAD("v2 family 4", SIG "\x21\x41\x00\x00", PROXY_ERROR),
	/* The same with a well-formed address block after them. */
	BAD("v2 command 2 with an inet block", SIG "\x22\x11\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01"
	    "\x30\x39" "\x00\x19", PROXY_ERROR),
	BAD("v2 family 4 with a unix-sized block", SIG "\x21\x41\x00\xd8"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", PROXY_ERROR),
	BAD("v2 transport 3", SIG "\x21\x13\x00\x0c", PROXY_ERROR),
	BAD("v2 udp", SIG "\x21\x12\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19", PROXY_ERROR),
	BAD("v2 length short of ipv4 block", SIG "\x21\x11\x00\x0b" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00", PROXY_ERROR),
	BAD("v2 length short of ipv6 block", SIG "\x21\x21\x00\x0c" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19", PROXY_ERROR),
	BAD("v2 TLV overruns length", SIG "\x21\x11\x00\x10" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"
	    "\x02\x00\x05" "x", PROXY_ERROR),
	BAD("v2 TLV length 0xffff", SIG "\x21\x11\x00\x10" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"
	    "\x02\xff\xff" "x", PROXY_ERROR),
	BAD("v2 truncated TLV header", SIG "\x21\x11\x00\x0e" "\x7f\x00\x00\x02" "\x7f\x00\x00\x01" "\x30\x39" "\x00\x19"
	    "\x02\x00", PROXY_ERROR),
};

static void
expect_addr(const struct sockaddr_storage *ss, int family, const char *text,
    unsigned port)
{
	char got[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		assert_non_null(inet_ntop(AF_INET, &in->sin_addr, got, sizeof got));
		assert_string_equal(got, text);
		assert_int_equal(ntohs(in->sin_port), port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		assert_non_null(inet_ntop(AF_INET6, &in6->sin6_addr, got, sizeof got));
		assert_string_equal(got, text);
		assert_int_equal(ntohs(in6->sin6_port), port);
	}
}

static void
check_header(const struct pcase *c, const struct proxy_header *h)
{
	assert_int_equal(h->length, c->hdrlen);
	assert_int_equal(h->version, c->in[0] == 'P' ? 1 : 2);
	assert_int_equal(h->local, c->local);
	if (c->local) {
		assert_int_equal(h->src.ss_family, 0);
		return;
	}
	expect_addr(&h->src, c->family, c->src, c->sport);
	expect_addr(&h->dst, c->family, c->dst, c->dport);
}

/*
 * Feed c->in followed by trailing SMTP data in chunks of `chunk` bytes
 * (0 = all at once, else split first at `split`). Checks the outcome, that
 * exactly the header is consumed, and NOT_PROXY's replay.
 */
static void
run_case(const struct pcase *c, size_t split, size_t chunk)
{
	static const char tail[] = "EHLO after.example\r\n";
	uint8_t in[512];
	size_t n = c->inlen + sizeof tail - 1;
	struct proxy_parser p;
	struct proxy_header h;
	enum proxy_status st = PROXY_NEED_MORE;
	size_t off = 0, used = 0;

	assert_true(n <= sizeof in);
	memcpy(in, c->in, c->inlen);
	memcpy(in + c->inlen, tail, sizeof tail - 1);
	proxy_init(&p);
	memset(&h, 0xa5, sizeof h);
	while (off < n) {
		size_t len = n - off;
		if (split != 0 && off == 0)
			len = split;
		else if (chunk != 0 && len > chunk)
			len = chunk;
		st = proxy_feed(&p, in + off, len, &used, &h);
		if (st == PROXY_NEED_MORE) {
			assert_int_equal(used, len);
			off += len;
			continue;
		}
		break;
	}
	if (st != c->want)
		fail_msg("%s (split %zu, chunk %zu): status %d, want %d (%s)",
		    c->name, split, chunk, st, c->want,
		    proxy_error(&p) ? proxy_error(&p) : "-");
	switch (st) {
	case PROXY_DONE:
		assert_int_equal(off + used, c->hdrlen);
		check_header(c, &h);
		assert_null(proxy_error(&p));
		break;
	case PROXY_NOT_PROXY: {
		size_t rn;
		const uint8_t *r = proxy_replay(&p, &rn);
		assert_int_equal(used, 0);
		assert_int_equal(rn, off);
		if (rn > 0)
			assert_memory_equal(r, in, rn);
		break;
	}
	case PROXY_ERROR:
		assert_non_null(proxy_error(&p));
		break;
	default:
		fail_msg("%s: still NEED_MORE after all input", c->name);
	}
	/* Terminal states stick and consume nothing. */
	assert_int_equal(proxy_feed(&p, "x", 1, &used, NULL), st);
	assert_int_equal(used, 0);
}

static void
test_table(void **state)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct pcase *c = &cases[i];
		run_case(c, 0, 0);
		run_case(c, 0, 1);
		run_case(c, 0, 7);
		for (size_t s = 1; s < c->inlen; s++)
			run_case(c, s, 0);
	}
}

/* A header that stops short needs more, never DONE or a crash. */
static void
test_truncated(void **state)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct pcase *c = &cases[i];
		if (c->want != PROXY_DONE)
			continue;
		for (size_t cut = 1; cut < c->hdrlen; cut++) {
			struct proxy_parser p;
			size_t used;
			proxy_init(&p);
			assert_int_equal(proxy_feed(&p, c->in, cut, &used, NULL),
			    PROXY_NEED_MORE);
			assert_int_equal(used, cut);
		}
	}
}

static void
test_v2_unix(void **state)
{
	uint8_t in[16 + 216 + 5];
	struct proxy_parser p;
	struct proxy_header h;
	size_t used;

	memcpy(in, SIG, 12);
	in[12] = 0x21;
	in[13] = 0x31;
	in[14] = 0;
	in[15] = 216;
	memset(in + 16, 'a', 108);              /* unterminated: 108 bytes */
	memset(in + 124, 0, 108);
	memcpy(in + 124, "/run/ehlo.sock", 14);
	memcpy(in + 232, "QUIT\n", 5);
	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, in, sizeof in, &used, &h), PROXY_DONE);
	assert_int_equal(used, 232);
	assert_false(h.local);
	assert_int_equal(h.src.ss_family, AF_UNIX);
	const struct sockaddr_un *src = (const struct sockaddr_un *)&h.src;
	const struct sockaddr_un *dst = (const struct sockaddr_un *)&h.dst;
	assert_int_equal(strlen(src->sun_path), 107);
	assert_string_equal(dst->sun_path, "/run/ehlo.sock");
}

/* A 64 KiB TLV block is skipped without buffering and fed in pieces. */
static void
test_v2_large_tlvs(void **state)
{
	static uint8_t in[16 + 65535];
	struct proxy_parser p;
	struct proxy_header h;
	size_t used, off = 0;
	enum proxy_status st;

	memcpy(in, SIG, 12);
	in[12] = 0x21;
	in[13] = 0x11;
	in[14] = 0xff;
	in[15] = 0xff;
	memcpy(in + 16, "\x7f\x00\x00\x02\x7f\x00\x00\x01\x30\x39\x00\x19", 12);
	/* 65523 TLV bytes: one of 65520 value bytes (3 + 65520). */
	in[28] = 0xe0;
	in[29] = (65520 >> 8) & 0xff;
	in[30] = 65520 & 0xff;
	proxy_init(&p);
	do {
		size_t len = sizeof in - off < 1000 ? sizeof in - off : 1000;
		st = proxy_feed(&p, in + off, len, &used, &h);
		off += used;
	} while (st == PROXY_NEED_MORE && off < sizeof in);
	assert_int_equal(st, PROXY_DONE);
	assert_int_equal(off, sizeof in);
	assert_int_equal(h.length, sizeof in);
}

/* Feeding nothing is harmless. */
static void
test_empty_feed(void **state)
{
	struct proxy_parser p;
	size_t used = 99;

	proxy_init(&p);
	assert_int_equal(proxy_feed(&p, "", 0, &used, NULL), PROXY_NEED_MORE);
	assert_int_equal(used, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_v2_unix),
		cmocka_unit_test(test_v2_large_tlvs),
		cmocka_unit_test(test_empty_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
