/* Recipient -> Maildir path mapping and unique-name host escaping tables. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "spool/spool.h"
#include "spool/spool_int.h"

static const struct {
	const char *base, *local, *domain;
	const char *want;       /* NULL: refused */
} cases[] = {
	{ "/s", "alice", "example.org", "/s/example.org/alice/" },
	{ "/s/", "alice", "example.org", "/s/example.org/alice/" },
	{ "/s//", "alice", "example.org", "/s/example.org/alice/" },
	{ "/", "alice", "example.org", "/example.org/alice/" },
	{ "/s", "Alice", "EXAMPLE.Org", "/s/example.org/alice/" },
	{ "/s", "first.last", "x.test", "/s/x.test/first.last/" },
	{ "/s", "a..b", "x.test", "/s/x.test/a..b/" },
	{ "/s", "a+tag", "x.test", "/s/x.test/a+tag/" },
	{ "/s", "with space", "x.test", "/s/x.test/with space/" },
	{ "/s", "back\\slash", "x.test", "/s/x.test/back\\slash/" },
	{ "/s", "user", "[192.0.2.1]", "/s/[192.0.2.1]/user/" },
	/* UTF-8 (RFC 6531 addresses): kept, only ASCII is lower-cased */
	{ "/s", "j\xc3\xb6rg", "x.test", "/s/x.test/j\xc3\xb6rg/" },
	{ "/s", "J\xc3\x96RG", "B\xc3\xbc" "CHER.test",
	  "/s/b\xc3\xbc" "cher.test/j\xc3\x96rg/" },
	{ "/s", "\xe2\x82\xac", "x.test", "/s/x.test/\xe2\x82\xac/" },
	{ "/s", "\xf0\x9f\x93\xa7", "x.test", "/s/x.test/\xf0\x9f\x93\xa7/" },
	/* traversal and hiding */
	{ "/s", "..", "x.test", NULL },
	{ "/s", ".", "x.test", NULL },
	{ "/s", "../x", "x.test", NULL },
	{ "/s", "a/b", "x.test", NULL },
	{ "/s", "a/../../etc", "x.test", NULL },
	{ "/s", "/etc", "x.test", NULL },
	{ "/s", ".hidden", "x.test", NULL },
	{ "/s", ".Drafts", "x.test", NULL },
	{ "/s", "user", "..", NULL },
	{ "/s", "user", ".", NULL },
	{ "/s", "user", "../etc", NULL },
	{ "/s", "user", "a/b", NULL },
	{ "/s", "user", ".x.test", NULL },
	{ "/s", "", "x.test", NULL },
	{ "/s", "user", "", NULL },
	{ "", "user", "x.test", NULL },
	/* control characters */
	{ "/s", "a\tb", "x.test", NULL },
	{ "/s", "a\nb", "x.test", NULL },
	{ "/s", "a\rb", "x.test", NULL },
	{ "/s", "a\x01", "x.test", NULL },
	{ "/s", "a\x1f", "x.test", NULL },
	{ "/s", "a\x7f", "x.test", NULL },
	{ "/s", "user", "x\x1b.test", NULL },
	/* malformed UTF-8 */
	{ "/s", "\xc3", "x.test", NULL },               /* truncated */
	{ "/s", "a\xc3z", "x.test", NULL },             /* bad continuation */
	{ "/s", "\xc0\xaf", "x.test", NULL },           /* overlong '/' */
	{ "/s", "\xe0\x80\xaf", "x.test", NULL },       /* overlong '/' */
	{ "/s", "\xed\xa0\x80", "x.test", NULL },       /* surrogate */
	{ "/s", "\xf4\x90\x80\x80", "x.test", NULL },   /* > U+10FFFF */
	{ "/s", "\xff", "x.test", NULL },
	{ "/s", "\x80", "x.test", NULL },               /* lone continuation */
};

static void
test_table(void **state)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf out = BUF_INIT;
		buf_append_str(&out, "stale");
		bool ok = spool_mailbox_path(cases[i].base, cases[i].local,
		    cases[i].domain, &out);
		if (cases[i].want == NULL) {
			if (ok)
				fail_msg("case %zu accepted: %s", i,
				    buf_cstr(&out));
			assert_int_equal(out.len, 0);
		} else {
			if (!ok)
				fail_msg("case %zu refused", i);
			assert_string_equal(buf_cstr(&out), cases[i].want);
		}
		buf_free(&out);
	}
}

static void
test_length_limit(void **state)
{
	char name[300];
	struct buf out = BUF_INIT;

	memset(name, 'a', sizeof name);
	name[255] = '\0';
	assert_true(spool_mailbox_path("/s", name, "x.test", &out));
	assert_int_equal(out.len, strlen("/s/x.test/") + 255 + 1);
	assert_true(spool_mailbox_path("/s", "u", name, &out));

	name[255] = 'a';
	name[256] = '\0';
	assert_false(spool_mailbox_path("/s", name, "x.test", &out));
	assert_false(spool_mailbox_path("/s", "u", name, &out));
	assert_int_equal(out.len, 0);

	/* a multi-byte character straddling the limit counts in bytes */
	memset(name, 'a', 254);
	memcpy(name + 254, "\xc3\xb6", 3);
	assert_false(spool_mailbox_path("/s", name, "x.test", &out));
	buf_free(&out);
}

static void
test_null_args(void **state)
{
	struct buf out = BUF_INIT;

	assert_false(spool_mailbox_path(NULL, "u", "d", &out));
	assert_false(spool_mailbox_path("/s", NULL, "d", &out));
	assert_false(spool_mailbox_path("/s", "u", NULL, &out));
	buf_free(&out);
}

static void
test_escape_host(void **state)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "mx.example.org", "mx.example.org" },
		{ "a/b", "a\\057b" },
		{ "a:b", "a\\072b" },
		{ "/:/", "\\057\\072\\057" },
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct buf out = BUF_INIT;
		maildir_escape_host(t[i].in, &out);
		assert_string_equal(buf_cstr(&out), t[i].want);
		buf_free(&out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_escape_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
