/*
 * Golden transcripts for the pure server machine (STYLE.md lesson 15).
 * Each transcript is a list of (client bytes, expected server bytes) steps;
 * every transcript runs twice: each step's input fed whole, and fed one
 * byte at a time. Events are answered by a scripted "session":
 *   HELO -> accept; MAIL -> 250; RCPT -> 554 5.7.1 for domain bad.test,
 *   else 250; MESSAGE -> 250 and the content is recorded; STARTTLS ->
 *   handshake "succeeds" at once; CLOSE -> the transcript ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/server.h"

struct step {
	const char *in;
	const char *out;
};

struct opts_override {
	unsigned ext_off;
	uint64_t max_size;
	unsigned max_rcpt;
	unsigned errors;
	bool tls_required;
	bool no_tls;
	enum data_bare_policy bare;
	bool reject_long_lines;
	unsigned junk;       /* smtpd_junk_command_limit + 1; 0: the default, 100 */
	unsigned overshoot;  /* smtpd_recipient_overshoot_limit */
};

struct run {
	struct smtp_server *s;
	struct buf out;
	struct buf messages;   /* each message followed by "<END>\n" */
	bool closed;
	bool drop_rest;        /* STARTTLS: the rest of this read is discarded */
	unsigned nmsg;
};

#define ALL_EXT (EXT_PIPELINING | EXT_SIZE | EXT_8BITMIME | EXT_ENHANCEDSTATUSCODES | \
    EXT_SMTPUTF8 | EXT_CHUNKING | EXT_DSN | EXT_STARTTLS)

static struct smtp_server *
mk(const struct opts_override *ov)
{
	struct smtp_server_opts o = {
		.hostname = "mx.test",
		.greeting = "mx.test ESMTP ehlo",
		.ext = ALL_EXT & ~(ov ? ov->ext_off : 0),
		.max_size = ov && ov->max_size ? ov->max_size : 10240000,
		.max_rcpt = ov && ov->max_rcpt ? ov->max_rcpt : 1000,
		.hard_error_limit = ov && ov->errors ? ov->errors : 20,
		.junk_command_limit = ov && ov->junk ? ov->junk - 1 : 100,
		.recipient_overshoot_limit = ov ? ov->overshoot : 0,
		.bare = ov ? ov->bare : DATA_BARE_REJECT,
		.reject_long_lines = ov && ov->reject_long_lines,
		.tls_available = !(ov && ov->no_tls),
		.tls_required = ov && ov->tls_required,
	};
	return smtp_server_new(&o);
}

static void
answer(struct run *r, enum smtp_event ev)
{
	struct smtp_server *s = r->s;
	switch (ev) {
	case SRV_EV_HELO:
		smtp_server_resolve(s, 250, NULL, NULL);
		break;
	case SRV_EV_MAIL:
		smtp_server_resolve(s, 250, "2.1.0", "Ok");
		break;
	case SRV_EV_RCPT:
		if (strcmp(s->rcpt_pending->path.domain, "bad.test") == 0)
			smtp_server_resolve(s, 554, "5.7.1", "Relay access denied");
		else
			smtp_server_resolve(s, 250, "2.1.5", "Ok");
		break;
	case SRV_EV_MESSAGE: {
		size_t len;
		char *m = smtp_server_take_message(s, &len);
		buf_append(&r->messages, m, len);
		buf_append_str(&r->messages, "<END>\n");
		free(m);
		r->nmsg++;
		smtp_server_resolve(s, 250, "2.0.0", "Ok: queued as Q%u", r->nmsg);
		break;
	}
	case SRV_EV_STARTTLS:
		smtp_server_tls_started(s);
		break;
	case SRV_EV_CLOSE:
		r->closed = true;
		break;
	case SRV_EV_NONE:
		break;
	}
	/* As the session does: a resolve() may leave the close pending. */
	if (s->pending == SRV_EV_CLOSE)
		r->closed = true;
}

static void
feed(struct run *r, const char *in, size_t n)
{
	size_t off = 0;
	while (off < n && !r->closed) {
		size_t used = 0;
		enum smtp_event ev = smtp_server_feed(r->s, in + off, n - off, &used);
		off += used;
		if (ev == SRV_EV_STARTTLS) {
			/* CVE-2011-0411: the session discards what was pipelined. */
			answer(r, ev);
			r->drop_rest = true;
			return;
		}
		answer(r, ev);
	}
}

/* Step inputs that are not bytes: call smtp_server_storage_full(), which
 * must return true (FULL_TAKEN) or false (FULL_IGNORED); out is then "". */
static const char FULL_TAKEN[] = "<storage full: taken>";
static const char FULL_IGNORED[] = "<storage full: ignored>";
/* Likewise smtp_server_stop(), which must return true (STOP_CLOSED: the
 * session closes; out is its 421) or false (STOP_OPEN: out is ""). */
static const char STOP_CLOSED[] = "<stop: closed>";
static const char STOP_OPEN[] = "<stop: open>";

static void
run_transcript(const struct step *steps, const struct opts_override *ov, bool bytewise,
               struct run *r)
{
	memset(r, 0, sizeof *r);
	r->s = mk(ov);
	smtp_server_greeting(r->s);
	for (const struct step *st = steps; st->in != NULL; st++) {
		buf_reset(&r->s->out);
		r->drop_rest = false;
		size_t n = strlen(st->in);
		if (st->in == FULL_TAKEN || st->in == FULL_IGNORED) {
			bool taken = smtp_server_storage_full(r->s);
			if (taken != (st->in == FULL_TAKEN)) {
				print_error("step %zu: smtp_server_storage_full returned %d\n",
				    (size_t)(st - steps), taken);
				fail();
			}
		} else if (st->in == STOP_CLOSED || st->in == STOP_OPEN) {
			bool closed = smtp_server_stop(r->s);
			if (closed != (st->in == STOP_CLOSED)) {
				print_error("step %zu: smtp_server_stop returned %d\n",
				    (size_t)(st - steps), closed);
				fail();
			}
			r->closed = closed;
		} else if (bytewise) {
			for (size_t i = 0; i < n && !r->closed && !r->drop_rest; i++)
				feed(r, st->in + i, 1);
		} else {
			feed(r, st->in, n);
		}
		if (strcmp(buf_cstr(&r->s->out), st->out) != 0) {
			print_error("step %zu (%s): input <%s>\nexpected <%s>\ngot      <%s>\n",
			    (size_t)(st - steps), bytewise ? "bytewise" : "whole", st->in, st->out,
			    buf_cstr(&r->s->out));
			fail();
		}
	}
}

