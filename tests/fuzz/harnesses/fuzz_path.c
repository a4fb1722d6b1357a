/*
 * Fuzz the path parser and its helpers. Byte 0 holds the PATH_ALLOW_*
 * flags; the rest is the argument. Invariants: a success respects every
 * limit, carries no 8-bit octet unless UTF-8 was allowed, and survives
 * path_format -> path_parse unchanged; the helpers agree with path_parse
 * (a valid domain or literal parses inside a path, well-formed UTF-8 is
 * what utf8_valid says).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
has8(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static void
check_success(const char *in, size_t n, unsigned flags, const struct smtp_path *p, size_t end)
{
	char f[700], g[700], again[710];
	struct smtp_path q;
	size_t end2;
	int len;

	if (end < 2 || end > n || end > PATH_MAX_OCTETS || in[end - 1] != '>')
		abort();
	if (strlen(p->local) > PATH_LOCAL_MAX || strlen(p->domain) > PATH_DOMAIN_MAX)
		abort();
	if (p->null && (!(flags & PATH_ALLOW_NULL) || end != 2))
		abort();
	if (!(flags & PATH_ALLOW_UTF8) && (has8(p->local) || has8(p->domain) || p->utf8))
		abort();
	if (p->utf8 != (has8(p->local) || has8(p->domain)))
		abort();
	if (!p->null && p->domain[0] != '\0') {
		bool ok = p->literal ?
		    smtp_address_literal_valid(p->domain, strlen(p->domain)) :
		    smtp_domain_valid(p->domain, strlen(p->domain), flags & PATH_ALLOW_UTF8);
		if (!ok)
			abort();
	}
	len = path_format(p, f, sizeof f);
	if (len < 0 || (size_t)len != strlen(f))
		abort();
	/* Too small a buffer is refused, never overrun. */
	if (len > 0 && path_format(p, g, (size_t)len) != -1)
		abort();
	snprintf(again, sizeof again, "<%s>", f);
	if (path_parse(again, strlen(again), flags, &q, &end2) != PATH_OK)
		abort();
	if (end2 != strlen(again) || q.null != p->null || q.literal != p->literal ||
	    q.utf8 != p->utf8 || strcmp(q.local, p->local) != 0 ||
	    strcmp(q.domain, p->domain) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path p;
	size_t end = 0, n;
	unsigned flags;
	char *in, *wrapped;
	bool u8;

	if (size < 1)
		return 0;
	flags = data[0] & (PATH_ALLOW_NULL | PATH_ALLOW_POSTMASTER | PATH_ALLOW_UTF8);
	u8 = (flags & PATH_ALLOW_UTF8) != 0;
	n = size - 1;
	/* An exact-size copy, so that any read past the end is caught. */
	in = malloc(n ? n : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 1, n);

	if (path_parse(in, n, flags, &p, &end) == PATH_OK)
		check_success(in, n, flags, &p, end);

	/* A valid domain or literal is accepted as the domain of a path. */
	wrapped = malloc(n + 5);
	if (wrapped != NULL && n <= PATH_DOMAIN_MAX) {
		bool dom = smtp_domain_valid(in, n, u8);
		bool lit = smtp_address_literal_valid(in, n);
		enum path_err e;

		memcpy(wrapped, "<a@", 3);
		memcpy(wrapped + 3, in, n);
		wrapped[n + 3] = '>';
		e = path_parse(wrapped, n + 4, flags, &p, &end);
		if ((dom || lit) && n + 4 <= PATH_MAX_OCTETS && e != PATH_OK)
			abort();
		if (e == PATH_OK && end == n + 4 && !dom && !lit)
			abort();
		if (dom && lit)
			abort();
	}
	/* Well-formed UTF-8 never makes a domain invalid by itself being 8-bit. */
	if (smtp_domain_valid(in, n, false) && !smtp_domain_valid(in, n, true))
		abort();
	if (smtp_domain_valid(in, n, true) && !utf8_valid(in, n))
		abort();
	free(wrapped);
	free(in);
	return 0;
}
