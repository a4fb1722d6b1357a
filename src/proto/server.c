/*
 * The SMTP server state machine. See server.h for the contract.
 *
 * Structure (STYLE.md lessons 2, 3, 5):
 *  - one command table with per-command flags;
 *  - each handler checks syntax and state and either replies at once or
 *    stops with an event; smtp_server_resolve() is the "proceed" half;
 *  - every state change goes through set_state();
 *  - the transaction is one object, freed whole (tx_free).
 */
#include "proto/server.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xmalloc.h"

enum {
	CF_ENDS_GROUP  = 1u << 0,  /* RFC 2920 §3.1: may only end a pipelined group */
	/* Allowed before STARTTLS at level "encrypt": RFC 3207 §4 asks for
	 * 530 to every command but NOOP, EHLO, STARTTLS and QUIT (HELO too
	 * is let through: its client then meets 530 at MAIL). The handlers
	 * of the others call need_tls() after their own sequencing checks
	 * (503 before 530), so this flag documents the table. */
	CF_BEFORE_TLS  = 1u << 1,
	CF_NO_ARGS     = 1u << 2,  /* arguments get 501 (RFC 5321 §4.1.4) */
};

typedef void cmd_fn(struct smtp_server *, const char *arg, size_t arglen);

struct cmd_def {
	const char *verb;
	enum smtp_cmd id;
	unsigned flags;
	cmd_fn *fn;
};

static void end_of_chunk(struct smtp_server *s);
static cmd_fn do_ehlo, do_helo, do_starttls, do_auth, do_mail, do_rcpt, do_data,
    do_bdat, do_rset, do_noop, do_vrfy, do_expn, do_help, do_quit;

static const struct cmd_def cmd_table[] = {
	{ "EHLO",     CMD_EHLO,     CF_ENDS_GROUP | CF_BEFORE_TLS, do_ehlo },
	{ "HELO",     CMD_HELO,     CF_ENDS_GROUP | CF_BEFORE_TLS, do_helo },
	{ "STARTTLS", CMD_STARTTLS, CF_ENDS_GROUP | CF_BEFORE_TLS, do_starttls },
	{ "AUTH",     CMD_AUTH,     CF_ENDS_GROUP,                 do_auth },
	{ "MAIL",     CMD_MAIL,     0,                             do_mail },
	{ "RCPT",     CMD_RCPT,     0,                             do_rcpt },
	{ "DATA",     CMD_DATA,     CF_ENDS_GROUP | CF_NO_ARGS,    do_data },
	{ "BDAT",     CMD_BDAT,     0,                             do_bdat },
	{ "RSET",     CMD_RSET,     CF_NO_ARGS,                    do_rset },
	{ "NOOP",     CMD_NOOP,     CF_ENDS_GROUP | CF_BEFORE_TLS, do_noop },
	{ "VRFY",     CMD_VRFY,     CF_ENDS_GROUP,                 do_vrfy },
	{ "EXPN",     CMD_EXPN,     CF_ENDS_GROUP,                 do_expn },
	{ "HELP",     CMD_HELP,     CF_ENDS_GROUP,                 do_help },
	{ "QUIT",     CMD_QUIT,     CF_ENDS_GROUP | CF_BEFORE_TLS | CF_NO_ARGS, do_quit },
};

static const char *const cmd_names[CMD_COUNT] = {
	"ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "bdat",
	"rset", "noop", "vrfy", "expn", "help", "quit", "unknown",
};

static const char *const state_names[] = {
	"init", "ready", "mail", "rcpt", "data", "bdat", "tls", "closed",
};

/* Words that show an HTTP (or other non-SMTP) client talking to us: such a
 * peer is answered once and disconnected, like Postfix's
 * smtpd_forbidden_commands (cross-protocol attacks from browsers). */
static const char *const forbidden_verbs[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "USER",
};

const char *
smtp_cmd_name(enum smtp_cmd c)
{
	return c < CMD_COUNT ? cmd_names[c] : "?";
}

const char *
smtp_state_name(enum smtp_state st)
{
	return (size_t)st < sizeof state_names / sizeof state_names[0] ? state_names[st] : "?";
}

static void
set_state(struct smtp_server *s, enum smtp_state st)
{
	assert(st >= SS_INIT && st <= SS_CLOSED);
	s->state = st;
}

static void
tx_free(struct smtp_tx **txp)
{
	struct smtp_tx *tx = *txp;
	if (tx == NULL)
		return;
	buf_free(&tx->body);
	free(tx->rcpt);
	x_free(txp);
}

static bool
use_enh(const struct smtp_server *s)
{
	/* RFC 2034 §4: enhanced codes once the extension has been announced. */
	return s->esmtp && (s->o.ext & EXT_ENHANCEDSTATUSCODES);
}

static const char *
default_enh(unsigned code)
{
	switch (code / 100) {
	case 2: return "2.0.0";
	case 4: return "4.0.0";
	case 5: return "5.0.0";
	default: return NULL;
	}
}

/* Counts the reply against the current command (for the disconnect line)
 * and the error limit. */
static void
account(struct smtp_server *s, unsigned code)
{
	enum smtp_cmd c = s->pending_cmd;
	if (code < 400) {
		if (c < CMD_COUNT)
			s->cmd_ok[c]++;
	} else {
		s->errors++;
	}
}

static void vreply(struct smtp_server *s, unsigned code, const char *enh, const char *fmt,
    va_list ap) __attribute__((format(printf, 4, 0)));

/*
 * One reply line. RFC 5321 §4.5.3.1.5: at most 512 octets with the CRLF.
 * Text that quotes peer data is shortened by its caller so that it fits
 * (the session's reply_path()); this cut is the last resort that keeps the
 * limit whatever a caller passes. It backs off so as not to end inside a
 * UTF-8 character or a "\xNN" escape of sanitised text.
 */