static void
check(const struct step *steps, const struct opts_override *ov, const char *messages)
{
	for (int mode = 0; mode < 2; mode++) {
		struct run r;
		run_transcript(steps, ov, mode == 1, &r);
		if (messages != NULL && strcmp(buf_cstr(&r.messages), messages) != 0) {
			print_error("messages (%s):\nexpected <%s>\ngot      <%s>\n",
			    mode ? "bytewise" : "whole", messages, buf_cstr(&r.messages));
			fail();
		}
		smtp_server_free(&r.s);
		buf_free(&r.out);
		buf_free(&r.messages);
	}
}

#define EHLO_REPLY \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
/* The same with message_size_limit = 10 (opts_override .max_size = 10). */
#define EHLO_REPLY_SIZE_10 \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10\r\n250-STARTTLS\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"

static void
test_basic(void **state)
{
	static const struct step t[] = {
		{ "EHLO client.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<b@y.test>\r\n", "250 2.1.5 Ok\r\n" },
		{ "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "Subject: x\r\n\r\nhello\r\n..dot\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "QUIT\r\n", "221 2.0.0 Bye\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "Subject: x\n\nhello\n.dot\n<END>\n");
}

static void
test_helo(void **state)
{
	static const struct step t[] = {
		{ "HELO client.test\r\n", "250 mx.test\r\n" },
		/* No enhanced codes after HELO; ESMTP parameters refused. */
		{ "MAIL FROM:<a@x.test> SIZE=10\r\n", "555 Unsupported option\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 Ok\r\n" },
		{ "RCPT TO:<b@y.test> NOTIFY=NEVER\r\n", "555 Unsupported option\r\n" },
		{ "BDAT 3 LAST\r\nabc", "502 Error: CHUNKING not offered\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

/*
 * The HELO/EHLO name is kept on the heap (smtp_server.helo): a name of
 * SMTP_HELO_MAX octets or more is refused (501, the state and the name
 * accepted before stay), one octet less is accepted and kept whole, and a
 * later name replaces it (ASan checks the old one is freed, once).
 */
static void
test_helo_name_length(void **state)
{
	char ok[SMTP_HELO_MAX + 16], big[SMTP_HELO_MAX + 16];
	memcpy(ok, "HELO ", 5);
	memset(ok + 5, 'a', SMTP_HELO_MAX - 1);
	memcpy(ok + 5 + SMTP_HELO_MAX - 1, "\r\n", 3);
	memcpy(big, "HELO ", 5);
	memset(big + 5, 'b', SMTP_HELO_MAX);
	memcpy(big + 5 + SMTP_HELO_MAX, "\r\n", 3);
	const struct step t[] = {
		{ big, "501 Syntax: HELO hostname (name too long)\r\n" },
		{ ok, "250 mx.test\r\n" },
		{ big, "501 Syntax: HELO hostname (name too long)\r\n" },
		{ NULL, NULL },
	};
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct run r;
		run_transcript(t, NULL, bytewise, &r);
		assert_int_equal(strlen(r.s->helo), SMTP_HELO_MAX - 1);
		assert_memory_equal(r.s->helo, ok + 5, SMTP_HELO_MAX - 1);
		assert_int_equal(r.s->state, SS_READY);
		static const struct step again[] = {
			{ "HELO short.test\r\n", "250 mx.test\r\n" }, { NULL, NULL } };
		for (const struct step *st = again; st->in != NULL; st++)
			feed(&r, st->in, strlen(st->in));
		assert_string_equal(r.s->helo, "short.test");
		smtp_server_free(&r.s);
		buf_free(&r.out);
		buf_free(&r.messages);
	}
}

static void
test_sequencing(void **state)
{
	static const struct step t[] = {
		{ "MAIL FROM:<a@x.test>\r\n", "503 Error: send HELO/EHLO first\r\n" },
		{ "NOOP\r\n", "250 Ok\r\n" },
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "RCPT TO:<b@y.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n" },
		{ "DATA\r\n", "554 5.5.1 Error: no valid recipients\r\n" },
		{ "RCPT TO:<b@bad.test>\r\n", "554 5.7.1 Relay access denied\r\n" },
		{ "RSET extra\r\n", "501 5.5.4 Syntax: RSET\r\n" },
		{ "RSET\r\n", "250 2.0.0 Ok\r\n" },
		{ "RCPT TO:<b@y.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "DATA x\r\n", "501 5.5.4 Syntax: DATA\r\n" },
		{ "VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n" },
		{ "VRFY bob\r\n", "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n" },
		{ "EXPN list\r\n", "502 5.5.1 Error: command not implemented\r\n" },
		{ "NOOP with argument\r\n", "250 2.0.0 Ok\r\n" },
		{ "FOO\r\n", "500 5.5.2 Error: command not recognized\r\n" },
		{ "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n" },
		{ "AUTH PLAIN\r\n", "503 5.5.1 Error: authentication not enabled\r\n" },
		{ "QUIT now\r\n", "501 5.5.4 Syntax: QUIT\r\n" },
		{ "quit\r\n", "221 2.0.0 Bye\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

static void
test_pipelining(void **state)
{
	/* One group: the replies come back together and in order. */
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@bad.test>\r\n"
		  "RCPT TO:<d@y.test>\r\nDATA\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 Relay access denied\r\n250 2.1.5 Ok\r\n"
		  "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\n",
		  "250 2.0.0 Ok: queued as Q1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		  "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ ".\r\n", "250 2.0.0 Ok: queued as Q2\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "one\n<END>\n<END>\n");
}

static void
test_second_ehlo_resets(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ "EHLO c.test\r\n", EHLO_REPLY },
		/* RFC 5321 §4.1.4: as if RSET: the transaction is gone. */
		{ "RCPT TO:<b@y.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

static void
test_bdat(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "BDAT 4\r\nabcd", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		/* The chunk may contain anything, including what looks like commands. */
		{ "BDAT 12\r\nl1\r\nQUIT\r\n\r\n", "250 2.0.0 Ok: 12 octets received\r\n" },
		{ "DATA\r\n", "503 5.5.1 Error: DATA after BDAT in the same transaction\r\n" },
		{ "BDAT 6 LAST\r\nx\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 0 LAST\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued as Q2\r\n" },
		{ "BDAT x\r\n", "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
		  "421 4.5.0 mx.test Error: lost synchronization after bad BDAT\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "l1\nQUIT\n\nx\n.\n<END>\n<END>\n");
}

/* BDAT content is RFC 5322 text without BINARYMIME: the rules of DATA
 * apply (bare CR or LF, NUL, long lines), judged at the last chunk, also
 * when the offence is in an earlier chunk or split across two; under
 * normalize a bare LF is a line end and a bare CR is dropped. */
static void
test_bdat_content_rules(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ "BDAT 4\r\na\rbc", "250 2.0.0 Ok: 4 octets received\r\n" },
		{ "BDAT 2 LAST\r\n\r\n", "554 5.5.2 Error: bare <CR> or <LF> in message content\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 5 LAST\r\na\nb\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		  "554 5.5.2 Error: bare <CR> or <LF> in message content\r\n" },
		/* a CR ending one chunk and a LF starting the next make a CRLF */
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 2\r\na\r",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 2 octets received\r\n" },
		{ "BDAT 1 LAST\r\n\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 3 LAST\r\nab\r",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		  "554 5.5.2 Error: bare <CR> or <LF> in message content\r\n" },
		/* A chunk ending in CR, then RSET: the CR goes with the
		 * transaction (it made the next one's clean chunk a bare CR). */
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 3\r\nab\rRSET\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 3 octets received\r\n"
		  "250 2.0.0 Ok\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 4 LAST\r\nok\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued as Q2\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "a\n<END>\nok\n<END>\n");

	struct opts_override ov = { .bare = DATA_BARE_NORMALIZE };
	static const struct step n[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ "BDAT 9 LAST\r\na\rb\nc\r\nd\r", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ NULL, NULL },
	};
	check(n, &ov, "ab\nc\nd<END>\n");

	/* smtpd_reject_long_lines: a 999-octet text line (1001 with its CRLF)
	 * split across two chunks is refused; 998 passes. */
	struct opts_override lo = { .reject_long_lines = true };
	static char c1[] = "BDAT 500\r\n", c2[] = "BDAT 501 LAST\r\n";
	static char l1[500], l2[501];
	memset(l1, 'a', sizeof l1);
	memset(l2, 'b', sizeof l2);
	l2[499] = '\r';
	l2[500] = '\n';
	struct run lr;
	memset(&lr, 0, sizeof lr);
	lr.s = mk(&lo);
	static const char head[] = "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n";
	feed(&lr, head, sizeof head - 1);
	feed(&lr, c1, strlen(c1));
	feed(&lr, l1, sizeof l1);
	feed(&lr, c2, strlen(c2));
	feed(&lr, l2, sizeof l2);
	assert_non_null(strstr(buf_cstr(&lr.s->out), "250 2.0.0 Ok: 500 octets received\r\n"
	    "554 5.6.0 Error: text line longer than 1000 octets"));
	assert_int_equal(lr.nmsg, 0);
	smtp_server_free(&lr.s);
	buf_free(&lr.out);
	buf_free(&lr.messages);
	memset(&lr, 0, sizeof lr);
	lr.s = mk(&lo);
	feed(&lr, head, sizeof head - 1);
	feed(&lr, c1, strlen(c1));
	feed(&lr, l1, sizeof l1);
	static char c3[] = "BDAT 500 LAST\r\n";
	feed(&lr, c3, strlen(c3));
	feed(&lr, l2 + 1, 500);                /* 998 octets of text, then CRLF */
	assert_non_null(strstr(buf_cstr(&lr.s->out), "250 2.0.0 Ok: queued as Q1\r\n"));
	smtp_server_free(&lr.s);
	buf_free(&lr.out);
	buf_free(&lr.messages);

	/* A NUL (not expressible in a transcript step: they are C strings). */
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = mk(NULL);
	static const char in[] = "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	    "BDAT 5 LAST\r\na\0b\r\n";
	feed(&r, in, sizeof in - 1);
	assert_string_equal(buf_cstr(&r.s->out), EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "554 5.6.0 Error: NUL byte in message content\r\n");
	assert_int_equal(r.nmsg, 0);
	smtp_server_free(&r.s);
	buf_free(&r.out);
	buf_free(&r.messages);
}

static void
test_bdat_too_big(void **state)
{
	struct opts_override ov = { .max_size = 10 };
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY_SIZE_10 },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ "BDAT 8\r\n12345678", "250 2.0.0 Ok: 8 octets received\r\n" },
		{ "BDAT 8 LAST\r\n12345678", "552 5.3.4 Error: message file too big\r\n" },
		/* The transaction failed: later chunks are read and refused. */
		{ "BDAT 2 LAST\r\nab", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=11\r\n", "552 5.3.4 Message size exceeds fixed limit\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=10\r\n", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<b@y.test>\r\nDATA\r\n", "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "0123456789abc\r\n.\r\n", "552 5.3.4 Error: message file too big\r\n" },
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");
}

/* The shared budget for message content ran out while a message was being
 * received: the rest is read, thrown away and answered 452 4.3.1, the
 * session stays in sync and the next transaction works. */
static void
test_storage_full(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ FULL_IGNORED, "" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "line one\r\n", "" },
		{ FULL_TAKEN, "" },
		{ FULL_IGNORED, "" },
		/* What looks like commands is still content until CRLF.CRLF. */
		{ "QUIT\r\n..\r\n.\r\nNOOP\r\n",
		  "452 4.3.1 Error: insufficient system storage\r\n250 2.0.0 Ok\r\n" },
		{ FULL_IGNORED, "" },
		{ "RCPT TO:<b@y.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nok\r\n.\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		  "250 2.0.0 Ok: queued as Q1\r\n" },
		/* BDAT: the chunk is read to its announced length, then 452; the
		 * transaction is over, so its next chunk gets 503. */
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 4\r\nabcd",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 4 octets received\r\n" },
		{ "BDAT 8\r\nxy", "" },
		{ FULL_TAKEN, "" },
		{ FULL_IGNORED, "" },
		{ "QUIT\r\n", "452 4.3.1 Error: insufficient system storage\r\n" },
		{ "BDAT 2 LAST\r\nab", "503 5.5.1 Error: need MAIL command\r\n" },
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "ok\n<END>\n");
}

#define STOP_421 "421 4.3.2 mx.test Service shutting down\r\n"

/*
 * Shutdown (smtp_server_stop): a session without a transaction is told 421
 * at once; an open transaction, however far it is, may finish, and the
 * 421 follows the reply that ends it (250, a refusal, RSET) in the same
 * output, in place of the answer to whatever was pipelined after it.
 * Before, the session layer sent 421 to any session not inside DATA or
 * BDAT content, so a client between RCPT and DATA or between two BDAT
 * chunks lost its message.
 */
static void
test_stop(void **state)
{
	static const struct step idle[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ STOP_CLOSED, STOP_421 },
		{ NULL, NULL },
	};
	check(idle, NULL, "");
	static const struct step greeted[] = {
		{ STOP_CLOSED, "421 mx.test Service shutting down\r\n" },
		{ NULL, NULL },
	};
	check(greeted, NULL, "");
	static const struct step data[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ STOP_OPEN, "" },
		{ "RCPT TO:<c@y.test>\r\n", "250 2.1.5 Ok\r\n" },
		{ "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "one\r\n", "" },
		{ STOP_OPEN, "" },
		{ "two\r\n.\r\nQUIT\r\n", "250 2.0.0 Ok: queued as Q1\r\n" STOP_421 },
		{ NULL, NULL },
	};
	check(data, NULL, "one\ntwo\n<END>\n");
	static const struct step bdat[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 5\r\nhello",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 5 octets received\r\n" },
		{ STOP_OPEN, "" },
		{ "BDAT 8 LAST\r\n world\r\n", "250 2.0.0 Ok: queued as Q1\r\n" STOP_421 },
		{ NULL, NULL },
	};
	check(bdat, NULL, "hello world\n<END>\n");
	static const struct step refused[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\n", EHLO_REPLY "250 2.1.0 Ok\r\n" },
		{ STOP_OPEN, "" },
		/* A refused recipient leaves the transaction open. */
		{ "RCPT TO:<b@bad.test>\r\n", "554 5.7.1 Relay access denied\r\n" },
		{ "RSET\r\nNOOP\r\n", "250 2.0.0 Ok\r\n" STOP_421 },
		{ NULL, NULL },
	};
	check(refused, NULL, "");
	static const struct step bare[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ STOP_OPEN, "" },
		{ "a\nb\r\n.\r\n", "554 5.5.2 Error: bare <CR> or <LF> in message content\r\n" STOP_421 },
		{ NULL, NULL },
	};
	check(bare, NULL, "");
	/* A chunk too big fails the transaction, but is still read to its
	 * end (RFC 3030 §2) before its 552 and the 421. */
	struct opts_override ov = { .max_size = 10 };
	static const struct step big[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
		  EHLO_REPLY_SIZE_10 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ STOP_OPEN, "" },
		{ "BDAT 12 LAST\r\n0123456789", "" },
		{ "ab", "552 5.3.4 Error: message file too big\r\n" STOP_421 },
		{ NULL, NULL },
	};
	check(big, &ov, "");
}

