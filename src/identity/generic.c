/*
 * Generic/dynamic host-name detection (see generic.h).
 *
 * The address test is built in and needs no data; the word lists live in
 * data/generic-patterns so that operators can replace them. All matching
 * works on validated, lowercase names, so the inputs here are LDH only.
 */
#include "identity/generic.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/psl.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

enum gkind { GK_TOKEN, GK_LABEL, GK_SUFFIX, GK_EXEMPT, GK_COUNT };

static const char *const gkind_names[GK_COUNT] = {
	"token", "label", "suffix", "exempt",
};

struct generic_patterns {
	char  **v[GK_COUNT];
	size_t  n[GK_COUNT];
};

static bool
all_letters(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!ascii_isalpha(*s))
			return false;
	return true;
}

struct generic_patterns *
generic_parse(const char *text, size_t len, struct buf *err)
{
	struct generic_patterns *gp = xcalloc(1, sizeof(*gp));
	size_t lineno = 0, i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && text[eol] != '\n')
			eol++;
		lineno++;
		char line[512];
		size_t ln = eol - i;
		const char *src = text + i;
		i = eol + 1;
		const char *hash = memchr(src, '#', ln);
		if (hash != NULL)
			ln = (size_t)(hash - src);
		if (ln >= sizeof(line)) {
			buf_appendf(err, "line %zu: line too long", lineno);
			goto fail;
		}
		if (memchr(src, '\0', ln) != NULL) {
			buf_appendf(err, "line %zu: NUL byte", lineno);
			goto fail;
		}
		memcpy(line, src, ln);
		line[ln] = '\0';
		char *save = NULL;
		char *kind = strtok_r(line, " \t\r", &save);
		if (kind == NULL)
			continue;
		char *val = strtok_r(NULL, " \t\r", &save);
		char *extra = strtok_r(NULL, " \t\r", &save);
		if (val == NULL || extra != NULL) {
			buf_appendf(err, "line %zu: expected \"KIND VALUE\"",
			    lineno);
			goto fail;
		}
		ascii_lower_str(kind);
		ascii_lower_str(val);
		if (strcmp(kind, "format") == 0) {
			if (strcmp(val, "1") != 0) {
				buf_appendf(err, "line %zu: unsupported format "
				    "(this version reads format 1)", lineno);
				goto fail;
			}
			continue;
		}
		int k;
		for (k = 0; k < GK_COUNT; k++)
			if (strcmp(kind, gkind_names[k]) == 0)
				break;
		if (k == GK_COUNT) {
			buf_appendf(err, "line %zu: unknown kind (token, label, "
			    "suffix, exempt)", lineno);
			goto fail;
		}
		char norm[ID_NAME_MAX + 1];
		bool ok;
		switch (k) {
		case GK_TOKEN:
			ok = all_letters(val);
			break;
		case GK_LABEL:
			ok = id_hostname_check(val, strlen(val), 0, norm) == NULL &&
			    strchr(val, '.') == NULL;
			break;
		default:
			ok = id_hostname_check(val, strlen(val),
			    IDN_ALLOW_TRAILING_DOT, norm) == NULL;
			if (ok)
				strcpy(val, norm);
			break;
		}
		if (!ok) {
			buf_appendf(err, "line %zu: bad %s value (%s)", lineno,
			    gkind_names[k], k == GK_TOKEN ? "letters only" :
			    k == GK_LABEL ? "one host-name label" :
			    "a host name");
			goto fail;
		}
		gp->v[k] = xrealloc(gp->v[k], (gp->n[k] + 1) * sizeof(char *));
		gp->v[k][gp->n[k]++] = xstrdup(val);
	}
	return gp;
fail:
	generic_free(&gp);
	return NULL;
}

void
generic_free(struct generic_patterns **pp)
{
	struct generic_patterns *gp = *pp;
	if (gp == NULL)
		return;
	for (int k = 0; k < GK_COUNT; k++) {
		for (size_t i = 0; i < gp->n[k]; i++)
			free(gp->v[k][i]);
		free(gp->v[k]);
	}
	x_free(pp);
}

size_t
generic_rule_count(const struct generic_patterns *gp)
{
	size_t n = 0;
	if (gp != NULL)
		for (int k = 0; k < GK_COUNT; k++)
			n += gp->n[k];
	return n;
}

static bool
is_hex(char c)
{
	return ascii_isdigit(c) || (c >= 'a' && c <= 'f');
}

/* Finds needle in hay[0..n) such that the characters around the match
 * are not in the class rejected by bad(). */
static bool
find_bounded(const char *hay, size_t n, const char *needle,
             bool (*bad)(char))
{
	size_t m = strlen(needle);
	if (m == 0 || m > n)
		return false;
	for (size_t i = 0; i + m <= n; i++) {
		if (memcmp(hay + i, needle, m) != 0)
			continue;
		if (i > 0 && bad(hay[i - 1]))
			continue;
		if (i + m < n && bad(hay[i + m]))
			continue;
		return true;
	}
	return false;
}