static void
vreply(struct smtp_server *s, unsigned code, const char *enh, const char *fmt, va_list ap)
{
	size_t start = s->out.len;
	buf_appendf(&s->out, "%03u ", code);
	if (enh == NULL)
		enh = default_enh(code);
	if (enh != NULL && use_enh(s) && code / 100 != 3)
		buf_appendf(&s->out, "%s ", enh);
	buf_vappendf(&s->out, fmt, ap);
	if (s->out.len - start > SMTP_REPLY_LINE_MAX - 2) {
		const char *d = s->out.data;
		size_t cut = start + SMTP_REPLY_LINE_MAX - 2;
		while (cut > start + 4 && ((unsigned char)d[cut] & 0xc0) == 0x80)
			cut--;                      /* d[cut] is the first octet dropped */
		for (size_t j = cut - 3; j < cut; j++)
			if (d[j] == '\\' && d[j + 1] == 'x')
				cut = j;            /* an escape that would lose its end */
		buf_truncate(&s->out, cut);
	}
	buf_append(&s->out, "\r\n", 2);
}

static void reply(struct smtp_server *s, unsigned code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A final reply to the current command. */
static void
reply(struct smtp_server *s, unsigned code, const char *enh, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, code, enh, fmt, ap);
	va_end(ap);
	account(s, code);
}

