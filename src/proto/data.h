/*
 * DATA content decoder (pure, resumable): dot-unstuffing and the end of
 * data, RFC 5321 §4.1.1.4 and §4.5.2.
 *
 * The message ends ONLY at CRLF "." CRLF (the CRLF before the dot being the
 * end of the previous line, or the DATA command's own CRLF for an empty
 * message). Every other combination — "\n.\n", "\n.\r\n", "\r.\r\n",
 * "\r\n.\n" — is not an end, which is what defeats SMTP smuggling
 * (CVE-2023-51764).
 *
 * Bare CR or LF inside the content (RFC 5321 §2.3.8) are decoded the same
 * way under both policies; the policy only decides what
 * data_decoder_bare_violation() says:
 *   DATA_BARE_REJECT    (default) keep reading to the real end, then report
 *                       a violation so the caller answers 5xx; nothing of the
 *                       message is delivered.
 *   DATA_BARE_NORMALIZE the decoded content below is delivered.
 * The exact rules:
 *   - CRLF ends a line and starts a "hard" line.
 *   - A bare LF (not preceded by CR) ends a line too (a normal line end is
 *     emitted, bare_lf counted) and starts a "soft" line.
 *   - A bare CR (not followed by LF) is dropped and counted in bare_cr; the
 *     line it was in goes on (so a line starting with a bare CR has begun,
 *     and a dot after it is ordinary text).
 *   - A "." as the first octet of any line, hard or soft, is removed
 *     (dot-unstuffing, §4.5.2), including a "." alone before a bare line
 *     end (a conforming client would have sent ".."), except:
 *   - A hard line consisting of "." CRLF is the end of the data; a soft line
 *     never is. So the message ends ONLY at CRLF "." CRLF, and "\n.\n",
 *     "\n.\r\n", "\r.\r\n", "\r\n.\n" all decode as content.
 * Once the end has been consumed, further calls return true with *used == 0;
 * call data_decoder_init() again for the next message.
 *
 * Output: the unstuffed content is appended to `out` with line ends written
 * as "\n" (lf_out, for Maildir) or "\r\n". Once the content exceeds
 * max_size octets (counted on the unstuffed content with CRLF line ends),
 * `overflow` is set and out holds exactly the content that fit (text cut at
 * the limit, a line end only whole; independent of how the input was
 * chunked), nothing more is appended, but decoding continues to
 * the end so that the session stays in sync (552 5.3.4 comes after the end).
 * Text lines longer than SMTP_TEXT_LINE_MAX (1000 incl. CRLF, §4.5.3.1.6)
 * are kept unchanged and counted in long_lines; the caller decides.
 */
#ifndef EHLO_PROTO_DATA_H
#define EHLO_PROTO_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SMTP_TEXT_LINE_MAX 1000

enum data_bare_policy { DATA_BARE_REJECT = 0, DATA_BARE_NORMALIZE };

struct data_decoder {
	/* configuration, set by data_decoder_init */
	enum data_bare_policy policy;
	bool     lf_out;
	uint64_t max_size;            /* 0 = no limit */
	/* results */
	uint64_t size;                /* unstuffed size, CRLF line ends, even past max */
	uint64_t wire_octets;         /* octets consumed, including the terminator */
	uint64_t lines;
	uint64_t long_lines;          /* lines over SMTP_TEXT_LINE_MAX */
	uint64_t bare_lf, bare_cr;    /* counts of bare line-end characters */
	bool     nul_seen;            /* a NUL octet in the content */
	bool     eightbit;            /* an octet >= 0x80 in the content */
	bool     overflow;            /* size > max_size */
	bool     discard;             /* data_decoder_discard() was called */
	/* private state */
	int      state;
	size_t   line_len;
};

void data_decoder_init(struct data_decoder *d, enum data_bare_policy policy,
                       bool lf_out, uint64_t max_size);

/*
 * Consume in[0..n). Returns true when the terminating CRLF.CRLF has been
 * consumed; *used is then the number of bytes up to and including it (the
 * rest belongs to the next command, PIPELINING). Returns false with *used == n
 * when more input is needed.
 */
bool data_decoder_feed(struct data_decoder *d, const char *in, size_t n,
                       size_t *used, struct buf *out);

/*
 * From now on append nothing more to out, but go on decoding to the end of
 * the message, so that the session stays in sync. For the caller that has
 * to refuse the message for a reason of its own (no room to hold it) and
 * has already released out.
 */
void data_decoder_discard(struct data_decoder *d);

/* True if the message must be refused under the bare-CR/LF policy. */
bool data_decoder_bare_violation(const struct data_decoder *d);

/*
 * Removes from the header section of msg[0..*len) (LF line ends; the
 * section ends at the first empty line) every field named name, compared
 * case-insensitively, white space before the colon allowed (RFC 5322 §4.5
 * obsolete syntax, which a reader may still honour), each with its
 * continuation lines, in place. Returns how many were removed and updates
 * *len. For fields only the receiving server may write: Return-Path, which
 * RFC 5321 §4.4 has the final delivery insert, so one from the client
 * would be taken for ours.
 */
size_t data_strip_header_field(char *msg, size_t *len, const char *name);

/*
 * The walk behind it: removes every header field f of msg[0..*len) (with
 * its continuation lines, LF line ends) for which drop(f, flen, arg) is
 * true, in place; returns how many and updates *len. The header section
 * ends at the first empty line, or at the first line that is neither a
 * field (a name of printable ASCII, optional white space, a colon: RFC
 * 5322 §2.2, §4.5) nor a continuation: such a line begins the body, as
 * Postfix's MIME parser takes it, and nothing after it is touched.
 */
size_t data_strip_fields(char *msg, size_t *len,
    bool (*drop)(const char *f, size_t flen, void *arg), void *arg);

#endif
