/* Policy decisions: actions x results, precedence, temperror never 5xx,
 * pending, shadow mode, exemption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

static void
verdict(struct id_verdict *v, const char *helo)
{
	memset(v, 0, sizeof *v);
	for (int c = 0; c < IDC_COUNT; c++)
		v->c[c].r = ID_PASS;
	strcpy(v->helo, helo);
}

static void
opts(struct policy_opts *o, enum check_action all)
{
	memset(o, 0, sizeof *o);
	for (int c = 0; c < IDC_COUNT; c++)
		o->action[c] = all;
}

static void
test_all_pass(void **st)
{
	struct policy_opts o;
	struct id_verdict v;
	struct policy_decision d;
	opts(&o, ACT_REJECT);
	verdict(&v, "mx.good.test");
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_ACCEPT);
	assert_int_equal(d.failed_mask, 0);
	assert_false(d.tag);
}

static void
test_codes(void **st)
{
	static const struct { enum id_check c; unsigned code; const char *enh; } t[] = {
		{ IDC_SYNTAX, 501, "5.5.2" }, { IDC_FQDN, 504, "5.5.2" },
		{ IDC_PTR, 550, "5.7.25" }, { IDC_FCRDNS, 550, "5.7.25" },
		{ IDC_GENERIC, 550, "5.7.25" }, { IDC_SELF_CLAIM, 550, "5.7.1" },
		{ IDC_RESOLVES, 550, "5.7.1" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct policy_opts o;
		struct id_verdict v;
		struct policy_decision d;
		opts(&o, ACT_REJECT);
		verdict(&v, "localhost");
		v.c[t[i].c].r = ID_FAIL;
		policy_decide(&o, &v, false, &d);
		assert_int_equal(d.outcome, POL_REJECT);
		assert_int_equal(d.check, t[i].c);
		assert_int_equal(d.code, t[i].code);
		assert_string_equal(d.enh, t[i].enh);
		/* The same check under tempfail: 450 and the 4.x.x twin. */
		o.action[t[i].c] = ACT_TEMPFAIL;
		policy_decide(&o, &v, false, &d);
		assert_int_equal(d.outcome, POL_TEMPFAIL);
		assert_int_equal(d.code, 450);
		assert_int_equal(d.enh[0], '4');
		assert_string_equal(d.enh + 1, t[i].enh + 1);
	}
}

static void
test_temperror_never_5xx(void **st)
{
	struct policy_opts o;
	struct id_verdict v;
	struct policy_decision d;
	opts(&o, ACT_REJECT);
	verdict(&v, "mx.good.test");
	v.c[IDC_FCRDNS].r = ID_TEMPERROR;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_TEMPFAIL);
	assert_int_equal(d.code, 450);
	assert_string_equal(d.enh, "4.7.25");
	v.c[IDC_FCRDNS].r = ID_PASS;
	v.c[IDC_RESOLVES].r = ID_TEMPERROR;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.code, 450);
	assert_string_equal(d.enh, "4.7.1");
}

static void
test_pending_and_precedence(void **st)
{
	struct policy_opts o;
	struct id_verdict v;
	struct policy_decision d;
	opts(&o, ACT_LOG);
	o.action[IDC_PTR] = ACT_TEMPFAIL;
	o.action[IDC_GENERIC] = ACT_REJECT;
	verdict(&v, "mx.good.test");
	v.c[IDC_PTR].r = ID_TEMPERROR;
	v.c[IDC_PTR].pending = true;
	v.c[IDC_GENERIC].r = ID_FAIL;
	policy_decide(&o, &v, false, &d);
	/* An earlier enforcing check is still waiting: no decision yet. */
	assert_int_equal(d.outcome, POL_PENDING);
	v.c[IDC_PTR].r = ID_PASS;
	v.c[IDC_PTR].pending = false;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_REJECT);
	assert_int_equal(d.check, IDC_GENERIC);
	/* A log-only failure is recorded, never enforced. */
	v.c[IDC_GENERIC].r = ID_PASS;
	v.c[IDC_FQDN].r = ID_FAIL;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_ACCEPT);
	assert_int_equal(d.failed_mask, IDC_BIT(IDC_FQDN));
}

static void
test_shadow_and_exempt(void **st)
{
	struct policy_opts o;
	struct id_verdict v;
	struct policy_decision d;
	opts(&o, ACT_REJECT);
	o.shadow = true;
	o.action[IDC_CONSISTENCY] = ACT_TAG;
	verdict(&v, "localhost");
	v.c[IDC_FQDN].r = ID_FAIL;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_ACCEPT);
	assert_int_equal(d.would, POL_REJECT);
	assert_int_equal(d.check, IDC_FQDN);
	assert_true(d.tag);
	policy_decide(&o, &v, true, &d);
	assert_true(d.exempt);
	assert_int_equal(d.outcome, POL_ACCEPT);
	assert_int_equal(d.would, POL_ACCEPT);
	/* permerror counts as failing. */
	o.shadow = false;
	v.c[IDC_FQDN].r = ID_PASS;
	v.c[IDC_RESOLVES].r = ID_PERMERROR;
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_REJECT);
	assert_int_equal(d.check, IDC_RESOLVES);
}

