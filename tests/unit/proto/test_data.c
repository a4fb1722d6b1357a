/*
 * DATA decoder tests (RFC 5321 §4.1.1.4, §4.5.2, §2.3.8; CVE-2023-51764).
 * Every case runs under both bare-CR/LF policies and both output forms, and
 * is fed whole, one byte at a time, in every two-piece split and in random
 * splits: all must give the same output, the same counters and the same
 * number of consumed bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "proto/data.h"

struct outcome {
	struct buf out;
	bool       done;
	size_t     used;        /* total consumed */
	struct data_decoder d;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	/* xorshift64: deterministic, no clock (the test must be reproducible). */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Feeds in[0..n) cut at cuts[0..ncuts) (ascending), stopping at the end of
 * the data like a session would.
 */
static void
run(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    enum data_bare_policy pol, bool lf_out, uint64_t max, struct outcome *o)
{
	size_t start = 0;

	buf_init(&o->out);
	o->done = false;
	o->used = 0;
	data_decoder_init(&o->d, pol, lf_out, max);
	for (size_t c = 0; c <= ncuts && !o->done; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		size_t used = 0;

		if (end <= start)
			continue;
		o->done = data_decoder_feed(&o->d, in + start, end - start, &used, &o->out);
		assert_true(used <= end - start);
		if (!o->done)
			assert_int_equal(used, end - start);
		o->used += used;
		start = end;
	}
	assert_int_equal(o->d.wire_octets, o->used);
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->used, b->used);
	assert_int_equal(a->out.len, b->out.len);
	assert_memory_equal(buf_cstr(&a->out), buf_cstr(&b->out), a->out.len);
	assert_int_equal(a->d.size, b->d.size);
	assert_int_equal(a->d.lines, b->d.lines);
	assert_int_equal(a->d.long_lines, b->d.long_lines);
	assert_int_equal(a->d.bare_lf, b->d.bare_lf);
	assert_int_equal(a->d.bare_cr, b->d.bare_cr);
	assert_int_equal(a->d.nul_seen, b->d.nul_seen);
	assert_int_equal(a->d.eightbit, b->d.eightbit);
	assert_int_equal(a->d.overflow, b->d.overflow);
}

/* Runs all chunkings; leaves the whole-input outcome in *whole. */
static void
all_ways(const char *in, size_t n, enum data_bare_policy pol, bool lf_out,
         uint64_t max, struct outcome *whole)
{
	struct outcome o;
	size_t *cuts = malloc((n + 1) * sizeof *cuts);

	assert_non_null(cuts);
	run(in, n, NULL, 0, pol, lf_out, max, whole);

	for (size_t i = 0; i + 1 < n; i++)
		cuts[i] = i + 1;
	run(in, n, cuts, n > 0 ? n - 1 : 0, pol, lf_out, max, &o);
	same(whole, &o);
	buf_free(&o.out);

	for (size_t c = 1; n <= 4096 && c < n; c++) {
		run(in, n, &c, 1, pol, lf_out, max, &o);
		same(whole, &o);
		buf_free(&o.out);
	}

	for (int r = 0; r < 50; r++) {
		size_t k = 0, pos = 0;

		while (n > 0 && k < n) {
			pos += 1 + (size_t)(rng() % (n / 4 + 2));
			if (pos >= n)
				break;
			cuts[k++] = pos;
		}
		run(in, n, cuts, k, pol, lf_out, max, &o);
		same(whole, &o);
		buf_free(&o.out);
	}
	free(cuts);
}

struct data_case {
	const char *in;
	size_t      n;          /* 0: strlen(in) */
	bool        done;
	size_t      used;       /* 0: all of it */
	const char *out;        /* with CRLF line ends */
	size_t      outn;       /* 0: strlen(out) */
	unsigned    lines, bare_lf, bare_cr;
};

