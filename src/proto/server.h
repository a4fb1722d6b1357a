/*
 * The SMTP server state machine (pure, I/O-free; STYLE.md lessons 1-5).
 *
 * Bytes go in through smtp_server_feed(); replies accumulate in s->out, and
 * whenever the machine needs something only the session can do (a policy or
 * mailbox decision, delivering a message, starting TLS, closing) feed()
 * stops and returns an event. The session performs it and answers with
 * smtp_server_resolve() (or smtp_server_tls_started()), then feeds the rest
 * of its input. The machine never blocks, never reads a socket, never looks
 * at the clock.
 *
 * Output contract (RFC 2920 §3.2): replies are produced strictly in command
 * order. The session writes s->out in one piece when feed() has consumed all
 * available input (the "input buffer emptied" rule), so a pipelined group
 * gets one write — and, over TLS, one record (STACK.md §2.1 trap 2).
 *
 * Event contract: after feed() returns an event other than SRV_EV_NONE the
 * machine consumes no more input until the event is resolved; feeding in that
 * state is an assertion failure. "Failed without a reply" cannot happen: every
 * event is answered by exactly one resolve() which emits exactly one reply
 * (RFC 5321 §4.2: every command generates exactly one reply).
 */
#ifndef EHLO_PROTO_SERVER_H
#define EHLO_PROTO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "proto/data.h"
#include "proto/line.h"
#include "proto/params.h"
#include "proto/path.h"

/* Commands, in the order of the command table and of the disconnect log line. */
enum smtp_cmd {
	CMD_EHLO, CMD_HELO, CMD_STARTTLS, CMD_AUTH, CMD_MAIL, CMD_RCPT, CMD_DATA,
	CMD_BDAT, CMD_RSET, CMD_NOOP, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_QUIT,
	CMD_UNKNOWN, CMD_COUNT
};

enum smtp_state {
	SS_INIT,          /* greeting sent, no HELO/EHLO yet (also after STARTTLS) */
	SS_READY,         /* HELO/EHLO accepted, no transaction */
	SS_MAIL,          /* MAIL accepted */
	SS_RCPT,          /* at least one RCPT accepted */
	SS_DATA,          /* reading DATA content */
	SS_BDAT,          /* reading a BDAT chunk */
	SS_TLS,           /* 220 to STARTTLS sent; waiting for the handshake */
	SS_CLOSED,        /* QUIT or 421: nothing more is read */
};

enum smtp_event {
	SRV_EV_NONE = 0,  /* all input consumed; flush s->out and wait for more */
	SRV_EV_HELO,      /* decide on s->helo_pending (resolve 250 = accept) */
	SRV_EV_MAIL,      /* decide on s->tx->mail / s->tx->mp */
	SRV_EV_RCPT,      /* decide on s->rcpt_pending / s->rcpt_params_pending */
	SRV_EV_MESSAGE,   /* deliver: smtp_server_message() gives the content */
	SRV_EV_STARTTLS,  /* "220 Ready" is in s->out: flush it, discard the rest of
	                     the input (CVE-2011-0411), handshake, then
	                     smtp_server_tls_started() */
	SRV_EV_CLOSE,     /* s->out holds the last reply (221 or 421): flush, close */
};

/* Per-session settings, copied in at creation; the session derives them from
 * the configuration and the listener. */
struct smtp_server_opts {
	const char *hostname;         /* our name, first word of the EHLO reply */
	const char *greeting;         /* text after "220 " ("host ESMTP ehlo") */
	unsigned    ext;              /* extensions offered (enum smtp_ext); STARTTLS
	                                 is dropped automatically once TLS is active */
	uint64_t    max_size;         /* message_size_limit, 0 = none */
	unsigned    max_rcpt;         /* smtpd_recipient_limit */
	unsigned    recipient_overshoot_limit; /* smtpd_recipient_overshoot_limit */
	unsigned    hard_error_limit; /* smtpd_hard_error_limit */
	unsigned    junk_command_limit; /* smtpd_junk_command_limit */
	enum data_bare_policy bare;   /* smtpd_forbid_bare_newline */
	bool        reject_long_lines;/* smtpd_reject_long_lines */
	bool        tls_available;    /* a certificate is loaded */
	bool        tls_required;     /* smtpd_tls_security_level = encrypt */
	bool        tls_active;       /* implicit TLS listener (submissions) */
};