/* Shutdown while the session decides (an event pending: spool, DNS) or
 * performs a TLS handshake: nothing is said before the pending reply; a
 * transaction it ends, or one that never began, then closes. */
static void
test_stop_pending(void **state)
{
	struct smtp_server *s = mk(NULL);
	size_t used;
	static const char in[] = "EHLO c.test\r\n";
	assert_int_equal(smtp_server_feed(s, in, sizeof in - 1, &used), SRV_EV_HELO);
	assert_false(smtp_server_stop(s));
	assert_int_equal(s->pending, SRV_EV_HELO);
	buf_reset(&s->out);
	smtp_server_resolve(s, 250, NULL, NULL);
	assert_int_equal(s->pending, SRV_EV_CLOSE);
	assert_non_null(strstr(buf_cstr(&s->out), "250 CHUNKING\r\n" STOP_421));
	smtp_server_free(&s);

	s = mk(NULL);
	static const char tx[] = "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	    "DATA\r\nhi\r\n.\r\n";
	size_t off = 0;
	for (;;) {
		enum smtp_event ev = smtp_server_feed(s, tx + off, sizeof tx - 1 - off, &used);
		off += used;
		if (ev == SRV_EV_MESSAGE)
			break;
		assert_true(ev == SRV_EV_HELO || ev == SRV_EV_MAIL || ev == SRV_EV_RCPT);
		if (ev == SRV_EV_RCPT) {
			/* Stopped while deciding a recipient: the transaction
			 * (MAIL accepted) goes on. */
			assert_false(smtp_server_stop(s));
			smtp_server_resolve(s, 250, "2.1.5", "Ok");
			assert_int_equal(s->pending, SRV_EV_NONE);
		} else {
			smtp_server_resolve(s, 250, NULL, NULL);
		}
	}
	assert_false(smtp_server_stop(s));
	size_t len;
	free(smtp_server_take_message(s, &len));
	buf_reset(&s->out);
	smtp_server_resolve(s, 451, "4.3.0", "Error: local delivery failed");
	assert_string_equal(buf_cstr(&s->out), "451 4.3.0 Error: local delivery failed\r\n" STOP_421);
	assert_int_equal(s->pending, SRV_EV_CLOSE);
	smtp_server_free(&s);

	s = mk(NULL);
	static const char tls[] = "STARTTLS\r\n";
	assert_int_equal(smtp_server_feed(s, in, sizeof in - 1, &used), SRV_EV_HELO);
	smtp_server_resolve(s, 250, NULL, NULL);
	assert_int_equal(smtp_server_feed(s, tls, sizeof tls - 1, &used), SRV_EV_STARTTLS);
	assert_false(smtp_server_stop(s));
	buf_reset(&s->out);
	smtp_server_tls_started(s);
	assert_int_equal(s->pending, SRV_EV_CLOSE);
	assert_string_equal(buf_cstr(&s->out), "421 mx.test Service shutting down\r\n");
	smtp_server_free(&s);
}