static const struct data_case cases[] = {
	/* The DATA command's CRLF is the CRLF before the first line. */
	{ ".\r\n", 0, true, 0, "", 0, 0, 0, 0 },
	{ ".\r\nQUIT\r\n", 0, true, 3, "", 0, 0, 0, 0 },
	{ "a\r\n.\r\n", 0, true, 0, "a\r\n", 0, 1, 0, 0 },
	{ "a\r\n.\r\nQUIT\r\n", 0, true, 6, "a\r\n", 0, 1, 0, 0 },
	{ "\r\n.\r\n", 0, true, 0, "\r\n", 0, 1, 0, 0 },
	{ "Subject: x\r\n\r\nbody\r\n.\r\n", 0, true, 0, "Subject: x\r\n\r\nbody\r\n", 0, 3, 0, 0 },
	/* Dot-unstuffing (§4.5.2). */
	{ "..x\r\n.\r\n", 0, true, 0, ".x\r\n", 0, 1, 0, 0 },
	{ "..\r\n.\r\n", 0, true, 0, ".\r\n", 0, 1, 0, 0 },
	{ "...\r\n.\r\n", 0, true, 0, "..\r\n", 0, 1, 0, 0 },
	{ "a\r\n..\r\n.\r\n", 0, true, 0, "a\r\n.\r\n", 0, 2, 0, 0 },
	{ "a\r\n..\r\n..\r\n.\r\n", 0, true, 0, "a\r\n.\r\n.\r\n", 0, 3, 0, 0 },
	{ ".x\r\n.\r\n", 0, true, 0, "x\r\n", 0, 1, 0, 0 },
	{ "x.\r\n.\r\n", 0, true, 0, "x.\r\n", 0, 1, 0, 0 },
	{ "x\r\n.y.\r\n.\r\n", 0, true, 0, "x\r\ny.\r\n", 0, 2, 0, 0 },
	/* Not yet at the end. */
	{ "", 0, false, 0, "", 0, 0, 0, 0 },
	{ ".", 0, false, 0, "", 0, 0, 0, 0 },
	{ ".\r", 0, false, 0, "", 0, 0, 0, 0 },
	{ "a\r\n.\r", 0, false, 0, "a\r\n", 0, 1, 0, 0 },
	{ "a\r\n.", 0, false, 0, "a\r\n", 0, 1, 0, 0 },
	{ "a\r\n", 0, false, 0, "a\r\n", 0, 1, 0, 0 },
	{ "a", 0, false, 0, "a", 0, 0, 0, 0 },
	/* SMTP smuggling: none of these ends the message (CVE-2023-51764). */
	{ "a\n.\nb\r\n.\r\n", 0, true, 0, "a\r\n\r\nb\r\n", 0, 3, 2, 0 },
	{ "a\n.\r\nb\r\n.\r\n", 0, true, 0, "a\r\n\r\nb\r\n", 0, 3, 1, 0 },
	{ "a\r.\r\nb\r\n.\r\n", 0, true, 0, "a.\r\nb\r\n", 0, 2, 0, 1 },
	{ "a\r\n.\nb\r\n.\r\n", 0, true, 0, "a\r\n\r\nb\r\n", 0, 3, 1, 0 },
	{ "a\n.\n", 0, false, 0, "a\r\n\r\n", 0, 2, 2, 0 },
	{ "a\n.\r\n", 0, false, 0, "a\r\n\r\n", 0, 2, 1, 0 },
	{ "a\r.\r\n", 0, false, 0, "a.\r\n", 0, 1, 0, 1 },
	{ "a\r\n.\n", 0, false, 0, "a\r\n\r\n", 0, 2, 1, 0 },
	{ "\n.\n", 0, false, 0, "\r\n\r\n", 0, 2, 2, 0 },
	{ "\n.\r\n", 0, false, 0, "\r\n\r\n", 0, 2, 1, 0 },
	{ "\r.\r\n", 0, false, 0, ".\r\n", 0, 1, 0, 1 },
	{ ".\n", 0, false, 0, "\r\n", 0, 1, 1, 0 },
	{ ".\rx\r\n", 0, false, 0, "x\r\n", 0, 1, 0, 1 },
	{ ".\r\r\n", 0, false, 0, "\r\n", 0, 1, 0, 1 },
	{ "a\r\n.\r\r\n.\r\n", 0, true, 0, "a\r\n\r\n", 0, 2, 0, 1 },
	{ "a\r\n\r.\r\n.\r\n", 0, true, 0, "a\r\n.\r\n", 0, 2, 0, 1 },
	{ "MAIL FROM:<a@b>\n.\nRCPT TO:<c@d>\r\n.\r\n", 0, true, 0,
	  "MAIL FROM:<a@b>\r\n\r\nRCPT TO:<c@d>\r\n", 0, 3, 2, 0 },
	/* A dot starting a soft line is unstuffed too. */
	{ "a\n..x\r\n.\r\n", 0, true, 0, "a\r\n.x\r\n", 0, 2, 1, 0 },
	/* Bare CR is dropped, bare LF becomes a line end. */
	{ "a\rb\r\n.\r\n", 0, true, 0, "ab\r\n", 0, 1, 0, 1 },
	{ "a\r\r\n.\r\n", 0, true, 0, "a\r\n", 0, 1, 0, 1 },
	{ "a\r\r\r\n.\r\n", 0, true, 0, "a\r\n", 0, 1, 0, 2 },
	{ "a\nb\r\n.\r\n", 0, true, 0, "a\r\nb\r\n", 0, 2, 1, 0 },
	{ "a\n\nb\r\n.\r\n", 0, true, 0, "a\r\n\r\nb\r\n", 0, 3, 2, 0 },
	{ "\r\n\r\n.\r\n", 0, true, 0, "\r\n\r\n", 0, 2, 0, 0 },
	/* NUL and 8-bit go through (flags checked below). */
	{ "a\0b\r\n.\r\n", 8, true, 0, "a\0b\r\n", 5, 1, 0, 0 },
	{ "\xc3\xbc\r\n.\r\n", 0, true, 0, "\xc3\xbc\r\n", 0, 1, 0, 0 },
};

