/*
 * ESMTP parameter tests (RFC 5321 §4.1.2, RFC 1870, 6152, 6531, 3461, 4954).
 * Each case is parsed whole, and then every prefix from a heap copy of
 * exactly that size (ASan catches a read past the end); the offending
 * keyword reported on error must lie inside the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/params.h"

#define ALL (EXT_PIPELINING | EXT_SIZE | EXT_8BITMIME | EXT_ENHANCEDSTATUSCODES | \
             EXT_SMTPUTF8 | EXT_CHUNKING | EXT_DSN | EXT_STARTTLS | EXT_AUTH)

struct mail_case {
	const char        *in;
	unsigned           ext;
	enum param_err     err;
	size_t             bad_off, bad_len;
	struct mail_params want;
};

static const struct mail_case mail_cases[] = {
	{ "", ALL, PARAM_OK, 0, 0, { 0 } },
	{ " ", ALL, PARAM_OK, 0, 0, { 0 } },
	{ " SIZE=1000", ALL, PARAM_OK, 0, 0, { .has_size = true, .size = 1000 } },
	{ " size=0", EXT_SIZE, PARAM_OK, 0, 0, { .has_size = true, .size = 0 } },
	{ " SIZE=00012", EXT_SIZE, PARAM_OK, 0, 0, { .has_size = true, .size = 12 } },
	{ " SIZE=18446744073709551615", ALL, PARAM_OK, 0, 0,
	  { .has_size = true, .size = UINT64_MAX } },
	/* 1*20DIGIT (RFC 1870 §3): beyond 2^64-1 is "too big", not malformed. */
	{ " SIZE=18446744073709551616", ALL, PARAM_OK, 0, 0,
	  { .has_size = true, .size = UINT64_MAX } },
	{ " SIZE=99999999999999999999", ALL, PARAM_OK, 0, 0,
	  { .has_size = true, .size = UINT64_MAX } },
	{ " SIZE=00000000000000000001", ALL, PARAM_OK, 0, 0, { .has_size = true, .size = 1 } },
	{ " SIZE=999999999999999999999", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE=99999999999999999999999", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE=-1", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE=+1", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE=1k", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " SIZE=", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=1 SIZE=2", ALL, PARAM_ERR_SYNTAX, 8, 4, { 0 } },
	{ " SIZE=1 size=1", ALL, PARAM_ERR_SYNTAX, 8, 4, { 0 } },
	{ " SIZE=1", ALL & ~EXT_SIZE, PARAM_ERR_UNKNOWN, 1, 4, { 0 } },
	{ " BODY=8BITMIME", ALL, PARAM_OK, 0, 0, { .body = BODY_8BITMIME } },
	{ " body=7bit", EXT_8BITMIME, PARAM_OK, 0, 0, { .body = BODY_7BIT } },
	{ " BODY=BINARYMIME", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " BODY=8BIT", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " BODY", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " BODY=7BIT BODY=7BIT", ALL, PARAM_ERR_SYNTAX, 11, 4, { 0 } },
	{ " BODY=8BITMIME", ALL & ~EXT_8BITMIME, PARAM_ERR_UNKNOWN, 1, 4, { 0 } },
	{ " SMTPUTF8", ALL, PARAM_OK, 0, 0, { .smtputf8 = true } },
	{ " smtputf8", EXT_SMTPUTF8, PARAM_OK, 0, 0, { .smtputf8 = true } },
	{ " SMTPUTF8=yes", ALL, PARAM_ERR_VALUE, 1, 8, { 0 } },
	{ " SMTPUTF8 SMTPUTF8", ALL, PARAM_ERR_SYNTAX, 10, 8, { 0 } },
	{ " SMTPUTF8", ALL & ~EXT_SMTPUTF8, PARAM_ERR_UNKNOWN, 1, 8, { 0 } },
	{ " RET=FULL", ALL, PARAM_OK, 0, 0, { .ret = RET_FULL } },
	{ " ret=hdrs", EXT_DSN, PARAM_OK, 0, 0, { .ret = RET_HDRS } },
	{ " RET=NONE", ALL, PARAM_ERR_VALUE, 1, 3, { 0 } },
	{ " RET", ALL, PARAM_ERR_VALUE, 1, 3, { 0 } },
	{ " RET=FULL RET=HDRS", ALL, PARAM_ERR_SYNTAX, 10, 3, { 0 } },
	{ " RET=FULL", ALL & ~EXT_DSN, PARAM_ERR_UNKNOWN, 1, 3, { 0 } },
	{ " ENVID=QQ314159", ALL, PARAM_OK, 0, 0, { .has_envid = true, .envid = "QQ314159" } },
	{ " ENVID=a+2Bb+3D", ALL, PARAM_OK, 0, 0, { .has_envid = true, .envid = "a+2Bb+3D" } },
	{ " ENVID=a+2bb", ALL, PARAM_ERR_VALUE, 1, 5, { 0 } },
	{ " ENVID=a+2", ALL, PARAM_ERR_VALUE, 1, 5, { 0 } },
	{ " ENVID=a+", ALL, PARAM_ERR_VALUE, 1, 5, { 0 } },
	{ " ENVID", ALL, PARAM_ERR_VALUE, 1, 5, { 0 } },
	{ " ENVID=\xc3\xbc", ALL, PARAM_ERR_VALUE, 1, 5, { 0 } },
	{ " ENVID=\xc3\xbc", ALL & ~EXT_SMTPUTF8, PARAM_ERR_SYNTAX, 1, 5, { 0 } },
	{ " ENVID=x ENVID=y", ALL, PARAM_ERR_SYNTAX, 9, 5, { 0 } },
	{ " ENVID=x", ALL & ~EXT_DSN, PARAM_ERR_UNKNOWN, 1, 5, { 0 } },
	{ " AUTH=<>", ALL, PARAM_OK, 0, 0, { .has_auth = true, .auth = "<>" } },
	{ " AUTH=e+3Dmc2@example.com", ALL, PARAM_OK, 0, 0,
	  { .has_auth = true, .auth = "e+3Dmc2@example.com" } },
	{ " AUTH=a+zz", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " AUTH", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " AUTH=", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " AUTH=<>", ALL & ~EXT_AUTH, PARAM_ERR_UNKNOWN, 1, 4, { 0 } },
	{ " SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2B AUTH=<>", ALL, PARAM_OK, 0, 0,
	  { .has_size = true, .size = 100, .body = BODY_8BITMIME, .smtputf8 = true,
	    .ret = RET_HDRS, .has_envid = true, .envid = "x+2B", .has_auth = true, .auth = "<>" } },
	{ "  SIZE=5   BODY=7BIT ", ALL, PARAM_OK, 0, 0,
	  { .has_size = true, .size = 5, .body = BODY_7BIT } },
	/* Unknown or not advertised. */
	{ " FOO=bar", ALL, PARAM_ERR_UNKNOWN, 1, 3, { 0 } },
	{ " X-FOO", ALL, PARAM_ERR_UNKNOWN, 1, 5, { 0 } },
	{ " NOTIFY=NEVER", ALL, PARAM_ERR_UNKNOWN, 1, 6, { 0 } },
	{ " ORCPT=rfc822;a", ALL, PARAM_ERR_UNKNOWN, 1, 5, { 0 } },
	{ " REQUIRETLS", ALL, PARAM_ERR_UNKNOWN, 1, 10, { 0 } },
	{ " SIZE=1", 0, PARAM_ERR_UNKNOWN, 1, 4, { 0 } },
	{ " FOO=1 SIZE=x", ALL, PARAM_ERR_UNKNOWN, 1, 3, { 0 } },
	{ " SIZE=x FOO=1", ALL, PARAM_ERR_VALUE, 1, 4, { 0 } },
	{ " X=\xc3\xbc", ALL, PARAM_ERR_UNKNOWN, 1, 1, { 0 } },
	{ " X=\xc3\xbc", ALL & ~EXT_SMTPUTF8, PARAM_ERR_SYNTAX, 1, 1, { 0 } },
	{ " X=\xc3", ALL, PARAM_ERR_SYNTAX, 1, 1, { 0 } },
	/* Generic syntax. */
	{ "SIZE=1", ALL, PARAM_ERR_SYNTAX, 0, 6, { 0 } },
	{ "\tSIZE=1", ALL, PARAM_ERR_SYNTAX, 0, 7, { 0 } },
	{ " -X", ALL, PARAM_ERR_SYNTAX, 1, 2, { 0 } },
	{ " =1", ALL, PARAM_ERR_SYNTAX, 1, 2, { 0 } },
	{ " SI_ZE=1", ALL, PARAM_ERR_SYNTAX, 1, 2, { 0 } },
	{ " SIZE=1\t", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=1\tBODY=7BIT", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=a=b", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=1\r", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=1\x7f", ALL, PARAM_ERR_SYNTAX, 1, 4, { 0 } },
	{ " SIZE=1 BODY=7BIT \x01", ALL, PARAM_ERR_SYNTAX, 18, 1, { 0 } },
};

