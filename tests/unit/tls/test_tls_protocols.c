/*
 * tls_parse_protocols(): Postfix smtpd_tls_protocols syntax to an OpenSSL
 * version range. Table of valid and invalid specs; anything below TLS 1.2
 * must be asked for by name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <openssl/ssl.h>

#include "tls/tls.h"

static const struct {
	const char *spec;
	int minv, maxv;         /* 0, 0: must be rejected */
	const char *err;        /* substring of the error */
} cases[] = {
	{ NULL, TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ "", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ " , ", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ ">=TLSv1.2", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ ">=TLSv1.3", TLS1_3_VERSION, TLS1_3_VERSION, NULL },
	{ "<=TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION, NULL },
	{ ">=TLSv1.2 <=TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION, NULL },
	{ "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	/* Postfix would enable TLSv1 and TLSv1.1 here; we do not. */
	{ "!SSLv2, !SSLv3", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ "!SSLv2:!SSLv3:!TLSv1.3", TLS1_2_VERSION, TLS1_2_VERSION, NULL },
	{ "TLSv1.2 TLSv1.3", TLS1_2_VERSION, TLS1_3_VERSION, NULL },
	{ "TLSv1.3", TLS1_3_VERSION, TLS1_3_VERSION, NULL },
	{ "tlsv1.2", TLS1_2_VERSION, TLS1_2_VERSION, NULL },
	/* Explicitly asked for: allowed. */
	{ ">=TLSv1", TLS1_VERSION, TLS1_3_VERSION, NULL },
	{ ">=TLSv1.1", TLS1_1_VERSION, TLS1_3_VERSION, NULL },
	{ "TLSv1.1 TLSv1.2 TLSv1.3", TLS1_1_VERSION, TLS1_3_VERSION, NULL },
	{ "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 !TLSv1", TLS1_1_VERSION, TLS1_3_VERSION, NULL },
	{ "<TLSv1.2", 0, 0, "only \">=\" and \"<=\"" },
	{ ">TLSv1.2", 0, 0, "only \">=\" and \"<=\"" },
	{ "=TLSv1.2", 0, 0, "only \">=\" and \"<=\"" },
	{ "TLSv1.4", 0, 0, "unknown protocol \"TLSv1.4\"" },
	{ "!TLSv9", 0, 0, "unknown protocol" },
	{ ">=", 0, 0, "unknown protocol" },
	{ "!", 0, 0, "unknown protocol" },
	{ "SSLv3", 0, 0, "\"SSLv3\" is not supported" },
	{ ">=SSLv3", 0, 0, "not supported" },
	{ "!TLSv1.2 !TLSv1.3", 0, 0, "enables no protocol" },
	{ ">=TLSv1.3 <=TLSv1.2", 0, 0, "enables no protocol" },
	{ "TLSv1.1 TLSv1.3", 0, 0, "gap" },
	{ ">=TLSv1 !TLSv1.2", 0, 0, "gap" },
};

static void
test_protocol_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf err = BUF_INIT;
		int minv = -1, maxv = -1;
		bool ok = tls_parse_protocols(cases[i].spec, &minv, &maxv, &err);

		if (cases[i].minv != 0) {
			if (!ok)
				fail_msg("\"%s\": rejected: %s", cases[i].spec, buf_cstr(&err));
			if (minv != cases[i].minv || maxv != cases[i].maxv)
				fail_msg("\"%s\": got %x..%x, want %x..%x", cases[i].spec,
				    minv, maxv, cases[i].minv, cases[i].maxv);
		} else {
			if (ok)
				fail_msg("\"%s\": accepted as %x..%x", cases[i].spec, minv, maxv);
			if (strstr(buf_cstr(&err), cases[i].err) == NULL)
				fail_msg("\"%s\": error \"%s\" lacks \"%s\"", cases[i].spec,
				    buf_cstr(&err), cases[i].err);
			assert_int_equal(minv, -1);
		}
		buf_free(&err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
