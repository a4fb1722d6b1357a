/* U-label to A-label conversion: RFC 3492 §7.1's samples and the limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/idna.h"

static const struct {
	const char *in, *out;
} good[] = {
	{ "example.test", "example.test" },
	{ "EXAMPLE.Test", "example.test" },
	{ "b\xc3\xbc" "cher.example", "xn--bcher-kva.example" },
	/* Upper case is mapped first (UTS #46), so both name one domain. */
	{ "B\xc3\x9c" "CHER.example", "xn--bcher-kva.example" },
	{ "m\xc3\xbc" "nchen.de", "xn--mnchen-3ya.de" },
	/* RFC 3492 §7.1 (A) Arabic (Egyptian) */
	{ "\xd9\x84\xd9\x8a\xd9\x87\xd9\x85\xd8\xa7\xd8\xa8\xd8\xaa\xd9\x83\xd9\x84\xd9\x85"
	  "\xd9\x88\xd8\xb4\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\x9f", "xn--egbpdaj6bu4bxfgehfvwxn" },
	/* (B) Chinese (simplified) */
	{ "\xe4\xbb\x96\xe4\xbb\xac\xe4\xb8\xba\xe4\xbb\x80\xe4\xb9\x88\xe4\xb8\x8d\xe8\xaf\xb4"
	  "\xe4\xb8\xad\xe6\x96\x87", "xn--ihqwcrb4cv8a8dqg056pqjye" },
	/* (C) Chinese (traditional) */
	{ "\xe4\xbb\x96\xe5\x80\x91\xe7\x88\xb2\xe4\xbb\x80\xe9\xba\xbd\xe4\xb8\x8d\xe8\xaa\xaa"
	  "\xe4\xb8\xad\xe6\x96\x87", "xn--ihqwctvzc91f659drss3x8bo0yb" },
	/* (D) Czech, with its capital P mapped to p */
	{ "Pro\xc4\x8dprost\xc4\x9bnemluv\xc3\xad\xc4\x8d" "esky",
	  "xn--proprostnemluvesky-uyb24dma41a" },
	/* (L) 3<nen>B<gumi><kinpachi><sensei>, B mapped to b */
	{ "3\xe5\xb9\xb4" "B\xe7\xb5\x84\xe9\x87\x91\xe5\x85\xab\xe5\x85\x88\xe7\x94\x9f",
	  "xn--3b-ww4c5e180e575a65lsy2b" },
	/* Characters whose lower case is (partly) ASCII (UTS #46). */
	{ "\xc4\xb0stanbul.example", "xn--istanbul-o0e.example" },
	{ "\xe2\x84\xaa" "elvin.example", "kelvin.example" },
	/* The ideographic full stop separates labels; a soft hyphen is
	 * ignored (UTS #46). */
	{ "\xc3\xbc\xe3\x80\x82" "example", "xn--tda.example" },
	{ "\xc3\xbc\xc2\xadx.example", "xn--x-dha.example" },
	/* 63 ASCII octets in a label is the most. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x" },
};

static const char *const bad[] = {
	"", ".", "a..b", "a.", ".a", "a b.example", "a@b.example", "a_b.example",
	"b\xc3", "\xc0\xaf.example", "\xed\xa0\x80.example", "\xf4\x90\x80\x80.x",
	"\xc2\x85.example",      /* C1 control */
	"a\x01.example",
	"b\xc3\xbc--cher.example",            /* "--" in positions 3-4 of a U-label */
	"-b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher-.example",
	"a\xe2\x80\x8d" "b\xc3\xbc.example",   /* ZWJ */
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", /* 64 */
	/* 21 x U+00FC: its A-label is longer than 63 octets. */
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc"
	"\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc.x",
};

static void
test_good(void **state)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "prefix:");
		if (!idna_to_ascii(good[i].in, strlen(good[i].in), &b))
			fail_msg("refused: %s", good[i].out);
		assert_string_equal(buf_cstr(&b) + 7, good[i].out);
		buf_free(&b);
	}
}

static void
test_bad(void **state)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "kept");
		if (idna_to_ascii(bad[i], strlen(bad[i]), &b))
			fail_msg("accepted bad[%zu] as %s", i, buf_cstr(&b));
		assert_string_equal(buf_cstr(&b), "kept");
		buf_free(&b);
	}
}

/* The longest name: 253 octets in A-label form; 255 is refused. */
static void
test_name_length(void **state)
{
	char name[300];
	memset(name, 'a', sizeof name);
	for (size_t i = 63; i < sizeof name; i += 64)
		name[i] = '.';
	struct buf b = BUF_INIT;
	assert_true(idna_to_ascii(name, 253, &b));
	assert_int_equal(b.len, 253);
	buf_reset(&b);
	name[254] = 'a';
	assert_false(idna_to_ascii(name, 255, &b));
	buf_free(&b);
	assert_true(idna_has_utf8("b\xc3\xbc", 3));
	assert_false(idna_has_utf8("bu", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_name_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
