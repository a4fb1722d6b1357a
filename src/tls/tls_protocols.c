/*
 * smtpd_tls_protocols: Postfix's protocol-list syntax mapped onto OpenSSL's
 * min/max protocol version. Postfix starts an exclusion-only list from
 * "everything"; we start it from TLSv1.2+, so that a copied legacy line like
 * "!SSLv2, !SSLv3" cannot quietly re-enable TLS 1.0 and 1.1 (RFC 8996
 * deprecates both). Lower versions need an explicit name or ">=" bound.
 */
#include <string.h>

#include <openssl/ssl.h>

#include "lib/util.h"
#include "tls/tls.h"

/* The versions OpenSSL can still negotiate, oldest first. */
static const struct {
	const char *name;
	int version;
} protos[] = {
	{ "TLSv1",   TLS1_VERSION },
	{ "TLSv1.1", TLS1_1_VERSION },
	{ "TLSv1.2", TLS1_2_VERSION },
	{ "TLSv1.3", TLS1_3_VERSION },
};
#define NPROTOS (sizeof(protos) / sizeof(protos[0]))
#define DEFAULT_LOWEST 2        /* index of TLSv1.2 */

/* Index into protos[], -1 for SSLv2/SSLv3 (known, unsupported), -2 unknown. */
static int
proto_index(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < NPROTOS; i++)
		if (ascii_ieqn(s, n, protos[i].name))
			return (int)i;
	if (ascii_ieqn(s, n, "SSLv2") || ascii_ieqn(s, n, "SSLv3"))
		return -1;
	return -2;
}

static bool
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == ':' || c == '\n' || c == '\r';
}

bool
tls_parse_protocols(const char *spec, int *minv, int *maxv, struct buf *err)
{
	bool included[NPROTOS] = { false }, excluded[NPROTOS] = { false };
	bool any_include = false;
	int lo_bound = -1, hi_bound = (int)NPROTOS - 1;
	int lowest, i, first = -1, last = -1;
	const char *p = spec ? spec : "";

	while (*p != '\0') {
		const char *tok, *name;
		size_t n;
		int op = 0, idx;        /* 0 include, '!' exclude, '>' >=, '<' <= */

		while (is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != '\0' && !is_sep(*p))
			p++;
		n = (size_t)(p - tok);
		name = tok;
		if (name[0] == '!') {
			op = '!';
			name++;
		} else if ((name[0] == '>' || name[0] == '<') && n >= 2 && name[1] == '=') {
			op = name[0];
			name += 2;
		} else if (name[0] == '>' || name[0] == '<' || name[0] == '=') {
			buf_appendf(err, "protocols: \"%.*s\": only \">=\" and \"<=\" bounds are supported",
			    (int)n, tok);
			return false;
		}
		n -= (size_t)(name - tok);
		idx = proto_index(name, n);
		if (idx == -2) {
			buf_appendf(err, "protocols: unknown protocol \"%.*s\"", (int)n, name);
			return false;
		}
		if (idx == -1) {
			/* Excluding SSLv2/SSLv3 is a no-op; anything else would enable them. */
			if (op == '!')
				continue;
			buf_appendf(err, "protocols: \"%.*s\" is not supported", (int)n, name);
			return false;
		}
		switch (op) {
		case '!':
			excluded[idx] = true;
			break;
		case '>':
			if (idx > lo_bound)
				lo_bound = idx;
			break;
		case '<':
			if (idx < hi_bound)
				hi_bound = idx;
			break;
		default:
			included[idx] = true;
			any_include = true;
			break;
		}
	}

	/* Below TLS 1.2 only when named: an inclusion or a ">=" bound. */
	lowest = DEFAULT_LOWEST;
	if (lo_bound >= 0)
		lowest = lo_bound;
	for (i = 0; i < (int)NPROTOS; i++) {
		bool on;

		if (any_include)
			on = included[i];
		else
			on = i >= lowest;
		if (i < lo_bound || i > hi_bound || excluded[i])
			on = false;
		if (!on)
			continue;
		if (last >= 0 && last != i - 1) {
			buf_appendf(err, "protocols: \"%s\" leaves a gap in the enabled versions",
			    spec);
			return false;
		}
		if (first < 0)
			first = i;
		last = i;
	}
	if (first < 0) {
		buf_appendf(err, "protocols: \"%s\" enables no protocol version", spec ? spec : "");
		return false;
	}
	*minv = protos[first].version;
	*maxv = protos[last].version;
	return true;
}