/* The expected output with CRLF turned into LF. */
static char *
to_lf(const char *s, size_t n, size_t *outn)
{
	char *r = malloc(n + 1);
	size_t o = 0;

	assert_non_null(r);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		r[o++] = s[i];
	}
	r[o] = '\0';
	*outn = o;
	return r;
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct data_case *c = &cases[i];
		size_t n = c->n ? c->n : strlen(c->in);
		size_t outn = c->outn ? c->outn : strlen(c->out);

		for (int pol = 0; pol < 2; pol++) {
			for (int lf = 0; lf < 2; lf++) {
				struct outcome w;
				size_t wantn = outn;
				char *want = lf ? to_lf(c->out, outn, &wantn) : NULL;

				all_ways(c->in, n, pol, lf, 0, &w);
				if (w.done != c->done || w.used != (c->used ? c->used : n))
					fail_msg("case %zu: done %d used %zu", i, w.done, w.used);
				assert_int_equal(w.out.len, wantn);
				assert_memory_equal(buf_cstr(&w.out), lf ? want : c->out, wantn);
				assert_int_equal(w.d.lines, c->lines);
				assert_int_equal(w.d.bare_lf, c->bare_lf);
				assert_int_equal(w.d.bare_cr, c->bare_cr);
				/* size counts CRLF line ends whatever the output form. */
				assert_int_equal(w.d.size, outn);
				assert_int_equal(w.d.nul_seen, memchr(c->out, '\0', outn) != NULL);
				assert_int_equal(w.d.eightbit, strchr(c->out, '\xc3') != NULL);
				assert_false(w.d.overflow);
				assert_int_equal(data_decoder_bare_violation(&w.d),
				    pol == DATA_BARE_REJECT && (c->bare_lf || c->bare_cr));
				buf_free(&w.out);
				free(want);
			}
		}
	}
}

static void
test_after_end(void **state)
{
	struct data_decoder d;
	struct buf out = BUF_INIT;
	size_t used;

	(void)state;
	data_decoder_init(&d, DATA_BARE_REJECT, false, 0);
	assert_true(data_decoder_feed(&d, "x\r\n.\r\nRSET\r\n", 12, &used, &out));
	assert_int_equal(used, 6);
	/* The bytes after the end are the next command's; the decoder takes none. */
	assert_true(data_decoder_feed(&d, "RSET\r\n", 6, &used, &out));
	assert_int_equal(used, 0);
	assert_string_equal(buf_cstr(&out), "x\r\n");
	assert_int_equal(d.wire_octets, 6);
	buf_free(&out);
}

/* data_decoder_discard(): nothing more reaches out, decoding goes on to the
 * real end (a "." line inside is stuffed content, not the end), for every
 * split point of the input and with CRLF or LF output. */
