/*
 * Log line format (src/lib/log.c): "<UTC time>.<µs>Z <host> <prog>[<pid>]:
 * [warning: |error: ]<message>", one write per line or per batch, and the
 * time part matching the clock (it is cached per second).
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_sanitize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
