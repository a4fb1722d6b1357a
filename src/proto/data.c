/*
 * DATA decoder: a small state machine whose only hot state, S_TEXT, works a
 * line at a time: memchr finds the next LF, a second memchr the first CR
 * before it, and the octets in between are checked (NUL, 8-bit) a word at a
 * time and appended with one copy. The per-octet states only look at the
 * first octet of a line (a possible dot) and at what follows a CR.
 *
 * States (one octet of look-behind, so any chunking gives the same result):
 *   S_BOL_HARD  at the start of a line begun by CRLF (or by the DATA command)
 *   S_BOL_SOFT  at the start of a line begun by a bare LF: a dot here is
 *               unstuffed, but this line can never be the terminator
 *   S_TEXT      inside a line
 *   S_CR        a CR was seen inside a line, LF or not is still unknown
 *   S_DOT       "." at S_BOL_HARD (dropped; the terminator if CRLF follows)
 *   S_DOT_CR    "." CR at S_BOL_HARD
 *   S_DONE      the terminator has been consumed
 * Only S_DOT_CR followed by LF ends the message, and S_DOT is only entered
 * from S_BOL_HARD, which only CRLF (or the start) enters: that is the whole
 * SMTP-smuggling defence (CVE-2023-51764).
 */
#include "proto/data.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

enum {
	S_BOL_HARD = 0,
	S_BOL_SOFT,
	S_TEXT,
	S_CR,
	S_DOT,
	S_DOT_CR,
	S_DONE,
};

/* Longest line text (without its CRLF) that is not a long line. */
#define TEXT_MAX (SMTP_TEXT_LINE_MAX - 2)

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

void
data_decoder_init(struct data_decoder *d, enum data_bare_policy policy,
                  bool lf_out, uint64_t max_size)
{
	memset(d, 0, sizeof *d);
	d->policy = policy;
	d->lf_out = lf_out;
	d->max_size = max_size;
	d->state = S_BOL_HARD;
}

void
data_decoder_discard(struct data_decoder *d)
{
	d->discard = true;
}

bool
data_decoder_bare_violation(const struct data_decoder *d)
{
	return d->policy == DATA_BARE_REJECT && (d->bare_lf > 0 || d->bare_cr > 0);
}

/* Sets nul_seen and eightbit from p[0..k), a word at a time. */
static void
scan_flags(struct data_decoder *d, const unsigned char *p, size_t k)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t any = 0, zero = 0;
	size_t i = 0;

	if (d->nul_seen && d->eightbit)
		return;
	for (; i + 8 <= k; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		any |= w;
		zero |= (w - ones) & ~w & highs;   /* nonzero iff w has a 0 octet */
	}
	for (; i < k; i++) {
		any |= p[i];
		if (p[i] == 0)
			zero = 1;
	}
	if (any & highs)
		d->eightbit = true;
	if (zero)
		d->nul_seen = true;
}

/*
 * buf_append with the room check inlined: this runs once or twice per line
 * of every message, and the out-of-line call was a third of the decoder's
 * time. Growth still goes through buf_reserve (checked arithmetic).
 */
static inline void
put(struct buf *b, const char *p, size_t k)
{
	if (k >= b->cap - b->len)
		buf_reserve(b, k);
	memcpy(b->data + b->len, p, k);
	b->len += k;
	b->data[b->len] = '\0';
}

/*
 * Output under the size limit: while the content still fits, size <=
 * max_size. The text octet or line end that first makes it exceed sets
 * overflow; text is appended up to the exact limit, a line end only whole.
 * So what reaches out depends on the content alone, never on how the input
 * was cut into chunks.
 */
static void
emit_text(struct data_decoder *d, const char *p, size_t k, struct buf *out)
{
	if (!d->overflow && !d->discard) {
		if (d->max_size != 0 && k > d->max_size - d->size) {
			put(out, p, (size_t)(d->max_size - d->size));
			d->overflow = true;
		} else
			put(out, p, k);
	}
	d->size = sat_add(d->size, k);
}

/* Counters for octets of line text p[0..k). */
static void
account(struct data_decoder *d, const char *p, size_t k)
{
	size_t old = d->line_len;

	scan_flags(d, (const unsigned char *)p, k);
	d->line_len = k > SIZE_MAX - old ? SIZE_MAX : old + k;
	if (old <= TEXT_MAX && d->line_len > TEXT_MAX)
		d->long_lines++;
}

/* Octets of line text (no CR, no LF) p[0..k). */
static void
text(struct data_decoder *d, const char *p, size_t k, struct buf *out)
{
	if (k == 0)
		return;
	account(d, p, k);
	emit_text(d, p, k, out);
}

/* The current line ends (CRLF, or a normalised bare LF); it counts as CRLF. */
static void
line_end(struct data_decoder *d, struct buf *out)
{
	d->lines++;
	d->line_len = 0;
	if (!d->overflow && !d->discard) {
		if (d->max_size != 0 && d->max_size - d->size < 2)
			d->overflow = true;
		else if (d->lf_out)
			put(out, "\n", 1);
		else
			put(out, "\r\n", 2);
	}
	d->size = sat_add(d->size, 2);
}