struct rcpt_case {
	const char        *in;
	unsigned           ext;
	enum param_err     err;
	size_t             bad_off, bad_len;
	struct rcpt_params want;
	bool               utf8_tx;   /* an SMTPUTF8 transaction */
};

static const struct rcpt_case rcpt_cases[] = {
	{ "", ALL, PARAM_OK, 0, 0, { 0 }, false },
	{ " NOTIFY=NEVER", ALL, PARAM_OK, 0, 0, { .notify = NOTIFY_NEVER }, false },
	{ " NOTIFY=SUCCESS,FAILURE,DELAY", ALL, PARAM_OK, 0, 0,
	  { .notify = NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY }, false },
	{ " notify=delay,Success", EXT_DSN, PARAM_OK, 0, 0,
	  { .notify = NOTIFY_SUCCESS | NOTIFY_DELAY }, false },
	{ " NOTIFY=NEVER,SUCCESS", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=FAILURE,NEVER", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=SUCCESS,SUCCESS", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=SUCCESS,", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=,SUCCESS", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=SUCCESS,,DELAY", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=FOO", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY", ALL, PARAM_ERR_VALUE, 1, 6, { 0 }, false },
	{ " NOTIFY=", ALL, PARAM_ERR_SYNTAX, 1, 6, { 0 }, false },
	{ " NOTIFY=NEVER NOTIFY=NEVER", ALL, PARAM_ERR_SYNTAX, 14, 6, { 0 }, false },
	{ " NOTIFY=NEVER", ALL & ~EXT_DSN, PARAM_ERR_UNKNOWN, 1, 6, { 0 }, false },
	{ " ORCPT=rfc822;a+40b", ALL, PARAM_OK, 0, 0,
	  { .has_orcpt = true, .orcpt = "rfc822;a+40b" }, false },
	{ " ORCPT=rfc822;user@example.org", ALL, PARAM_OK, 0, 0,
	  { .has_orcpt = true, .orcpt = "rfc822;user@example.org" }, false },
	{ " ORCPT=utf-8;a\\x{E9}b", ALL, PARAM_OK, 0, 0,
	  { .has_orcpt = true, .orcpt = "utf-8;a\\x{E9}b" }, false },
	/* RFC 6533 §3: utf-8-addr-unitext, only in an SMTPUTF8 transaction. */
#define U8 { .has_orcpt = true, .orcpt = "utf-8;m\xc3\xbc@y.test" }
	{ " ORCPT=utf-8;m\xc3\xbc@y.test", ALL, PARAM_OK, 0, 0, U8, true },
	{ " ORCPT=utf-8;m\xc3\xbc@y.test", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc822;m\xc3\xbc@y.test", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=UTF-8;\xe2\x82\xac\xf0\x9f\x98\x80\\x{2B}\\x{5C}\\x{20}\\x{1F}\\x{7F}", ALL,
	  PARAM_OK, 0, 0, { .has_orcpt = true,
	  .orcpt = "UTF-8;\xe2\x82\xac\xf0\x9f\x98\x80\\x{2B}\\x{5C}\\x{20}\\x{1F}\\x{7F}" }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{E9}\\x{20AC}\\x{1F600}\\x{10FFFF}\\x{e9}", ALL, PARAM_OK, 0, 0,
	  { .has_orcpt = true,
	    .orcpt = "utf-8;\xc3\xbc\\x{E9}\\x{20AC}\\x{1F600}\\x{10FFFF}\\x{e9}" }, true },
	{ " ORCPT=utf-8;a\\x{E9}b", ALL, PARAM_OK, 0, 0,     /* xtext, as without SMTPUTF8 */
	  { .has_orcpt = true, .orcpt = "utf-8;a\\x{E9}b" }, true },
	{ " ORCPT=utf-8;\xc3\xbc+2B", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\b", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{41}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{0E9}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{E}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{D800}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{110000}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{0010FFFF}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{E9", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\x{}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\\X{E9}", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3\xbc\x7f", ALL, PARAM_ERR_SYNTAX, 1, 5, { 0 }, true },
	{ " ORCPT=utf-8;\xc3", ALL, PARAM_ERR_SYNTAX, 1, 5, { 0 }, true },
#undef U8
	{ " NOTIFY=FAILURE ORCPT=rfc822;a", ALL, PARAM_OK, 0, 0,
	  { .notify = NOTIFY_FAILURE, .has_orcpt = true, .orcpt = "rfc822;a" }, false },
	{ " ORCPT=rfc822", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=;a", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc822;", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc.822;a", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc822;a+4", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc822;a+4g", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc 822;a", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT", ALL, PARAM_ERR_VALUE, 1, 5, { 0 }, false },
	{ " ORCPT=rfc822;a ORCPT=rfc822;b", ALL, PARAM_ERR_SYNTAX, 16, 5, { 0 }, false },
	{ " ORCPT=rfc822;a", ALL & ~EXT_DSN, PARAM_ERR_UNKNOWN, 1, 5, { 0 }, false },
	{ " SIZE=1", ALL, PARAM_ERR_UNKNOWN, 1, 4, { 0 }, false },
	{ " BODY=7BIT", ALL, PARAM_ERR_UNKNOWN, 1, 4, { 0 }, false },
	{ "NOTIFY=NEVER", ALL, PARAM_ERR_SYNTAX, 0, 12, { 0 }, false },
};

static void
check_mail_eq(const struct mail_params *a, const struct mail_params *b)
{
	assert_int_equal(a->has_size, b->has_size);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->has_envid, b->has_envid);
	assert_string_equal(a->envid, b->envid);
	assert_int_equal(a->has_auth, b->has_auth);
	assert_string_equal(a->auth, b->auth);
}

static char *
copy_exact(const char *s, size_t n)
{
	char *c = malloc(n ? n : 1);

	assert_non_null(c);
	memcpy(c, s, n);
	return c;
}

static void
test_mail(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		const struct mail_case *c = &mail_cases[i];
		size_t n = strlen(c->in), off = 999, len = 999;
		struct mail_params mp;
		char *in = copy_exact(c->in, n);
		enum param_err e;

		memset(&mp, 0x5a, sizeof mp);
		e = params_parse_mail(in, n, c->ext, &mp, &off, &len);
		if (e != c->err)
			fail_msg("MAIL \"%s\": got %d want %d", c->in, e, c->err);
		if (e == PARAM_OK)
			check_mail_eq(&mp, &c->want);
		else {
			if (off != c->bad_off || len != c->bad_len)
				fail_msg("MAIL \"%s\": bad %zu+%zu want %zu+%zu", c->in,
				    off, len, c->bad_off, c->bad_len);
			/* *out is untouched on error. */
			assert_int_equal(mp.size, 0x5a5a5a5a5a5a5a5aull);
		}
		free(in);
		for (size_t k = 0; k < n; k++) {
			in = copy_exact(c->in, k);
			if (params_parse_mail(in, k, c->ext, &mp, &off, &len) != PARAM_OK)
				assert_true(off + len <= k);
			free(in);
		}
	}
}

