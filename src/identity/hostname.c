/*
 * Host-name validation, address literals and addresses (pure; see
 * hostname.h). inet_pton/inet_ntop are used only as string converters.
 */
#include "identity/hostname.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/util.h"
#include "proto/path.h"

static bool
is_ldh(unsigned char c)
{
	return ascii_isalnum(c) || c == '-';
}

const char *
id_hostname_check(const char *s, size_t n, unsigned flags, char *out)
{
	if (s == NULL || n == 0)
		return "empty name";
	if (s[n - 1] == '.') {
		if (!(flags & IDN_ALLOW_TRAILING_DOT))
			return "trailing dot";
		n--;
		if (n == 0)
			return "root name only";
	}
	if (n > ID_NAME_MAX)
		return "name longer than 253 octets";

	size_t label_start = 0;
	bool label_digits_only = true;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : '.';
		if (c == '.') {
			size_t len = i - label_start;
			if (len == 0)
				return "empty label";
			if (len > ID_LABEL_MAX)
				return "label longer than 63 octets";
			if (s[label_start] == '-' || s[i - 1] == '-')
				return "label begins or ends with a hyphen";
			if (i == n && (flags & IDN_REQUIRE_ALPHA_TLD) &&
			    label_digits_only)
				return "all-numeric top-level label";
			label_start = i + 1;
			label_digits_only = true;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return "control character";
		if (c >= 0x80)
			return "non-ASCII octet";
		if (c == '_')
			return "underscore";
		if (!is_ldh(c))
			return "character not allowed in a host name";
		if (!ascii_isdigit(c))
			label_digits_only = false;
	}
	if (out != NULL) {
		for (size_t i = 0; i < n; i++)
			out[i] = ascii_lower(s[i]);
		out[n] = '\0';
	}
	return NULL;
}

size_t
id_label_count(const char *name)
{
	if (*name == '\0')
		return 0;
	size_t k = 1;
	for (; *name; name++)
		if (*name == '.')
			k++;
	return k;
}

/* Parses s[0..n) as four dot-separated decimal parts of 1..maxdigits digits
 * each at most 255. */
static bool
parse_quad(const char *s, size_t n, size_t maxdigits, uint8_t q[4])
{
	size_t part = 0, digits = 0;
	unsigned v = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (digits == 0 || part > 3)
				return false;
			q[part++] = (uint8_t)v;
			v = 0;
			digits = 0;
			continue;
		}
		if (!ascii_isdigit(s[i]) || ++digits > maxdigits)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > 255)
			return false;
	}
	return part == 4;
}

bool
id_is_bare_ipv4(const char *s, size_t n)
{
	uint8_t q[4];
	if (n > 0 && s[n - 1] == '.')
		n--;
	return parse_quad(s, n, 3, q);
}

static void
fold_mapped(struct id_addr *a)
{
	static const uint8_t prefix[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (a->family == AF_INET6 && memcmp(a->a, prefix, 12) == 0) {
		uint8_t v4[4];
		memcpy(v4, a->a + 12, 4);
		memset(a->a, 0, sizeof(a->a));
		memcpy(a->a, v4, 4);
		a->family = AF_INET;
	}
}

static bool
parse_v6(const char *s, size_t n, struct id_addr *out)
{
	char tmp[ID_ADDR_STRLEN];
	if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n) != NULL)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	struct in6_addr in6;
	if (inet_pton(AF_INET6, tmp, &in6) != 1)
		return false;
	memset(out, 0, sizeof(*out));
	out->family = AF_INET6;
	memcpy(out->a, &in6, 16);
	fold_mapped(out);
	return true;
}

