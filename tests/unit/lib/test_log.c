/*
 * Log line format (src/lib/log.c): "<UTC time>.<µs>Z <host> <prog>[<pid>]:
 * [warning: |error: ]<message>", one write per line or per batch, and the
 * time part matching the clock (it is cached per second). The binary is
 * linked with -Wl,--wrap=write, so that the library's writes are recorded
 * and a batch's boundaries can be checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"

static char path[64];

/* The sizes of the log library's writes (-Wl,--wrap=write). */
ssize_t __real_write(int fd, const void *p, size_t n);
ssize_t __wrap_write(int fd, const void *p, size_t n);
static size_t writes[64];
static int nwrites;

ssize_t
__wrap_write(int fd, const void *p, size_t n)
{
	if (nwrites < (int)(sizeof writes / sizeof writes[0]))
		writes[nwrites] = n;
	nwrites++;
	return __real_write(fd, p, n);
}

static char *
slurp(void)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char data[65536];
	size_t n = fread(data, 1, sizeof data - 1, f);
	data[n] = '\0';
	fclose(f);
	return data;
}

/* Checks one line; returns its time in seconds since the epoch. */
static time_t
check_line(const char *line, const char *want_rest)
{
	struct tm tm = { 0 };
	const char *p = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(p);
	assert_int_equal(p[0], '.');
	for (int i = 1; i <= 6; i++)
		assert_true(p[i] >= '0' && p[i] <= '9');
	assert_int_equal(p[7], 'Z');
	assert_int_equal(p[8], ' ');
	const char *prog = strstr(p, " test-log[");
	assert_non_null(prog);
	char pid[32];
	snprintf(pid, sizeof pid, "[%ld]: ", (long)getpid());
	assert_memory_equal(prog + 9, pid, strlen(pid));
	const char *rest = prog + 9 + strlen(pid);
	assert_memory_equal(rest, want_rest, strlen(want_rest));
	assert_int_equal(rest[strlen(want_rest)], '\n');
	return timegm(&tm);
}

static void
test_format(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "/tmp/ehlo-test-log.%ld", (long)getpid());
	unlink(path);
	assert_int_equal(log_open(path, "test-log"), 0);
	time_t t0 = time(NULL);
	log_msg(LOG_LVL_INFO, "hello %d %s", 42, "world");
	log_msg(LOG_LVL_WARN, "careful");
	log_batch_begin();
	for (int i = 0; i < 300; i++)       /* more than one batch buffer */
		log_msg(LOG_LVL_ERR, "line %03d %s", i,
		    "..................................................");
	log_batch_end();
	/* Across a second boundary the cached time part must move on. */
	sleep(1);
	log_msg(LOG_LVL_INFO, "later");
	time_t t1 = time(NULL);
	log_close();

	char *data = slurp();
	char *line = data, *nl;
	int n = 0;
	time_t first = 0, last = 0;
	char want[128];
	while ((nl = strchr(line, '\n')) != NULL) {
		if (n == 0)
			snprintf(want, sizeof want, "hello 42 world");
		else if (n == 1)
			snprintf(want, sizeof want, "warning: careful");
		else if (n < 302)
			snprintf(want, sizeof want, "error: line %03d %s", n - 2,
			    "..................................................");
		else
			snprintf(want, sizeof want, "later");
		time_t t = check_line(line, want);
		if (n == 0)
			first = t;
		last = t;
		n++;
		line = nl + 1;
	}
	assert_int_equal(n, 303);
	assert_true(first >= t0 && first <= t1);
	assert_true(last > first && last <= t1);
	unlink(path);
}

/* Peer text in a log line: printable ASCII stays, everything else and the
 * backslash (so that an escape in the log is always ours) become \xHH,
 * and text over max bytes is cut with "...". */
static void
test_sanitize(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t n, max;
		const char *want;
	} t[] = {
		{ "plain text <a@b>", 16, 64, "plain text <a@b>" },
		{ "a\\x41", 5, 64, "a\\x5cx41" },
		{ "\x7f\x1b[31m\r\n", 8, 64, "\\x7f\\x1b[31m\\x0d\\x0a" },
		{ "\x80\xff", 2, 64, "\\x80\\xff" },
		{ "a\0b", 3, 64, "a\\x00b" },
		{ "0123456789", 10, 10, "0123456789" },
		{ "0123456789", 10, 9, "012345678..." },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct buf b = BUF_INIT;
		const char *got = log_sanitize(&b, t[i].in, t[i].n, t[i].max);
		if (strcmp(got, t[i].want) != 0)
			fail_msg("case %zu: got <%s>, want <%s>", i, got, t[i].want);
		buf_free(&b);
	}
}

