/*
 * Reverse- and forward-path parser, RFC 5321 §4.1.2 and §4.1.3, with the
 * UTF-8 extensions of RFC 6531 §3.3.
 *
 * Two passes over the input, never more: the first walks the grammar and
 * only records where the local part and the domain are (offsets into s);
 * the second, reached only when the grammar AND every length limit hold,
 * copies them out. Nothing is normalised before it has been validated
 * (OpenSMTPD CVE-2020-7247 was a default applied to an unvalidated field).
 *
 * Length limits (§4.5.3.1): the local part is measured as it appears on the
 * wire (quotes and backslashes included, it is the Local-part production),
 * the domain likewise (brackets of an address literal included), and the
 * path from "<" to ">" inclusive, source route included (§4.5.3.1.3 counts
 * "the punctuation and element separators").
 *
 * Error precedence: the grammar first (PATH_ERR_UTF8 when the offending octet
 * is >= 0x80 and UTF-8 is not allowed, PATH_ERR_SYNTAX otherwise, also for
 * malformed UTF-8 when it is allowed), then local part, domain and path
 * length in that order.
 */
#include "proto/path.h"

#include <limits.h>
#include <string.h>

#include "lib/util.h"

#define LABEL_MAX      63   /* RFC 1035 §2.3.4 */
/*
 * An A-label is "xn--" plus at least one octet per code point of the
 * U-label, so a U-label of more than 59 code points can never fit in 63.
 */
#define ULABEL_CP_MAX  59

struct cursor {
	const unsigned char *s;
	size_t n;
	size_t i;
	bool   utf8ok;
};

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629 §4: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;          /* overlong */
		else if (c == 0xed)
			hi = 0x9f;          /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;          /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;          /* above U+10FFFF */
	} else
		return 0;
	if (n < len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return len;
}

bool
utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_seq(s + i, n - i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* Error for the octet the cursor is stuck at. */
static enum path_err
fail(const struct cursor *c)
{
	if (c->i < c->n && c->s[c->i] >= 0x80 && !c->utf8ok)
		return PATH_ERR_UTF8;
	return PATH_ERR_SYNTAX;
}

/*
 * Accepts one UTF-8 character at the cursor (RFC 6531 UTF8-non-ascii).
 * Returns PATH_OK and advances, or the error.
 */
static enum path_err
take_utf8(struct cursor *c)
{
	size_t k;

	if (!c->utf8ok)
		return PATH_ERR_UTF8;
	k = utf8_seq(c->s + c->i, c->n - c->i);
	if (k == 0)
		return PATH_ERR_SYNTAX;
	c->i += k;
	return PATH_OK;
}

/* RFC 5322 §3.2.3 atext */
static bool
is_atext(unsigned char ch)
{
	if (ascii_isalnum(ch))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
static bool
is_qtext(unsigned char ch)
{
	return ch >= 32 && ch <= 126 && ch != '"' && ch != '\\';
}

/* sub-domain = Let-dig [Ldh-str], or a U-label with UTF-8 (RFC 6531 §3.3). */
static enum path_err
scan_label(struct cursor *c)
{
	size_t start = c->i, cps = 0;
	bool last_hyphen = false, any8 = false;
	enum path_err e;

	while (c->i < c->n) {
		unsigned char ch = c->s[c->i];

		if (ascii_isalnum(ch)) {
			c->i++;
			last_hyphen = false;
		} else if (ch == '-' && c->i > start) {
			c->i++;
			last_hyphen = true;
		} else if (ch >= 0x80) {
			if ((e = take_utf8(c)) != PATH_OK)
				return e;
			last_hyphen = false;
			any8 = true;
		} else
			break;
		cps++;
	}
	if (c->i == start)
		return fail(c);
	if (last_hyphen)
		return PATH_ERR_SYNTAX;
	if (any8 ? cps > ULABEL_CP_MAX : c->i - start > LABEL_MAX)
		return PATH_ERR_SYNTAX;
	return PATH_OK;
}

/* Domain = sub-domain *("." sub-domain); stops before the first octet that cannot continue it. */
static enum path_err
scan_domain(struct cursor *c)
{
	enum path_err e;

	for (;;) {
		if ((e = scan_label(c)) != PATH_OK)
			return e;
		if (c->i >= c->n || c->s[c->i] != '.')
			return PATH_OK;
		c->i++;
	}
}

/*
 * 1*DIGIT up to max_digits, value <= max_value; returns the number of
 * digits taken, 0 if none or the value is too large.
 */
static size_t
scan_num(const unsigned char *s, size_t n, size_t max_digits, unsigned max_value)
{
	size_t k = 0;
	unsigned v = 0;

	while (k < n && k < max_digits && ascii_isdigit(s[k]))
		v = v * 10 + (unsigned)(s[k++] - '0');
	if (k == 0 || v > max_value || (k < n && ascii_isdigit(s[k])))
		return 0;
	return k;
}

/* IPv4-address-literal = Snum 3("." Snum), exactly s[0..n). */
static bool
ipv4_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		size_t k = scan_num(s + i, n - i, 3, 255);
		if (k == 0)
			return false;
		i += k;
	}
	return i == n;
}

