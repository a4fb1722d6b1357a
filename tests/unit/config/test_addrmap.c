/*
 * Tests for addrmap (virtual_mailbox_maps source files): comments,
 * Postfix's second column, continuation lines, case-insensitive lookup,
 * "@domain" catch-alls, duplicates, bad keys with file:line, file loading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/addrmap.h"
#include "lib/buf.h"
#include "lib/xmalloc.h"

static const char map_text[] =
    "# virtual mailboxes\n"
    "alice@example.org     example.org/alice/\n"
    "Bob@Example.ORG\texample.org/bob/\n"
    "   continued value column, ignored\n"
    "\n"
    "  # indented comment\n"
    "@catchall.test        catchall/\n"
    "carol@example.org\r\n"
    "alice@example.org     duplicate\n"
    "j\xc3\xb6s\xc3\xa9@example.org\n"   /* UTF-8 (RFC 6531), as accepted under SMTPUTF8 */
    "kim@b\xc3\xbc" "cher.example\n"       /* a U-label domain: kept as its A-label */
    "dave@example.net";      /* no final newline */

static void
test_lookup(void **state)
{
	(void)state;
	struct buf err = BUF_INIT;
	struct addrmap *m = addrmap_load_buffer(map_text, sizeof(map_text) - 1, "vmaps", &err);
	assert_non_null(m);
	assert_int_equal(err.len, 0);
	assert_int_equal(addrmap_count(m), 7);

	static const struct { const char *addr; bool in; } rows[] = {
		{ "alice@example.org", true },
		{ "ALICE@EXAMPLE.ORG", true },
		{ "bob@example.org", true },
		{ "bOb@eXample.org", true },
		{ "carol@example.org", true },
		{ "dave@example.net", true },
		{ "anyone@catchall.test", true },
		{ "X@CATCHALL.TEST", true },
		{ "eve@example.org", false },
		{ "alice@example.org.evil", false },
		{ "alice", false },
		{ "", false },
		{ "@example.org", false },
		{ "@catchall.test", true },
		{ "a@b@catchall.test", true },
		{ "continued", false },
		{ "example.org/alice/", false },
		{ "j\xc3\xb6s\xc3\xa9@example.org", true },
		{ "J\xc3\xb6S\xc3\xa9@EXAMPLE.org", true },     /* ASCII folded only */
		{ "j\xc3\x96s\xc3\xa9@example.org", false },    /* U+00D6 is another key */
		{ "kim@xn--bcher-kva.example", true },          /* the server's lookup form */
		{ "kim@b\xc3\xbc" "cher.example", false },       /* never looked up so */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (addrmap_contains(m, rows[i].addr) != rows[i].in)
			fail_msg("%s: want %d", rows[i].addr, rows[i].in);
	addrmap_free(&m);
	assert_null(m);
	addrmap_free(&m);
	assert_false(addrmap_contains(NULL, "a@b"));
	buf_free(&err);
}

static void
test_errors(void **state)
{
	(void)state;
	static const struct { const char *text; const char *err; } rows[] = {
		{ "alice@example.org\nbob\n", "m:2: bad address \"bob\"" },
		{ "# c\n\nalice@\n", "m:3: bad address \"alice@\"" },
		{ "a@b@c\n", "m:1: bad address" },
		{ "a\x01@b\n", "m:1: bad address \"a\\x01@b\"" },
		{ "a\xc3@b\n", "m:1: bad address" },           /* malformed UTF-8 */
		{ "a\xed\xa0\x80@b\n", "m:1: bad address" },   /* a surrogate */
		{ "a\x7f@b\n", "m:1: bad address" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf err = BUF_INIT;
		assert_null(addrmap_load_buffer(rows[i].text, strlen(rows[i].text), "m", &err));
		if (strstr(buf_cstr(&err), rows[i].err) == NULL)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, buf_cstr(&err), rows[i].err);
		buf_free(&err);
	}
	/* A key longer than an address can be. */
	struct buf t = BUF_INIT, err = BUF_INIT;
	for (int i = 0; i < 400; i++)
		buf_append_char(&t, 'a');
	buf_append_str(&t, "@example.org\n");
	assert_null(addrmap_load_buffer(t.data, t.len, "m", &err));
	assert_non_null(strstr(buf_cstr(&err), "m:1: bad address"));
	buf_free(&t);
	buf_free(&err);
}

static void
test_many_and_file(void **state)
{
	(void)state;
	char path[] = "/tmp/ehlo-addrmap-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	for (int i = 0; i < 20000; i++)
		fprintf(f, "User%d@Domain%d.test\n", i, i % 7);
	fclose(f);
	struct buf err = BUF_INIT;
	struct addrmap *m = addrmap_load(path, &err);
	assert_non_null(m);
	assert_int_equal(addrmap_count(m), 20000);
	char a[64];
	for (int i = 0; i < 20000; i += 97) {
		snprintf(a, sizeof(a), "user%d@domain%d.TEST", i, i % 7);
		assert_true(addrmap_contains(m, a));
		snprintf(a, sizeof(a), "user%d@domain%d.test", i, (i + 1) % 7);
		assert_false(addrmap_contains(m, a));
	}
	addrmap_free(&m);
	unlink(path);
	assert_null(addrmap_load(path, &err));
	assert_non_null(strstr(buf_cstr(&err), "cannot open"));
	buf_reset(&err);
	assert_null(addrmap_load("/tmp", &err));
	assert_non_null(strstr(buf_cstr(&err), "not a regular file"));
	buf_reset(&err);

	/* A file others may not read: its bad line is not quoted (ehlod reads
	 * maps as root at start; a link could name /etc/shadow). mkstemp's
	 * 0600; then 0644 quotes it. */
	char p2[] = "/tmp/ehlo-addrmap-XXXXXX";
	fd = mkstemp(p2);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "root:$6$secret:19000\n", 21), 21);
	close(fd);
	assert_null(addrmap_load(p2, &err));
	assert_non_null(strstr(buf_cstr(&err), ":1: bad address (not quoted"));
	assert_null(strstr(buf_cstr(&err), "secret"));
	buf_reset(&err);
	assert_int_equal(chmod(p2, 0644), 0);
	assert_null(addrmap_load(p2, &err));
	assert_non_null(strstr(buf_cstr(&err), "secret"));
	unlink(p2);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_many_and_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
