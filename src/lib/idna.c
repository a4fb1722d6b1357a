/* U-label to A-label conversion (see idna.h). */
#include "lib/idna.h"

#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <wctype.h>

#include "lib/util.h"

/* RFC 3492 §5: the Punycode parameters for IDNA. */
enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700,
       PC_INITIAL_BIAS = 72, PC_INITIAL_N = 128 };

#define LABEL_MAX 63        /* RFC 1035 §2.3.4 */
#define NAME_MAX_OCTETS 253 /* without a trailing dot */
#define LABEL_CP_MAX 63     /* an A-label holds at least one octet per code point */

static pthread_once_t loc_once = PTHREAD_ONCE_INIT;
static locale_t utf8_loc;

static void
loc_init(void)
{
	/* Built into glibc since 2.35, whatever locales are installed. */
	utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static uint32_t
lower_cp(uint32_t c)
{
	if (c < 0x80)
		return (uint32_t)(unsigned char)ascii_lower((char)c);
	pthread_once(&loc_once, loc_init);
	if (utf8_loc == (locale_t)0)
		return c;
	return (uint32_t)towlower_l((wint_t)c, utf8_loc);
}

/* Decodes one UTF-8 sequence at s[0..n); returns its length, 0 if it is
 * not well-formed (overlong, surrogate, above U+10FFFF, cut short). */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2; v = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; v = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; v = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

static uint32_t
adapt(uint32_t delta, uint32_t numpoints, bool first)
{
	delta = first ? delta / PC_DAMP : delta / 2;
	delta += delta / numpoints;
	uint32_t k = 0;
	while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
		delta /= PC_BASE - PC_TMIN;
		k += PC_BASE;
	}
	return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static char
digit(uint32_t d)
{
	return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/*
 * RFC 3492 §6.3, for the code points cp[0..n) (n <= LABEL_CP_MAX, so no
 * step can overflow 32 bits: delta stays below (0x10FFFF + 1) * 64).
 */
static bool
punycode(const uint32_t *cp, size_t n, struct buf *out)
{
	uint32_t b = 0;
	for (size_t i = 0; i < n; i++)
		if (cp[i] < 0x80) {
			buf_append_char(out, (char)cp[i]);
			b++;
		}
	if (b > 0)
		buf_append_char(out, '-');
	uint32_t h = b, next = PC_INITIAL_N, delta = 0, bias = PC_INITIAL_BIAS;
	while (h < n) {
		uint32_t m = UINT32_MAX;
		for (size_t i = 0; i < n; i++)
			if (cp[i] >= next && cp[i] < m)
				m = cp[i];
		delta += (m - next) * (h + 1);
		next = m;
		for (size_t i = 0; i < n; i++) {
			if (cp[i] < next)
				delta++;
			if (cp[i] != next)
				continue;
			uint32_t q = delta;
			for (uint32_t k = PC_BASE;; k += PC_BASE) {
				uint32_t t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
				if (q < t)
					break;
				buf_append_char(out, digit(t + (q - t) % (PC_BASE - t)));
				q = (q - t) / (PC_BASE - t);
			}
			buf_append_char(out, digit(q));
			bias = adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
		delta++;
		next++;
	}
	return true;
}

size_t
idna_punycode_label(const char *in, size_t n, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	uint32_t cp[LABEL_CP_MAX];
	size_t ncp = 0;
	bool ascii = true;
	for (size_t i = 0; i < n;) {
		size_t l = ncp < LABEL_CP_MAX ? utf8_next(s + i, n - i, &cp[ncp]) : 0;
		if (l == 0)
			return 0;
		ascii = ascii && cp[ncp] < 0x80;
		ncp++;
		i += l;
	}
	struct buf b = BUF_INIT;
	if (ascii) {
		buf_append(&b, in, n);
	} else {
		buf_append_str(&b, "xn--");
		punycode(cp, ncp, &b);
	}
	size_t len = b.len;
	if (len + 1 > outlen)
		len = 0;
	else
		memcpy(out, buf_cstr(&b), len + 1);
	buf_free(&b);
	return len;
}

bool
idna_has_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

bool
idna_to_ascii(const char *in, size_t n, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t start = out->len;
	uint32_t cp[LABEL_CP_MAX + 1];
	size_t i = 0;
	if (n == 0)
		return false;
	for (;;) {
		/* One label: s[i..] up to the next '.' or the end. */
		size_t ncp = 0;
		bool ascii = true;
		size_t dot = 0;         /* octets of the separator that ends it */
		while (i < n) {
			uint32_t c;
			size_t l = utf8_next(s + i, n - i, &c);
			if (l == 0 || ncp == LABEL_CP_MAX + 1)
				goto fail;
			/* UTS #46 maps the ideographic and fullwidth full stops
			 * to '.', and ignores the soft hyphen. */
			if (c == '.' || c == 0x3002 || c == 0xff0e || c == 0xff61) {
				dot = l;
				break;
			}
			i += l;
			if (c == 0xad)
				continue;
			if (c < 0x80 && !(ascii_isalnum((int)c) || c == '-'))
				goto fail;      /* LDH only; no control, space, '@' */
			if ((c >= 0x80 && c < 0xa0) || c == 0x2028 || c == 0x2029 ||
			    c == 0x200c || c == 0x200d)
				goto fail;      /* C1 controls, line separators, ZWNJ/ZWJ */
			/* U+0130 lowercases to "i" and U+0307 in full (UTS #46 maps
			 * it so); the simple mapping would drop the dot. */
			if (c == 0x130) {
				if (ncp + 2 > LABEL_CP_MAX + 1)
					goto fail;
				cp[ncp++] = 'i';
				cp[ncp++] = 0x307;
				continue;
			}
			cp[ncp++] = lower_cp(c);
		}
		if (ncp == 0 || ncp > LABEL_CP_MAX)
			goto fail;
		/* After the case mapping: U+0130 and U+212A map to ASCII. */
		for (size_t k = 0; k < ncp; k++)
			if (cp[k] >= 0x80)
				ascii = false;
		/* RFC 5891 §4.2.3.1: a U-label neither starts nor ends with a
		 * hyphen, nor has "--" in its third and fourth positions. */
		if (!ascii && (cp[0] == '-' || cp[ncp - 1] == '-' ||
		    (ncp >= 4 && cp[2] == '-' && cp[3] == '-')))
			goto fail;
		size_t lstart = out->len;
		if (ascii) {
			for (size_t k = 0; k < ncp; k++)
				buf_append_char(out, (char)cp[k]);
		} else {
			buf_append_str(out, "xn--");
			punycode(cp, ncp, out);
		}
		if (out->len - lstart > LABEL_MAX)
			goto fail;
		if (dot == 0)
			break;          /* the end of the name */
		buf_append_char(out, '.');
		i += dot;               /* a trailing separator is an empty label */
		if (i == n)
			goto fail;
	}
	if (out->len - start > NAME_MAX_OCTETS)
		goto fail;
	return true;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return false;
}