static int
hexval(unsigned char ch)
{
	if (ascii_isdigit(ch))
		return ch - '0';
	ch = (unsigned char)ascii_lower((char)ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * IPv6-addr of RFC 5321 §4.1.3, exactly s[0..n):
 *   IPv6-full   8 groups                    IPv6v4-full  6 groups ":" IPv4
 *   IPv6-comp   "::" and at most 6 groups   IPv6v4-comp  "::" and at most 4 groups, then IPv4
 * RFC 5321 has "::" stand for at least two groups, so "1:2:3:4:5:6:7::" is
 * not valid here (it is in RFC 4291).
 */
static bool
ipv6_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	int groups = 0;
	bool dbl = false, v4 = false;

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		dbl = true;
		i = 2;
	}
	while (i < n) {
		/* The token up to the next ':' is either a hex group or a final IPv4. */
		const unsigned char *colon = memchr(s + i, ':', n - i);
		size_t tend = colon != NULL ? (size_t)(colon - s) : n;

		if (memchr(s + i, '.', tend - i) != NULL) {
			if (tend != n || !ipv4_valid(s + i, n - i))
				return false;
			v4 = true;
			i = n;
			break;
		}
		if (tend - i < 1 || tend - i > 4)
			return false;
		for (size_t k = i; k < tend; k++)
			if (hexval(s[k]) < 0)
				return false;
		groups++;
		i = tend;
		if (i == n)
			break;
		i++;                            /* the ':' */
		if (i < n && s[i] == ':') {
			if (dbl)
				return false;
			dbl = true;
			i++;
		} else if (i == n)
			return false;           /* a single trailing ':' */
	}
	if (dbl)
		return groups <= (v4 ? 4 : 6);
	return groups == (v4 ? 6 : 8);
}

bool
smtp_ipv6_addr_valid(const char *s, size_t n)
{
	return ipv6_valid((const unsigned char *)s, n);
}

bool
smtp_address_literal_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	if (n < 2 || s[0] != '[' || s[n - 1] != ']')
		return false;
	s++;
	n -= 2;
	if (ascii_iprefix((const char *)s, n, "IPv6:"))
		return ipv6_valid(s + 5, n - 5);
	/* Anything else with a tag is a General-address-literal: refused. */
	return ipv4_valid(s, n);
}

bool
smtp_domain_valid(const char *s, size_t n, bool allow_utf8)
{
	struct cursor c = { (const unsigned char *)s, n, 0, allow_utf8 };

	if (n == 0 || n > PATH_DOMAIN_MAX)
		return false;
	return scan_domain(&c) == PATH_OK && c.i == n;
}