enum id_literal
id_literal_parse(const char *s, size_t n, struct id_addr *out)
{
	if (n == 0 || s[0] != '[')
		return IDL_NOT_LITERAL;
	if (n < 3 || s[n - 1] != ']')
		return IDL_BAD;
	const char *in = s + 1;
	size_t len = n - 2;
	struct id_addr a;
	memset(&a, 0, sizeof(a));
	if (ascii_iprefix(in, len, "IPv6:")) {
		/* The syntax is RFC 5321's (§4.1.3, as the path parser checks
		 * it); inet_pton only converts, as it also takes forms §4.1.3
		 * does not ("1:2:3:4:5:6:7::"). */
		if (!smtp_ipv6_addr_valid(in + 5, len - 5) || !parse_v6(in + 5, len - 5, &a))
			return IDL_BAD;
		*out = a;
		return IDL_VALID;
	}
	if (parse_quad(in, len, 3, a.a)) {
		a.family = AF_INET;
		*out = a;
		return IDL_VALID;
	}
	/* General-address-literal = Standardized-tag ":" 1*dcontent, with
	 * Standardized-tag = Ldh-str and dcontent = %d33-90 / %d94-126. */
	const char *colon = memchr(in, ':', len);
	if (colon == NULL || colon == in)
		return IDL_BAD;
	/* "[2001:db8::1]" fits the general grammar with tag "2001", but it is
	 * an IPv6 address that lacks its tag: malformed, not unknown. */
	if (parse_v6(in, len, &a))
		return IDL_BAD;
	for (const char *p = in; p < colon; p++)
		if (!is_ldh((unsigned char)*p))
			return IDL_BAD;
	if (colon + 1 == in + len)
		return IDL_BAD;
	for (const char *p = colon + 1; p < in + len; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 33 || c > 126 || (c >= 91 && c <= 93))
			return IDL_BAD;
	}
	return IDL_UNKNOWN_TAG;
}

bool
id_addr_parse(const char *s, size_t n, struct id_addr *out)
{
	struct id_addr a;
	memset(&a, 0, sizeof(a));
	if (memchr(s, ':', n) != NULL) {
		if (!parse_v6(s, n, &a))
			return false;
		*out = a;
		return true;
	}
	/* Strict: no leading zeros, so "010.1.1.1" is not read as 10.1.1.1
	 * by one component and as octal by another. */
	if (!parse_quad(s, n, 3, a.a))
		return false;
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '0' && (i == 0 || s[i - 1] == '.') &&
		    ascii_isdigit(s[i + 1]))
			return false;
	a.family = AF_INET;
	*out = a;
	return true;
}

bool
id_addr_from_bytes(const void *p, size_t len, struct id_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (len == 4) {
		out->family = AF_INET;
		memcpy(out->a, p, 4);
		return true;
	}
	if (len == 16) {
		out->family = AF_INET6;
		memcpy(out->a, p, 16);
		fold_mapped(out);
		return true;
	}
	return false;
}

bool
id_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                      struct id_addr *out)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return id_addr_from_bytes(&sin->sin_addr, 4, out);
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		return id_addr_from_bytes(&sin6->sin6_addr, 16, out);
	}
	return false;
}

bool
id_addr_eq(const struct id_addr *a, const struct id_addr *b)
{
	if (a->family != b->family || a->family == 0)
		return false;
	return memcmp(a->a, b->a, a->family == AF_INET ? 4 : 16) == 0;
}

bool
id_addr_is_loopback(const struct id_addr *a)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	if (a->family == AF_INET)
		return a->a[0] == 127;
	if (a->family == AF_INET6)
		return memcmp(a->a, v6lo, 16) == 0;
	return false;
}

void
id_addr_format(const struct id_addr *a, char *out)
{
	out[0] = '\0';
	if (a->family == AF_INET || a->family == AF_INET6)
		if (inet_ntop(a->family, a->a, out, ID_ADDR_STRLEN) == NULL)
			out[0] = '\0';
}

size_t
id_reverse_name(const struct id_addr *a, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;
	if (a->family == AF_INET) {
		for (int i = 3; i >= 0; i--) {
			unsigned v = a->a[i];
			if (v >= 100)
				out[k++] = (char)('0' + v / 100);
			if (v >= 10)
				out[k++] = (char)('0' + v / 10 % 10);
			out[k++] = (char)('0' + v % 10);
			out[k++] = '.';
		}
		memcpy(out + k, "in-addr.arpa", sizeof("in-addr.arpa"));
		return k + sizeof("in-addr.arpa") - 1;
	}
	if (a->family == AF_INET6) {
		for (int i = 15; i >= 0; i--) {
			out[k++] = hex[a->a[i] & 0xf];
			out[k++] = '.';
			out[k++] = hex[a->a[i] >> 4];
			out[k++] = '.';
		}
		memcpy(out + k, "ip6.arpa", sizeof("ip6.arpa"));
		return k + sizeof("ip6.arpa") - 1;
	}
	out[0] = '\0';
	return 0;
}