static void
test_rcpt(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		size_t n = strlen(c->in), off = 999, len = 999;
		struct rcpt_params rp;
		char *in = copy_exact(c->in, n);
		enum param_err e;

		memset(&rp, 0, sizeof rp);
		e = params_parse_rcpt(in, n, c->ext, c->utf8_tx, &rp, &off, &len);
		if (e != c->err)
			fail_msg("RCPT \"%s\": got %d want %d", c->in, e, c->err);
		if (e == PARAM_OK) {
			assert_int_equal(rp.notify, c->want.notify);
			assert_int_equal(rp.has_orcpt, c->want.has_orcpt);
			assert_string_equal(rp.orcpt, c->want.orcpt);
		} else if (off != c->bad_off || len != c->bad_len)
			fail_msg("RCPT \"%s\": bad %zu+%zu want %zu+%zu", c->in,
			    off, len, c->bad_off, c->bad_len);
		free(in);
		for (size_t k = 0; k < n; k++) {
			in = copy_exact(c->in, k);
			if (params_parse_rcpt(in, k, c->ext, c->utf8_tx, &rp, &off, &len) != PARAM_OK)
				assert_true(off + len <= k);
			free(in);
		}
	}
}

static void
test_lengths(void **state)
{
	char in[700];
	struct mail_params mp;
	struct rcpt_params rp;

	(void)state;
	/* ENVID at most 100 characters (RFC 3461 §4.4). */
	memcpy(in, " ENVID=", 7);
	memset(in + 7, 'e', 100);
	assert_int_equal(params_parse_mail(in, 107, ALL, &mp, NULL, NULL), PARAM_OK);
	assert_int_equal(strlen(mp.envid), 100);
	in[107] = 'e';
	assert_int_equal(params_parse_mail(in, 108, ALL, &mp, NULL, NULL), PARAM_ERR_VALUE);

	/* AUTH at most 500. */
	memcpy(in, " AUTH=", 6);
	memset(in + 6, 'a', 501);
	assert_int_equal(params_parse_mail(in, 506, ALL, &mp, NULL, NULL), PARAM_OK);
	assert_int_equal(strlen(mp.auth), 500);
	assert_int_equal(params_parse_mail(in, 507, ALL, &mp, NULL, NULL), PARAM_ERR_VALUE);

	/* ORCPT at most 500 (§4.2), type included. */
	memcpy(in, " ORCPT=rfc822;", 14);
	memset(in + 14, 'o', 600);
	assert_int_equal(params_parse_rcpt(in, 7 + 500, ALL, false, &rp, NULL, NULL), PARAM_OK);
	assert_int_equal(strlen(rp.orcpt), 500);
	assert_int_equal(params_parse_rcpt(in, 7 + 501, ALL, false, &rp, NULL, NULL), PARAM_ERR_VALUE);
}

