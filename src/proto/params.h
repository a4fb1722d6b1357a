/*
 * ESMTP parameters of MAIL and RCPT (pure). RFC 5321 §4.1.2:
 *   Mail-parameters = esmtp-param *(SP esmtp-param)
 *   esmtp-param = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value = 1*(%d33-60 / %d62-126)      (UTF-8 allowed with SMTPUTF8)
 * Keywords are case-insensitive. A parameter is known only when its
 * extension is enabled (ext mask): an unknown or not-advertised parameter
 * is PARAM_ERR_UNKNOWN (555 5.5.4, RFC 5321 §4.1.1.11). A repeated parameter
 * is a syntax error.
 *
 *   SIZE=n          RFC 1870   (n = 1*20DIGIT; past 2^64-1 it is UINT64_MAX)
 *   BODY=7BIT|8BITMIME          RFC 6152 (BINARYMIME not offered)
 *   SMTPUTF8        RFC 6531   (no value)
 *   RET=FULL|HDRS, ENVID=xtext             RFC 3461 §4.3, §4.4 (MAIL)
 *   NOTIFY=NEVER|SUCCESS,FAILURE,DELAY, ORCPT=addr-type;xtext
 *                                          RFC 3461 §4.1, §4.2 (RCPT)
 *   AUTH=xtext|<>   RFC 4954 §5 (MAIL, only with EXT_AUTH)
 * xtext (RFC 3461 §4): "+" followed by two upper-case hex digits encodes a
 * char; it is validated and kept encoded, ENVID at most 100 chars and
 * ORCPT at most 500 (§4.2, §4.4). In an SMTPUTF8 transaction an ORCPT of
 * type "utf-8" may also be utf-8-addr-unitext (RFC 6533 §3): UTF-8 as such,
 * printable ASCII but "+", "=" and "\\", and "\\x{HEX}" escapes.
 */
#ifndef EHLO_PROTO_PARAMS_H
#define EHLO_PROTO_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_ext {
	EXT_PIPELINING         = 1u << 0,
	EXT_SIZE               = 1u << 1,
	EXT_8BITMIME           = 1u << 2,
	EXT_ENHANCEDSTATUSCODES= 1u << 3,
	EXT_SMTPUTF8           = 1u << 4,
	EXT_CHUNKING           = 1u << 5,
	EXT_DSN                = 1u << 6,
	EXT_STARTTLS           = 1u << 7,
	EXT_AUTH               = 1u << 8,
};

enum body_type { BODY_UNSPEC = 0, BODY_7BIT, BODY_8BITMIME };
enum dsn_ret   { RET_UNSPEC = 0, RET_FULL, RET_HDRS };
enum {
	NOTIFY_NEVER   = 1u << 0,
	NOTIFY_SUCCESS = 1u << 1,
	NOTIFY_FAILURE = 1u << 2,
	NOTIFY_DELAY   = 1u << 3,
};

#define ENVID_MAX 100
#define ORCPT_MAX 500
#define AUTH_PARAM_MAX 500

struct mail_params {
	bool           has_size;
	uint64_t       size;
	enum body_type body;
	bool           smtputf8;
	enum dsn_ret   ret;
	bool           has_envid;
	char           envid[ENVID_MAX + 1];      /* xtext, still encoded */
	bool           has_auth;
	char           auth[AUTH_PARAM_MAX + 1];  /* xtext or "<>" */
};

struct rcpt_params {
	unsigned notify;                 /* 0 = not given */
	bool     has_orcpt;
	char     orcpt[ORCPT_MAX + 1];   /* "rfc822;xtext" as given (type kept) */
};

enum param_err {
	PARAM_OK = 0,
	PARAM_ERR_SYNTAX,    /* 501 5.5.4 Syntax error in parameters */
	PARAM_ERR_UNKNOWN,   /* 555 5.5.4 Unsupported parameter */
	PARAM_ERR_VALUE,     /* 501 5.5.4 Bad value for a known parameter */
};

/*
 * s[0..n) is everything after the path's '>' (possibly empty, otherwise it
 * must start with SP; runs of SP and a trailing SP are tolerated). ext is
 * the set of enabled extensions (enum smtp_ext); EXT_SMTPUTF8 also allows
 * well-formed UTF-8 in esmtp-value. *out is written only on PARAM_OK.
 * On error *bad_off and *bad_len (each if not NULL) receive the offset and
 * length of the offending parameter's keyword in s, for the reply and the
 * log. A value-less "NOTIFY" etc. is PARAM_ERR_VALUE; "KEY=" (empty value)
 * is PARAM_ERR_SYNTAX. NOTIFY elements may not repeat; ORCPT's addr-type is
 * 1*(ALPHA / DIGIT / "-") and its xtext part may not be empty.
 */
enum param_err params_parse_mail(const char *s, size_t n, unsigned ext,
                                 struct mail_params *out, size_t *bad_off, size_t *bad_len);
/* utf8_tx: the transaction was opened with MAIL ... SMTPUTF8 (ORCPT's
 * utf-8-addr-unitext form is allowed only then). */
enum param_err params_parse_rcpt(const char *s, size_t n, unsigned ext, bool utf8_tx,
                                 struct rcpt_params *out, size_t *bad_off, size_t *bad_len);
/*
 * Octets the parameters of the extensions in ext may add to a MAIL or a
 * RCPT command line beyond RFC 5321's 512 (§4.5.3.1.4 lets extensions raise
 * the limit). Each extension adds what its parameters can take at most,
 * which is at least what its RFC grants: SIZE 26 (RFC 1870 §3), SMTPUTF8 10
 * (RFC 6531 §3.1), DSN " RET=HDRS ENVID=" + ENVID_MAX on MAIL and
 * " NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=" + ORCPT_MAX on RCPT (RFC 3461 §4
 * grants RCPT 500), AUTH " AUTH=" + AUTH_PARAM_MAX (RFC 4954 §5).
 */
size_t params_mail_room(unsigned ext);
size_t params_rcpt_room(unsigned ext);
/* The largest either can return. */
#define PARAMS_ROOM_MAX (26 + 10 + 16 + ENVID_MAX + 6 + AUTH_PARAM_MAX)

/* Validates xtext (RFC 3461 §4); true if s[0..n) is well-formed (empty is). */
bool xtext_valid(const char *s, size_t n);

#endif