static void
test_discard(void **state)
{
	const char *in = "aaaa\r\n..\r\nbb\r\n.\r\nQUIT\r\n";
	const size_t end = 17;   /* octets up to and including CRLF.CRLF */

	(void)state;
	for (int lf = 0; lf < 2; lf++) {
		for (size_t cut = 0; cut <= end; cut++) {
			struct data_decoder d;
			struct buf out = BUF_INIT;
			size_t used = 0;
			data_decoder_init(&d, DATA_BARE_REJECT, lf, 0);
			assert_false(data_decoder_feed(&d, in, cut, &used, &out) && cut < end);
			size_t kept = out.len;
			data_decoder_discard(&d);
			if (cut < end) {
				assert_true(data_decoder_feed(&d, in + cut, strlen(in) - cut, &used, &out));
				assert_int_equal(used, end - cut);
			}
			assert_int_equal(out.len, kept);
			assert_true(d.discard);
			assert_false(d.overflow);
			assert_int_equal(d.wire_octets, end);
			assert_int_equal(d.lines, 3);
			buf_free(&out);
		}
	}
}

static void
test_size_limit(void **state)
{
	const char *in = "aaaa\r\nbbbb\r\n.\r\nQUIT\r\n";
	const struct { uint64_t max; const char *out; bool overflow; } t[] = {
		{ 0,  "aaaa\r\nbbbb\r\n", false },
		{ 12, "aaaa\r\nbbbb\r\n", false },
		{ 11, "aaaa\r\nbbbb", true },      /* a line end goes whole or not at all */
		{ 10, "aaaa\r\nbbbb", true },
		{ 9,  "aaaa\r\nbbb", true },
		{ 6,  "aaaa\r\n", true },
		{ 5,  "aaaa", true },
		{ 1,  "a", true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		for (int lf = 0; lf < 2; lf++) {
			struct outcome w;
			size_t wantn;
			char *want = to_lf(t[i].out, strlen(t[i].out), &wantn);

			all_ways(in, strlen(in), DATA_BARE_REJECT, lf, t[i].max, &w);
			/* Decoding went on to the real end despite the overflow. */
			assert_true(w.done);
			assert_int_equal(w.used, 15);
			assert_int_equal(w.d.size, 12);
			assert_int_equal(w.d.lines, 2);
			assert_int_equal(w.d.overflow, t[i].overflow);
			if (lf) {
				assert_int_equal(w.out.len, wantn);
				assert_memory_equal(buf_cstr(&w.out), want, wantn);
			} else
				assert_string_equal(buf_cstr(&w.out), t[i].out);
			buf_free(&w.out);
			free(want);
		}
	}
}

/* "<text octets of x>" CRLF, repeated, then the end. */
static char *
lines_of(const size_t *lens, size_t nlens, bool stuffed, size_t *n)
{
	size_t total = 3;
	char *s, *p;

	for (size_t i = 0; i < nlens; i++)
		total += lens[i] + 3;
	s = p = malloc(total + 1);
	assert_non_null(s);
	for (size_t i = 0; i < nlens; i++) {
		if (stuffed)
			*p++ = '.';
		memset(p, stuffed ? '.' : 'x', lens[i]);
		p += lens[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	memcpy(p, ".\r\n", 3);
	p += 3;
	*n = (size_t)(p - s);
	return s;
}

static void
test_long_lines(void **state)
{
	/* 998 text octets + CRLF = 1000 is the limit (§4.5.3.1.6). */
	const size_t lens[] = { 998, 999, 0, 5000, 1, 100 * 1024 };
	struct outcome w;
	size_t n;
	char *in;

	(void)state;
	in = lines_of(lens, 6, false, &n);
	all_ways(in, n, DATA_BARE_REJECT, false, 0, &w);
	assert_true(w.done);
	assert_int_equal(w.used, n);
	assert_int_equal(w.d.lines, 6);
	assert_int_equal(w.d.long_lines, 3);
	assert_int_equal(w.d.size, n - 3);
	assert_memory_equal(w.out.data, in, n - 3);
	buf_free(&w.out);
	free(in);

	/* The stuffed dot does not count toward the length. */
	in = lines_of(lens, 2, true, &n);
	all_ways(in, n, DATA_BARE_REJECT, true, 0, &w);
	assert_int_equal(w.d.long_lines, 1);
	assert_int_equal(w.d.size, 998 + 2 + 999 + 2);
	buf_free(&w.out);
	free(in);
}

static void
test_random_content(void **state)
{
	/*
	 * Random content from an alphabet rich in CR, LF and dots, always
	 * closed by the real terminator: the decoder must stop there and
	 * nowhere before, under every chunking.
	 */
	const char alphabet[] = "\r\n.\r\n.a\0";
	char in[300];

	(void)state;
	for (int r = 0; r < 300; r++) {
		size_t len = (size_t)(rng() % 200), n;
		struct outcome w;

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rng() % (sizeof alphabet - 1)];
		/* Keep it free of an earlier CRLF.CRLF by construction: check it. */
		n = len;
		memcpy(in + n, "\r\n.\r\nNEXT", 9);
		n += 9;
		size_t first = 0;
		bool found = false;
		/* The terminator is CRLF "." CRLF, or "." CRLF right at the start. */
		if (n >= 3 && memcmp(in, ".\r\n", 3) == 0) {
			first = 3;
			found = true;
		}
		for (size_t i = 0; !found && i + 5 <= n; i++)
			if (memcmp(in + i, "\r\n.\r\n", 5) == 0) {
				first = i + 5;
				found = true;
			}
		assert_true(found);
		for (int pol = 0; pol < 2; pol++) {
			all_ways(in, n, pol, pol == 1, 0, &w);
			assert_true(w.done);
			assert_int_equal(w.used, first);
			buf_free(&w.out);
		}
	}
}

/* data_strip_header_field: every Return-Path field of the header section
 * goes (RFC 5321 §4.4: the final delivery writes the only one), with its
 * continuation lines; the body and other fields stay byte for byte. */
static void
test_strip_header_field(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
		size_t removed;
	} t[] = {
		{ "Subject: a\n\nbody\n", "Subject: a\n\nbody\n", 0 },
		{ "Return-Path: <x@y>\nSubject: a\n\nb\n", "Subject: a\n\nb\n", 1 },
		{ "return-path:<x@y>\n\nb\n", "\nb\n", 1 },
		{ "RETURN-PATH \t: <x@y>\nA: 1\n", "A: 1\n", 1 },
		{ "A: 1\nReturn-Path: <x@y>\n\t<folded>\n B\nC: 2\n\nReturn-Path: <body>\n",
		  "A: 1\nC: 2\n\nReturn-Path: <body>\n", 1 },
		{ "Return-Path: <a>\nReturn-Path: <b>\nX: 1\nReturn-Path: <c>", "X: 1\n", 3 },
		{ "Return-Paths: <a>\nReturn-Path-X: 1\nReturn-Pat: h\n",
		  "Return-Paths: <a>\nReturn-Path-X: 1\nReturn-Pat: h\n", 0 },
		{ "Return-Path\n\n", "Return-Path\n\n", 0 },
		{ "", "", 0 },
		{ "\nReturn-Path: <body>\n", "\nReturn-Path: <body>\n", 0 },
		/* A line that is neither a field nor a continuation ends the
		 * header section (as Postfix's MIME parser takes it): what
		 * follows is body and stays. */
		{ "Subject: a\nnot a header field\nReturn-Path: <keep>\n\nb\n",
		  "Subject: a\nnot a header field\nReturn-Path: <keep>\n\nb\n", 0 },
		{ "Hello there\nReturn-Path: <a@b>\n\nx\n", "Hello there\nReturn-Path: <a@b>\n\nx\n", 0 },
		{ ": empty name\nReturn-Path: <a>\n", ": empty name\nReturn-Path: <a>\n", 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t len = strlen(t[i].in);
		char *m = malloc(len + 1);
		memcpy(m, t[i].in, len + 1);
		size_t n = data_strip_header_field(m, &len, "Return-Path");
		assert_int_equal(n, t[i].removed);
		assert_int_equal(len, strlen(t[i].out));
		assert_memory_equal(m, t[i].out, len);
		free(m);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_strip_header_field),
		cmocka_unit_test(test_after_end),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_discard),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_random_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
