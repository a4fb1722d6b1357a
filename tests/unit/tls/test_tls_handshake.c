/*
 * Real handshakes against tls_server_start(): certificate choice (ECDSA vs
 * RSA, SNI), protocol floor, client-certificate fingerprint, resumption,
 * dirty shutdown, reload while a handshake is in flight, the auto
 * certificate, and configuration errors. Certificates are generated into a
 * mkdtemp directory per run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "harness.h"
#include "lib/xmalloc.h"

static char *dir;
static char *ec_crt, *ec_key, *rsa_crt, *rsa_key;
static char *sni_crt, *sni_key, *wild_crt, *wild_key, *cli_crt, *cli_key;
static char *map;

static int
group_setup(void **state)
{
	FILE *f;

	dir = th_tmpdir();
	th_certgen(dir, "ec", "default.test", EVP_PKEY_EC, &ec_crt, &ec_key);
	th_certgen(dir, "rsa", "default.test", EVP_PKEY_RSA, &rsa_crt, &rsa_key);
	th_certgen(dir, "sni", "mail.example.org", EVP_PKEY_EC, &sni_crt, &sni_key);
	th_certgen(dir, "wild", "wild.test", EVP_PKEY_EC, &wild_crt, &wild_key);
	th_certgen(dir, "client", "client.test", EVP_PKEY_EC, &cli_crt, &cli_key);
	map = xasprintf("%s/sni.map", dir);
	f = fopen(map, "w");
	assert_non_null(f);
	fprintf(f, "# SNI certificates\n\n");
	fprintf(f, "mail.example.org  %s %s  # trailing comment\n", sni_crt, sni_key);
	fprintf(f, "*.wild.test\t%s\t%s\n", wild_crt, wild_key);
	fclose(f);
	return 0;
}

static int
group_teardown(void **state)
{
	th_rmdir(dir);
	free(dir);
	free(ec_crt); free(ec_key); free(rsa_crt); free(rsa_key);
	free(sni_crt); free(sni_key); free(wild_crt); free(wild_key);
	free(cli_crt); free(cli_key); free(map);
	return 0;
}

static struct tls_server *
server(const char *protocols, bool ask_ccert, bool tickets, bool with_sni)
{
	const char *certs[] = { ec_crt, rsa_crt };
	const char *keys[] = { ec_key, rsa_key };
	struct tls_server_opts o = {
		.cert_files = certs, .key_files = keys, .ncerts = 2,
		.protocols = protocols, .ciphers = "", .sni_map = with_sni ? map : "",
		.ask_ccert = ask_ccert, .session_tickets = tickets,
	};
	struct buf err = BUF_INIT;
	struct tls_server *t = tls_server_new(&o, &err);

	if (t == NULL)
		fail_msg("tls_server_new: %s", buf_cstr(&err));
	buf_free(&err);
	return t;
}

static void
test_ecdsa_and_rsa(void **state)
{
	static const struct {
		int max_version;
		const char *sigalgs;
		int want;
	} cases[] = {
		{ 0, NULL, EVP_PKEY_EC },                               /* default client */
		{ TLS1_2_VERSION, NULL, EVP_PKEY_EC },
		{ TLS1_2_VERSION, "RSA+SHA256", EVP_PKEY_RSA },         /* s_client -sigalgs RSA+SHA256 -tls1_2 */
		{ TLS1_3_VERSION, "rsa_pss_rsae_sha256", EVP_PKEY_RSA },
		{ TLS1_2_VERSION, "ECDSA+SHA256", EVP_PKEY_EC },
	};
	struct tls_server *t = server(NULL, false, true, false);
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct th_client co = { .max_version = cases[i].max_version,
		    .sigalgs = cases[i].sigalgs };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_true(sr.connected);
		assert_string_equal(cr.greeting, "220 hi\r\n");
		if (cr.peer_key_type != cases[i].want)
			fail_msg("case %zu: got key type %d, want %d", i, cr.peer_key_type,
			    cases[i].want);
		assert_string_equal(cr.version, sr.info.version);
		assert_true(sr.info.bits >= 128);
		assert_true(sr.info.cipher[0] != '\0');
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);
	assert_null(t);
}

