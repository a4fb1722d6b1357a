/*
 * Fuzz the DATA decoder. Byte 0 picks policy, output form and size limit,
 * byte 1 a cut point; the rest is the stream after the DATA command.
 * Invariants: whole, in two pieces and byte by byte give identical output,
 * counters and consumption; the data ends exactly after the first
 * CRLF "." CRLF (or a leading "." CRLF) and never elsewhere; the output has
 * no bare CR or LF (no CR at all in LF form); size matches the output when
 * nothing overflowed. data_decoder_discard() at the cut point changes
 * where nothing ends and what is counted, only what reaches the output: a
 * prefix of the whole run's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "proto/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	struct buf out;
	bool done;
	size_t used;
	struct data_decoder d;
};

static void
run(const char *in, size_t n, size_t step, size_t cut, unsigned cfg, struct result *r,
    bool discard_at_cut)
{
	static const uint64_t maxes[] = { 0, 1, 7, 64 };
	size_t off = 0;

	buf_init(&r->out);
	r->done = false;
	r->used = 0;
	data_decoder_init(&r->d, (cfg & 1) ? DATA_BARE_NORMALIZE : DATA_BARE_REJECT,
	    (cfg & 2) != 0, maxes[(cfg >> 2) & 3]);
	while (off < n && !r->done) {
		size_t len = n - off;
		size_t used = SIZE_MAX;

		if (step != 0 && len > step)
			len = step;
		if (cut != 0 && off < cut && off + len > cut)
			len = cut - off;
		if (discard_at_cut && off == cut)
			data_decoder_discard(&r->d);
		r->done = data_decoder_feed(&r->d, in + off, len, &used, &r->out);
		if (used > len || (!r->done && used != len))
			abort();
		off += used;
	}
	r->used = off;
	if (r->d.wire_octets != off)
		abort();
}

static void
same(const struct result *a, const struct result *b)
{
	if (a->done != b->done || a->used != b->used || a->out.len != b->out.len ||
	    memcmp(buf_cstr(&a->out), buf_cstr(&b->out), a->out.len) != 0 ||
	    a->d.size != b->d.size || a->d.lines != b->d.lines ||
	    a->d.long_lines != b->d.long_lines || a->d.bare_lf != b->d.bare_lf ||
	    a->d.bare_cr != b->d.bare_cr || a->d.nul_seen != b->d.nul_seen ||
	    a->d.eightbit != b->d.eightbit || a->d.overflow != b->d.overflow)
		abort();
}

/* Where the data must end: after the first CRLF.CRLF, or 0 if it does not. */
static size_t
expected_end(const char *in, size_t n)
{
	if (n >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, two, bytes, dropped;
	const char *in;
	unsigned cfg;
	size_t n, cut, want;

	if (size < 2)
		return 0;
	cfg = data[0];
	in = (const char *)data + 2;
	n = size - 2;
	cut = n ? data[1] % n : 0;

	run(in, n, 0, 0, cfg, &whole, false);
	run(in, n, 0, cut, cfg, &two, false);
	run(in, n, 1, 0, cfg, &bytes, false);
	run(in, n, 0, cut, cfg, &dropped, true);
	same(&whole, &two);
	same(&whole, &bytes);
	if (dropped.done != whole.done || dropped.used != whole.used ||
	    dropped.d.size != whole.d.size || dropped.d.lines != whole.d.lines ||
	    (dropped.d.overflow && !whole.d.overflow) ||
	    dropped.out.len > whole.out.len ||
	    memcmp(buf_cstr(&dropped.out), buf_cstr(&whole.out), dropped.out.len) != 0)
		abort();

	want = expected_end(in, n);
	if (whole.done != (want != 0) || (whole.done && whole.used != want))
		abort();

	const char *o = buf_cstr(&whole.out);
	for (size_t i = 0; i < whole.out.len; i++) {
		if (o[i] == '\r' && (whole.d.lf_out || i + 1 >= whole.out.len || o[i + 1] != '\n'))
			abort();
		if (o[i] == '\n' && !whole.d.lf_out && (i == 0 || o[i - 1] != '\r'))
			abort();
	}
	if (!whole.d.overflow) {
		uint64_t expect = whole.out.len + (whole.d.lf_out ? whole.d.lines : 0);
		if (whole.d.size != expect)
			abort();
	} else if (whole.out.len > whole.d.max_size)
		abort();
	if (data_decoder_bare_violation(&whole.d) !=
	    (whole.d.policy == DATA_BARE_REJECT && (whole.d.bare_lf || whole.d.bare_cr)))
		abort();

	buf_free(&whole.out);
	buf_free(&two.out);
	buf_free(&bytes.out);
	buf_free(&dropped.out);
	return 0;
}