/* What the extensions add to MAIL and RCPT lines (RFC 5321 §4.5.3.1.4). */
static void
test_line_room(void **state)
{
	(void)state;
	assert_int_equal(params_mail_room(0), 0);
	assert_int_equal(params_rcpt_room(0), 0);
	assert_int_equal(params_mail_room(EXT_SIZE), 26);              /* RFC 1870 §3 */
	assert_int_equal(params_mail_room(EXT_SMTPUTF8), 10);          /* RFC 6531 §3.1 */
	assert_int_equal(params_mail_room(EXT_DSN), 9 + 7 + ENVID_MAX);
	assert_int_equal(params_rcpt_room(EXT_DSN), 29 + 7 + ORCPT_MAX);
	assert_int_equal(params_rcpt_room(ALL & ~EXT_DSN), 0);
	assert_int_equal(params_mail_room(ALL), PARAMS_ROOM_MAX);
	assert_true(params_rcpt_room(ALL) <= PARAMS_ROOM_MAX);
}

static void
test_xtext(void **state)
{
	(void)state;
	assert_true(xtext_valid("", 0));
	assert_true(xtext_valid("abc", 3));
	assert_true(xtext_valid("+2B+3D+00+FF", 12));
	assert_true(xtext_valid("!~<>@\\{}", 8));
	assert_false(xtext_valid("a=b", 3));
	assert_false(xtext_valid("a b", 3));
	assert_false(xtext_valid("+", 1));
	assert_false(xtext_valid("+2", 2));
	assert_false(xtext_valid("+2b", 3));
	assert_false(xtext_valid("+G0", 3));
	assert_false(xtext_valid("\x7f", 1));
	assert_false(xtext_valid("\xc3\xbc", 2));
	assert_false(xtext_valid("a\0", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_line_room),
		cmocka_unit_test(test_xtext),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
