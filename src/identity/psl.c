/*
 * Public Suffix List parser and matcher (see psl.h).
 *
 * Rules are kept in one open-addressing hash table keyed by the rule's
 * name without its "!" or "*." prefix; each key carries flags saying
 * which kinds of rule exist for it, so a lookup costs two probes per label
 * of the name and never allocates.
 */
#include "identity/psl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/hostname.h"
#include "lib/idna.h"
#include "lib/util.h"
#include "lib/xmalloc.h"

/* Rule kinds of the ICANN section; the PRIVATE section's are the same
 * bits shifted by R_PRIVATE_SHIFT. */
enum {
	R_NORMAL    = 1u << 0,   /* "a.b" */
	R_WILDCARD  = 1u << 1,   /* "*.a.b" (stored under "a.b") */
	R_EXCEPTION = 1u << 2,   /* "!a.b" */
	R_PRIVATE_SHIFT = 3,
};

struct slot {
	uint32_t off;     /* into arena */
	uint16_t len;     /* 0 = empty slot */
	uint8_t  flags;
};

struct psl {
	char        *arena;
	size_t       arena_len, arena_cap;
	struct slot *slots;
	size_t       cap;       /* power of two */
	size_t       keys;
	size_t       rules;
	size_t       skipped;
};

static uint64_t
hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct slot *
find(const struct psl *psl, const char *s, size_t n)
{
	if (psl == NULL || psl->cap == 0)
		return NULL;
	size_t mask = psl->cap - 1;
	for (size_t i = (size_t)hash(s, n) & mask;; i = (i + 1) & mask) {
		struct slot *sl = &psl->slots[i];
		if (sl->len == 0)
			return NULL;
		if (sl->len == n && memcmp(psl->arena + sl->off, s, n) == 0)
			return sl;
	}
}

static void
grow(struct psl *psl)
{
	size_t ncap = psl->cap ? psl->cap * 2 : 1024;
	struct slot *old = psl->slots;
	size_t ocap = psl->cap;
	psl->slots = xcalloc(ncap, sizeof(*psl->slots));
	psl->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i].len == 0)
			continue;
		size_t j = (size_t)hash(psl->arena + old[i].off, old[i].len) &
		    (ncap - 1);
		while (psl->slots[j].len != 0)
			j = (j + 1) & (ncap - 1);
		psl->slots[j] = old[i];
	}
	free(old);
}

static void
insert(struct psl *psl, const char *s, size_t n, uint8_t flags)
{
	struct slot *sl = find(psl, s, n);
	if (sl != NULL) {
		sl->flags |= flags;
		return;
	}
	if ((psl->keys + 1) * 2 > psl->cap)
		grow(psl);
	if (psl->arena_len + n > psl->arena_cap) {
		size_t ncap = psl->arena_cap ? psl->arena_cap * 2 : 65536;
		while (ncap < psl->arena_len + n)
			ncap *= 2;
		psl->arena = xrealloc(psl->arena, ncap);
		psl->arena_cap = ncap;
	}
	memcpy(psl->arena + psl->arena_len, s, n);
	size_t j = (size_t)hash(s, n) & (psl->cap - 1);
	while (psl->slots[j].len != 0)
		j = (j + 1) & (psl->cap - 1);
	psl->slots[j].off = (uint32_t)psl->arena_len;
	psl->slots[j].len = (uint16_t)n;
	psl->slots[j].flags = flags;
	psl->arena_len += n;
	psl->keys++;
}

/* Converts a rule's name to lowercase ASCII (A-labels) in out; false if it
 * is not a valid host name afterwards. */
static bool
rule_to_ascii(const char *s, size_t n, char *out)
{
	char tmp[ID_NAME_MAX + 1];
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		char label[ID_LABEL_MAX + 1];
		size_t ln = idna_punycode_label(s + start, i - start, label,
		    sizeof(label));
		if (ln == 0 || k + ln + 1 > sizeof(tmp))
			return false;
		if (k > 0)
			tmp[k++] = '.';
		memcpy(tmp + k, label, ln);
		k += ln;
		start = i + 1;
	}
	return id_hostname_check(tmp, k, 0, out) == NULL;
}