static void
test_sni(void **state)
{
	static const struct {
		const char *sni, *want_cn;
	} cases[] = {
		{ "mail.example.org", "mail.example.org" },
		{ "MAIL.Example.ORG", "mail.example.org" },
		{ "x.wild.test", "wild.test" },
		{ "a.b.wild.test", "default.test" },    /* one label only */
		{ "wild.test", "default.test" },
		{ "unknown.test", "default.test" },
		{ NULL, "default.test" },
	};
	struct tls_server *t = server(NULL, false, true, true);
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct th_client co = { .sni = cases[i].sni };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_string_equal(cr.peer_cn, cases[i].want_cn);
		assert_string_equal(sr.info.sni, cases[i].sni ? cases[i].sni : "");
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);
}

static void
test_old_protocols_refused(void **state)
{
	struct tls_server *t = server(NULL, false, true, false);
	struct th_client co = { .min_version = TLS1_1_VERSION, .max_version = TLS1_1_VERSION,
	    .ciphers = "DEFAULT:@SECLEVEL=0" };
	struct th_client_result cr;
	struct th_server_result sr = { 0 };

	th_run(&t, false, &co, &cr, &sr);
	assert_false(cr.handshake_ok);
	assert_false(sr.connected);
	assert_true(sr.error);
	if (strstr(sr.reason, "unsupported protocol") == NULL)
		fail_msg("reason \"%s\" does not name the protocol", sr.reason);
	tls_server_unref(&t);

	/* TLS 1.3 only: a TLS 1.2 client is refused, a default one gets 1.3. */
	t = server("TLSv1.3", false, true, false);
	co = (struct th_client){ .max_version = TLS1_2_VERSION };
	th_run(&t, false, &co, &cr, &sr);
	assert_false(cr.handshake_ok);
	assert_true(sr.error);
	co = (struct th_client){ 0 };
	memset(&sr, 0, sizeof(sr));
	th_run(&t, false, &co, &cr, &sr);
	assert_true(cr.handshake_ok);
	assert_string_equal(sr.info.version, "TLSv1.3");
	SSL_SESSION_free(cr.session);
	tls_server_unref(&t);

	/* TLS 1.2 only. */
	t = server("!TLSv1.3", false, true, false);
	memset(&sr, 0, sizeof(sr));
	th_run(&t, false, &co, &cr, &sr);
	assert_true(cr.handshake_ok);
	assert_string_equal(sr.info.version, "TLSv1.2");
	SSL_SESSION_free(cr.session);
	tls_server_unref(&t);
}

static void
sha256_fingerprint(const char *crtpath, char *out)
{
	FILE *f = fopen(crtpath, "r");
	X509 *x;
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	int len, i;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	SHA256(der, (size_t)len, md);
	out += sprintf(out, "sha256:");
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
		out += sprintf(out, "%02x", md[i]);
	OPENSSL_free(der);
	X509_free(x);
}

static void
test_client_cert_fingerprint(void **state)
{
	struct tls_server *t = server(NULL, true, true, false);
	char want[100];
	int v;

	sha256_fingerprint(cli_crt, want);
	for (v = 0; v < 2; v++) {
		struct th_client co = { .cert = cli_crt, .key = cli_key,
		    .max_version = v ? TLS1_2_VERSION : 0 };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_string_equal(sr.info.peer_fingerprint, want);

		/* Requested, not required: no certificate is fine. */
		co = (struct th_client){ .max_version = v ? TLS1_2_VERSION : 0 };
		SSL_SESSION_free(cr.session);
		memset(&sr, 0, sizeof(sr));
		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_string_equal(sr.info.peer_fingerprint, "");
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);

	/* Not requested: the client sends none, nothing is reported. */
	t = server(NULL, false, true, false);
	{
		struct th_client co = { .cert = cli_crt, .key = cli_key };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_string_equal(sr.info.peer_fingerprint, "");
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);
}

