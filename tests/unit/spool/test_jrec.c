/*
 * Spool journal records (src/spool/jrec.c) and CRC-32C (src/lib/crc32c.c):
 * known vectors, round trips, a record fed in every prefix (incomplete until
 * whole), every single-byte corruption refused, field limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/buf.h"
#include "lib/crc32c.h"
#include "spool/jrec.h"

static void
test_crc32c_vectors(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* RFC 3720 §B.4: 32 bytes of zeros, and of 0xff. */
	unsigned char z[32];
	memset(z, 0, sizeof z);
	assert_int_equal(crc32c(0, z, sizeof z), 0x8A9136AAu);
	memset(z, 0xff, sizeof z);
	assert_int_equal(crc32c(0, z, sizeof z), 0x62A8AB43u);
	/* Pieces give the checksum of the whole, at every split point. */
	const char *s = "The quick brown fox jumps over the lazy dog, twice over.";
	uint32_t whole = crc32c(0, s, strlen(s));
	for (size_t i = 0; i <= strlen(s); i++)
		assert_int_equal(crc32c(crc32c(0, s, i), s + i, strlen(s) - i), whole);
	/* The table path agrees with the instruction path at every length. */
	assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
	for (size_t i = 0; i <= strlen(s); i++)
		assert_int_equal(crc32c_sw(0, s, i), crc32c(0, s, i));
}

static const char *const dirs2[] = { "/var/mail/example.test/a", "/var/mail/example.test/b" };
static const char *const names2[] = { "1.M2P3Q4.h,S=5", "1.M2P3Q5.h,S=5" };

static void
test_roundtrip(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	const char content[] = "Subject: x\n\nbody\n";
	assert_int_equal(jrec_encode(&b, 42, "ABCDEF", 2, dirs2, names2, content,
	    sizeof content - 1), 0);
	assert_int_equal(jrec_encode(&b, 43, "Q2", 1, dirs2 + 1, names2 + 1, "", 0), 0);

	struct jrec r;
	long long k = jrec_parse((const unsigned char *)b.data, b.len, &r);
	assert_true(k > 0);
	assert_int_equal(r.seq, 42);
	assert_int_equal(r.type, JREC_TYPE_MESSAGE);
	assert_int_equal(r.qidlen, 6);
	assert_memory_equal(r.qid, "ABCDEF", 6);
	assert_int_equal(r.nbox, 2);
	assert_int_equal(r.len, sizeof content - 1);
	assert_memory_equal(r.content, content, sizeof content - 1);
	for (uint32_t i = 0; i < 2; i++) {
		const char *d, *n;
		size_t dl, nl;
		jrec_box(&r, i, &d, &dl, &n, &nl);
		assert_int_equal(dl, strlen(dirs2[i]));
		assert_memory_equal(d, dirs2[i], dl);
		assert_int_equal(nl, strlen(names2[i]));
		assert_memory_equal(n, names2[i], nl);
	}
	struct jrec r2;
	long long k2 = jrec_parse((const unsigned char *)b.data + k, b.len - (size_t)k, &r2);
	assert_int_equal(k + k2, (long long)b.len);
	assert_int_equal(r2.seq, 43);
	assert_int_equal(r2.len, 0);
	assert_int_equal(r2.nbox, 1);
	buf_free(&b);
}

/* Fed one byte more at a time, a record is "incomplete" until it is whole. */
static void
test_prefixes(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	assert_int_equal(jrec_encode(&b, 7, "Q", 2, dirs2, names2, "hello\n", 6), 0);
	struct jrec r;
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(jrec_parse((const unsigned char *)b.data, i, &r), 0);
	assert_int_equal(jrec_parse((const unsigned char *)b.data, b.len, &r), (long long)b.len);
	buf_free(&b);
}

/* Any one byte changed makes the record invalid (a CRC or structure
 * error), or, in the length field, incomplete or invalid: never a
 * different valid message. */