struct bdat_discard;

struct smtp_rcpt {
	struct smtp_path   path;
	struct rcpt_params params;
};

/* One mail transaction: created at MAIL, freed at RSET, EHLO, end of
 * message, STARTTLS and QUIT (lesson 11: free, do not clear field by field). */
struct smtp_tx {
	struct smtp_path   mail;
	struct mail_params mp;
	struct smtp_rcpt  *rcpt;
	size_t             nrcpt, rcpt_cap;
	struct buf         body;          /* unstuffed content, LF line ends */
	struct data_decoder dd;
	bool               used_data, used_bdat;
	uint64_t           bdat_size;     /* total octets received by BDAT */
	uint64_t           bdat_line;     /* octets of the current BDAT text line */
	bool               bdat_bare, bdat_nul, bdat_long; /* seen in BDAT content */
	/* A chunk ended in CR: whether it was a line end depends on the next
	 * chunk's first octet. Kept with the transaction, so that a RSET (or
	 * any end of it) forgets it: on the machine, it made the next
	 * transaction's clean first chunk "follow a bare CR". */
	bool               bdat_cr_pending;
	unsigned           overshoot;     /* 452 4.5.3 "too many recipients" in it */
};

/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, CRLF included.
 * The machine cuts a longer one (see smtp_server_resolve()). */
#define SMTP_REPLY_LINE_MAX 512

/* Longest HELO/EHLO argument accepted, plus one (RFC 5321 §4.5.3.1.2:
 * domains up to 255 octets). */
#define SMTP_HELO_MAX 256

struct smtp_server {
	struct smtp_server_opts o;
	enum smtp_state   state;
	enum smtp_event   pending;        /* event awaiting resolve(), or NONE */
	enum smtp_cmd     pending_cmd;
	struct line_reader lr;
	struct buf        out;            /* replies not yet written */

	bool              esmtp;          /* EHLO (not HELO) was accepted */
	bool              tls;            /* TLS is active */
	bool              authenticated;  /* set by the AUTH layer (later issue) */
	/* Accepted HELO/EHLO argument, "" before one (never NULL; on the
	 * heap once set: most names are far shorter than SMTP_HELO_MAX, and
	 * an idle server holds tens of thousands of sessions). */
	char             *helo;
	char             *helo_pending;   /* argument while SRV_EV_HELO is pending (heap) */
	bool              helo_pending_ehlo;

	struct smtp_tx   *tx;
	struct smtp_rcpt *rcpt_pending;   /* RCPT awaiting decision (heap, while
	                                     SRV_EV_RCPT is pending) */

	/* BDAT chunk in progress (RFC 3030): octets still to read, and for a
	 * refused chunk the reply owed once it has been read and discarded. */
	uint64_t          bdat_left;
	bool              bdat_last;
	const struct bdat_discard *bdat_discard;

	/* smtp_server_stop() was called: the session ends once no transaction
	 * is open. */
	bool              stopping;
	unsigned          errors;         /* peer errors this session */
	unsigned          junk;           /* NOOP/RSET/VRFY/EXPN/HELP since the last message */
	/* The 421 for smtpd_hard_error_limit went out (the session logs and
	 * counts it, then clears this). */
	bool              error_limit_hit;
	uint64_t          messages;       /* messages accepted */
	unsigned          cmd_total[CMD_COUNT], cmd_ok[CMD_COUNT];
	uint64_t          plaintext_discarded; /* set by the session at STARTTLS */
	uint64_t          bare_lf_commands;    /* command lines with bare LF/CR */
	/* RFC 2920 §3.1: more input in the same read after a command that
	 * ends a group (or any command without PIPELINING). Set once, with
	 * the command after which it happened; the session logs and counts it. */
	bool              improper_pipelining;
	enum smtp_cmd     improper_after;
	size_t            improper_off;   /* where in the input of the feed() call
	                                     that set it the improper part begins */
};

/* Creates a machine in SS_INIT. The strings in o must outlive it. */
struct smtp_server *smtp_server_new(const struct smtp_server_opts *o);
void smtp_server_free(struct smtp_server **s);

/*
 * True while a request is partly received: a command line has begun but not
 * ended, or message content (DATA up to CRLF.CRLF, a BDAT chunk) is being
 * read. The session's per-request deadline applies only then.
 */