static void
resume_case(bool tickets, bool ask_ccert, int version, bool want_resumed)
{
	struct tls_server *t = server(NULL, ask_ccert, tickets, true);
	struct th_client co = { .max_version = version, .sni = "mail.example.org" };
	struct th_client_result cr1, cr2;
	struct th_server_result sr = { 0 };

	th_run(&t, false, &co, &cr1, &sr);
	assert_true(cr1.handshake_ok);
	assert_false(sr.info.resumed);
	assert_non_null(cr1.session);
	co.session = cr1.session;
	memset(&sr, 0, sizeof(sr));
	th_run(&t, false, &co, &cr2, &sr);
	assert_true(cr2.handshake_ok);
	if (sr.info.resumed != want_resumed || cr2.reused != want_resumed)
		fail_msg("tickets=%d ccert=%d version=%x: resumed server=%d client=%d, want %d",
		    tickets, ask_ccert, version, sr.info.resumed, cr2.reused, want_resumed);
	/* SNI survives resumption (it is kept in the session). */
	assert_string_equal(sr.info.sni, "mail.example.org");
	assert_string_equal(cr2.peer_cn, "mail.example.org");
	/*
	 * RFC 6066 §3: offered with another name (the default certificate's)
	 * or none, the session is not resumed; a full handshake follows.
	 */
	static const char *const others[] = { "default.test", NULL };
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct th_client_result cr3;

		co.sni = others[i];
		memset(&sr, 0, sizeof(sr));
		th_run(&t, false, &co, &cr3, &sr);
		assert_true(cr3.handshake_ok);
		if (sr.info.resumed || cr3.reused)
			fail_msg("tickets=%d ccert=%d version=%x: SNI %s resumed mail.example.org's session",
			    tickets, ask_ccert, version, others[i] ? others[i] : "(none)");
		assert_string_equal(cr3.peer_cn, "default.test");
		SSL_SESSION_free(cr3.session);
	}
	SSL_SESSION_free(cr1.session);
	SSL_SESSION_free(cr2.session);
	tls_server_unref(&t);
}

static void
test_resumption(void **state)
{
	resume_case(true, false, TLS1_3_VERSION, true);
	resume_case(true, false, TLS1_2_VERSION, true);
	resume_case(true, true, TLS1_3_VERSION, true);
	resume_case(true, true, TLS1_2_VERSION, true);
	resume_case(false, false, TLS1_3_VERSION, false);
	resume_case(false, false, TLS1_2_VERSION, false);
}

static void
test_dirty_close_is_eof(void **state)
{
	struct tls_server *t = server(NULL, false, true, false);
	int v;

	for (v = 0; v < 2; v++) {
		struct th_client co = { .dirty_close = true,
		    .max_version = v ? TLS1_2_VERSION : 0 };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_true(sr.eof);
		if (sr.error)
			fail_msg("dirty close reported as error: %s", sr.reason);
		SSL_SESSION_free(cr.session);

		co.dirty_close = false;         /* with close_notify */
		memset(&sr, 0, sizeof(sr));
		th_run(&t, false, &co, &cr, &sr);
		assert_true(sr.eof);
		assert_false(sr.error);
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);
}

static void
test_reload_during_handshake(void **state)
{
	/*
	 * The configuration's reference is dropped right after the session
	 * started; the SSL's own reference keeps the SNI map and contexts
	 * alive through the servername callback (ASan would catch a use
	 * after free).
	 */
	struct tls_server *t = server(NULL, true, true, true);
	struct th_client co = { .sni = "x.wild.test" };
	struct th_client_result cr;
	struct th_server_result sr = { 0 };

	th_run(&t, true, &co, &cr, &sr);
	assert_null(t);
	assert_true(cr.handshake_ok);
	assert_string_equal(cr.peer_cn, "wild.test");
	SSL_SESSION_free(cr.session);
}