/* The same rendering in at most width octets, cut only between whole
 * characters (a UTF-8 sequence's escapes stay together) and marked "...". */
static void
test_sanitize_fit(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t width;
		const char *want;
	} t[] = {
		{ "0123456789", 10, "0123456789" },
		{ "0123456789", 9, "012345..." },
		{ "", 3, "" },
		{ "abcd", 3, "..." },
		/* U+00FC is two octets, eight escaped: all of it or none. */
		{ "a\xc3\xbc", 9, "a\\xc3\\xbc" },
		{ "a\xc3\xbc" "bc", 10, "a..." },
		{ "a\xc3\xbc" "bcde", 12, "a\\xc3\\xbc..." },
		/* A lone lead octet or continuation is one character of its own. */
		{ "\xc3" "abcdef", 8, "\\xc3a..." },
		{ "\xbc\xbc" "abc", 9, "\\xbc..." },
		{ "a\\b", 6, "a\\x5cb" },
		{ "a\\bc", 6, "a..." },
		/* Four-octet character: 16 octets escaped. */
		{ "\xf0\x9f\x98\x80" "x", 16, "..." },
		{ "\xf0\x9f\x98\x80" "xyzw", 19, "\\xf0\\x9f\\x98\\x80..." },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct buf b = BUF_INIT;
		const char *got = sanitize_fit(&b, t[i].in, strlen(t[i].in), t[i].width);
		if (strcmp(got, t[i].want) != 0)
			fail_msg("case %zu: got <%s>, want <%s>", i, got, t[i].want);
		assert_true(strlen(got) <= t[i].width);
		buf_free(&b);
	}
}

/* log_sanitize_to bounds the output (max + 3 with the "..."), escapes and
 * UTF-8 characters whole: what does not fit is left out, and "..." says so. */
static void
test_sanitize_to(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t n, max;
		const char *want;
	} t[] = {
		{ "plain", 5, 5, "plain" },
		{ "plain", 5, 2, "plain" },             /* fits in max + 3 */
		{ "plainly", 7, 3, "pla..." },
		{ "ab\xc3\xa9", 4, 10, "ab\\xc3\\xa9" },
		{ "ab\xc3\xa9", 4, 7, "ab\\xc3\\xa9" },
		{ "ab\xc3\xa9", 4, 6, "ab..." },        /* never half a character */
		{ "ab\xc3\xa9", 4, 5, "ab..." },
		{ "\\", 1, 0, "..." },
		{ "", 0, 0, "" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct buf b = BUF_INIT;
		const char *got = log_sanitize_to(&b, t[i].in, t[i].n, t[i].max);
		if (strcmp(got, t[i].want) != 0)
			fail_msg("case %zu: got <%s>, want <%s>", i, got, t[i].want);
		buf_free(&b);
	}
}

/*
 * A line longer than LOG_LINE_MAX is cut to fit, ends in LOG_CUT_MARK, and
 * never splits a \xHH escape, at any alignment of the escapes to the cut;
 * a line that just fits is written whole. (It was cut silently at 8 KiB,
 * wherever that fell.)
 */
