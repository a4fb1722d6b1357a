/* identity_strip_auth_results: RFC 8601 §5 removal of forged fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "identity/identity.h"

static void
check(const char *in, const char *want, size_t nremoved)
{
	char buf[1024];
	size_t len = strlen(in);
	memcpy(buf, in, len);
	assert_int_equal(identity_strip_auth_results(buf, &len, "mx.example.test"), nremoved);
	buf[len] = '\0';
	assert_string_equal(buf, want);
}

static void
test_strip(void **st)
{
	/* Ours (any case, folded) goes; others' and those in the body stay. */
	check("Authentication-Results: mx.example.test; iprev=pass\nSubject: x\n\nbody\n",
	    "Subject: x\n\nbody\n", 1);
	check("Subject: x\nauthentication-results :\n MX.Example.Test;\n\tiprev=pass\nTo: y\n\nb\n",
	    "Subject: x\nTo: y\n\nb\n", 1);
	check("Authentication-Results: other.test; iprev=pass\n\n"
	    "Authentication-Results: mx.example.test; iprev=pass\n",
	    "Authentication-Results: other.test; iprev=pass\n\n"
	    "Authentication-Results: mx.example.test; iprev=pass\n", 0);
	check("Authentication-Results: mx.example.test.evil; iprev=pass\nA: b\n\n",
	    "Authentication-Results: mx.example.test.evil; iprev=pass\nA: b\n\n", 0);
	check("Authentication-Results: mx.example.test (c); none\n"
	    "Authentication-Results: mx.example.test; none\n",
	    "", 2);
	check("X-Authentication-Results: mx.example.test; none\n\n",
	    "X-Authentication-Results: mx.example.test; none\n\n", 0);
	check("", "", 0);
	check("no header line end", "no header line end", 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_strip) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