static void
hs_timeout_event(struct bufferevent *bev, short what, void *arg)
{
	short *seen = arg;

	*seen = what;
	event_base_loopbreak(bufferevent_get_base(bev));
}

static void
test_handshake_timeout(void **state)
{
	/*
	 * A client that connects and never sends a ClientHello: timeouts set
	 * on the filter cover the handshake (the session's handshake timer).
	 */
	struct tls_server *t = server(NULL, false, true, false);
	struct event_base *base = event_base_new();
	struct bufferevent *plain, *bev;
	struct timeval tv = { 0, 200 * 1000 }, t0, t1;
	short seen = 0;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	plain = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bev = tls_server_start(t, base, plain);
	tls_server_unref(&t);
	bufferevent_setcb(bev, NULL, NULL, hs_timeout_event, &seen);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	gettimeofday(&t0, NULL);
	event_base_dispatch(base);
	gettimeofday(&t1, NULL);
	assert_true(seen & BEV_EVENT_TIMEOUT);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_usec - t0.tv_usec) < 2000000);
	bufferevent_free(bev);
	event_base_loop(base, EVLOOP_NONBLOCK);
	close(sv[1]);
	event_base_free(base);
}

static bool
san_has(GENERAL_NAMES *gens, int type, const char *dns, const unsigned char *ip, int iplen)
{
	int i;

	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != type)
			continue;
		if (type == GEN_DNS && strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), dns) == 0)
			return true;
		if (type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == iplen &&
		    memcmp(ASN1_STRING_get0_data(g->d.iPAddress), ip, (size_t)iplen) == 0)
			return true;
	}
	return false;
}

