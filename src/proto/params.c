/*
 * ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 esmtp-param), one table
 * per command: keyword, the extension that must be enabled for it to exist,
 * and the function that checks and stores its value.
 *
 * Each parameter goes through the same steps, and the first failure is the
 * answer: generic syntax (keyword and value grammar) -> PARAM_ERR_SYNTAX;
 * not in the table or its extension not enabled -> PARAM_ERR_UNKNOWN; given
 * twice -> PARAM_ERR_SYNTAX; value wrong for the keyword -> PARAM_ERR_VALUE.
 * The result is built in a local struct and copied to *out only on success,
 * so a half-parsed list never reaches the transaction.
 *
 * Separators: the grammar has exactly one SP; runs of SP and a trailing SP
 * are accepted too (as Postfix does), anything else (TAB, ...) is a syntax
 * error.
 */
#include "proto/params.h"

#include <stdint.h>
#include <string.h>

#include "lib/util.h"
#include "proto/path.h"

/* utf8_tx: the transaction is an SMTPUTF8 one (RCPT after MAIL ... SMTPUTF8). */
typedef enum param_err (*param_fn)(const char *v, size_t vn, bool has_value, bool utf8_tx,
                                   void *out);

struct param_def {
	const char *keyword;
	unsigned    ext;        /* enum smtp_ext bit that must be enabled */
	param_fn    check;
};

bool
xtext_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			/* hexchar = "+" 2(%x30-39 / %x41-46), upper case only (RFC 3461 §4) */
			for (size_t k = 1; k <= 2; k++) {
				unsigned char h = i + k < n ? (unsigned char)s[i + k] : 0;

				if (!ascii_isdigit(h) && !(h >= 'A' && h <= 'F'))
					return false;
			}
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return false;
	}
	return true;
}

static enum param_err
p_size(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;
	uint64_t size = 0;

	/*
	 * size-value = 1*20DIGIT (RFC 1870 §3). Twenty digits can exceed
	 * 2^64-1; such a value is well-formed, only larger than anything we
	 * take, so it is held as UINT64_MAX and meets the same 552 5.3.4
	 * (§6.1) as any other size over the limit, not a syntax error.
	 */
	if (!has_value || vn > 20)
		return PARAM_ERR_VALUE;
	for (size_t i = 0; i < vn; i++) {
		if (!ascii_isdigit(v[i]))
			return PARAM_ERR_VALUE;
		unsigned d = (unsigned)(v[i] - '0');
		size = size > (UINT64_MAX - d) / 10 ? UINT64_MAX : size * 10 + d;
	}
	mp->has_size = true;
	mp->size = size;
	return PARAM_OK;
}

static enum param_err
p_body(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;

	if (!has_value)
		return PARAM_ERR_VALUE;
	if (ascii_ieqn(v, vn, "7BIT"))
		mp->body = BODY_7BIT;
	else if (ascii_ieqn(v, vn, "8BITMIME"))
		mp->body = BODY_8BITMIME;
	else
		return PARAM_ERR_VALUE;   /* BINARYMIME is not offered */
	return PARAM_OK;
}

static enum param_err
p_smtputf8(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;

	if (has_value)                    /* RFC 6531 §3.4: no value */
		return PARAM_ERR_VALUE;
	mp->smtputf8 = true;
	return PARAM_OK;
}

static enum param_err
p_ret(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;

	if (!has_value)
		return PARAM_ERR_VALUE;
	if (ascii_ieqn(v, vn, "FULL"))
		mp->ret = RET_FULL;
	else if (ascii_ieqn(v, vn, "HDRS"))
		mp->ret = RET_HDRS;
	else
		return PARAM_ERR_VALUE;
	return PARAM_OK;
}

static enum param_err
p_envid(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;

	if (!has_value || vn > ENVID_MAX || !xtext_valid(v, vn))
		return PARAM_ERR_VALUE;
	memcpy(mp->envid, v, vn);
	mp->envid[vn] = '\0';
	mp->has_envid = true;
	return PARAM_OK;
}

