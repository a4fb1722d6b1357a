/*
 * Command-line tokenizer (pure, resumable; STYLE.md lessons 1 and 6).
 *
 * RFC 5321 §2.3.8: the only line terminator is CRLF. §4.5.3.1.4: a command
 * line is at most 512 octets including the CRLF, more where an extension
 * says so (the server gives the reader the longest any command may have in
 * the session and checks each verb's own limit on the whole line). The
 * reader enforces its cap before the newline arrives, so a peer cannot make it buffer more than
 * `limit` bytes: an over-long line is consumed (discarded) up to its end and
 * reported once as LR_TOO_LONG.
 *
 * Errors are reported only when the offending line ends, so the session stays
 * in sync with the client: one error reply per bad line.
 *   LR_TOO_LONG  line longer than limit (limit counts the CRLF, so the
 *                text may be at most limit - 2 octets)
 *   LR_NUL       line contained a NUL byte
 *   LR_BARE_LF   line ended in LF without CR (the LF ends the bad line)
 *   LR_BARE_CR   line contained a CR not followed by LF
 * When several apply, LR_TOO_LONG wins, then LR_NUL, then LR_BARE_LF, then
 * LR_BARE_CR. Every LF ends a line, so after any result the next octet
 * starts a new line.
 *
 * With lf_ends_line set (smtpd_forbid_bare_newline = normalize, as
 * Postfix's), a line ended by a bare LF is a good line (LR_LINE, with
 * bare_lf set) instead of LR_BARE_LF; a bare CR inside a line is still
 * LR_BARE_CR.
 */
#ifndef EHLO_PROTO_LINE_H
#define EHLO_PROTO_LINE_H

#include <stddef.h>
#include <stdbool.h>

#define SMTP_CMD_LINE_MAX 512          /* RFC 5321 §4.5.3.1.4, includes CRLF; extensions
                                          add room to MAIL and RCPT (params.h) */
#define LINE_READER_MAX   12288        /* largest limit we allow (AUTH, RFC 4954 §4) */

enum lr_result {
	LR_NEED_MORE = 0,   /* all input consumed, no complete line yet */
	LR_LINE,            /* a complete good line: *line / *linelen (no CRLF) */
	LR_TOO_LONG,
	LR_NUL,
	LR_BARE_LF,
	LR_BARE_CR,
};

/*
 * Memory: a line that arrives whole in one chunk is returned in place, with
 * no copy; only a line split across chunks is gathered in buf, which is
 * allocated then (limit octets) and released at the next call. An idle
 * session therefore holds no line buffer (a server keeps 10,000s of them).
 */
struct line_reader {
	size_t limit;                  /* max octets incl. CRLF; <= LINE_READER_MAX */
	size_t len;                    /* octets of the current line kept in buf */
	size_t seen;                   /* octets of the current line seen (incl. discarded) */
	unsigned flags;                /* private: pending CR, error bits */
	bool   lf_ends_line;           /* a bare LF ends a good line (normalize) */
	bool   bare_lf;                /* the last LR_LINE ended in a bare LF */
	char  *buf;                    /* partial line (heap), or NULL */
};

void line_reader_init(struct line_reader *lr, size_t limit);
/* Releases the partial-line buffer. */
void line_reader_free(struct line_reader *lr);
/* Forget any partial line (used after STARTTLS: CVE-2011-0411). */
void line_reader_reset(struct line_reader *lr);

/* True if part of a line has been consumed and its end has not. */
bool line_reader_partial(const struct line_reader *lr);

/*
 * Consume input from in[0..n). Stops right after the first line end (good or
 * bad) so that the caller can act on one command at a time: *used says how
 * many bytes were consumed. On LR_LINE, *line points to the line's text,
 * either inside `in` or inside lr, valid until the next call or until the
 * input is released, of length *linelen, CRLF removed. It is NOT
 * NUL-terminated: use *linelen.
 * On LR_NEED_MORE, *used == n.
 */
enum lr_result line_reader_feed(struct line_reader *lr, const char *in, size_t n,
                                size_t *used, const char **line, size_t *linelen);

#endif