struct psl *
psl_parse(const char *text, size_t len)
{
	struct psl *psl = xcalloc(1, sizeof(*psl));
	size_t i = 0;
	bool private = false;
	while (i < len) {
		size_t eol = i;
		while (eol < len && text[eol] != '\n')
			eol++;
		size_t a = i;
		while (a < eol && (text[a] == ' ' || text[a] == '\t'))
			a++;
		/* The rule is the line's first whitespace-delimited word. */
		size_t b = a;
		while (b < eol && text[b] != ' ' && text[b] != '\t' &&
		    text[b] != '\r')
			b++;
		i = eol + 1;
		if (b - a >= 2 && text[a] == '/' && text[a + 1] == '/') {
			/* Section markers are comments:
			 * "// ===BEGIN PRIVATE DOMAINS===". */
			if (memmem(text + a, eol - a, "===BEGIN PRIVATE DOMAINS===", 27))
				private = true;
			else if (memmem(text + a, eol - a, "===END PRIVATE DOMAINS===", 25))
				private = false;
			continue;
		}
		if (a == b)
			continue;
		const char *r = text + a;
		size_t rn = b - a;
		uint8_t flag = R_NORMAL;
		if (r[0] == '!') {
			flag = R_EXCEPTION;
			r++, rn--;
		} else if (rn >= 2 && r[0] == '*' && r[1] == '.') {
			flag = R_WILDCARD;
			r += 2, rn -= 2;
		}
		char key[ID_NAME_MAX + 1];
		if (rn == 0 || memchr(r, '*', rn) != NULL ||
		    !rule_to_ascii(r, rn, key) ||
		    (flag == R_EXCEPTION && strchr(key, '.') == NULL)) {
			psl->skipped++;
			continue;
		}
		insert(psl, key, strlen(key),
		    (uint8_t)(private ? flag << R_PRIVATE_SHIFT : flag));
		psl->rules++;
	}
	return psl;
}

void
psl_free(struct psl **pp)
{
	if (*pp == NULL)
		return;
	free((*pp)->arena);
	free((*pp)->slots);
	x_free(pp);
}

size_t
psl_rule_count(const struct psl *psl)
{
	return psl ? psl->rules : 0;
}

size_t
psl_skipped(const struct psl *psl)
{
	return psl ? psl->skipped : 0;
}

/* The kinds of rule for s[0..n), both sections folded together unless
 * icann_only. */
static uint8_t
flags_of(const struct psl *psl, const char *s, size_t n, bool icann_only)
{
	const struct slot *sl = find(psl, s, n);
	if (sl == NULL)
		return 0;
	uint8_t f = sl->flags & 7;
	if (!icann_only)
		f |= (uint8_t)(sl->flags >> R_PRIVATE_SHIFT);
	return f;
}

void
psl_lookup(const struct psl *psl, const char *name, size_t len,
           unsigned opts, struct psl_match *m)
{
	bool icann = opts & PSL_ICANN_ONLY;
	size_t off[ID_NAME_MAX / 2 + 2];
	size_t nl = 0;
	memset(m, 0, sizeof(*m));
	if (len == 0)
		return;
	off[nl++] = 0;
	for (size_t i = 0; i < len && nl < sizeof(off) / sizeof(off[0]); i++)
		if (name[i] == '.')
			off[nl++] = i + 1;

	size_t exc = SIZE_MAX, best = SIZE_MAX;
	for (size_t k = 0; k < nl; k++) {
		uint8_t f = flags_of(psl, name + off[k], len - off[k], icann);
		if ((f & R_EXCEPTION) && exc == SIZE_MAX && k + 1 < nl)
			exc = k;
		if (best == SIZE_MAX) {
			if (f & R_NORMAL)
				best = k;
			else if (k + 1 < nl &&
			    (flags_of(psl, name + off[k + 1],
			     len - off[k + 1], icann) & R_WILDCARD))
				best = k;
		}
	}
	size_t ps;
	if (exc != SIZE_MAX) {
		ps = exc + 1;
		m->listed = true;
	} else if (best != SIZE_MAX) {
		ps = best;
		m->listed = true;
	} else {
		ps = nl - 1;
	}
	m->suffix_off = off[ps];
	if (ps > 0) {
		m->has_regdom = true;
		m->regdom_off = off[ps - 1];
	}
}