/* An invalid EHLO name is judged by helo_check_syntax alone: with syntax
 * off, log or tag and every other check at reject, the name checks that
 * cannot be evaluated on it (self_claim, resolves, fqdn, ...) must not
 * refuse it in syntax's place. The verdict comes from the real engine. */
static void
test_invalid_name_judged_by_syntax_only(void **st)
{
	struct id_input in;
	memset(&in, 0, sizeof in);
	in.helo = "my_host.good.test";
	in.is_ehlo = true;
	in.client.family = AF_INET;
	in.client.a[0] = 192; in.client.a[1] = 0; in.client.a[2] = 2; in.client.a[3] = 10;
	static const char *ptr[] = { "mx.good.test" };
	in.ptr = (struct id_dns_answer){ .status = ID_DNS_OK, .n = 1, .names = ptr };
	in.ptr_addr[0] = (struct id_dns_answer){ .status = ID_DNS_OK, .n = 1,
	    .addrs = &in.client };
	struct id_verdict v;
	identity_evaluate(&in, NULL, NULL, &v);
	assert_int_equal(v.c[IDC_SYNTAX].r, ID_FAIL);
	static const enum check_action syn[] = { ACT_OFF, ACT_LOG, ACT_TAG };
	for (size_t i = 0; i < sizeof syn / sizeof syn[0]; i++) {
		struct policy_opts o;
		struct policy_decision d;
		opts(&o, ACT_REJECT);
		o.action[IDC_GENERIC] = ACT_OFF;   /* mx.good.test is not generic */
		o.action[IDC_SYNTAX] = syn[i];
		policy_decide(&o, &v, false, &d);
		assert_int_equal(d.outcome, POL_ACCEPT);
		assert_int_equal(d.failed_mask & ~IDC_BIT(IDC_SYNTAX), 0);
	}
	struct policy_opts o;
	struct policy_decision d;
	opts(&o, ACT_REJECT);
	policy_decide(&o, &v, false, &d);
	assert_int_equal(d.outcome, POL_REJECT);
	assert_int_equal(d.check, IDC_SYNTAX);
	assert_int_equal(d.code, 501);
}

/* A refusal of an invalid name echoes the name the client sent, sanitised
 * (Postfix names it too): printable ASCII without space, '<' and '>', at
 * most ID_ECHO_MAX bytes, never CR or LF; "unknown" when nothing is left. */
static void
test_invalid_name_echoed(void **st)
{
	static char long_name[300];
	memset(long_name, 'x', sizeof long_name - 1);
	long_name[3] = '_';
	static const struct { const char *helo, *text; } t[] = {
		{ "my_host.good.test", "<my_host.good.test>: Helo command rejected: Invalid name" },
		{ "bad..name", "<bad..name>: Helo command rejected: Invalid name" },
		{ "a_b\r\n250 ok\x01\xff<x>", "<a_b250okx>: Helo command rejected: Invalid name" },
		{ "\r\n \x7f<>", "<unknown>: Helo command rejected: Invalid name" },
		{ "[192.0.2.300]", "<[192.0.2.300]>: Helo command rejected: Invalid name" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct id_input in;
		memset(&in, 0, sizeof in);
		in.helo = t[i].helo;
		in.is_ehlo = true;
		struct id_verdict v;
		identity_evaluate(&in, NULL, NULL, &v);
		struct policy_opts o;
		struct policy_decision d;
		opts(&o, ACT_OFF);
		o.action[IDC_SYNTAX] = ACT_REJECT;
		policy_decide(&o, &v, false, &d);
		assert_int_equal(d.outcome, POL_REJECT);
		assert_string_equal(d.text, t[i].text);
	}
	struct id_input in;
	memset(&in, 0, sizeof in);
	in.helo = long_name;
	struct id_verdict v;
	identity_evaluate(&in, NULL, NULL, &v);
	assert_int_equal(strlen(v.helo_echo), ID_ECHO_MAX);
	assert_memory_equal(v.helo_echo, "xxx_xx", 6);
	/* A valid name is named by helo, not echoed. */
	in.helo = "mx.good.test";
	identity_evaluate(&in, NULL, NULL, &v);
	assert_string_equal(v.helo_echo, "");
	assert_string_equal(v.helo, "mx.good.test");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_pass),
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_temperror_never_5xx),
		cmocka_unit_test(test_pending_and_precedence),
		cmocka_unit_test(test_shadow_and_exempt),
		cmocka_unit_test(test_invalid_name_judged_by_syntax_only),
		cmocka_unit_test(test_invalid_name_echoed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