static enum param_err
p_auth(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct mail_params *mp = out;

	/* RFC 4954 §5: AUTH=xtext, or AUTH=<> when the identity is unknown. */
	if (!has_value || vn > AUTH_PARAM_MAX)
		return PARAM_ERR_VALUE;
	if (!(vn == 2 && v[0] == '<' && v[1] == '>') && !xtext_valid(v, vn))
		return PARAM_ERR_VALUE;
	memcpy(mp->auth, v, vn);
	mp->auth[vn] = '\0';
	mp->has_auth = true;
	return PARAM_OK;
}

static enum param_err
p_notify(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct rcpt_params *rp = out;
	unsigned mask = 0;
	size_t i = 0;

	if (!has_value)
		return PARAM_ERR_VALUE;
	/* NOTIFY=NEVER / 1#(SUCCESS / FAILURE / DELAY), RFC 3461 §4.1 */
	while (i <= vn) {
		const char *comma = memchr(v + i, ',', vn - i);
		size_t e = comma != NULL ? (size_t)(comma - v) : vn;
		unsigned bit;

		if (ascii_ieqn(v + i, e - i, "NEVER"))
			bit = NOTIFY_NEVER;
		else if (ascii_ieqn(v + i, e - i, "SUCCESS"))
			bit = NOTIFY_SUCCESS;
		else if (ascii_ieqn(v + i, e - i, "FAILURE"))
			bit = NOTIFY_FAILURE;
		else if (ascii_ieqn(v + i, e - i, "DELAY"))
			bit = NOTIFY_DELAY;
		else
			return PARAM_ERR_VALUE;        /* also an empty element */
		if (mask & bit)
			return PARAM_ERR_VALUE;
		mask |= bit;
		i = e + 1;
	}
	/* "NEVER" must be the only keyword (§4.1). */
	if ((mask & NOTIFY_NEVER) && mask != NOTIFY_NEVER)
		return PARAM_ERR_VALUE;
	rp->notify = mask;
	return PARAM_OK;
}

