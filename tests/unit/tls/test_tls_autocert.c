/*
 * tls_autocert_ensure(): the certificate made for myhostname names it in
 * the subjectAltName whatever its length, and its CN stays within RFC
 * 5280's 64 characters (OpenSSL refuses a longer one, which silently left
 * ehlod without TLS for any longer myhostname).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "tls/tls_int.h"

/* Makes the certificate for name in a fresh directory and checks it. */
static void
check_name(const char *name, const char *want_cn)
{
	char dir[] = "/tmp/ehlo-autocert-XXXXXX";
	struct buf err = BUF_INIT;
	char *crt = NULL, *key = NULL;

	assert_non_null(mkdtemp(dir));
	bool ok = tls_autocert_ensure(dir, name, &crt, &key, &err);
	if (!ok)
		fail_msg("%s: %s", name, buf_cstr(&err));

	FILE *f = fopen(crt, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	/* X509_check_host looks at the DNS subjectAltNames only (they exist). */
	assert_int_equal(X509_check_host(x, name, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
	char cn[256] = "";
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
	assert_true(n > 0 && n <= 64);
	assert_string_equal(cn, want_cn);
	X509_free(x);

	unlink(crt);
	unlink(key);
	char lock[512];
	snprintf(lock, sizeof lock, "%s/.%s.lock", dir, name);
	unlink(lock);
	rmdir(dir);
	free(crt);
	free(key);
	buf_free(&err);
}

static void
test_short_name(void **state)
{
	(void)state;
	check_name("mx.example.test", "mx.example.test");
}

static void
test_64_characters(void **state)
{
	(void)state;
	/* 64 exactly: still the whole name. */
	const char *name = "mx1234567890.abcdefghijklmnopqrstuvwxyz.abcdefghijklmnop.example";
	assert_int_equal(strlen(name), 64);
	check_name(name, name);
}

static void
test_long_name(void **state)
{
	(void)state;
	/* 84 characters: the CN is the first label, the SAN the whole name. */
	const char *name = "mx-relay-01.outbound.eu-central.mail-infrastructure.corp.subsidiary-eu.example.co.uk";
	char want[128];
	snprintf(want, sizeof want, "%.*s", (int)strcspn(name, "."), name);
	assert_int_equal(strlen(name), 84);
	check_name(name, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_name),
		cmocka_unit_test(test_64_characters),
		cmocka_unit_test(test_long_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
