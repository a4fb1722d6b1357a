/*
 * Command-line tokenizer tests. Every input is fed whole, one byte at a
 * time and in every two-piece split, and must give the same transcript of
 * results: "L:<text>" for a good line, "TOO_LONG", "NUL", "BARE_LF",
 * "BARE_CR" for bad ones, separated by '|'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "proto/line.h"

static const char *
result_name(enum lr_result r)
{
	switch (r) {
	case LR_TOO_LONG: return "TOO_LONG";
	case LR_NUL:      return "NUL";
	case LR_BARE_LF:  return "BARE_LF";
	case LR_BARE_CR:  return "BARE_CR";
	default:          return "?";
	}
}

/* lf_ends_line for the readers run_cuts() makes (the normalize table). */
static bool lf_mode;

/* Feeds in[0..n) in pieces cut at the offsets cuts[0..ncuts) (ascending). */
static void
run_cuts(size_t limit, const char *in, size_t n, const size_t *cuts, size_t ncuts,
         struct buf *t)
{
	struct line_reader *lr = malloc(sizeof *lr);
	size_t start = 0;

	assert_non_null(lr);
	line_reader_init(lr, limit);
	lr->lf_ends_line = lf_mode;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		size_t off = start;

		while (off < end) {
			const char *line = (const char *)1;
			size_t linelen = 99, used = 0;
			enum lr_result r = line_reader_feed(lr, in + off, end - off, &used,
			    &line, &linelen);

			assert_true(used >= 1 && used <= end - off);
			/* The reader never holds more than the line limit. */
			assert_true(lr->len <= limit - 2);
			if (r == LR_NEED_MORE) {
				assert_int_equal(used, end - off);
				assert_null(line);
			} else if (r == LR_LINE) {
				assert_non_null(line);
				/* In place (followed by its CR) or gathered (NUL-terminated). */
				assert_true(line[linelen] == '\0' || line[linelen] == '\r');
				buf_append_str(t, "L:");
				buf_append(t, line, linelen);
				buf_append_char(t, '|');
			} else {
				assert_null(line);
				buf_append_str(t, result_name(r));
				buf_append_char(t, '|');
			}
			off += used;
		}
		start = end;
	}
	line_reader_free(lr);
	free(lr);
}

/* Runs every chunking of the input and checks each against expect. */
static void
check_all_ways(size_t limit, const char *in, size_t n, const char *expect)
{
	struct buf t = BUF_INIT;
	size_t *cuts = malloc((n + 1) * sizeof *cuts);

	assert_non_null(cuts);
	run_cuts(limit, in, n, NULL, 0, &t);
	assert_string_equal(buf_cstr(&t), expect);

	buf_reset(&t);
	for (size_t i = 0; i + 1 < n; i++)
		cuts[i] = i + 1;
	run_cuts(limit, in, n, cuts, n > 0 ? n - 1 : 0, &t);
	assert_string_equal(buf_cstr(&t), expect);

	/* Two pieces, cut everywhere (skipped for the very long inputs). */
	for (size_t c = 1; n < 4096 && c < n; c++) {
		buf_reset(&t);
		run_cuts(limit, in, n, &c, 1, &t);
		assert_string_equal(buf_cstr(&t), expect);
	}
	buf_free(&t);
	free(cuts);
}

struct line_case {
	const char *in;
	size_t      n;      /* 0: strlen(in) */
	const char *expect;
};

static const struct line_case cases[] = {
	{ "HELO x\r\n", 0, "L:HELO x|" },
	{ "\r\n", 0, "L:|" },
	{ "a\r\nb\r\n", 0, "L:a|L:b|" },
	{ "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", 0,
	  "L:MAIL FROM:<a@b>|L:RCPT TO:<c@d>|L:DATA|" },
	{ "no end", 0, "" },
	{ "no end\r", 0, "" },
	{ "a\nb\r\n", 0, "BARE_LF|L:b|" },
	{ "\n", 0, "BARE_LF|" },
	{ "\n\n\r\n", 0, "BARE_LF|BARE_LF|L:|" },
	{ "a\rb\r\n", 0, "BARE_CR|" },
	{ "a\r\r\n", 0, "BARE_CR|" },
	{ "\r\r\n", 0, "BARE_CR|" },
	{ "\rx\r\nok\r\n", 0, "BARE_CR|L:ok|" },
	{ "a\rb\n", 0, "BARE_LF|" },          /* bare LF ranks above bare CR */
	{ "a\0b\r\n", 5, "NUL|" },
	{ "\0\r\n", 3, "NUL|" },
	{ "a\0\nb\r\n", 6, "NUL|L:b|" },       /* NUL ranks above bare LF */
	{ "a\0\rb\r\n", 6, "NUL|" },
	{ "x\r\n\r\n", 0, "L:x|L:|" },
	{ "\x80\xff\r\n", 0, "L:\x80\xff|" },  /* 8-bit is the caller's business */
};

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = cases[i].n ? cases[i].n : strlen(cases[i].in);

		check_all_ways(SMTP_CMD_LINE_MAX, cases[i].in, n, cases[i].expect);
	}
}