/* Content dropped for want of room that then also exceeds message_size_limit:
 * the permanent 552 wins over the temporary 452. */
static void
test_storage_full_then_too_big(void **state)
{
	struct opts_override ov = { .max_size = 10 };
	static const struct step t[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  EHLO_REPLY_SIZE_10
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "12345", "" },
		{ FULL_TAKEN, "" },
		{ "6789abc\r\n.\r\n", "552 5.3.4 Error: message file too big\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n12345", "250 2.1.0 Ok\r\n"
		  "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ FULL_TAKEN, "" },
		{ "6\r\n.\r\n", "452 4.3.1 Error: insufficient system storage\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");
}

static void
test_line_limits(void **state)
{
	char ok[600], big[600], huge[100 * 1024 + 8];
	/* 510 octets + CRLF = 512: the longest legal command line. */
	memcpy(ok, "NOOP ", 5);
	memset(ok + 5, 'a', 505);
	memcpy(ok + 510, "\r\n", 3);
	memcpy(big, "NOOP ", 5);
	memset(big + 5, 'a', 506);
	memcpy(big + 511, "\r\n", 3);
	memset(huge, 'b', sizeof huge - 3);
	memcpy(huge + sizeof huge - 3, "\r\n", 3);
	struct step t[] = {
		{ ok, "250 Ok\r\n" },
		{ big, "500 Error: line too long\r\n" },
		{ huge, "500 Error: line too long\r\n" },
		{ "NO\0OP\r\n", "250 Ok\r\n" },  /* strlen stops at NUL: see test_nul */
		{ "NOOP\n", "500 Error: bare <CR> or <LF> in command\r\n" },
		{ "NOOP\r\n", "250 Ok\r\n" },
		{ NULL, NULL },
	};
	t[3].in = "NOOP\r\n";
	check(t, NULL, "");
}

static void
test_nul(void **state)
{
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = mk(NULL);
	feed(&r, "NO\0OP\r\nNOOP\r\n", 13);
	assert_string_equal(buf_cstr(&r.s->out),
	    "500 Error: NUL character in command\r\n250 Ok\r\n");
	smtp_server_free(&r.s);
	buf_free(&r.messages);
}

/* Feeds n bytes (NULs included) whole, then one byte at a time on a fresh
 * machine, and checks the output both ways. */
static void
check_bytes(const struct opts_override *ov, const char *in, size_t n, const char *out)
{
	for (int mode = 0; mode < 2; mode++) {
		struct run r;
		memset(&r, 0, sizeof r);
		r.s = mk(ov);
		if (mode == 0)
			feed(&r, in, n);
		else
			for (size_t i = 0; i < n && !r.closed; i++)
				feed(&r, in + i, 1);
		if (strcmp(buf_cstr(&r.s->out), out) != 0) {
			print_error("%s: expected <%s>\ngot      <%s>\n", mode ? "bytewise" : "whole",
			    out, buf_cstr(&r.s->out));
			fail();
		}
		smtp_server_free(&r.s);
		buf_free(&r.messages);
	}
}

#define TX_START "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
#define TX_REPLIES "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"

/* A NUL in message content is refused (554 5.6.0) wherever it sits: in a
 * short line (the decoder's byte loop) and in the middle of a long one
 * (its word-at-a-time scan); the session stays in sync. */
static void
test_nul_in_content(void **state)
{
	static const char short_nul[] = TX_START "a\0b\r\n.\r\nNOOP\r\n";
	static const char long_nul[] = TX_START "xxxxxxxxxxxxxxxxxxxxxxx\0yyyyyyyyyyyyyyyyyyyyyyyy\r\n.\r\nNOOP\r\n";
	const char *want = EHLO_REPLY TX_REPLIES
	    "554 5.6.0 Error: NUL byte in message content\r\n250 2.0.0 Ok\r\n";
	check_bytes(NULL, short_nul, sizeof short_nul - 1, want);
	check_bytes(NULL, long_nul, sizeof long_nul - 1, want);
}

/* message_size_limit counts the message as received, CRLFs included
 * (RFC 1870 §6.3): exactly the limit is accepted, one octet more is not. */
static void
test_size_boundary(void **state)
{
	struct opts_override ov = { .max_size = 10 };
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY_SIZE_10 },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", TX_REPLIES },
		{ "12345678\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", TX_REPLIES },
		{ "123456789\r\n.\r\n", "552 5.3.4 Error: message file too big\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "12345678\n<END>\n");
}

/* prefix, padded with spaces (trailing spaces are allowed after
 * parameters and arguments) to total octets with the CRLF. Static. */
static const char *
padded(char *out, const char *prefix, size_t total)
{
	size_t n = strlen(prefix);
	assert_true(n + 2 <= total);
	memcpy(out, prefix, n);
	memset(out + n, ' ', total - 2 - n);
	memcpy(out + total - 2, "\r\n", 3);
	return out;
}

/*
 * RFC 5321 §4.5.3.1.4 lets extensions lengthen command lines: MAIL gets
 * 512 + SIZE 26 + SMTPUTF8 10 + DSN 116 (" RET=HDRS ENVID=" and 100) = 664
 * here, RCPT 512 + DSN 536 (" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=" and
 * 500) = 1048, the reader's cap; any other command, and MAIL/RCPT after
 * HELO or without the extension, stays at 512.
 */
static void
test_line_limits_extensions(void **state)
{
	static char noop513[600], mail664[700], mail665[700], rcpt1048[1100], rcpt1049[1100];
	static char orcpt522[700], orcpt_max[1200], helo_mail513[600], ehlo_rcpt513[600];
	char v[600];

	padded(noop513, "NOOP", 513);
	memset(v, 'e', 100);
	v[100] = '\0';
	char mail[700];
	snprintf(mail, sizeof mail, "MAIL FROM:<a@x.test> SIZE=1 SMTPUTF8 RET=HDRS ENVID=%s", v);
	padded(mail664, mail, 664);
	padded(mail665, mail, 665);
	padded(rcpt1048, "RCPT TO:<b@y.test>", 1048);
	padded(rcpt1049, "RCPT TO:<b@y.test>", 1049);
	/* The audit's case: 522 octets, an ORCPT value of 489. */
	memset(v, 'a', 482);
	v[482] = '\0';
	snprintf(orcpt522, sizeof orcpt522, "RCPT TO:<x@example.test> ORCPT=rfc822;%s\r\n", v);
	assert_int_equal(strlen(orcpt522), 522);
	/* ORCPT's longest value (500) after NOTIFY, with a 252-octet address. */
	char path[300], rcpt[1200];
	char label[61];
	memset(label, 'd', 60);
	label[60] = '\0';
	memset(path, 'p', 64);
	snprintf(path + 64, sizeof path - 64, "@%s.%s.%s.test", label, label, label);
	assert_int_equal(strlen(path), 252);
	memset(v, 'o', 493);
	v[493] = '\0';
	snprintf(rcpt, sizeof rcpt, "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;%s\r\n",
	    path, v);
	snprintf(orcpt_max, sizeof orcpt_max, "%s", rcpt);
	padded(helo_mail513, "MAIL FROM:<a@x.test>", 513);
	padded(ehlo_rcpt513, "RCPT TO:<b@y.test>", 513);

	struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ noop513, "500 5.5.2 Error: line too long\r\n" },
		{ mail665, "500 5.5.2 Error: line too long\r\n" },
		{ mail664, "250 2.1.0 Ok\r\n" },
		{ orcpt522, "250 2.1.5 Ok\r\n" },
		{ orcpt_max, "250 2.1.5 Ok\r\n" },
		{ rcpt1048, "250 2.1.5 Ok\r\n" },
		{ rcpt1049, "500 5.5.2 Error: line too long\r\n" },
		{ "RCPT TO:<b@y.test>\r\n", "250 2.1.5 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
	/* No extensions after HELO. */
	struct step t2[] = {
		{ "HELO c.test\r\n", "250 mx.test\r\n" },
		{ helo_mail513, "500 Error: line too long\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 Ok\r\n" },
		{ ehlo_rcpt513, "500 Error: line too long\r\n" },
		{ NULL, NULL },
	};
	check(t2, NULL, "");
	/* Without DSN, RCPT keeps 512 after EHLO too. */
	struct opts_override off = { .ext_off = EXT_DSN };
	struct step t3[] = {
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		  "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
		  "250-SMTPUTF8\r\n250 CHUNKING\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ ehlo_rcpt513, "500 5.5.2 Error: line too long\r\n" },
		{ NULL, NULL },
	};
	check(t3, &off, "");
}

/* Feeds a whole command that stops for an event; returns the event. */
static enum smtp_event
feed_event(struct smtp_server *s, const char *in)
{
	size_t used = 0;
	enum smtp_event ev = smtp_server_feed(s, in, strlen(in), &used);
	assert_int_equal(used, strlen(in));
	return ev;
}

/*
 * RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF.
 * A resolve() text that would pass it is cut there, not inside a UTF-8
 * character nor inside a "\xNN" escape (the session shortens what it
 * quotes; this is the last resort).
 */
static void
test_reply_line_cap(void **state)
{
	static const char *const units[] = { "\xc3\xbc", "\\xc3\\xbc", "a" };
	static const size_t gran[] = { 2, 4, 1 };   /* UTF-8 character, escape, octet */
	for (size_t u = 0; u < 3; u++) {
		for (size_t shift = 0; shift < 4; shift++) {
			struct smtp_server *s = mk(NULL);
			assert_int_equal(feed_event(s, "EHLO c.test\r\n"), SRV_EV_HELO);
			smtp_server_resolve(s, 250, NULL, NULL);
			assert_int_equal(feed_event(s, "MAIL FROM:<a@x.test>\r\n"), SRV_EV_MAIL);
			smtp_server_resolve(s, 250, NULL, NULL);
			assert_int_equal(feed_event(s, "RCPT TO:<b@y.test>\r\n"), SRV_EV_RCPT);
			struct buf t = BUF_INIT;
			buf_append(&t, "xxx", shift);   /* move the cut through a unit */
			for (int i = 0; i < 600; i++)
				buf_append_str(&t, units[u]);
			buf_reset(&s->out);
			smtp_server_resolve(s, 554, "5.7.1", "<%s>: Relay access denied", buf_cstr(&t));
			const char *o = buf_cstr(&s->out);
			size_t n = strlen(o);
			if (n > SMTP_REPLY_LINE_MAX || n + 4 < SMTP_REPLY_LINE_MAX)
				fail_msg("unit %zu shift %zu: %zu octets", u, shift, n);
			assert_memory_equal(o + n - 2, "\r\n", 2);
			assert_memory_equal(o, "554 5.7.1 <", 11);
			/* After the prefix and the shift, only whole characters / escapes. */
			size_t body = n - 2 - 11 - shift, k = gran[u];
			assert_int_equal(body % k, 0);
			for (size_t i = 0; i < body; i += k)
				assert_memory_equal(o + 11 + shift + i, units[u] + i % strlen(units[u]), k);
			buf_free(&t);
			smtp_server_free(&s);
		}
	}
}

/* SIZE= is 1*20DIGIT (RFC 1870 §3): twenty digits past 2^64-1 are a size
 * over the limit (552 5.3.4, §6.1), as 2^64-1 itself is, not bad syntax. */
static void
test_size_overflow(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test> SIZE=18446744073709551615\r\n",
		  "552 5.3.4 Message size exceeds fixed limit\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=18446744073709551616\r\n",
		  "552 5.3.4 Message size exceeds fixed limit\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=99999999999999999999\r\n",
		  "552 5.3.4 Message size exceeds fixed limit\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=999999999999999999999\r\n",
		  "501 5.5.4 Bad parameter value\r\n" },
		{ "MAIL FROM:<a@x.test> SIZE=10240000\r\n", "250 2.1.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

/* smtpd_reject_long_lines = yes: a text line of 998 octets plus CRLF is
 * the longest RFC 5321 §4.5.3.1.6 allows; one more octet gets 554 5.6.0. */
static void
test_reject_long_lines(void **state)
{
	struct opts_override ov = { .reject_long_lines = true };
	static char ok[998 + 6], bad[999 + 6];
	memset(ok, 'a', 998);
	memcpy(ok + 998, "\r\n.\r\n", 6);
	memset(bad, 'b', 999);
	memcpy(bad + 999, "\r\n.\r\n", 6);
	struct step t[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  EHLO_REPLY TX_REPLIES },
		{ ok, "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", TX_REPLIES },
		{ bad, "554 5.6.0 Error: text line longer than 1000 octets (RFC 5321 \xc2\xa7" "4.5.3.1.6)\r\n" },
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, NULL);
}

/* The error limit counts errors without delivering mail (as Postfix's
 * smtpd_hard_error_limit): a delivered message starts the count again. */
static void
test_error_count_reset_by_delivery(void **state)
{
	struct opts_override ov = { .errors = 3 };
	static const struct step t[] = {
		{ "EHLO c.test\r\nX\r\nY\r\n", EHLO_REPLY
		  "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n",
		  TX_REPLIES "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "X\r\nY\r\nNOOP\r\n", "500 5.5.2 Error: command not recognized\r\n"
		  "500 5.5.2 Error: command not recognized\r\n250 2.0.0 Ok\r\n" },
		{ "Z\r\n", "500 5.5.2 Error: command not recognized\r\n"
		  "421 4.7.0 mx.test Error: too many errors\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "hi\n<END>\n");
}

static void feed_str(struct run *r, const char *in);

/* smtpd_junk_command_limit: past the limit each NOOP, RSET, VRFY, EXPN or
 * HELP still gets its reply but also counts as an error, so chatter alone
 * reaches the error limit's 421; an accepted message starts the count
 * again, and MAIL, RCPT and DATA are not junk. */
static void
test_junk_command_limit(void **state)
{
	struct opts_override ov = { .junk = 2 + 1, .errors = 3 };
	static const struct step t[] = {
		{ "EHLO c.test\r\nNOOP\r\nRSET\r\n", EHLO_REPLY
		  "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\n",
		  TX_REPLIES "250 2.0.0 Ok: queued as Q1\r\n" },
		/* the count started again: two free, then errors 1, 2 and 3 */
		{ "HELP\r\nNOOP\r\nVRFY x\r\n", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
		  "BDAT RSET NOOP QUIT VRFY HELP STARTTLS\r\n250 2.0.0 Ok\r\n"
		  "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRSET\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n" },
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n421 4.7.0 mx.test Error: too many errors\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "hi\n<END>\n");

	/* "BDAT 0" without LAST moves nothing: junk too. */
	static const struct step b[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" },
		{ "BDAT 0\r\nBDAT 0\r\nBDAT 0\r\n", "250 2.0.0 Ok: 0 octets received\r\n"
		  "250 2.0.0 Ok: 0 octets received\r\n250 2.0.0 Ok: 0 octets received\r\n" },
		{ "BDAT 0\r\nBDAT 0\r\n", "250 2.0.0 Ok: 0 octets received\r\n"
		  "250 2.0.0 Ok: 0 octets received\r\n421 4.7.0 mx.test Error: too many errors\r\n" },
		{ NULL, NULL },
	};
	struct opts_override ov2 = { .junk = 2 + 1, .errors = 3 };
	check(b, &ov2, "");
}

/* smtp_server_mid_request: true from the first octet of a command line to
 * its LF (a lone CR too), and through DATA content and a BDAT chunk. */
static void
test_mid_request(void **state)
{
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = mk(NULL);
	assert_false(smtp_server_mid_request(r.s));
	feed_str(&r, "EH");
	assert_true(smtp_server_mid_request(r.s));
	feed_str(&r, "LO c.test\r");
	assert_true(smtp_server_mid_request(r.s));
	feed_str(&r, "\n");
	assert_false(smtp_server_mid_request(r.s));
	feed_str(&r, "\r");
	assert_true(smtp_server_mid_request(r.s));
	feed_str(&r, "\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	assert_true(smtp_server_mid_request(r.s));   /* content follows */
	feed_str(&r, "hi\r\n.\r\n");
	assert_false(smtp_server_mid_request(r.s));
	feed_str(&r, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 4 LAST\r\nab");
	assert_true(smtp_server_mid_request(r.s));
	feed_str(&r, "cd");
	assert_false(smtp_server_mid_request(r.s));
	feed_str(&r, "QUIT\r\n");
	assert_false(smtp_server_mid_request(r.s));
	smtp_server_free(&r.s);
	buf_free(&r.out);
	buf_free(&r.messages);
}

/* BDAT sizes near 2^64 must not wrap the running total past the limit
 * (RFC 3030 §4): the transaction fails and the chunk is only discarded. */
static void
test_bdat_size_wrap(void **state)
{
	struct opts_override ov = { .max_size = 10 };
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = mk(&ov);
	static const char in[] = "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	    "BDAT 1\r\nx" "BDAT 18446744073709551615\r\nabcdef";
	feed(&r, in, sizeof in - 1);
	assert_string_equal(buf_cstr(&r.s->out), EHLO_REPLY_SIZE_10
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 1 octets received\r\n");
	assert_null(r.s->tx);                 /* failed, not buffering */
	assert_non_null(r.s->bdat_discard);
	smtp_server_free(&r.s);
	buf_free(&r.messages);
}

static void
feed_str(struct run *r, const char *in)
{
	feed(r, in, strlen(in));
}

/* RFC 2920 §3.1: input after a group-ending command in the same read (or
 * after any command without PIPELINING) is noted once, with the command. */
static void
test_improper_pipelining(void **state)
{
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = mk(NULL);
	feed_str(&r, "EHLO c.test\r\n");
	feed_str(&r, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	feed_str(&r, "hi\r\n.\r\n");
	assert_false(r.s->improper_pipelining);
	feed_str(&r, "NOOP\r\nRSET\r\nNOOP\r\n");
	assert_true(r.s->improper_pipelining);
	assert_int_equal(r.s->improper_after, CMD_NOOP);
	assert_int_equal(r.s->improper_off, 6);   /* "RSET..." follows "NOOP\r\n" */
	smtp_server_free(&r.s);
	buf_free(&r.messages);

	struct opts_override ov = { .ext_off = EXT_PIPELINING };
	memset(&r, 0, sizeof r);
	r.s = mk(&ov);
	feed_str(&r, "EHLO c.test\r\n");
	assert_false(r.s->improper_pipelining);
	feed_str(&r, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n");
	assert_true(r.s->improper_pipelining);
	assert_int_equal(r.s->improper_after, CMD_MAIL);
	smtp_server_free(&r.s);
	buf_free(&r.messages);
}

static void
test_error_limit(void **state)
{
	struct opts_override ov = { .errors = 3 };
	static const struct step t[] = {
		{ "X\r\n", "500 Error: command not recognized\r\n" },
		{ "Y\r\n", "500 Error: command not recognized\r\n" },
		{ "Z\r\nNOOP\r\n", "500 Error: command not recognized\r\n421 mx.test Error: too many errors\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");
}

static void
test_starttls(void **state)
{
	static const struct step t[] = {
		{ "STARTTLS\r\n", "503 Error: send EHLO first\r\n" },
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "STARTTLS now\r\n", "501 5.5.4 Syntax: STARTTLS\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		/* The pipelined NOOP is dropped (the feeder discards after STARTTLS). */
		{ "STARTTLS\r\nNOOP\r\n", "220 2.0.0 Ready to start TLS\r\n" },
		/* RFC 3207 §4.2: everything forgotten, no STARTTLS offered now. */
		{ "MAIL FROM:<a@x.test>\r\n", "503 Error: send HELO/EHLO first\r\n" },
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n" },
		{ "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

static void
test_tls_required(void **state)
{
	struct opts_override ov = { .tls_required = true };
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\n", "530 5.7.0 Must issue a STARTTLS command first\r\n" },
		{ "RCPT TO:<a@x.test>\r\n", "530 5.7.0 Must issue a STARTTLS command first\r\n" },
		/* RFC 3207 §4: only NOOP, EHLO, STARTTLS and QUIT before TLS */
		{ "RSET\r\nVRFY a\r\nEXPN a\r\nHELP\r\nNOOP\r\n",
		  "530 5.7.0 Must issue a STARTTLS command first\r\n"
		  "530 5.7.0 Must issue a STARTTLS command first\r\n"
		  "530 5.7.0 Must issue a STARTTLS command first\r\n"
		  "530 5.7.0 Must issue a STARTTLS command first\r\n250 2.0.0 Ok\r\n" },
		{ "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n" },
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n" },
		{ "MAIL FROM:<a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");
	struct opts_override nocert = { .no_tls = true };
	static const struct step t2[] = {
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n" },
		{ "STARTTLS\r\n", "454 4.7.0 TLS not available due to local problem\r\n" },
		{ "HELP\r\n", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n" },
		{ NULL, NULL },
	};
	check(t2, &nocert, "");
	/* Not configured at all (security level none, or the keyword
	 * discarded): an unknown command, 502 as in Postfix. */
	struct opts_override off = { .ext_off = EXT_STARTTLS };
	static const struct step t3[] = {
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n" },
		{ "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n" },
		{ NULL, NULL },
	};
	check(t3, &off, "");
}

static void
test_utf8_and_params(void **state)
{
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<j\xc3\xb6rg@x.test>\r\n",
		  "553 5.6.7 Error: non-ASCII sender address requires SMTPUTF8\r\n" },
		{ "MAIL FROM:<j\xc3\xb6rg@x.test> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=a+2Bb\r\n",
		  "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<m\xc3\xbc@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40y.test\r\n",
		  "250 2.1.5 Ok\r\n" },
		/* RFC 6533 §3: utf-8-addr-unitext in an SMTPUTF8 transaction. */
		{ "RCPT TO:<b@y.test> ORCPT=utf-8;m\xc3\xbc@y.test\r\n", "250 2.1.5 Ok\r\n" },
		{ "RSET\r\nMAIL FROM:<a@x.test> FOO=BAR\r\n", "250 2.0.0 Ok\r\n555 5.5.4 Unsupported option\r\n" },
		{ "MAIL FROM:<a@x.test> BODY=9BIT\r\n", "501 5.5.4 Bad parameter value\r\n" },
		{ "MAIL FROM:a@x.test\r\n", "501 5.1.7 Bad sender address syntax\r\n" },
		{ "MAIL TO:<a@x.test>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n" },
		{ "MAIL FROM: <a@x.test>\r\n", "250 2.1.0 Ok\r\n" },
		{ "RCPT TO:<>\r\n", "501 5.1.3 Bad recipient address syntax\r\n" },
		/* Not an SMTPUTF8 transaction: ORCPT is xtext only. */
		{ "RCPT TO:<b@y.test> ORCPT=utf-8;m\xc3\xbc@y.test\r\n",
		  "501 5.5.4 Bad parameter value\r\n" },
		{ "RCPT TO:<b@y.test> ORCPT=utf-8;m\\x{FC}@y.test\r\n", "250 2.1.5 Ok\r\n" },
		{ "RCPT TO:<m\xc3\xbc@y.test>\r\n",
		  "553 5.6.7 Error: non-ASCII recipient address requires SMTPUTF8\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

static void
test_smuggling(void **state)
{
	/* Under the default policy the bare-LF message is refused whole, and
	 * the "second message" inside it is never executed. */
	static const struct step t[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "one\r\n\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nevil\r\n"
		  "\n.\r\n\r.\r\nx\r\n.\r\n",
		  "554 5.5.2 Error: bare <CR> or <LF> in message content\r\n" },
		{ "NOOP\r\n", "250 2.0.0 Ok\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
	/* normalize: one message; the smuggled commands are message text. */
	struct opts_override ov = { .bare = DATA_BARE_NORMALIZE };
	static const struct step t2[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "one\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ NULL, NULL },
	};
	struct run r;
	run_transcript(t2, &ov, false, &r);
	assert_int_equal(r.nmsg, 1);
	assert_non_null(strstr(buf_cstr(&r.messages), "MAIL FROM:<evil@x.test>"));
	smtp_server_free(&r.s);
	buf_free(&r.messages);
}

static void
test_discard_keywords(void **state)
{
	struct opts_override ov = { .ext_off = EXT_8BITMIME | EXT_CHUNKING | EXT_PIPELINING };
	static const struct step t[] = {
		/* SMTPUTF8 requires 8BITMIME (RFC 6531), so it goes too. */
		{ "EHLO c.test\r\n", "250-mx.test\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n" },
		{ "MAIL FROM:<a@x.test> BODY=8BITMIME\r\n", "555 5.5.4 Unsupported option\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");
}

/* HELP lists what the session can use: after HELO neither BDAT nor
 * STARTTLS (both need EHLO), after EHLO both. */
static void
test_help_follows_the_session(void **state)
{
	static const struct step t[] = {
		{ "HELP\r\n", "214 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
		  "HELP STARTTLS\r\n" },
		{ "HELO c.test\r\nHELP\r\n", "250 mx.test\r\n214 Commands: EHLO HELO MAIL RCPT "
		  "DATA RSET NOOP QUIT VRFY HELP\r\n" },
		{ "EHLO c.test\r\nHELP\r\n", EHLO_REPLY "214 2.0.0 Commands: EHLO HELO MAIL "
		  "RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
}

static void
test_http_verbs(void **state)
{
	static const struct step t[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n", "221 Error: this is an SMTP server; closing\r\n" },
		{ NULL, NULL },
	};
	check(t, NULL, "");
	/* Logged as a failed command, not a successful one. */
	struct run r;
	run_transcript(t, NULL, false, &r);
	struct buf b = BUF_INIT;
	smtp_server_format_counts(r.s, &b);
	assert_string_equal(buf_cstr(&b), "unknown=0/1 commands=0/1");
	assert_int_equal(r.s->errors, 1);
	buf_free(&b);
	smtp_server_free(&r.s);
	buf_free(&r.out);
	buf_free(&r.messages);
}

static void
test_counts_and_protocol(void **state)
{
	struct run r;
	static const struct step t[] = {
		{ "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<b@bad.test>\r\n",
		  EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n554 5.7.1 Relay access denied\r\n" },
		{ NULL, NULL },
	};
	run_transcript(t, NULL, false, &r);
	assert_string_equal(smtp_server_with_protocol(r.s), "ESMTP");
	struct buf b = BUF_INIT;
	smtp_server_format_counts(r.s, &b);
	assert_string_equal(buf_cstr(&b), "ehlo=1 mail=1 rcpt=1/2 commands=3/4");
	buf_free(&b);
	r.s->tls = true;
	assert_string_equal(smtp_server_with_protocol(r.s), "ESMTPS");
	smtp_server_free(&r.s);
	buf_free(&r.messages);
}

static void
test_recipient_limit(void **state)
{
	struct opts_override ov = { .max_rcpt = 2 };
	static const struct step t[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n" },
		{ NULL, NULL },
	};
	check(t, &ov, "");

	/* The 452s for recipients past the limit are not errors, up to the
	 * overshoot limit (here 3, with a hard error limit of 2) in each
	 * transaction, as Postfix counts: the message to the accepted
	 * recipient goes through. Past it, each counts, and the second such
	 * one ends the session. */
	struct opts_override ov2 = { .max_rcpt = 1, .errors = 2, .overshoot = 3 };
	static const struct step t2[] = {
		{ "EHLO c.test\r\n", EHLO_REPLY },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
		  "RCPT TO:<d@y.test>\r\nRCPT TO:<e@y.test>\r\nDATA\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
		  "452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n"
		  "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "x\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
		{ "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
		  "RCPT TO:<d@y.test>\r\nRCPT TO:<e@y.test>\r\nRCPT TO:<f@y.test>\r\n"
		  "RCPT TO:<g@y.test>\r\n",
		  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
		  "452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n"
		  "452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n"
		  "421 4.7.0 mx.test Error: too many errors\r\n" },
		{ NULL, NULL },
	};
	check(t2, &ov2, "x\n<END>\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_helo_name_length),
		cmocka_unit_test(test_sequencing),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_second_ehlo_resets),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_too_big),
		cmocka_unit_test(test_storage_full),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_stop_pending),
		cmocka_unit_test(test_storage_full_then_too_big),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_line_limits_extensions),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_reply_line_cap),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_error_limit),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_tls_required),
		cmocka_unit_test(test_utf8_and_params),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_discard_keywords),
		cmocka_unit_test(test_http_verbs),
		cmocka_unit_test(test_counts_and_protocol),
		cmocka_unit_test(test_recipient_limit),
		cmocka_unit_test(test_nul_in_content),
		cmocka_unit_test(test_size_boundary),
		cmocka_unit_test(test_reject_long_lines),
		cmocka_unit_test(test_error_count_reset_by_delivery),
		cmocka_unit_test(test_bdat_content_rules),
		cmocka_unit_test(test_junk_command_limit),
		cmocka_unit_test(test_help_follows_the_session),
		cmocka_unit_test(test_mid_request),
		cmocka_unit_test(test_bdat_size_wrap),
		cmocka_unit_test(test_improper_pipelining),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
