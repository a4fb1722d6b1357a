/*
 * Command-line tokenizer: splits the input stream into CRLF-terminated lines
 * without ever holding more than lr->limit octets of one line.
 *
 * The input is cut at each LF with memchr; the octets before it are the
 * line's text, except a CR right before the LF, which is the terminator.
 * A CR at the very end of a chunk is held back (LR_PENDING_CR) until the
 * next octet shows whether it pairs with an LF: that is how a CRLF split
 * across two reads is still one terminator. Problems (too long, NUL, bare
 * CR) only set bits while the line runs; the verdict is given at its LF, so
 * the session answers each bad line exactly once and stays in sync.
 */
#include "proto/line.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"

#define LR_PENDING_CR 0x01u   /* last octet seen was a CR, not yet resolved */
#define LR_F_TOO_LONG 0x02u
#define LR_F_NUL      0x04u
#define LR_F_BARE_CR  0x08u
#define LR_F_RELEASE  0x10u   /* buf held the last line: free it next call */

void
line_reader_init(struct line_reader *lr, size_t limit)
{
	/* A limit must leave room for at least one octet of text plus CRLF. */
	assert(limit >= 3 && limit <= LINE_READER_MAX);
	lr->limit = limit;
	lr->buf = NULL;
	lr->lf_ends_line = false;
	line_reader_reset(lr);
}

void
line_reader_reset(struct line_reader *lr)
{
	lr->len = 0;
	lr->seen = 0;
	lr->flags = 0;
	x_free(&lr->buf);
}

void
line_reader_free(struct line_reader *lr)
{
	x_free(&lr->buf);
}

bool
line_reader_partial(const struct line_reader *lr)
{
	return lr->seen > 0 || (lr->flags & LR_PENDING_CR) != 0;
}

/*
 * Adds text octets of the current line. Only limit-2 octets are ever kept
 * (the CRLF takes the other two); past that the line is marked too long and
 * the rest is merely counted.
 */
static void
add_text(struct line_reader *lr, const char *p, size_t k)
{
	size_t room = lr->limit - 2;

	if (k == 0)
		return;
	if (memchr(p, '\0', k) != NULL)
		lr->flags |= LR_F_NUL;
	if (memchr(p, '\r', k) != NULL)
		lr->flags |= LR_F_BARE_CR;
	lr->seen = k > SIZE_MAX - lr->seen ? SIZE_MAX : lr->seen + k;
	if (lr->flags & LR_F_TOO_LONG)
		return;
	if (k > room - lr->len) {
		lr->flags |= LR_F_TOO_LONG;
		return;
	}
	if (lr->buf == NULL)
		lr->buf = xmalloc(lr->limit);
	memcpy(lr->buf + lr->len, p, k);
	lr->len += k;
}

/*
 * The current line has ended (crlf tells how). Gives the verdict and starts
 * a new line; the text stays in lr->buf until the next feed overwrites it.
 */
static enum lr_result
finish(struct line_reader *lr, bool crlf, const char **line, size_t *linelen)
{
	unsigned f = lr->flags;
	size_t len = lr->len;

	bool lf_ok = !crlf && lr->lf_ends_line;

	lr->len = 0;
	lr->seen = 0;
	lr->flags = 0;
	lr->bare_lf = false;
	if (f & (LR_F_TOO_LONG | LR_F_NUL) || (!crlf && !lf_ok) || (f & LR_F_BARE_CR))
		x_free(&lr->buf);   /* no line is returned from it */
	if (f & LR_F_TOO_LONG)
		return LR_TOO_LONG;
	if (f & LR_F_NUL)
		return LR_NUL;
	if (!crlf && !lf_ok)
		return LR_BARE_LF;
	if (f & LR_F_BARE_CR)
		return LR_BARE_CR;
	if (lr->buf == NULL)
		lr->buf = xmalloc(lr->limit);   /* an empty line gathered across chunks */
	lr->buf[len] = '\0';
	*line = lr->buf;
	*linelen = len;
	lr->flags |= LR_F_RELEASE;
	lr->bare_lf = !crlf;
	return LR_LINE;
}

enum lr_result
line_reader_feed(struct line_reader *lr, const char *in, size_t n,
                 size_t *used, const char **line, size_t *linelen)
{
	*line = NULL;
	*linelen = 0;
	if (lr->flags & LR_F_RELEASE) {
		/* The caller is done with the previous line. */
		lr->flags &= ~LR_F_RELEASE;
		x_free(&lr->buf);
	}
	if (n == 0) {
		*used = 0;
		return LR_NEED_MORE;
	}

	/* Resolve a CR held back from the previous chunk. */
	if (lr->flags & LR_PENDING_CR) {
		lr->flags &= ~LR_PENDING_CR;
		if (in[0] == '\n') {
			*used = 1;
			return finish(lr, true, line, linelen);
		}
		/* It was a bare CR: it belongs to the text. */
		add_text(lr, "\r", 1);
	}

	const char *lf = memchr(in, '\n', n);
	size_t end = lf != NULL ? (size_t)(lf - in) : n;   /* text is in[0..end) */
	bool cr_before = end > 0 && in[end - 1] == '\r';

	if (lf == NULL) {
		/* No line end yet: keep the text, hold back a trailing CR. */
		if (cr_before) {
			add_text(lr, in, end - 1);
			lr->flags |= LR_PENDING_CR;
		} else
			add_text(lr, in, end);
		*used = n;
		return LR_NEED_MORE;
	}
	size_t text = cr_before ? end - 1 : end;
	*used = end + 1;
	if (lr->len == 0 && lr->seen == 0 && lr->flags == 0 && cr_before &&
	    text <= lr->limit - 2 && memchr(in, '\0', text) == NULL &&
	    memchr(in, '\r', text) == NULL) {
		/* The common case: a whole good line in this chunk, no copy. */
		*line = in;
		*linelen = text;
		lr->bare_lf = false;
		return LR_LINE;
	}
	add_text(lr, in, text);
	return finish(lr, cr_before, line, linelen);
}