static void
test_corruption(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	assert_int_equal(jrec_encode(&b, 9, "QID", 2, dirs2, names2, "data\n", 5), 0);
	unsigned char *p = (unsigned char *)b.data;
	for (size_t i = 0; i < b.len; i++) {
		for (unsigned x = 1; x < 256; x <<= 1) {
			p[i] ^= (unsigned char)x;
			struct jrec r;
			long long k = jrec_parse(p, b.len, &r);
			if (i >= 4 && i < 8)
				assert_true(k <= 0);
			else
				assert_int_equal(k, -1);
			p[i] ^= (unsigned char)x;
		}
	}
	/* Zeros where a record should be (a crash's unwritten tail). */
	unsigned char z[64];
	memset(z, 0, sizeof z);
	struct jrec r;
	assert_int_equal(jrec_parse(z, sizeof z, &r), -1);
	assert_int_equal(jrec_parse(z, 2, &r), -1);
	assert_int_equal(jrec_parse((const unsigned char *)"EH", 2, &r), 0);
	buf_free(&b);
}

static void
test_limits(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	const char *bad_name[] = { "a/b" };
	const char *empty[] = { "" };
	assert_int_equal(jrec_encode(&b, 1, "Q", 1, dirs2, bad_name, "x", 1), -1);
	assert_int_equal(jrec_encode(&b, 1, "Q", 1, empty, names2, "x", 1), -1);
	assert_int_equal(jrec_encode(&b, 1, "", 1, dirs2, names2, "x", 1), -1);
	assert_int_equal(jrec_encode(&b, 1, "Q", 0, dirs2, names2, "x", 1), -1);
	assert_int_equal(b.len, 0);
	/* Content with NULs and any octets is carried as is. */
	const char bin[] = { 0, 1, '\r', '\n', (char)0xff, 0 };
	assert_int_equal(jrec_encode(&b, 2, "Q", 1, dirs2, names2, bin, sizeof bin), 0);
	struct jrec r;
	assert_int_equal(jrec_parse((const unsigned char *)b.data, b.len, &r), (long long)b.len);
	assert_int_equal(r.len, sizeof bin);
	assert_memory_equal(r.content, bin, sizeof bin);
	buf_free(&b);
}

static void
le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes a header for payload p[24 .. 24+plen) with a correct CRC: the
 * records below are well-formed except for what each case breaks, so only
 * the structure check can refuse them. */
static void
seal(unsigned char *p, uint32_t plen)
{
	memcpy(p, "EHJ1", 4);
	le32(p + 4, plen);
	le32(p + 8, crc32c(0, p + 12, (size_t)plen + 12));
}

/* Structure errors under a valid CRC (a record written by a buggy or
 * hostile writer, or a journal from another version) are refused, never
 * replayed. */
static void
test_valid_crc_bad_structure(void **state)
{
	(void)state;
	struct jrec r;
	/* A payload length over JREC_PAYLOAD_MAX is invalid at once, not
	 * "incomplete" (recovery would otherwise wait for a gigabyte). */
	unsigned char big[JREC_HEADER];
	memset(big, 0, sizeof big);
	memcpy(big, "EHJ1", 4);
	le32(big + 4, JREC_PAYLOAD_MAX + 1u);
	assert_int_equal(jrec_parse(big, sizeof big, &r), -1);

	/* One byte after the content that the payload length covers. */
	struct buf b = BUF_INIT;
	assert_int_equal(jrec_encode(&b, 3, "QID", 1, dirs2, names2, "data\n", 5), 0);
	buf_append(&b, "!", 1);
	unsigned char *p = (unsigned char *)b.data;
	seal(p, (uint32_t)(b.len - JREC_HEADER));
	assert_int_equal(jrec_parse(p, b.len, &r), -1);
	buf_free(&b);

	/* No mailbox at all: nothing to deliver to, and encode refuses it. */
	unsigned char z[JREC_HEADER + 16];
	memset(z, 0, sizeof z);
	le32(z + 12, JREC_TYPE_MESSAGE);
	unsigned char *q = z + JREC_HEADER;
	q[0] = 1;                   /* qid length 1 */
	q[2] = 'Q';
	/* q[3..6]: nbox = 0 */
	q[7] = 1;                   /* content length 1 */
	q[15] = 'x';
	seal(z, 16);
	assert_int_equal(jrec_parse(z, sizeof z, &r), -1);
	q[3] = 1;                   /* the same with one box is still invalid */
	seal(z, 16);                /* (the box entry is missing) */
	assert_int_equal(jrec_parse(z, sizeof z, &r), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_valid_crc_bad_structure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