/* HEXDIG (RFC 5234: case-insensitive), or -1. */
static int
hex_digit(unsigned char c)
{
	if (ascii_isdigit(c))
		return c - '0';
	c = (unsigned char)ascii_lower((char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * EmbeddedUnicodeChar of RFC 6533 §3 at s[0..n), which starts with "\\":
 * "\\x{" HEXPOINT "}". Returns its length, or 0 if it is not one. HEXPOINT
 * names a code point in its shortest form of at least two digits: one of
 * the characters xtext cannot carry as such (controls, SP, "+", "=", DEL)
 * or "\\", or a non-ASCII scalar value (no surrogates, at most U+10FFFF).
 * (The ABNF's two-digit list leaves out %x0A-0F and %x1A-1F, an evident
 * slip: every control is accepted.)
 */
static size_t
embedded_unicode_len(const char *s, size_t n)
{
	unsigned long v = 0;
	size_t k = 3;
	int h;

	if (n < 6 || s[0] != '\\' || s[1] != 'x' || s[2] != '{')
		return 0;
	while (k < n && k < 3 + 7 && (h = hex_digit((unsigned char)s[k])) >= 0) {
		v = v * 16 + (unsigned long)h;
		k++;
	}
	size_t digits = k - 3;
	if (k >= n || s[k] != '}' || digits < 2 || digits > 6)
		return 0;
	size_t need = v > 0xfffff ? 6 : v > 0xffff ? 5 : v > 0xfff ? 4 : v > 0xff ? 3 : 2;
	if (digits != need || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if (v < 0x80 && !(v >= 0x01 && v <= 0x20) && v != '+' && v != '=' && v != '\\' &&
	    v != 0x7f)
		return 0;
	return k + 1;
}

/*
 * utf-8-addr-unitext (RFC 6533 §3): 1*(QUCHAR / EmbeddedUnicodeChar), where
 * QUCHAR is printable ASCII but "+", "=" and "\\", or a UTF-8 encoded
 * non-ASCII character.
 */
static bool
unitext_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return false;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			size_t k = embedded_unicode_len(s + i, n - i);
			if (k == 0)
				return false;
			i += k;
		} else if (c >= 0x80) {
			size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if (k > n - i || !utf8_valid(s + i, k))
				return false;
			i += k;
		} else if (c < 0x21 || c > 0x7e || c == '+' || c == '=')
			return false;
		else
			i++;
	}
	return true;
}

static enum param_err
p_orcpt(const char *v, size_t vn, bool has_value, bool utf8_tx, void *out)
{
	struct rcpt_params *rp = out;
	const char *semi;
	size_t tn;

	/* original-recipient-address = addr-type ";" xtext (RFC 3461 §4.2) */
	if (!has_value || vn > ORCPT_MAX)
		return PARAM_ERR_VALUE;
	semi = memchr(v, ';', vn);
	if (semi == NULL)
		return PARAM_ERR_VALUE;
	tn = (size_t)(semi - v);
	if (tn == 0 || tn + 1 == vn)
		return PARAM_ERR_VALUE;
	/* addr-type = atom: ALPHA / DIGIT / "-" cover every registered type. */
	for (size_t i = 0; i < tn; i++)
		if (!ascii_isalnum((unsigned char)v[i]) && v[i] != '-')
			return PARAM_ERR_VALUE;
	/* RFC 6533 §3: an SMTPUTF8 transaction may give a "utf-8" address
	 * as utf-8-addr-unitext, UTF-8 as such; otherwise it is xtext
	 * (utf-8-addr-xtext is xtext too). */
	const char *a = semi + 1;
	size_t an = vn - tn - 1;
	if (!xtext_valid(a, an) &&
	    !(utf8_tx && ascii_ieqn(v, tn, "utf-8") && unitext_valid(a, an)))
		return PARAM_ERR_VALUE;
	memcpy(rp->orcpt, v, vn);
	rp->orcpt[vn] = '\0';
	rp->has_orcpt = true;
	return PARAM_OK;
}

static const struct param_def mail_defs[] = {
	{ "SIZE",     EXT_SIZE,     p_size },
	{ "BODY",     EXT_8BITMIME, p_body },
	{ "SMTPUTF8", EXT_SMTPUTF8, p_smtputf8 },
	{ "RET",      EXT_DSN,      p_ret },
	{ "ENVID",    EXT_DSN,      p_envid },
	{ "AUTH",     EXT_AUTH,     p_auth },
};

static const struct param_def rcpt_defs[] = {
	{ "NOTIFY",   EXT_DSN,      p_notify },
	{ "ORCPT",    EXT_DSN,      p_orcpt },
};

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 with SMTPUTF8 (RFC 6531 §3.3). */
static bool
value_valid(const char *v, size_t vn, unsigned ext)
{
	if (vn == 0)
		return false;
	for (size_t i = 0; i < vn; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c >= 0x80) {
			size_t j = i;

			if (!(ext & EXT_SMTPUTF8))
				return false;
			while (j < vn && (unsigned char)v[j] >= 0x80)
				j++;
			if (!utf8_valid(v + i, j - i))
				return false;
			i = j - 1;
		} else if (c < 33 || c == '=' || c > 126)
			return false;
	}
	return true;
}