bool smtp_server_mid_request(const struct smtp_server *s);

/* Appends the 220 greeting to s->out. */
void smtp_server_greeting(struct smtp_server *s);

/*
 * Consumes input until it is exhausted (returns SRV_EV_NONE, *used == n) or
 * an event needs the session (*used = bytes consumed so far; feed the rest
 * after resolving). Must not be called while an event is pending or after
 * SRV_EV_CLOSE.
 */
enum smtp_event smtp_server_feed(struct smtp_server *s, const char *in, size_t n,
                                 size_t *used);

/*
 * Answers the pending event with one reply. For SRV_EV_HELO a 2xx code means
 * "accept": the machine then emits its own EHLO/HELO reply and ignores text.
 * For MAIL/RCPT/MESSAGE a 2xx commits the command (text defaults to "Ok"
 * when NULL), anything else refuses it and the state stays as it was
 * (RFC 5321 §4.1.4). A 421 reply also closes (the next feed is not allowed;
 * the session flushes and closes). enh may be NULL for "derive from code".
 * Text is our own, never peer data (callers sanitise, and shorten what
 * they quote so that the line fits SMTP_REPLY_LINE_MAX: a longer line is
 * cut there as a last resort, not at a UTF-8 character's middle).
 */
void smtp_server_resolve(struct smtp_server *s, unsigned code, const char *enh,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The TLS handshake after STARTTLS succeeded: forget everything learnt from
 * the client (RFC 3207 §4.2) and wait for a new EHLO. */
void smtp_server_tls_started(struct smtp_server *s);

/* The message content for SRV_EV_MESSAGE; ownership moves to the caller
 * (free()). *len gets its length. Only valid while SRV_EV_MESSAGE is pending. */
char *smtp_server_take_message(struct smtp_server *s, size_t *len);

/*
 * The session has no room to hold more message content (a memory budget it
 * shares with every other session). While content is being received
 * (SS_DATA, or SS_BDAT with a chunk being kept) the content held so far is
 * released at once, the rest of the message (DATA: up to CRLF.CRLF) or of
 * the chunk (BDAT: exactly the announced octets, RFC 3030 §2) is read and
 * thrown away, and then answered "452 4.3.1 Error: insufficient system
 * storage" (RFC 5321 §4.2.3 452; RFC 3463 X.3.1 "mail system full"). The
 * transaction ends there, as after any failed DATA or BDAT; later BDAT
 * chunks of it get 503. Returns true if it did so, false (and changes
 * nothing) in any other state.
 */
bool smtp_server_storage_full(struct smtp_server *s);

/* RFC 5321 §4.4 / RFC 3848 / RFC 6531 §3.7.3 "with" protocol name:
 * SMTP, ESMTP, ESMTPA, ESMTPS, ESMTPSA, UTF8SMTP, UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA. */
const char *smtp_server_with_protocol(const struct smtp_server *s);

/* Emits an unsolicited 421 with text (timeouts, shutdown) and moves to
 * SS_CLOSED. */
void smtp_server_shutdown(struct smtp_server *s, const char *enh, const char *text);

/*
 * The server is shutting down (smtpd_shutdown_timeout). A transaction in
 * progress (MAIL accepted, its message not yet finished) may finish: its
 * commands and its content are served as usual. As soon as no transaction
 * is open and no event is pending, the machine emits
 * "421 4.3.2 <host> Service shutting down" (RFC 5321 §3.8) and closes:
 * right after the reply that ended the transaction (the message's 250, a
 * refusal, a RSET), in the same output, never in place of a reply owed.
 * Returns true if it closed now (no transaction was open): the session
 * flushes and closes. Otherwise the close comes later, from feed() (which
 * then returns SRV_EV_CLOSE), resolve() (which leaves SRV_EV_CLOSE
 * pending) or smtp_server_tls_started() (likewise).
 */
bool smtp_server_stop(struct smtp_server *s);

/* Appends the Postfix-style per-command counts ("ehlo=1 mail=1 rcpt=1/2
 * data=1 quit=1 commands=5/6") to b. */
void smtp_server_format_counts(const struct smtp_server *s, struct buf *b);

const char *smtp_cmd_name(enum smtp_cmd c);          /* lower-case verb */
const char *smtp_state_name(enum smtp_state st);

#endif