/* Dot-string = Atom *("." Atom), with UTF-8 in atoms when allowed. */
static enum path_err
scan_dot_string(struct cursor *c)
{
	enum path_err e;

	for (;;) {
		size_t start = c->i;

		while (c->i < c->n) {
			unsigned char ch = c->s[c->i];

			if (is_atext(ch))
				c->i++;
			else if (ch >= 0x80) {
				if ((e = take_utf8(c)) != PATH_OK)
					return e;
			} else
				break;
		}
		if (c->i == start)
			return fail(c);
		if (c->i >= c->n || c->s[c->i] != '.')
			return PATH_OK;
		c->i++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE; the cursor is on the opening quote. */
static enum path_err
scan_quoted(struct cursor *c)
{
	enum path_err e;

	c->i++;
	while (c->i < c->n) {
		unsigned char ch = c->s[c->i];

		if (ch == '"') {
			c->i++;
			return PATH_OK;
		}
		if (ch == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			c->i++;
			if (c->i >= c->n || c->s[c->i] < 32 || c->s[c->i] > 126)
				return fail(c);
			c->i++;
		} else if (is_qtext(ch))
			c->i++;
		else if (ch >= 0x80) {
			if ((e = take_utf8(c)) != PATH_OK)
				return e;
		} else
			return PATH_ERR_SYNTAX;
	}
	return PATH_ERR_SYNTAX;
}

enum path_err
path_parse(const char *str, size_t n, unsigned flags,
           struct smtp_path *out, size_t *end)
{
	struct cursor c = { (const unsigned char *)str, n, 0,
	                    (flags & PATH_ALLOW_UTF8) != 0 };
	size_t local_off, local_len, dom_off, dom_len;
	bool quoted = false, literal = false, postmaster = false;
	enum path_err e;

	if (n < 2 || c.s[0] != '<')
		return PATH_ERR_SYNTAX;
	c.i = 1;

	if (c.s[1] == '>') {
		if (!(flags & PATH_ALLOW_NULL))
			return PATH_ERR_NULL;
		memset(out, 0, sizeof *out);
		out->null = true;
		*end = 2;
		return PATH_OK;
	}

	/* A-d-l ":" — accepted and ignored (§4.1.2, Appendix C). */
	if (c.s[c.i] == '@') {
		for (;;) {
			c.i++;                          /* '@' */
			if ((e = scan_domain(&c)) != PATH_OK)
				return e;
			if (c.i >= n)
				return PATH_ERR_SYNTAX;
			if (c.s[c.i] == ':') {
				c.i++;
				break;
			}
			if (c.s[c.i] != ',' || c.i + 1 >= n || c.s[c.i + 1] != '@')
				return fail(&c);
			c.i++;                          /* ',' */
		}
	}

	local_off = c.i;
	if (c.i < n && c.s[c.i] == '"') {
		quoted = true;
		e = scan_quoted(&c);
	} else
		e = scan_dot_string(&c);
	if (e != PATH_OK)
		return e;
	local_len = c.i - local_off;

	if (c.i < n && c.s[c.i] == '>' && !quoted && local_off == 1 &&
	    ascii_ieqn(str + local_off, local_len, "postmaster") &&
	    (flags & PATH_ALLOW_POSTMASTER)) {
		/* "<Postmaster>" (§4.1.1.3): no domain, no source route. */
		postmaster = true;
		dom_off = c.i;
		dom_len = 0;
	} else {
		if (c.i >= n || c.s[c.i] != '@')
			return fail(&c);
		c.i++;
		dom_off = c.i;
		if (c.i < n && c.s[c.i] == '[') {
			const unsigned char *rb = memchr(c.s + c.i, ']', n - c.i);

			if (rb == NULL)
				return PATH_ERR_SYNTAX;
			dom_len = (size_t)(rb - c.s) + 1 - c.i;
			for (size_t k = c.i; k < c.i + dom_len; k++)
				if (c.s[k] >= 0x80 && !c.utf8ok)
					return PATH_ERR_UTF8;
			if (!smtp_address_literal_valid(str + c.i, dom_len))
				return PATH_ERR_SYNTAX;
			c.i += dom_len;
			literal = true;
		} else {
			if ((e = scan_domain(&c)) != PATH_OK)
				return e;
			dom_len = c.i - dom_off;
		}
	}
	if (c.i >= n || c.s[c.i] != '>')
		return fail(&c);
	c.i++;

	/* The grammar holds; now the limits of §4.5.3.1. */
	if (local_len > PATH_LOCAL_MAX)
		return PATH_ERR_LOCAL_TOO_LONG;
	if (dom_len > PATH_DOMAIN_MAX)
		return PATH_ERR_DOMAIN_TOO_LONG;
	if (c.i > PATH_MAX_OCTETS)
		return PATH_ERR_PATH_TOO_LONG;

	/* Only now copy out. */
	memset(out, 0, sizeof *out);
	out->quoted = quoted;
	out->literal = literal;
	if (postmaster) {
		memcpy(out->local, "postmaster", sizeof "postmaster");
	} else if (quoted) {
		size_t o = 0;

		for (size_t k = local_off + 1; k < local_off + local_len - 1; k++) {
			if (str[k] == '\\')
				k++;
			out->local[o++] = str[k];
		}
		out->local[o] = '\0';
	} else {
		memcpy(out->local, str + local_off, local_len);
		out->local[local_len] = '\0';
	}
	memcpy(out->domain, str + dom_off, dom_len);
	out->domain[dom_len] = '\0';
	/* utf8 must describe local and domain only, not an ignored source route. */
	out->utf8 = false;
	for (size_t k = 0; out->local[k] != '\0'; k++)
		if ((unsigned char)out->local[k] >= 0x80)
			out->utf8 = true;
	for (size_t k = 0; k < dom_len; k++)
		if ((unsigned char)out->domain[k] >= 0x80)
			out->utf8 = true;
	*end = c.i;
	return PATH_OK;
}

/* True if s is a Dot-string as it stands (octets >= 0x80 taken as UTF-8 atext). */
static bool
is_dot_string(const char *s)
{
	size_t i = 0;

	for (;;) {
		size_t start = i;

		while (s[i] != '\0' && (is_atext((unsigned char)s[i]) ||
		    (unsigned char)s[i] >= 0x80))
			i++;
		if (i == start)
			return false;
		if (s[i] == '\0')
			return true;
		if (s[i] != '.')
			return false;
		i++;
	}
}

int
path_format(const struct smtp_path *p, char *out, size_t outlen)
{
	size_t o = 0;
	bool quote;

	/* Appends one octet if it fits with the final NUL. */
#define PUT(ch) do { if (o + 1 >= outlen) return -1; out[o++] = (ch); } while (0)
	if (outlen == 0)
		return -1;
	if (!p->null) {
		quote = !is_dot_string(p->local);
		if (quote)
			PUT('"');
		for (size_t i = 0; p->local[i] != '\0'; i++) {
			if (quote && (p->local[i] == '"' || p->local[i] == '\\'))
				PUT('\\');
			PUT(p->local[i]);
		}
		if (quote)
			PUT('"');
		if (p->domain[0] != '\0') {
			PUT('@');
			for (size_t i = 0; p->domain[i] != '\0'; i++)
				PUT(p->domain[i]);
		}
	}
#undef PUT
	out[o] = '\0';
	return o > INT_MAX ? -1 : (int)o;
}