static void
test_long_line(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "/tmp/ehlo-test-log.%ld", (long)getpid());
	unlink(path);
	assert_int_equal(log_open(path, "test-log"), 0);
	nwrites = 0;
	log_msg(LOG_LVL_INFO, "x");
	size_t prefix = writes[0] - 2;
	static char msg[LOG_LINE_MAX * 2];
	/* Fits: prefix + text + "\n" = LOG_LINE_MAX - 1. */
	size_t fit = LOG_LINE_MAX - 2 - prefix;
	memset(msg, 'f', fit);
	msg[fit] = '\0';
	nwrites = 0;
	log_msg(LOG_LVL_INFO, "%s", msg);
	assert_int_equal(writes[0], prefix + fit + 1);
	msg[fit] = 'f';
	msg[fit + 1] = '\0';
	nwrites = 0;
	log_msg(LOG_LVL_INFO, "%s", msg);
	assert_true(writes[0] <= LOG_LINE_MAX - 1);
	for (size_t shift = 0; shift < 4; shift++) {
		memset(msg, 'x', shift);
		size_t k = shift;
		while (k + 4 < sizeof msg) {
			memcpy(msg + k, "\\x41", 4);
			k += 4;
		}
		msg[k] = '\0';
		nwrites = 0;
		log_msg(LOG_LVL_INFO, "%s", msg);
		assert_int_equal(nwrites, 1);
		assert_true(writes[0] <= LOG_LINE_MAX - 1);
		assert_true(writes[0] > LOG_LINE_MAX - 1 - 4);
	}
	log_close();
	char *data = slurp();
	char *line = strchr(data, '\n') + 1;           /* after "x" */
	char *nl = strchr(line, '\n');
	assert_int_equal(nl[-1], 'f');                   /* whole, no mark */
	line = nl + 1;
	nl = strchr(line, '\n');
	static const char mark[] = LOG_CUT_MARK "\n";
	assert_memory_equal(nl + 1 - (sizeof mark - 1), mark, sizeof mark - 1);
	for (size_t shift = 0; shift < 4; shift++) {
		line = nl + 1;
		nl = strchr(line, '\n');
		assert_non_null(nl);
		assert_memory_equal(nl + 1 - (sizeof mark - 1), mark, sizeof mark - 1);
		const char *text = line + prefix;
		size_t tlen = (size_t)(nl + 1 - (sizeof mark - 1) - text);
		assert_true(tlen >= shift);
		/* The text before the mark is the shift, then whole escapes. */
		assert_int_equal((tlen - shift) % 4, 0);
		for (size_t i = shift; i < tlen; i += 4)
			assert_memory_equal(text + i, "\\x41", 4);
	}
	assert_null(strchr(nl + 1, '\n'));
	unlink(path);
}

/*
 * The batch buffer is 16 KiB and a line is never split between writes: 64
 * lines of exactly 256 bytes fill it to the byte and go out together when
 * the 65th arrives (not one line earlier), and the 65th goes at the end of
 * the batch. A line that does not fit flushes the batch before it.
 */
static void
test_batch_boundary(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "/tmp/ehlo-test-log.%ld", (long)getpid());
	unlink(path);
	assert_int_equal(log_open(path, "test-log"), 0);
	/* The prefix length: the time part has a fixed width, and the host
	 * and pid do not change during the test. */
	nwrites = 0;
	log_msg(LOG_LVL_INFO, "x");
	assert_int_equal(nwrites, 1);
	size_t prefix = writes[0] - 2;       /* "x\n" */
	assert_true(prefix < 200);
	char msg[256];
	memset(msg, 'm', sizeof msg);
	msg[256 - prefix - 1] = '\0';       /* line = prefix + msg + "\n" = 256 */

	nwrites = 0;
	log_batch_begin();
	for (int i = 0; i < 64; i++)
		log_msg(LOG_LVL_INFO, "%s", msg);
	assert_int_equal(nwrites, 0);
	log_msg(LOG_LVL_INFO, "%s", msg);
	assert_int_equal(nwrites, 1);
	assert_int_equal(writes[0], 16384);
	log_batch_end();
	assert_int_equal(nwrites, 2);
	assert_int_equal(writes[1], 256);

	/* 63 lines, then one of 257 bytes: flushed before it, never split. */
	nwrites = 0;
	log_batch_begin();
	for (int i = 0; i < 63; i++)
		log_msg(LOG_LVL_INFO, "%s", msg);
	log_msg(LOG_LVL_INFO, "%s+", msg);
	log_batch_end();
	assert_int_equal(nwrites, 2);
	assert_int_equal(writes[0], 63 * 256);
	assert_int_equal(writes[1], 257);
	log_close();

	/* Every line arrived whole. */
	char *data = slurp();
	int lines = 0;
	for (char *nl = data; (nl = strchr(nl, '\n')) != NULL; nl++)
		lines++;
	assert_int_equal(lines, 1 + 65 + 64);
	assert_int_equal(strlen(data), 2 + prefix + 65 * 256 + 63 * 256 + 257);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_sanitize_fit),
		cmocka_unit_test(test_sanitize_to),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_batch_boundary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