/* Text p[0..k) followed by the CRLF at p[k..k+2): the common line. */
static void
text_crlf(struct data_decoder *d, const char *p, size_t k, struct buf *out)
{
	if (d->lf_out || d->overflow || d->discard ||
	    (d->max_size != 0 && k + 2 > d->max_size - d->size)) {
		text(d, p, k, out);
		line_end(d, out);
		return;
	}
	/* CRLF out and it all fits: one copy, input line end included. */
	account(d, p, k);
	d->lines++;
	d->line_len = 0;
	put(out, p, k + 2);
	d->size = sat_add(d->size, k + 2);
}

bool
data_decoder_feed(struct data_decoder *d, const char *in, size_t n,
                  size_t *used, struct buf *out)
{
	size_t i = 0;

	if (d->state == S_DONE) {
		*used = 0;
		return true;
	}
	while (i < n) {
		switch (d->state) {
		case S_TEXT:
			for (;;) {
				const char *base = in + i;
				const char *lf = memchr(base, '\n', n - i);
				size_t seg = lf != NULL ? (size_t)(lf - base) : n - i;
				const char *cr = memchr(base, '\r', seg);
				size_t run = cr != NULL ? (size_t)(cr - base) : seg;

				if (cr != NULL && cr + 1 == lf) {
					/* The common case: text CRLF. */
					text_crlf(d, base, run, out);
					i += run + 2;
					if (i < n && in[i] != '.')
						continue;
					d->state = S_BOL_HARD;
					break;
				}
				text(d, base, run, out);
				i += run;
				if (cr != NULL) {
					i++;
					d->state = S_CR;
				} else if (lf != NULL) {
					/* RFC 5321 §2.3.8: a bare LF is not a line end; see data.h */
					i++;
					d->bare_lf++;
					line_end(d, out);
					d->state = S_BOL_SOFT;
				}
				break;
			}
			break;
		case S_CR:
			if (in[i] == '\n') {
				i++;
				line_end(d, out);
				d->state = S_BOL_HARD;
			} else {
				/* A bare CR is dropped; the line goes on. */
				d->bare_cr++;
				d->state = S_TEXT;
			}
			break;
		case S_BOL_HARD:
			if (in[i] == '.') {
				i++;
				d->state = S_DOT;
			} else
				d->state = S_TEXT;
			break;
		case S_BOL_SOFT:
			if (in[i] == '.')
				i++;                    /* unstuffed, never an end */
			d->state = S_TEXT;
			break;
		case S_DOT:
			if (in[i] == '\r') {
				i++;
				d->state = S_DOT_CR;
			} else
				d->state = S_TEXT;      /* the dot stays dropped */
			break;
		case S_DOT_CR:
			if (in[i] == '\n') {
				i++;
				d->state = S_DONE;
				d->wire_octets = sat_add(d->wire_octets, i);
				*used = i;
				return true;
			}
			d->bare_cr++;
			d->state = S_TEXT;
			break;
		default:
			abort();
		}
	}
	d->wire_octets = sat_add(d->wire_octets, n);
	*used = n;
	return false;
}

/* Does the field at p[0..n) have the name name (RFC 5322 §2.2, §4.5)? */
static bool
field_named(const char *p, size_t n, const char *name)
{
	size_t nl = strlen(name);
	if (n <= nl || !ascii_iprefix(p, n, name))
		return false;
	size_t i = nl;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

/* Does p[0..n) begin with a field name and its colon? */
static bool
is_field(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (unsigned char)p[i] > ' ' && (unsigned char)p[i] < 0x7f && p[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

static bool
named(const char *f, size_t flen, void *arg)
{
	return field_named(f, flen, arg);
}

size_t
data_strip_header_field(char *msg, size_t *len, const char *name)
{
	return data_strip_fields(msg, len, named, (void *)name);
}

size_t
data_strip_fields(char *msg, size_t *len, bool (*drop)(const char *f, size_t flen, void *arg),
    void *arg)
{
	size_t n = *len, r = 0, w = 0, removed = 0;
	while (r < n && msg[r] != '\n' && is_field(msg + r, n - r)) {
		/* One field: this line and its continuation lines. */
		size_t end = r;
		for (;;) {
			const char *lf = memchr(msg + end, '\n', n - end);
			end = lf ? (size_t)(lf - msg) + 1 : n;
			if (end >= n || (msg[end] != ' ' && msg[end] != '\t'))
				break;
		}
		if (drop(msg + r, end - r, arg)) {
			removed++;
		} else {
			if (w != r)
				memmove(msg + w, msg + r, end - r);
			w += end - r;
		}
		r = end;
	}
	if (w != r)
		memmove(msg + w, msg + r, n - r);
	*len = w + (n - r);
	return removed;
}
