/*
 * Fuzz harness for the identity module: host-name and address-literal
 * checks, the PSL and pattern-file parsers, and identity_evaluate() with
 * arbitrary EHLO names, PTR names and DNS statuses.
 *
 * Input: byte 0 selects the mode (low 2 bits) and byte 1 the DNS statuses;
 * the rest is split at '\n' into fields:
 *   mode 0/3  helo, prev_helo, client address, PTR names..., then
 *             everything is evaluated, looked up and formatted
 *   mode 1    the whole rest is a public suffix list; each field is also
 *             looked up in it
 *   mode 2    the whole rest is a generic-patterns file
 * The real public suffix list is loaded once (the only I/O).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "identity/load.h"
#include "lib/idna.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct psl *real_psl;
static struct generic_patterns *patterns;
static bool loaded;

static void
load(void)
{
	static const char pat[] =
	    "format 1\ntoken dsl\ntoken pool\nlabel dynamic\n"
	    "suffix dyn.example.net\nexempt good.example\n";
	struct buf err = BUF_INIT;
	loaded = true;
	real_psl = psl_load_file(ID_PSL_DEFAULT_PATH, &err);
	patterns = generic_parse(pat, sizeof(pat) - 1, &err);
	buf_free(&err);
}

static enum id_dns_status
pick(unsigned bits)
{
	static const enum id_dns_status s[8] = { ID_DNS_OK, ID_DNS_OK,
	    ID_DNS_NXDOMAIN, ID_DNS_NODATA, ID_DNS_SERVFAIL, ID_DNS_TIMEOUT,
	    ID_DNS_PENDING, ID_DNS_UNASKED };
	return s[bits & 7];
}

static void
names_only(const char *s, size_t n)
{
	char out[ID_NAME_MAX + 1];
	struct id_addr a;
	for (unsigned f = 0; f < 4; f++)
		if (id_hostname_check(s, n, f, out) == NULL) {
			struct psl_match m;
			psl_lookup(real_psl, out, strlen(out), 0, &m);
			psl_lookup(real_psl, out, strlen(out), PSL_ICANN_ONLY, &m);
			char why[96];
			struct id_addr c;
			id_addr_parse("192.0.2.1", 9, &c);
			generic_match(patterns, real_psl, out, &c, why, sizeof(why));
			id_addr_parse("2001:db8::1", 11, &c);
			generic_match(patterns, real_psl, out, &c, why, sizeof(why));
		}
	(void)id_literal_parse(s, n, &a);
	(void)id_addr_parse(s, n, &a);
	(void)id_is_bare_ipv4(s, n);
	char pc[80];
	(void)idna_punycode_label(s, n, pc, sizeof(pc));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loaded)
		load();
	if (size < 2)
		return 0;
	unsigned mode = data[0] & 3, st = data[1];
	const char *text = (const char *)data + 2;
	size_t len = size - 2;

	if (mode == 1) {
		struct psl *p = psl_parse(text, len);
		char out[ID_NAME_MAX + 1];
		for (size_t i = 0; i < len;) {
			size_t e = i;
			while (e < len && text[e] != '\n')
				e++;
			if (id_hostname_check(text + i, e - i,
			    IDN_ALLOW_TRAILING_DOT, out) == NULL) {
				struct psl_match m;
				psl_lookup(p, out, strlen(out), (unsigned)(e - i) & 1, &m);
			}
			i = e + 1;
		}
		psl_free(&p);
		return 0;
	}
	if (mode == 2) {
		struct buf err = BUF_INIT;
		struct generic_patterns *g = generic_parse(text, len, &err);
		generic_free(&g);
		buf_free(&err);
		return 0;
	}

	/* Split into NUL-terminated fields (copies: the input has no NUL). */
	enum { MAXF = 3 + 16 };
	char *field[MAXF];
	size_t nf = 0;
	for (size_t i = 0; i <= len && nf < MAXF;) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		names_only(text + i, e - i);
		field[nf] = malloc(e - i + 1);
		memcpy(field[nf], text + i, e - i);
		field[nf][e - i] = '\0';
		nf++;
		i = e + 1;
	}

	struct id_input in;
	memset(&in, 0, sizeof(in));
	in.helo = nf > 0 ? field[0] : NULL;
	in.prev_helo = nf > 1 && field[1][0] ? field[1] : NULL;
	in.is_ehlo = st & 0x80;
	in.ptr_match_exact = st & 0x40;
	if (nf < 3 || !id_addr_parse(field[2], strlen(field[2]), &in.client))
		id_addr_parse("192.0.2.1", 9, &in.client);
	static const char *ours[] = { "mx.ours.example" };
	struct id_addr our_addr;
	id_addr_parse("198.51.100.1", 12, &our_addr);
	in.our_names = ours;
	in.n_our_names = 1;
	in.our_addrs = &our_addr;
	in.n_our_addrs = 1;

	const char *ptrs[16];
	size_t np = nf > 3 ? nf - 3 : 0;
	for (size_t i = 0; i < np; i++)
		ptrs[i] = field[3 + i];
	in.ptr.status = pick(st);
	in.ptr.n = in.ptr.status == ID_DNS_OK ? np : 0;
	in.ptr.names = ptrs;
	/* Forward answers: the client address, another address or none. */
	struct id_addr fwd[2];
	fwd[0] = in.client;
	id_addr_parse("203.0.113.9", 11, &fwd[1]);
	for (size_t i = 0; i < ID_MAX_PTR; i++) {
		in.ptr_addr[i].status = pick(st >> 3 ^ (unsigned)i);
		in.ptr_addr[i].n = in.ptr_addr[i].status == ID_DNS_OK ?
		    1 + ((st + i) & 1) : 0;
		in.ptr_addr[i].addrs = fwd;
	}
	in.helo_a.status = pick(st >> 2);
	in.helo_a.n = in.helo_a.status == ID_DNS_OK ? 2 : 0;
	in.helo_a.addrs = fwd;
	in.helo_aaaa.status = pick(st >> 4);
	in.helo_aaaa.n = in.helo_aaaa.status == ID_DNS_OK ? 1 : 0;
	in.helo_aaaa.addrs = fwd;
	in.helo_mx.status = pick(st >> 5);
	in.helo_mx.n = in.helo_mx.status == ID_DNS_OK ? np : 0;
	in.helo_mx.names = ptrs;

	struct id_verdict v;
	identity_evaluate(&in, mode == 3 ? NULL : real_psl,
	    mode == 3 ? NULL : patterns, &v);
	struct id_lookup l[ID_MAX_LOOKUPS];
	size_t nl = identity_lookups(&in, IDC_ALL, l, ID_MAX_LOOKUPS);
	if (nl > ID_MAX_LOOKUPS)
		abort();
	for (int c = 0; c < IDC_COUNT; c++) {
		if (v.c[c].pending && v.c[c].r != ID_TEMPERROR)
			abort();
		for (const char *p = v.c[c].reason; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				abort();
	}
	struct buf b = BUF_INIT;
	if (identity_auth_results(&b, "mx.ours.example", &in, &v, "\r\n")) {
		/* No line end other than our folds, no control bytes. */
		const char *h = buf_cstr(&b);
		for (size_t i = 0; i < b.len; i++) {
			unsigned char ch = (unsigned char)h[i];
			if (ch == '\r' && (h[i + 1] != '\n' || h[i + 2] != '\t'))
				abort();
			if (ch == '\n' && (i == 0 || h[i - 1] != '\r'))
				abort();
			if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') ||
			    ch > 0x7e)
				abort();
		}
	}
	buf_free(&b);
	for (size_t i = 0; i < nf; i++)
		free(field[i]);
	return 0;
}