static void reply_errors(struct smtp_server *s, unsigned errors, unsigned code,
    const char *enh, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * A final reply that is not counted by its code: errors is what it adds to
 * the session's error count. 1 for a command that failed whatever the code
 * says (221 to an HTTP request); 0 for a 4xx/5xx that is not the client's
 * error. Either way it counts as a command, not as a successful one.
 */
static void
reply_errors(struct smtp_server *s, unsigned errors, unsigned code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply(s, code, enh, fmt, ap);
	va_end(ap);
	s->errors += errors;
}

/* After a 4xx/5xx: enforce smtpd_hard_error_limit (421 and close). */
static bool
check_error_limit(struct smtp_server *s, enum smtp_event *ev)
{
	if (s->o.hard_error_limit == 0 || s->errors < s->o.hard_error_limit)
		return false;
	buf_appendf(&s->out, "421 ");
	if (use_enh(s))
		buf_appendf(&s->out, "4.7.0 ");
	buf_appendf(&s->out, "%s Error: too many errors\r\n", s->o.hostname);
	s->error_limit_hit = true;
	tx_free(&s->tx);
	set_state(s, SS_CLOSED);
	*ev = SRV_EV_CLOSE;
	return true;
}

/* s->helo before any HELO/EHLO: shared, never freed or written. */
static char no_helo[1];

static void
forget_helo(struct smtp_server *s)
{
	if (s->helo != no_helo)
		free(s->helo);
	s->helo = no_helo;
}

struct smtp_server *
smtp_server_new(const struct smtp_server_opts *o)
{
	struct smtp_server *s = xcalloc(1, sizeof *s);
	s->o = *o;
	s->helo = no_helo;
	/* RFC 6531 §3.1: SMTPUTF8 needs 8BITMIME. */
	if (!(s->o.ext & EXT_8BITMIME))
		s->o.ext &= ~(unsigned)EXT_SMTPUTF8;
	/* STARTTLS stays in o.ext when TLS is configured but has no
	 * certificate: offered() leaves it out, and do_starttls answers 454
	 * rather than 502. */
	s->tls = o->tls_active;
	if (s->o.max_rcpt == 0)
		s->o.max_rcpt = 1000;
	/*
	 * The reader's cap is the longest line any command may have in this
	 * session (MAIL or RCPT with every configured extension's room), so
	 * that a line no command may have is still cut off before its
	 * newline; the verb's own limit is checked once the line is whole
	 * (line_too_long()).
	 */
	size_t mail_room = params_mail_room(s->o.ext), rcpt_room = params_rcpt_room(s->o.ext);
	line_reader_init(&s->lr, SMTP_CMD_LINE_MAX + (mail_room > rcpt_room ? mail_room : rcpt_room));
	s->lr.lf_ends_line = o->bare == DATA_BARE_NORMALIZE;
	buf_init(&s->out);
	s->pending = SRV_EV_NONE;
	s->pending_cmd = CMD_COUNT;
	set_state(s, SS_INIT);
	return s;
}

void
smtp_server_free(struct smtp_server **sp)
{
	struct smtp_server *s = *sp;
	if (s == NULL)
		return;
	tx_free(&s->tx);
	buf_free(&s->out);
	line_reader_free(&s->lr);
	free(s->rcpt_pending);
	free(s->helo_pending);
	forget_helo(s);
	x_free(sp);
}

bool
smtp_server_mid_request(const struct smtp_server *s)
{
	if (s->state == SS_DATA || s->state == SS_BDAT)
		return true;
	return s->state != SS_CLOSED && s->state != SS_TLS && line_reader_partial(&s->lr);
}

void
smtp_server_greeting(struct smtp_server *s)
{
	buf_appendf(&s->out, "220 %s\r\n", s->o.greeting);
}

static unsigned
offered(const struct smtp_server *s)
{
	unsigned ext = s->o.ext;
	if (s->tls || !s->o.tls_available)
		ext &= ~(unsigned)EXT_STARTTLS;   /* RFC 3207 §4.2 */
	return ext;
}

/* The extensions that apply to this session: none after HELO. */
static unsigned
active_ext(const struct smtp_server *s)
{
	return s->esmtp ? offered(s) : 0;
}

/* Splits off the first word of an argument (HELO/EHLO name). */
static size_t
first_word(const char *arg, size_t n)
{
	size_t i = 0;
	while (i < n && arg[i] != ' ')
		i++;
	return i;
}

static void
helo_common(struct smtp_server *s, const char *arg, size_t n, bool ehlo)
{
	size_t w = first_word(arg, n);
	if (w == 0) {
		reply(s, 501, "5.5.4", "Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
		return;
	}
	if (w >= SMTP_HELO_MAX) {
		reply(s, 501, "5.5.4", "Syntax: %s hostname (name too long)", ehlo ? "EHLO" : "HELO");
		return;
	}
	free(s->helo_pending);
	s->helo_pending = xstrndup(arg, w);
	s->helo_pending_ehlo = ehlo;
	s->pending = SRV_EV_HELO;
}

static void
do_ehlo(struct smtp_server *s, const char *arg, size_t n)
{
	helo_common(s, arg, n, true);
}

static void
do_helo(struct smtp_server *s, const char *arg, size_t n)
{
	helo_common(s, arg, n, false);
}

static void
ehlo_reply(struct smtp_server *s)
{
	unsigned ext = offered(s);
	char size[32];
	const char *kw[12];
	size_t n = 0;

	if (ext & EXT_PIPELINING)
		kw[n++] = "PIPELINING";
	if (ext & EXT_SIZE) {
		/* RFC 1870 §4: no number (or 0) means no fixed maximum. */
		if (s->o.max_size)
			snprintf(size, sizeof size, "SIZE %llu", (unsigned long long)s->o.max_size);
		else
			snprintf(size, sizeof size, "SIZE");
		kw[n++] = size;
	}
	if (ext & EXT_STARTTLS)
		kw[n++] = "STARTTLS";
	if (ext & EXT_ENHANCEDSTATUSCODES)
		kw[n++] = "ENHANCEDSTATUSCODES";
	if (ext & EXT_8BITMIME)
		kw[n++] = "8BITMIME";
	if (ext & EXT_DSN)
		kw[n++] = "DSN";
	if (ext & EXT_SMTPUTF8)
		kw[n++] = "SMTPUTF8";
	if (ext & EXT_CHUNKING)
		kw[n++] = "CHUNKING";
	/* RFC 5321 §4.1.1.1: "250-" domain, "250-" lines, the last one "250 ". */
	buf_appendf(&s->out, "250%c%s\r\n", n ? '-' : ' ', s->o.hostname);
	for (size_t i = 0; i < n; i++)
		buf_appendf(&s->out, "250%c%s\r\n", i + 1 < n ? '-' : ' ', kw[i]);
}

static bool
need_tls(struct smtp_server *s)
{
	if (s->o.tls_required && !s->tls) {
		reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return true;
	}
	return false;
}

static void
do_starttls(struct smtp_server *s, const char *arg, size_t n)
{
	if (n > 0) {
		reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	/*
	 * Not offered by configuration (smtpd_tls_security_level = none, or
	 * STARTTLS in smtpd_discard_ehlo_keywords): an unknown command to
	 * this server, 502 as Postfix answers. Configured but without a
	 * usable certificate: RFC 3207 §4's 454, a temporary refusal.
	 */
	if (!(s->o.ext & EXT_STARTTLS)) {
		reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (!s->o.tls_available) {
		reply(s, 454, "4.7.0", "TLS not available due to local problem");
		return;
	}
	if (!s->esmtp) {
		reply(s, 503, "5.5.1", "Error: send EHLO first");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	tx_free(&s->tx);
	set_state(s, SS_TLS);
	s->pending = SRV_EV_STARTTLS;
}

static void
do_auth(struct smtp_server *s, const char *arg, size_t n)
{
	reply(s, 503, "5.5.1", "Error: authentication not enabled");
}

static bool
need_helo(struct smtp_server *s)
{
	if (s->state == SS_INIT) {
		reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return true;
	}
	return false;
}

/* "FROM:" / "TO:" prefix, tolerating spaces after the colon as most servers
 * do (RFC 5321 has none; many clients send one). Returns the offset of '<',
 * or -1. */
static long
path_start(const char *arg, size_t n, const char *kw)
{
	if (!ascii_iprefix(arg, n, kw))
		return -1;
	size_t i = strlen(kw);
	while (i < n && arg[i] == ' ')
		i++;
	return (long)i;
}

static void
reply_param_err(struct smtp_server *s, enum param_err e, const char *arg, size_t off, size_t len)
{
	(void)arg; (void)off; (void)len;
	switch (e) {
	case PARAM_ERR_UNKNOWN:
		reply(s, 555, "5.5.4", "Unsupported option");
		break;
	case PARAM_ERR_VALUE:
		reply(s, 501, "5.5.4", "Bad parameter value");
		break;
	default:
		reply(s, 501, "5.5.4", "Syntax error in parameters");
		break;
	}
}

static void
do_mail(struct smtp_server *s, const char *arg, size_t n)
{
	if (need_helo(s) || need_tls(s))
		return;
	if (s->tx != NULL) {
		reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	long p = path_start(arg, n, "FROM:");
	if (p < 0) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	unsigned ext = active_ext(s);
	struct smtp_tx *tx = xcalloc(1, sizeof *tx);
	buf_init(&tx->body);
	size_t end = 0;
	unsigned pflags = PATH_ALLOW_NULL | ((ext & EXT_SMTPUTF8) ? PATH_ALLOW_UTF8 : 0);
	enum path_err pe = path_parse(arg + p, n - (size_t)p, pflags, &tx->mail, &end);
	if (pe != PATH_OK) {
		if (pe == PATH_ERR_UTF8)
			reply(s, 553, "5.6.7", "Error: non-ASCII sender address not permitted");
		else if (pe == PATH_ERR_SYNTAX || pe == PATH_ERR_NULL)
			reply(s, 501, "5.1.7", "Bad sender address syntax");
		else
			reply(s, 501, "5.1.7", "Sender address too long");
		tx_free(&tx);
		return;
	}
	size_t off = 0, len = 0;
	const char *rest = arg + p + end;
	size_t restn = n - (size_t)p - end;
	enum param_err e = params_parse_mail(rest, restn, ext, &tx->mp, &off, &len);
	if (e != PARAM_OK) {
		reply_param_err(s, e, rest, off, len);
		tx_free(&tx);
		return;
	}
	if (tx->mail.utf8 && !tx->mp.smtputf8) {
		/* RFC 6531 §3.4: UTF-8 addresses only in an SMTPUTF8 transaction. */
		reply(s, 553, "5.6.7", "Error: non-ASCII sender address requires SMTPUTF8");
		tx_free(&tx);
		return;
	}
	if (tx->mp.has_size && s->o.max_size && tx->mp.size > s->o.max_size) {
		/* RFC 1870 §6.1 (2): declared size over the fixed maximum: 552. */
		reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
		tx_free(&tx);
		return;
	}
	s->tx = tx;
	s->pending = SRV_EV_MAIL;
}

static void
do_rcpt(struct smtp_server *s, const char *arg, size_t n)
{
	if (need_helo(s) || need_tls(s))
		return;
	if (s->tx == NULL) {
		reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->tx->nrcpt >= s->o.max_rcpt) {
		/*
		 * RFC 5321 §4.5.3.1.10: the client sends these recipients in
		 * a later transaction. One that pipelined its whole list is
		 * not in error: without this, 150 recipients under a limit of
		 * 100 took 20 of the 452s to reach smtpd_hard_error_limit, and
		 * the 421 lost the 100 accepted ones. As Postfix's
		 * smtpd_recipient_overshoot_limit, only refusals past that
		 * many in a transaction count as errors.
		 */
		unsigned err = ++s->tx->overshoot > s->o.recipient_overshoot_limit;
		reply_errors(s, err, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	long p = path_start(arg, n, "TO:");
	if (p < 0) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (s->rcpt_pending == NULL)
		s->rcpt_pending = xmalloc(sizeof *s->rcpt_pending);
	struct smtp_rcpt *r = s->rcpt_pending;
	memset(r, 0, sizeof *r);
	size_t end = 0;
	unsigned pflags = PATH_ALLOW_POSTMASTER | (s->tx->mp.smtputf8 ? PATH_ALLOW_UTF8 : 0);
	enum path_err pe = path_parse(arg + p, n - (size_t)p, pflags, &r->path, &end);
	if (pe != PATH_OK) {
		if (pe == PATH_ERR_UTF8)
			reply(s, 553, "5.6.7", "Error: non-ASCII recipient address requires SMTPUTF8");
		else if (pe == PATH_ERR_SYNTAX || pe == PATH_ERR_NULL)
			reply(s, 501, "5.1.3", "Bad recipient address syntax");
		else
			reply(s, 501, "5.1.3", "Recipient address too long");
		return;
	}
	size_t off = 0, len = 0;
	const char *rest = arg + p + end;
	enum param_err e = params_parse_rcpt(rest, n - (size_t)p - end, active_ext(s),
	    s->tx->mp.smtputf8, &r->params, &off, &len);
	if (e != PARAM_OK) {
		reply_param_err(s, e, rest, off, len);
		return;
	}
	s->pending = SRV_EV_RCPT;
}

/* Shared by DATA and BDAT: is the transaction ready for content? Replies
 * and returns false if not. */
static bool
content_ready(struct smtp_server *s)
{
	if (need_helo(s) || need_tls(s))
		return false;
	if (s->tx == NULL) {
		reply(s, 503, "5.5.1", "Error: need RCPT command");
		return false;
	}
	if (s->tx->nrcpt == 0) {
		reply(s, 554, "5.5.1", "Error: no valid recipients");
		return false;
	}
	return true;
}

static void
do_data(struct smtp_server *s, const char *arg, size_t n)
{
	if (!content_ready(s))
		return;
	if (s->tx->used_bdat) {
		/* RFC 3030 §3: DATA and BDAT cannot be mixed in one transaction. */
		reply(s, 503, "5.5.1", "Error: DATA after BDAT in the same transaction");
		return;
	}
	s->tx->used_data = true;
	data_decoder_init(&s->tx->dd, s->o.bare, true, s->o.max_size);
	buf_reserve(&s->tx->body, 4096);
	/* 354 is an intermediate reply: it is not the command's final outcome. */
	buf_append_str(&s->out, "354 End data with <CR><LF>.<CR><LF>\r\n");
	set_state(s, SS_DATA);
}

/* BDAT content we must read and throw away, then answer with the stored
 * reply (RFC 3030 §2: the server reads exactly the announced octets, also
 * when it refuses the chunk, or it would take message bytes for commands). */
struct bdat_discard {
	unsigned code;
	const char *enh;
	const char *text;
};

static struct bdat_discard discard_reply[] = {
	{ 503, "5.5.1", "Error: send HELO/EHLO first" },
	{ 530, "5.7.0", "Must issue a STARTTLS command first" },
	{ 503, "5.5.1", "Error: need MAIL command" },
	{ 554, "5.5.1", "Error: no valid recipients" },
	{ 552, "5.3.4", "Error: message file too big" },
	{ 502, "5.5.1", "Error: CHUNKING not offered" },
	{ 452, "4.3.1", "Error: insufficient system storage" },
};
#define DISCARD_STORAGE 6   /* discard_reply[] entry of smtp_server_storage_full */

static void count_junk(struct smtp_server *s);
static bool stop_if_idle(struct smtp_server *s);

static void
do_bdat(struct smtp_server *s, const char *arg, size_t n)
{
	size_t w = first_word(arg, n);
	unsigned long long size;
	bool last = false;
	if (w < n && ascii_ieqn(arg + w + 1, n - w - 1, "LAST"))
		last = true;
	if (w == 0 || !parse_u64(arg, w, &size) || (w < n && !last)) {
		/* Without a size we cannot know where the chunk ends; reading on
		 * as commands would let chunk content be executed. Close. */
		reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		buf_appendf(&s->out, "421 %s%s Error: lost synchronization after bad BDAT\r\n",
		    use_enh(s) ? "4.5.0 " : "", s->o.hostname);
		tx_free(&s->tx);
		set_state(s, SS_CLOSED);
		s->pending = SRV_EV_CLOSE;
		return;
	}
	/* "BDAT 0" without LAST moves nothing: chatter like NOOP, and as able
	 * to hold a session for ever (a complete request every time). */
	if (size == 0 && !last)
		count_junk(s);
	int discard = -1;
	if (!(active_ext(s) & EXT_CHUNKING))
		discard = 5;
	else if (s->state == SS_INIT)
		discard = 0;
	else if (s->o.tls_required && !s->tls)
		discard = 1;
	else if (s->tx == NULL)
		discard = 2;
	else if (s->tx->nrcpt == 0)
		discard = 3;
	else if (s->o.max_size && (size > s->o.max_size ||
	    s->tx->bdat_size + size > s->o.max_size))
		discard = 4;
	s->bdat_left = size;
	s->bdat_last = last;
	if (discard >= 0) {
		s->bdat_discard = &discard_reply[discard];
		if (discard == 4)
			tx_free(&s->tx);   /* RFC 3030 §4: the transaction has failed */
	} else {
		s->bdat_discard = NULL;
		if (!s->tx->used_bdat) {
			s->tx->used_bdat = true;
			buf_reserve(&s->tx->body, size < (1u << 20) ? (size_t)size : (1u << 20));
		}
	}
	set_state(s, SS_BDAT);
	if (size == 0)
		end_of_chunk(s);   /* "BDAT 0 LAST" has no octets to wait for */
}

/*
 * NOOP, RSET, VRFY, EXPN and HELP move no mail. Past o.junk_command_limit
 * of them since the last accepted message, each also counts as an error,
 * so that a client cannot hold a session for ever with chatter that
 * keeps its read timeout fresh (Postfix's smtpd_junk_command_limit). The
 * command still gets its own reply; the error limit's 421 follows it.
 */
static void
count_junk(struct smtp_server *s)
{
	if (s->junk < UINT_MAX)
		s->junk++;
	if (s->junk > s->o.junk_command_limit)
		s->errors++;
}

static void
do_rset(struct smtp_server *s, const char *arg, size_t n)
{
	count_junk(s);
	if (need_tls(s))   /* RFC 3207 §4 */
		return;
	tx_free(&s->tx);
	set_state(s, s->helo[0] ? SS_READY : SS_INIT);
	reply(s, 250, "2.0.0", "Ok");
}

static void
do_noop(struct smtp_server *s, const char *arg, size_t n)
{
	count_junk(s);
	reply(s, 250, "2.0.0", "Ok");
}

static void
do_vrfy(struct smtp_server *s, const char *arg, size_t n)
{
	count_junk(s);
	if (need_tls(s))   /* RFC 3207 §4 */
		return;
	if (n == 0) {
		reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	/* RFC 5321 §3.5.3: 252 when we will not verify but will accept. */
	reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
do_expn(struct smtp_server *s, const char *arg, size_t n)
{
	count_junk(s);
	if (need_tls(s))   /* RFC 3207 §4 */
		return;
	reply(s, 502, "5.5.1", "Error: command not implemented");
}

static void
do_help(struct smtp_server *s, const char *arg, size_t n)
{
	count_junk(s);
	if (need_tls(s))   /* RFC 3207 §4 */
		return;
	/* What this session can use now: after HELO no BDAT (CHUNKING is an
	 * ESMTP extension) and no STARTTLS (it needs EHLO, RFC 3207 §4). */
	bool helo_only = s->helo[0] != '\0' && !s->esmtp;
	unsigned ext = helo_only ? 0 : offered(s);
	reply(s, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA%s RSET NOOP QUIT VRFY HELP%s",
	    (ext & EXT_CHUNKING) ? " BDAT" : "", (ext & EXT_STARTTLS) ? " STARTTLS" : "");
}

static void
do_quit(struct smtp_server *s, const char *arg, size_t n)
{
	reply(s, 221, "2.0.0", "Bye");
	tx_free(&s->tx);
	set_state(s, SS_CLOSED);
	s->pending = SRV_EV_CLOSE;
}

/* The table row of the line's verb, or NULL. *verb_len gets its length. */
static const struct cmd_def *
find_cmd(const char *line, size_t len, size_t *verb_len)
{
	size_t v = 0;
	while (v < len && line[v] != ' ')
		v++;
	*verb_len = v;
	for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++)
		if (ascii_ieqn(line, v, cmd_table[i].verb))
			return &cmd_table[i];
	return NULL;
}

/*
 * RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF,
 * and "may be extended by the use of SMTP Service Extensions". MAIL and
 * RCPT get the room of the parameters of the extensions this session
 * offers (none after HELO; params_mail_room()), so that, with DSN, an ORCPT
 * of the 500 octets RFC 3461 allows fits; every other command keeps 512.
 * c is the line's verb (NULL: unknown), len its text without the line end.
 */
static bool
line_too_long(const struct smtp_server *s, const struct cmd_def *c, size_t len)
{
	size_t limit = SMTP_CMD_LINE_MAX;
	if (c != NULL && c->id == CMD_MAIL)
		limit += params_mail_room(active_ext(s));
	else if (c != NULL && c->id == CMD_RCPT)
		limit += params_rcpt_room(active_ext(s));
	return len > limit - 2;
}

/* Runs one command line whose verb (v octets) is c (NULL: unknown);
 * returns its table flags (CF_ENDS_GROUP for an unknown verb, which cannot
 * be part of a valid pipelined group). */
static unsigned
dispatch(struct smtp_server *s, const struct cmd_def *c, size_t v, const char *line,
         size_t len)
{
	const char *arg = v < len ? line + v + 1 : line + len;
	size_t arglen = v < len ? len - v - 1 : 0;
	/* Trailing spaces are not part of the argument (some clients send them). */
	while (arglen > 0 && arg[arglen - 1] == ' ')
		arglen--;

	if (c != NULL) {
		s->pending_cmd = c->id;
		s->cmd_total[c->id]++;
		if ((c->flags & CF_NO_ARGS) && arglen > 0)
			reply(s, 501, "5.5.4", "Syntax: %s", c->verb);
		else
			c->fn(s, arg, arglen);
		return c->flags;
	}
	s->pending_cmd = CMD_UNKNOWN;
	s->cmd_total[CMD_UNKNOWN]++;
	for (size_t i = 0; i < sizeof forbidden_verbs / sizeof forbidden_verbs[0]; i++) {
		if (ascii_ieqn(line, v, forbidden_verbs[i])) {
			/* Counted as a failed command (the disconnect line says
			 * "unknown=0/1", as Postfix's does) and an error, although
			 * the code is 221: reply() would count a success. */
			reply_errors(s, 1, 221, "2.7.0", "Error: this is an SMTP server; closing");
			tx_free(&s->tx);
			set_state(s, SS_CLOSED);
			s->pending = SRV_EV_CLOSE;
			return CF_ENDS_GROUP;
		}
	}
	reply(s, 500, "5.5.2", "Error: command not recognized");
	return CF_ENDS_GROUP;
}

/*
 * What message content may not hold, DATA's and BDAT's alike (without
 * BINARYMIME both carry RFC 5322 text): a bare CR or LF (RFC 5321 §2.3.8;
 * SMTP smuggling, CVE-2023-51764), a NUL, and with smtpd_reject_long_lines
 * a text line over 1000 octets (§4.5.3.1.6). Replies and returns true if
 * the message is refused. bare: a bare line end the policy rejects.
 */
static bool
refuse_content(struct smtp_server *s, bool bare, bool nul, bool long_lines)
{
	if (bare)
		reply(s, 554, "5.5.2", "Error: bare <CR> or <LF> in message content");
	else if (nul)
		reply(s, 554, "5.6.0", "Error: NUL byte in message content");
	else if (s->o.reject_long_lines && long_lines)
		reply(s, 554, "5.6.0", "Error: text line longer than 1000 octets (RFC 5321 §4.5.3.1.6)");
	else
		return false;
	return true;
}

static void
end_of_data(struct smtp_server *s)
{
	struct data_decoder *d = &s->tx->dd;
	s->pending_cmd = CMD_DATA;
	set_state(s, SS_RCPT);
	if (d->overflow || (d->max_size != 0 && d->size > d->max_size)) {
		/* Over message_size_limit: permanent, also when the content was
		 * dropped earlier for want of room (size counts on regardless). */
		reply(s, 552, "5.3.4", "Error: message file too big");
	} else if (d->discard) {
		/* smtp_server_storage_full(): the content is gone already. */
		reply(s, 452, "4.3.1", "Error: insufficient system storage");
	} else if (!refuse_content(s, data_decoder_bare_violation(d), d->nul_seen,
	    d->long_lines > 0)) {
		s->pending = SRV_EV_MESSAGE;
		return;
	}
	tx_free(&s->tx);
	set_state(s, SS_READY);
}

/*
 * Appends a BDAT chunk piece, turning CRLF into LF (Maildir stores LF). A CR
 * at the end of a piece is held back until the next octet is seen.
 *
 * Without BINARYMIME (not offered) BDAT carries the same RFC 5322 text as
 * DATA, so its content is held to the same rules (RFC 5321 §2.3.8,
 * §4.5.3.1.6): a bare CR or LF, a NUL and over-long lines are noted here and
 * judged at the last chunk as end_of_data() judges DATA. A bare LF is kept
 * as a line end and, under normalize, a bare CR is dropped, both as the
 * DATA decoder does; before, BDAT content went into the Maildir with its
 * bare CRs whatever smtpd_forbid_bare_newline said.
 */
static void
bdat_append(struct smtp_server *s, const char *p, size_t n)
{
	struct smtp_tx *tx = s->tx;
	struct buf *b = &tx->body;
	buf_reserve(b, n + 1);
	size_t i = 0;
	while (i < n) {
		if (tx->bdat_cr_pending) {
			tx->bdat_cr_pending = false;
			if (p[i] == '\n') {
				buf_append_char(b, '\n');
				tx->bdat_line = 0;
				i++;
				continue;
			}
			tx->bdat_bare = true;          /* a CR not followed by LF */
			if (s->o.bare != DATA_BARE_NORMALIZE)
				buf_append_char(b, '\r');
		}
		/* The run of ordinary octets up to the next CR, LF or NUL. */
		size_t k = i;
		while (k < n && p[k] != '\r' && p[k] != '\n' && p[k] != '\0')
			k++;
		if (k > i) {
			buf_append(b, p + i, k - i);
			tx->bdat_line += k - i;
			if (tx->bdat_line > SMTP_TEXT_LINE_MAX - 2)
				tx->bdat_long = true;
			i = k;
		}
		if (i == n)
			break;
		if (p[i] == '\r') {
			tx->bdat_cr_pending = true;
		} else if (p[i] == '\n') {
			tx->bdat_bare = true;          /* a LF without CR: kept as a line end */
			buf_append_char(b, '\n');
			tx->bdat_line = 0;
		} else {
			tx->bdat_nul = true;
			buf_append_char(b, '\0');
			tx->bdat_line++;
		}
		i++;
	}
}

static void
end_of_chunk(struct smtp_server *s)
{
	s->pending_cmd = CMD_BDAT;
	if (s->bdat_discard != NULL) {
		const struct bdat_discard *d = s->bdat_discard;
		s->bdat_discard = NULL;
		set_state(s, s->tx ? (s->tx->nrcpt ? SS_RCPT : SS_MAIL) : (s->helo[0] ? SS_READY : SS_INIT));
		reply(s, d->code, d->enh, "%s", d->text);
		return;
	}
	set_state(s, SS_RCPT);
	if (!s->bdat_last) {
		reply(s, 250, "2.0.0", "Ok: %llu octets received", (unsigned long long)s->tx->bdat_size);
		return;
	}
	if (s->tx->bdat_cr_pending) {
		/* The content ended in a CR: a bare one. */
		s->tx->bdat_bare = true;
		if (s->o.bare != DATA_BARE_NORMALIZE)
			buf_append_char(&s->tx->body, '\r');
		s->tx->bdat_cr_pending = false;
	}
	if (!refuse_content(s, s->tx->bdat_bare && s->o.bare != DATA_BARE_NORMALIZE,
	    s->tx->bdat_nul, s->tx->bdat_long)) {
		s->pending = SRV_EV_MESSAGE;
		return;
	}
	tx_free(&s->tx);
	set_state(s, SS_READY);
}

enum smtp_event
smtp_server_feed(struct smtp_server *s, const char *in, size_t n, size_t *used)
{
	assert(s->pending == SRV_EV_NONE);
	assert(s->state != SS_CLOSED && s->state != SS_TLS);
	size_t off = 0;
	enum smtp_event ev = SRV_EV_NONE;

	while (off < n && ev == SRV_EV_NONE) {
		if (s->state == SS_DATA) {
			size_t u = 0;
			bool done = data_decoder_feed(&s->tx->dd, in + off, n - off, &u, &s->tx->body);
			off += u;
			if (done)
				end_of_data(s);
		} else if (s->state == SS_BDAT) {
			size_t k = n - off;
			if (k > s->bdat_left)
				k = (size_t)s->bdat_left;
			if (s->bdat_discard == NULL) {
				bdat_append(s, in + off, k);
				s->tx->bdat_size += k;
			}
			s->bdat_left -= k;
			off += k;
			if (s->bdat_left == 0)
				end_of_chunk(s);
		} else {
			size_t u = 0, len = 0;
			const char *line = NULL;
			enum lr_result r = line_reader_feed(&s->lr, in + off, n - off, &u, &line, &len);
			off += u;
			if (r == LR_NEED_MORE)
				break;
			s->pending_cmd = CMD_UNKNOWN;
			switch (r) {
			case LR_LINE:
			{
				if (s->lr.bare_lf)
					s->bare_lf_commands++;   /* normalized */
				size_t v = 0;
				const struct cmd_def *c = find_cmd(line, len, &v);
				if (line_too_long(s, c, len)) {
					/* As LR_TOO_LONG: consumed whole, not a command. */
					reply(s, 500, "5.5.2", "Error: line too long");
					break;
				}
				unsigned flags = dispatch(s, c, v, line, len);
				/* RFC 2920 §3.1: a group-ending command followed by more
				 * input in the same read is improper pipelining. Counted,
				 * not refused: many clients send DATA and content together. */
				if (off < n && ((flags & CF_ENDS_GROUP) ||
				    !(active_ext(s) & EXT_PIPELINING)) && s->state != SS_DATA &&
				    s->state != SS_BDAT && !s->improper_pipelining) {
					s->improper_pipelining = true;
					s->improper_after = s->pending_cmd;
					s->improper_off = off;
				}
				break;
			}
			case LR_TOO_LONG:
				/* RFC 5321 §4.5.3.1.4 / §4.2.4: 500 line too long
				 * (longer than any command may be: line_too_long()
				 * judges the rest once the verb is known). */
				reply(s, 500, "5.5.2", "Error: line too long");
				break;
			case LR_NUL:
				reply(s, 500, "5.5.2", "Error: NUL character in command");
				break;
			case LR_BARE_LF:
			case LR_BARE_CR:
				/* RFC 5321 §2.3.8: CRLF is the only line terminator. */
				s->bare_lf_commands++;
				reply(s, 500, "5.5.2", "Error: bare <CR> or <LF> in command");
				break;
			default:
				break;
			}
			ev = s->pending;
		}
		if (ev == SRV_EV_NONE)
			ev = s->pending;
		if (ev == SRV_EV_NONE && s->errors > 0 && s->state != SS_DATA &&
		    s->state != SS_BDAT && check_error_limit(s, &ev)) {
			s->pending = ev;
			break;
		}
		if (ev == SRV_EV_NONE && stop_if_idle(s))
			ev = SRV_EV_CLOSE;
	}
	*used = off;
	return ev;
}

void
smtp_server_resolve(struct smtp_server *s, unsigned code, const char *enh, const char *fmt, ...)
{
	enum smtp_event ev = s->pending;
	assert(ev == SRV_EV_HELO || ev == SRV_EV_MAIL || ev == SRV_EV_RCPT || ev == SRV_EV_MESSAGE);
	s->pending = SRV_EV_NONE;
	bool ok = code >= 200 && code < 300;

	if (ev == SRV_EV_HELO && ok) {
		/* RFC 5321 §4.1.4: an accepted EHLO resets like RSET. */
		tx_free(&s->tx);
		forget_helo(s);
		s->helo = s->helo_pending;      /* moves: no copy */
		s->helo_pending = NULL;
		s->esmtp = s->helo_pending_ehlo;
		set_state(s, SS_READY);
		if (s->esmtp)
			ehlo_reply(s);
		else
			buf_appendf(&s->out, "250 %s\r\n", s->o.hostname);
		account(s, 250);
		(void)stop_if_idle(s);
		return;
	}
	if (fmt == NULL) {
		fmt = "Ok";
	}
	va_list ap;
	va_start(ap, fmt);
	vreply(s, code, enh, fmt, ap);
	va_end(ap);
	account(s, code);

	switch (ev) {
	case SRV_EV_HELO:
		x_free(&s->helo_pending);   /* refused: state stays (§4.1.4) */
		break;
	case SRV_EV_MAIL:
		if (ok)
			set_state(s, SS_MAIL);
		else
			tx_free(&s->tx);
		break;
	case SRV_EV_RCPT:
		if (ok) {
			struct smtp_tx *tx = s->tx;
			if (tx->nrcpt == tx->rcpt_cap) {
				tx->rcpt_cap = tx->rcpt_cap ? tx->rcpt_cap * 2 : 4;
				tx->rcpt = xrealloc(tx->rcpt, tx->rcpt_cap * sizeof *tx->rcpt);
			}
			tx->rcpt[tx->nrcpt++] = *s->rcpt_pending;
			set_state(s, SS_RCPT);
		}
		break;
	case SRV_EV_MESSAGE:
		tx_free(&s->tx);
		set_state(s, SS_READY);
		if (ok) {
			s->messages++;
			s->errors = 0;   /* the limit is on errors without delivering mail */
			s->junk = 0;
		}
		break;
	default:
		break;
	}
	if (code == 421) {
		tx_free(&s->tx);
		set_state(s, SS_CLOSED);
		s->pending = SRV_EV_CLOSE;
		return;
	}
	if (!ok)
		check_error_limit(s, &s->pending);
	(void)stop_if_idle(s);
}

/*
 * After each reply: once stopping, a session with no transaction open is
 * told 421 4.3.2 and closed. Not while an event awaits its reply (RFC 5321
 * §4.2: one reply per command, in order), nor between STARTTLS and the
 * handshake's end. A BDAT chunk being read and discarded after its
 * transaction failed is still read to its end (RFC 3030 §2), so the 421
 * follows its reply. Returns true if it closed.
 */
static bool
stop_if_idle(struct smtp_server *s)
{
	if (!s->stopping || s->pending != SRV_EV_NONE || s->tx != NULL ||
	    (s->state != SS_INIT && s->state != SS_READY))
		return false;
	smtp_server_shutdown(s, "4.3.2", "Service shutting down");
	s->pending = SRV_EV_CLOSE;
	return true;
}

bool
smtp_server_stop(struct smtp_server *s)
{
	if (s->state == SS_CLOSED)
		return false;
	s->stopping = true;
	return stop_if_idle(s);
}

void
smtp_server_tls_started(struct smtp_server *s)
{
	assert(s->state == SS_TLS);
	s->pending = SRV_EV_NONE;
	s->tls = true;
	/* RFC 3207 §4.2: discard all knowledge obtained from the client. */
	tx_free(&s->tx);
	forget_helo(s);
	x_free(&s->helo_pending);
	s->esmtp = false;
	line_reader_reset(&s->lr);
	set_state(s, SS_INIT);
	(void)stop_if_idle(s);
}

bool
smtp_server_storage_full(struct smtp_server *s)
{
	if (s->pending != SRV_EV_NONE || s->tx == NULL)
		return false;
	if (s->state == SS_DATA && !s->tx->dd.discard) {
		buf_free(&s->tx->body);
		data_decoder_discard(&s->tx->dd);
		return true;
	}
	if (s->state == SS_BDAT && s->bdat_discard == NULL) {
		s->bdat_discard = &discard_reply[DISCARD_STORAGE];
		tx_free(&s->tx);   /* RFC 3030 §4: the transaction has failed */
		return true;
	}
	return false;
}

char *
smtp_server_take_message(struct smtp_server *s, size_t *len)
{
	assert(s->pending == SRV_EV_MESSAGE && s->tx != NULL);
	*len = s->tx->body.len;
	return buf_steal(&s->tx->body);
}

const char *
smtp_server_with_protocol(const struct smtp_server *s)
{
	static const char *const names[2][2][2] = {
		/* [utf8][tls][auth] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};
	if (!s->esmtp)
		return "SMTP";
	bool utf8 = s->tx != NULL && s->tx->mp.smtputf8;
	return names[utf8][s->tls][s->authenticated];
}

void
smtp_server_shutdown(struct smtp_server *s, const char *enh, const char *text)
{
	buf_appendf(&s->out, "421 ");
	if (use_enh(s) && enh)
		buf_appendf(&s->out, "%s ", enh);
	buf_appendf(&s->out, "%s %s\r\n", s->o.hostname, text);
	tx_free(&s->tx);
	set_state(s, SS_CLOSED);
}

void
smtp_server_format_counts(const struct smtp_server *s, struct buf *b)
{
	unsigned ok = 0, total = 0;
	for (int c = 0; c < CMD_COUNT; c++) {
		if (s->cmd_total[c] == 0)
			continue;
		ok += s->cmd_ok[c];
		total += s->cmd_total[c];
		if (s->cmd_ok[c] == s->cmd_total[c])
			buf_appendf(b, "%s=%u ", cmd_names[c], s->cmd_total[c]);
		else
			buf_appendf(b, "%s=%u/%u ", cmd_names[c], s->cmd_ok[c], s->cmd_total[c]);
	}
	if (ok == total)
		buf_appendf(b, "commands=%u", total);
	else
		buf_appendf(b, "commands=%u/%u", ok, total);
}