static bool
is_digit_c(char c)
{
	return ascii_isdigit(c);
}

static bool
is_not_dot(char c)
{
	return c != '.';
}

struct run {
	size_t start, end;   /* [start, end) */
};

static const char *
embeds_v4(const char *s, size_t n, const uint8_t o[4])
{
	/* Maximal digit runs, in order. A name of 253 characters has at most
	 * 127 of them. */
	struct run r[128];
	size_t nr = 0;
	for (size_t i = 0; i < n && nr < 128;) {
		if (!ascii_isdigit(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && ascii_isdigit(s[j]))
			j++;
		r[nr].start = i;
		r[nr].end = j;
		nr++;
		i = j;
	}

	static const char *const names[3][2][2] = {
		{ { "dotted", "dotted, reversed" },
		  { "dotted, zero-padded", "dotted, zero-padded, reversed" } },
		{ { "dashed", "dashed, reversed" },
		  { "dashed, zero-padded", "dashed, zero-padded, reversed" } },
		{ { "separated", "separated, reversed" },
		  { "separated, zero-padded", "separated, zero-padded, reversed" } },
	};
	for (size_t j = 0; j + 4 <= nr; j++) {
		for (int rev = 0; rev < 2; rev++) {
			bool ok = true, padded = false, dots = true, dashes = true;
			for (int q = 0; q < 4 && ok; q++) {
				const struct run *x = &r[j + (size_t)q];
				size_t len = x->end - x->start;
				unsigned long long v;
				if (len > 3 || !parse_u64(s + x->start, len, &v) ||
				    v != o[rev ? 3 - q : q]) {
					ok = false;
					break;
				}
				if (len > 1 && s[x->start] == '0')
					padded = true;
				if (q == 3)
					break;
				/* The gap to the next run: separators only. */
				for (size_t g = x->end; g < r[j + (size_t)q + 1].start; g++) {
					if (s[g] == '.')
						dashes = false;
					else if (s[g] == '-')
						dots = false;
					else
						ok = false;
				}
			}
			if (ok)
				return names[dots ? 0 : dashes ? 1 : 2][padded][rev];
		}
	}

	char pad[2][13], hex[2][9], dec[11];
	snprintf(pad[0], sizeof(pad[0]), "%03u%03u%03u%03u", o[0], o[1], o[2], o[3]);
	snprintf(pad[1], sizeof(pad[1]), "%03u%03u%03u%03u", o[3], o[2], o[1], o[0]);
	snprintf(hex[0], sizeof(hex[0]), "%02x%02x%02x%02x", o[0], o[1], o[2], o[3]);
	snprintf(hex[1], sizeof(hex[1]), "%02x%02x%02x%02x", o[3], o[2], o[1], o[0]);
	unsigned long v = (unsigned long)o[0] << 24 | (unsigned long)o[1] << 16 |
	    (unsigned long)o[2] << 8 | o[3];
	snprintf(dec, sizeof(dec), "%lu", v);
	for (int rev = 0; rev < 2; rev++) {
		if (find_bounded(s, n, pad[rev], is_digit_c))
			return rev ? "zero-padded digits, reversed" :
			    "zero-padded digits";
		if (find_bounded(s, n, hex[rev], is_hex))
			return rev ? "hex, reversed" : "hex";
	}
	/* A short decimal would match unrelated numbers; an address with a
	 * first octet of 0 is not a client address anyway. */
	if (strlen(dec) >= 8 && find_bounded(s, n, dec, is_digit_c))
		return "decimal";
	return NULL;
}

static const char *
embeds_v6(const char *s, size_t n, const uint8_t a[16])
{
	static const char hx[] = "0123456789abcdef";
	char text[ID_ADDR_STRLEN], form[3][ID_ADDR_STRLEN + 8];

	/* Canonical compressed (RFC 5952), groups without leading zeros, and
	 * fully padded groups; ':' written as '-' as in DNS labels. */
	if (inet_ntop(AF_INET6, a, text, sizeof(text)) == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; text[i] && k < sizeof(form[0]) - 1; i++)
		form[0][k++] = text[i] == ':' ? '-' : text[i];
	form[0][k] = '\0';
	size_t k1 = 0, k2 = 0;
	for (int g = 0; g < 8; g++) {
		unsigned v = (unsigned)a[2 * g] << 8 | a[2 * g + 1];
		k1 += (size_t)snprintf(form[1] + k1, sizeof(form[1]) - k1,
		    g ? "-%x" : "%x", v);
		k2 += (size_t)snprintf(form[2] + k2, sizeof(form[2]) - k2,
		    g ? "-%04x" : "%04x", v);
	}
	static const char *const fnames[3] = {
		"IPv6 dashed", "IPv6 dashed", "IPv6 dashed, zero-padded",
	};
	for (int f = 0; f < 3; f++)
		if (find_bounded(s, n, form[f], is_hex))
			return fnames[f];

	char run[33], nib[2][64];
	for (int i = 0; i < 16; i++) {
		run[2 * i] = hx[a[i] >> 4];
		run[2 * i + 1] = hx[a[i] & 0xf];
	}
	run[32] = '\0';
	if (find_bounded(s, n, run, is_hex))
		return "IPv6 hex";
	for (int i = 0; i < 32; i++) {
		nib[0][2 * i] = run[i];
		nib[1][2 * i] = run[31 - i];
		nib[0][2 * i + 1] = nib[1][2 * i + 1] = '.';
	}
	nib[0][63] = nib[1][63] = '\0';
	if (find_bounded(s, n, nib[0], is_not_dot))
		return "IPv6 nibbles";
	if (find_bounded(s, n, nib[1], is_not_dot))
		return "IPv6 nibbles, reversed";
	return NULL;
}

const char *
id_name_embeds_addr(const char *name, size_t len, const struct id_addr *a)
{
	if (a->family == AF_INET)
		return embeds_v4(name, len, a->a);
	if (a->family == AF_INET6)
		return embeds_v6(name, len, a->a);
	return NULL;
}

size_t
id_host_part_len(const struct psl *psl, const char *name)
{
	struct psl_match m;
	size_t len = strlen(name);
	if (psl != NULL) {
		psl_lookup(psl, name, len, PSL_ICANN_ONLY, &m);
	} else {
		/* Without a list: the last two labels are the organisation. */
		memset(&m, 0, sizeof(m));
		const char *last = strrchr(name, '.');
		if (last == NULL)
			return 0;
		m.has_regdom = true;
		size_t i = (size_t)(last - name);
		while (i > 0 && name[i - 1] != '.')
			i--;
		m.regdom_off = i;
	}
	if (!m.has_regdom || m.regdom_off == 0)
		return 0;
	return m.regdom_off - 1;
}

/* name equals d or ends in "." d. */
static bool
under(const char *name, size_t len, const char *d)
{
	size_t dn = strlen(d);
	if (len == dn)
		return memcmp(name, d, dn) == 0;
	return len > dn && name[len - dn - 1] == '.' &&
	    memcmp(name + len - dn, d, dn) == 0;
}

bool
generic_match(const struct generic_patterns *gp, const struct psl *psl,
              const char *name, const struct id_addr *a,
              char *why, size_t whylen)
{
	size_t len = strlen(name);
	if (gp != NULL)
		for (size_t i = 0; i < gp->n[GK_EXEMPT]; i++)
			if (under(name, len, gp->v[GK_EXEMPT][i]))
				return false;

	/* The address test covers everything left of the public suffix, so
	 * that "4.3.2.1.in-addr.arpa"-style names are seen whole. */
	size_t scope = len;
	if (psl != NULL) {
		struct psl_match m;
		psl_lookup(psl, name, len, PSL_ICANN_ONLY, &m);
		scope = m.suffix_off > 0 ? m.suffix_off - 1 : 0;
	}
	const char *enc = id_name_embeds_addr(name, scope, a);
	if (enc != NULL) {
		snprintf(why, whylen, "embeds the client address (%s)", enc);
		return true;
	}
	if (gp == NULL)
		return false;
	for (size_t i = 0; i < gp->n[GK_SUFFIX]; i++)
		if (under(name, len, gp->v[GK_SUFFIX][i])) {
			snprintf(why, whylen, "under generic domain %s",
			    gp->v[GK_SUFFIX][i]);
			return true;
		}

	size_t host = id_host_part_len(psl, name);
	for (size_t ls = 0; ls < host;) {
		size_t le = ls;
		while (le < host && name[le] != '.')
			le++;
		size_t llen = le - ls;
		for (size_t i = 0; i < gp->n[GK_LABEL]; i++)
			if (strlen(gp->v[GK_LABEL][i]) == llen &&
			    memcmp(name + ls, gp->v[GK_LABEL][i], llen) == 0) {
				snprintf(why, whylen, "label \"%s\"",
				    gp->v[GK_LABEL][i]);
				return true;
			}
		/* Tokens count only in a label that also carries a number:
		 * "dsl-203-0-113-9" is generic, "dsl-support" is a name. */
		bool digit = false;
		for (size_t j = ls; j < le; j++)
			if (ascii_isdigit(name[j]))
				digit = true;
		for (size_t j = ls; digit && j < le;) {
			if (!ascii_isalpha(name[j])) {
				j++;
				continue;
			}
			size_t te = j;
			while (te < le && ascii_isalpha(name[te]))
				te++;
			for (size_t i = 0; i < gp->n[GK_TOKEN]; i++)
				if (strlen(gp->v[GK_TOKEN][i]) == te - j &&
				    memcmp(name + j, gp->v[GK_TOKEN][i], te - j) == 0) {
					snprintf(why, whylen, "token \"%s\"",
					    gp->v[GK_TOKEN][i]);
					return true;
				}
			j = te;
		}
		ls = le + 1;
	}
	return false;
}