static char *long_line(size_t text, const char *tail, size_t tn, size_t *n);

/* smtpd_forbid_bare_newline = normalize: a bare LF ends a good line (as
 * in Postfix); a bare CR inside a line, a NUL and an over-long line are
 * still refused. */
static const struct line_case lf_cases[] = {
	{ "a\nb\r\n", 0, "L:a|L:b|" },
	{ "\n", 0, "L:|" },
	{ "NOOP\nQUIT\r\n", 0, "L:NOOP|L:QUIT|" },
	{ "a\rb\n", 0, "BARE_CR|" },
	{ "a\r\n\n", 0, "L:a|L:|" },
	{ "a\0\nb\n", 5, "NUL|L:b|" },
};

static void
test_table_lf_ends_line(void **state)
{
	(void)state;
	lf_mode = true;
	for (size_t i = 0; i < sizeof lf_cases / sizeof lf_cases[0]; i++) {
		size_t n = lf_cases[i].n ? lf_cases[i].n : strlen(lf_cases[i].in);

		check_all_ways(SMTP_CMD_LINE_MAX, lf_cases[i].in, n, lf_cases[i].expect);
	}
	size_t n;
	char *in = long_line(SMTP_CMD_LINE_MAX - 1, "\n", 1, &n);   /* one octet over */
	check_all_ways(SMTP_CMD_LINE_MAX, in, n, "TOO_LONG|");
	free(in);
	in = long_line(SMTP_CMD_LINE_MAX - 2, "\n", 1, &n);         /* the most */
	struct buf e = BUF_INIT;
	buf_append_str(&e, "L:");
	buf_append(&e, in, SMTP_CMD_LINE_MAX - 2);
	buf_append_char(&e, '|');
	check_all_ways(SMTP_CMD_LINE_MAX, in, n, buf_cstr(&e));
	buf_free(&e);
	free(in);
	lf_mode = false;

	/* bare_lf tells a normalized line from a CRLF one. */
	struct line_reader lr;
	const char *line;
	size_t len, used;
	line_reader_init(&lr, SMTP_CMD_LINE_MAX);
	lr.lf_ends_line = true;
	assert_int_equal(line_reader_feed(&lr, "A\nB\r\n", 5, &used, &line, &len), LR_LINE);
	assert_true(lr.bare_lf);
	assert_int_equal(line_reader_feed(&lr, "B\r\n", 3, &used, &line, &len), LR_LINE);
	assert_false(lr.bare_lf);
	line_reader_free(&lr);
}

/* A line of `text` octets of 'a' followed by tail. */
static char *
long_line(size_t text, const char *tail, size_t tn, size_t *n)
{
	char *s = malloc(text + tn + 1);

	assert_non_null(s);
	memset(s, 'a', text);
	memcpy(s + text, tail, tn + 1);
	*n = text + tn;
	return s;
}

/* The tail is a string literal, possibly with a NUL in it. */
#define check_length(text, tail, kind, rest) \
	check_length_(text, tail, sizeof(tail) - 1, kind, rest)

static void
check_length_(size_t text, const char *tail, size_t tn, const char *expect_prefix_kind,
              const char *rest)
{
	size_t n;
	char *in = long_line(text, tail, tn, &n);
	struct buf e = BUF_INIT;

	if (strcmp(expect_prefix_kind, "L") == 0) {
		buf_append_str(&e, "L:");
		buf_append(&e, in, text);
		buf_append_char(&e, '|');
	} else {
		buf_append_str(&e, expect_prefix_kind);
		buf_append_char(&e, '|');
	}
	buf_append_str(&e, rest);
	check_all_ways(SMTP_CMD_LINE_MAX, in, n, buf_cstr(&e));
	buf_free(&e);
	free(in);
}