static void
test_auto_cert(void **state)
{
	static const unsigned char lo[4] = { 127, 0, 0, 1 };
	char *adir = xasprintf("%s/auto", dir), *crt, *key, *crt1, *key1, *crt2, *key2;
	struct tls_server_opts o = { .auto_cert_dir = adir, .auto_cert_name = "mx.auto.test",
	    .session_tickets = true };
	struct buf err = BUF_INIT;
	struct tls_server *t;
	struct stat st1, st2;
	size_t l1, l2;
	FILE *f;
	X509 *x;
	GENERAL_NAMES *gens;
	EVP_PKEY *pk;

	assert_int_equal(mkdir(adir, 0700), 0);
	crt = xasprintf("%s/mx.auto.test.crt", adir);
	key = xasprintf("%s/mx.auto.test.key", adir);

	t = tls_server_new(&o, &err);
	if (t == NULL)
		fail_msg("%s", buf_cstr(&err));
	assert_int_equal(stat(key, &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0600);
	crt1 = th_slurp(crt, &l1);
	key1 = th_slurp(key, NULL);

	/* ECDSA P-256 with SAN name, localhost and 127.0.0.1. */
	f = fopen(crt, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	pk = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pk), 256);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_true(san_has(gens, GEN_DNS, "mx.auto.test", NULL, 0));
	assert_true(san_has(gens, GEN_DNS, "localhost", NULL, 0));
	assert_true(san_has(gens, GEN_IPADD, NULL, lo, 4));
	GENERAL_NAMES_free(gens);
	X509_free(x);

	/* A client that trusts exactly this certificate verifies it for localhost. */
	{
		struct th_client co = { .cafile = crt, .verify_host = "localhost" };
		struct th_client_result cr;
		struct th_server_result sr = { 0 };

		th_run(&t, false, &co, &cr, &sr);
		assert_true(cr.handshake_ok);
		assert_int_equal(cr.verify_result, X509_V_OK);
		assert_string_equal(cr.peer_cn, "mx.auto.test");
		SSL_SESSION_free(cr.session);
	}
	tls_server_unref(&t);

	/* The second start reuses the files untouched. */
	t = tls_server_new(&o, &err);
	if (t == NULL)
		fail_msg("%s", buf_cstr(&err));
	tls_server_unref(&t);
	assert_int_equal(stat(key, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	crt2 = th_slurp(crt, &l2);
	key2 = th_slurp(key, NULL);
	assert_int_equal(l1, l2);
	assert_memory_equal(crt1, crt2, l1);
	assert_string_equal(key1, key2);
	free(crt1); free(key1); free(crt2); free(key2);

	/* Names that could escape the directory or are not host names. */
	{
		static const char *bad[] = { "", "../x", "a/b", ".hidden", "a..b", "a b", "x.", NULL };
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			o.auto_cert_name = bad[i];
			buf_reset(&err);
			assert_null(tls_server_new(&o, &err));
			assert_non_null(strstr(buf_cstr(&err), "invalid host name"));
		}
	}
	buf_free(&err);
	free(crt);
	free(key);
	free(adir);
}

static void
expect_error(const struct tls_server_opts *o, const char *want)
{
	struct buf err = BUF_INIT;
	struct tls_server *t = tls_server_new(o, &err);

	if (t != NULL)
		fail_msg("accepted, want error containing \"%s\"", want);
	if (strstr(buf_cstr(&err), want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", buf_cstr(&err), want);
	buf_free(&err);
}

static void
test_config_errors(void **state)
{
	const char *missing[] = { "/nonexistent/x.crt" };
	const char *ec[] = { ec_crt }, *rsakey[] = { rsa_key };
	const char *two_ec[] = { ec_crt, sni_crt }, *two_ec_keys[] = { ec_key, sni_key };
	const char *eckey[] = { ec_key };
	char *badmap = xasprintf("%s/bad.map", dir);
	struct tls_server_opts o = { 0 };
	FILE *f;

	expect_error(&o, "no certificate configured");

	o.cert_files = missing; o.key_files = NULL; o.ncerts = 1;
	expect_error(&o, "/nonexistent/x.crt: cannot load certificate");

	o.cert_files = ec; o.key_files = rsakey;
	expect_error(&o, rsa_key);

	o.cert_files = two_ec; o.key_files = two_ec_keys; o.ncerts = 2;
	expect_error(&o, "already loaded");

	o.cert_files = ec; o.key_files = eckey; o.ncerts = 1;
	o.ciphers = "NO-SUCH-CIPHER";
	expect_error(&o, "invalid cipher list");
	o.ciphers = NULL;

	o.protocols = "<TLSv1.2";
	expect_error(&o, "only \">=\" and \"<=\"");
	o.protocols = NULL;

	f = fopen(badmap, "w");
	assert_non_null(f);
	fprintf(f, "ok.test %s %s\nbad.test %s\n", ec_crt, ec_key, ec_crt);
	fclose(f);
	o.sni_map = badmap;
	expect_error(&o, "bad.map:2:");
	f = fopen(badmap, "w");
	fprintf(f, "bad/name %s %s\n", ec_crt, ec_key);
	fclose(f);
	expect_error(&o, "bad.map:1: invalid server name");
	f = fopen(badmap, "w");
	fprintf(f, "a.test %s %s\nA.TEST %s %s\n", ec_crt, ec_key, ec_crt, ec_key);
	fclose(f);
	expect_error(&o, "bad.map:2: duplicate server name");
	f = fopen(badmap, "w");
	fprintf(f, "a.test %s %s\n", ec_crt, rsa_key);
	fclose(f);
	expect_error(&o, "does not match");
	expect_error(&o, "bad.map:1)");
	o.sni_map = "/nonexistent/map";
	expect_error(&o, "/nonexistent/map: No such file");
	free(badmap);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ecdsa_and_rsa),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_old_protocols_refused),
		cmocka_unit_test(test_client_cert_fingerprint),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_dirty_close_is_eof),
		cmocka_unit_test(test_reload_during_handshake),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_auto_cert),
		cmocka_unit_test(test_config_errors),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
