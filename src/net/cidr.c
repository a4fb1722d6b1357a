/*
 * CIDR entries and lists (contract in cidr.h). Addresses are compared as
 * byte strings in network order, prefix bits first, so IPv4 and IPv6 share
 * one comparison.
 */
#include "net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

static bool
parse_error(struct buf *err, const char *why)
{
	if (err != NULL)
		buf_append_str(err, why);
	return false;
}

bool
cidr_parse(const char *s, size_t n, struct cidr *out, struct buf *err)
{
	char tmp[INET6_ADDRSTRLEN];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	const char *a = s;

	memset(out, 0, sizeof *out);
	if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
		a++;
		alen -= 2;
	}
	if (alen == 0 || alen >= sizeof tmp || memchr(a, '\0', alen) != NULL)
		return parse_error(err, "not an IP address");
	memcpy(tmp, a, alen);
	tmp[alen] = '\0';
	if (memchr(tmp, ':', alen) != NULL) {
		if (inet_pton(AF_INET6, tmp, out->addr) != 1)
			return parse_error(err, "not an IPv6 address");
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		/* inet_pton(AF_INET) takes only the strict dotted quad. */
		if (inet_pton(AF_INET, tmp, out->addr) != 1)
			return parse_error(err, "not an IP address");
		out->family = AF_INET;
		out->prefix = 32;
	}
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t pn = n - (size_t)(p - s);
		unsigned long long v;
		if (pn == 0 || pn > 3 || !parse_u64(p, pn, &v) || v > out->prefix)
			return parse_error(err, "bad prefix length");
		out->prefix = (unsigned)v;
	}
	/* Host bits must be zero: 192.0.2.1/24 is a typo, not a network. */
	unsigned bytes = out->family == AF_INET ? 4 : 16;
	for (unsigned bit = out->prefix; bit < bytes * 8; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return parse_error(err, "host bits set after the prefix");
	return true;
}

/* The address bytes of sa and their family, an IPv4-mapped IPv6 address
 * as the IPv4 address it carries; NULL for other families. */
static const uint8_t *
client_bytes(const struct sockaddr *sa, int *family)
{
	if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			*family = AF_INET;
			return a6->s6_addr + 12;
		}
		*family = AF_INET6;
		return a6->s6_addr;
	}
	return NULL;
}

bool
cidr_of_client(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix,
    struct cidr *out)
{
	int family;
	const uint8_t *ip = client_bytes(sa, &family);

	memset(out, 0, sizeof *out);
	if (ip == NULL)
		return false;
	unsigned bytes = family == AF_INET ? 4 : 16;
	unsigned prefix = family == AF_INET ? v4_prefix : v6_prefix;
	if (prefix > bytes * 8)
		prefix = bytes * 8;
	out->family = family;
	out->prefix = prefix;
	memcpy(out->addr, ip, prefix / 8);
	if (prefix % 8 != 0)
		out->addr[prefix / 8] = (uint8_t)(ip[prefix / 8] & (0xff << (8 - prefix % 8)));
	return true;
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	int family;
	const uint8_t *ip = client_bytes(sa, &family);

	if (ip == NULL || family != c->family)
		return false;
	unsigned full = c->prefix / 8, rest = c->prefix % 8;
	if (memcmp(ip, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (ip[full] & mask) == (c->addr[full] & mask);
}

bool
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], sa))
			return true;
	return false;
}

static bool
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool
cidr_list_add(struct cidr_list *l, const char *text, struct buf *err)
{
	const char *p = text;

	for (;;) {
		while (*p != '\0' && is_sep(*p))
			p++;
		if (*p == '\0')
			return true;
		const char *start = p;
		while (*p != '\0' && !is_sep(*p))
			p++;
		size_t n = (size_t)(p - start);
		struct cidr c;
		struct buf why = BUF_INIT;
		if (!cidr_parse(start, n, &c, &why)) {
			if (err != NULL) {
				struct buf clean = BUF_INIT;
				buf_appendf(err, "bad entry '%s': %s",
				    log_sanitize(&clean, start, n, 64),
				    buf_cstr(&why));
				buf_free(&clean);
			}
			buf_free(&why);
			return false;
		}
		buf_free(&why);
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 8;
			l->v = xrealloc(l->v, l->cap * sizeof *l->v);
		}
		l->v[l->n++] = c;
	}
}

void
cidr_list_clear(struct cidr_list *l)
{
	x_free(&l->v);
	l->n = l->cap = 0;
}
