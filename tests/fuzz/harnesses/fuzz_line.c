/*
 * Fuzz the command-line tokenizer. Byte 0 picks the line limit (and, by its
 * top bit, lf_ends_line: normalize), byte 1 the chunk size; the rest is
 * the stream. With lf_ends_line, no line ending in LF is LR_BARE_LF. Invariants: the same transcript of
 * results whatever the chunking; one result per LF in the input; *used
 * never exceeds what was offered and is all of it on LR_NEED_MORE; the
 * reader never keeps more than limit - 2 octets; a good line has no CR, LF
 * or NUL and fits the limit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "proto/line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct line_reader lr;

static size_t
run(const char *in, size_t n, size_t limit, size_t chunk, bool lf_ok, struct buf *t)
{
	size_t off = 0, results = 0;

	line_reader_init(&lr, limit);
	lr.lf_ends_line = lf_ok;
	while (off < n) {
		size_t len = n - off < chunk ? n - off : chunk;
		size_t used = 0, linelen = 0;
		const char *line = NULL;
		enum lr_result r = line_reader_feed(&lr, in + off, len, &used, &line, &linelen);

		if (used == 0 || used > len || lr.len > limit - 2)
			abort();
		if (r == LR_NEED_MORE && used != len)
			abort();
		if (r != LR_NEED_MORE) {
			results++;
			buf_append_char(t, (char)('0' + r));
			if (in[off + used - 1] != '\n')
				abort();
			if (lf_ok && r == LR_BARE_LF)
				abort();
		}
		if (r == LR_LINE) {
			if (linelen > limit - 2 || (line[linelen] != '\0' && line[linelen] != '\r') ||
			    memchr(line, '\0', linelen) || memchr(line, '\r', linelen) ||
			    memchr(line, '\n', linelen))
				abort();
			buf_append(t, line, linelen);
			buf_append_char(t, '\n');
		} else if (r != LR_NEED_MORE && line != NULL)
			abort();
		off += used;
	}
	line_reader_free(&lr);
	return results;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 3, 4, 16, SMTP_CMD_LINE_MAX, LINE_READER_MAX };
	struct buf a = BUF_INIT, b = BUF_INIT;
	size_t limit, chunk, lfs = 0;
	const char *in;

	if (size < 2)
		return 0;
	limit = limits[(data[0] & 0x7f) % (sizeof limits / sizeof limits[0])];
	bool lf_ok = (data[0] & 0x80) != 0;
	chunk = 1 + data[1] % 64;
	in = (const char *)data + 2;
	size -= 2;
	for (size_t i = 0; i < size; i++)
		lfs += in[i] == '\n';

	if (run(in, size, limit, size, lf_ok, &a) != lfs)
		abort();
	if (run(in, size, limit, chunk, lf_ok, &b) != lfs)
		abort();
	if (a.len != b.len || memcmp(buf_cstr(&a), buf_cstr(&b), a.len) != 0)
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