static void
test_lengths(void **state)
{
	(void)state;
	/* 511 and 512 octets including CRLF fit; 513 does not (§4.5.3.1.4). */
	check_length(509, "\r\n", "L", "");
	check_length(510, "\r\n", "L", "");
	check_length(511, "\r\n", "TOO_LONG", "");
	/* The reader resynchronises on the next line. */
	check_length(511, "\r\nQUIT\r\n", "TOO_LONG", "L:QUIT|");
	check_length(600, "\r\nNOOP\r\n", "TOO_LONG", "L:NOOP|");
	/* Too long wins over the other problems. */
	check_length(511, "\0\r\n", "TOO_LONG", "");
	check_length(520, "\n", "TOO_LONG", "");
	check_length(510, "\rx\r\n", "TOO_LONG", "");
	/* 510 octets and a bare CR: not too long until the CR is text. */
	check_length(509, "\rx\r\n", "TOO_LONG", "");
	check_length(508, "\rx\r\n", "BARE_CR", "");
	/* A 100 KiB line is consumed and reported once. */
	check_length(100 * 1024, "\r\nQUIT\r\n", "TOO_LONG", "L:QUIT|");
}

static void
test_big_limit(void **state)
{
	size_t n;
	char *in;
	struct buf e = BUF_INIT;

	(void)state;
	/* RFC 4954 §4: AUTH responses up to 12288 octets. */
	in = long_line(LINE_READER_MAX - 2, "\r\n", 2, &n);
	buf_append_str(&e, "L:");
	buf_append(&e, in, LINE_READER_MAX - 2);
	buf_append_char(&e, '|');
	check_all_ways(LINE_READER_MAX, in, n, buf_cstr(&e));
	free(in);
	in = long_line(LINE_READER_MAX - 1, "\r\n", 2, &n);
	check_all_ways(LINE_READER_MAX, in, n, "TOO_LONG|");
	free(in);
	buf_free(&e);
}

static void
test_used_and_reset(void **state)
{
	struct line_reader lr;
	const char *line;
	size_t linelen, used;
	const char *in = "EHLO a\r\nSTARTTLS\r\nEHLO b\r\n";

	(void)state;
	line_reader_init(&lr, SMTP_CMD_LINE_MAX);
	/* One line per call; *used stops right after it (PIPELINING). */
	assert_int_equal(line_reader_feed(&lr, in, strlen(in), &used, &line, &linelen), LR_LINE);
	assert_int_equal(used, 8);
	assert_int_equal(linelen, strlen("EHLO a"));
	assert_memory_equal(line, "EHLO a", linelen);
	assert_int_equal(linelen, 6);
	assert_int_equal(line_reader_feed(&lr, in + 8, strlen(in) - 8, &used, &line, &linelen),
	    LR_LINE);
	assert_int_equal(linelen, strlen("STARTTLS"));
	assert_memory_equal(line, "STARTTLS", linelen);

	/* A partial line, including a held-back CR, is forgotten by reset. */
	assert_int_equal(line_reader_feed(&lr, "RSET\r", 5, &used, &line, &linelen), LR_NEED_MORE);
	assert_int_equal(used, 5);
	line_reader_reset(&lr);
	assert_int_equal(line_reader_feed(&lr, "\n", 1, &used, &line, &linelen), LR_BARE_LF);
	assert_int_equal(line_reader_feed(&lr, "EHLO b\r\n", 8, &used, &line, &linelen), LR_LINE);
	assert_int_equal(linelen, strlen("EHLO b"));
	assert_memory_equal(line, "EHLO b", linelen);

	/* A CR at a chunk boundary pairs with the LF of the next chunk. */
	assert_int_equal(line_reader_feed(&lr, "NOOP\r", 5, &used, &line, &linelen), LR_NEED_MORE);
	assert_int_equal(line_reader_feed(&lr, "\nQUIT", 5, &used, &line, &linelen), LR_LINE);
	assert_int_equal(used, 1);
	assert_int_equal(linelen, strlen("NOOP"));
	assert_memory_equal(line, "NOOP", linelen);
	/* ...and a CR followed by anything else is a bare CR. */
	assert_int_equal(line_reader_feed(&lr, "\r", 1, &used, &line, &linelen), LR_NEED_MORE);
	assert_int_equal(line_reader_feed(&lr, "\r", 1, &used, &line, &linelen), LR_NEED_MORE);
	assert_int_equal(line_reader_feed(&lr, "\n", 1, &used, &line, &linelen), LR_BARE_CR);

	/* Empty input. */
	assert_int_equal(line_reader_feed(&lr, "", 0, &used, &line, &linelen), LR_NEED_MORE);
	assert_int_equal(used, 0);
	line_reader_free(&lr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_lf_ends_line),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_big_limit),
		cmocka_unit_test(test_used_and_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