static enum param_err
parse_list(const char *s, size_t n, unsigned ext, bool utf8_tx, const struct param_def *defs,
           size_t ndefs, void *out, size_t *bad_off, size_t *bad_len)
{
	unsigned seen = 0;
	size_t i = 0;

	if (n > 0 && s[0] != ' ') {
		if (bad_off != NULL)
			*bad_off = 0;
		if (bad_len != NULL)
			*bad_len = n;
		return PARAM_ERR_SYNTAX;
	}
	while (i < n) {
		while (i < n && s[i] == ' ')
			i++;
		if (i == n)
			break;

		const char *sp = memchr(s + i, ' ', n - i);
		size_t tend = sp != NULL ? (size_t)(sp - s) : n;
		size_t k = i;
		enum param_err e = PARAM_OK;
		const struct param_def *def = NULL;
		size_t d;

		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		while (k < tend && (ascii_isalnum((unsigned char)s[k]) ||
		    (s[k] == '-' && k > i)))
			k++;
		size_t klen = k - i;
		bool has_value = k < tend;

		if (klen == 0 || (has_value && (s[k] != '=' ||
		    !value_valid(s + k + 1, tend - k - 1, ext)))) {
			e = PARAM_ERR_SYNTAX;
			if (klen == 0)
				klen = tend - i;
		} else {
			for (d = 0; d < ndefs; d++)
				if (ascii_ieqn(s + i, klen, defs[d].keyword))
					break;
			if (d == ndefs || !(ext & defs[d].ext))
				e = PARAM_ERR_UNKNOWN;
			else if (seen & (1u << d))
				e = PARAM_ERR_SYNTAX;
			else {
				def = &defs[d];
				seen |= 1u << d;
			}
		}
		if (def != NULL) {
			const char *v = has_value ? s + k + 1 : s + k;
			size_t vn = has_value ? tend - k - 1 : 0;

			e = def->check(v, vn, has_value, utf8_tx, out);
		}
		if (e != PARAM_OK) {
			if (bad_off != NULL)
				*bad_off = i;
			if (bad_len != NULL)
				*bad_len = klen;
			return e;
		}
		i = tend;
	}
	return PARAM_OK;
}

/* sizeof of a string literal, without its NUL. */
#define LIT_LEN(s) (sizeof(s) - 1)

size_t
params_mail_room(unsigned ext)
{
	size_t r = 0;

	if (ext & EXT_SIZE)
		r += LIT_LEN(" SIZE=") + 20;                        /* = 26 */
	if (ext & EXT_SMTPUTF8)
		r += 10;
	if (ext & EXT_DSN)
		r += LIT_LEN(" RET=HDRS") + LIT_LEN(" ENVID=") + ENVID_MAX;
	if (ext & EXT_AUTH)
		r += LIT_LEN(" AUTH=") + AUTH_PARAM_MAX;
	return r;
}

_Static_assert(LIT_LEN(" NOTIFY=SUCCESS,FAILURE,DELAY") + LIT_LEN(" ORCPT=") + ORCPT_MAX <=
    PARAMS_ROOM_MAX, "PARAMS_ROOM_MAX must cover RCPT too");

size_t
params_rcpt_room(unsigned ext)
{
	size_t r = 0;

	if (ext & EXT_DSN)
		r += LIT_LEN(" NOTIFY=SUCCESS,FAILURE,DELAY") + LIT_LEN(" ORCPT=") + ORCPT_MAX;
	return r;
}

enum param_err
params_parse_mail(const char *s, size_t n, unsigned ext,
                  struct mail_params *out, size_t *bad_off, size_t *bad_len)
{
	struct mail_params mp;
	enum param_err e;

	memset(&mp, 0, sizeof mp);
	e = parse_list(s, n, ext, false, mail_defs, sizeof mail_defs / sizeof mail_defs[0],
	    &mp, bad_off, bad_len);
	if (e == PARAM_OK)
		*out = mp;
	return e;
}

enum param_err
params_parse_rcpt(const char *s, size_t n, unsigned ext, bool utf8_tx,
                  struct rcpt_params *out, size_t *bad_off, size_t *bad_len)
{
	struct rcpt_params rp;
	enum param_err e;

	memset(&rp, 0, sizeof rp);
	e = parse_list(s, n, ext, utf8_tx, rcpt_defs, sizeof rcpt_defs / sizeof rcpt_defs[0],
	    &rp, bad_off, bad_len);
	if (e == PARAM_OK)
		*out = rp;
	return e;
}
