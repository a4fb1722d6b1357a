/*
 * Reverse- and forward-path parsing, RFC 5321 §4.1.2 (pure).
 *
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * Validate before normalising (OpenSMTPD CVE-2020-7247): the input is
 * checked in full against the grammar and the length limits of §4.5.3.1
 * (local part 64, domain 255, path 256 octets counted between and including
 * the angle brackets... we count the path without the brackets as Postfix
 * does not; see path.c) before anything is copied out.
 * Source routes (A-d-l) are accepted and ignored (§4.1.2, §C).
 * "<>" is the null reverse-path (only with PATH_ALLOW_NULL).
 * "<postmaster>" without a domain is accepted with PATH_ALLOW_POSTMASTER
 * (§4.1.1.3, §4.5.1); it yields local "postmaster" and an empty domain.
 * With PATH_ALLOW_UTF8 (a transaction opened with SMTPUTF8, RFC 6531 §3.3)
 * UTF-8 is allowed in atoms, quoted strings and domain labels; it must be
 * well-formed UTF-8 (no overlongs, no surrogates). Without it any octet
 * >= 0x80 is PATH_ERR_UTF8.
 */
#ifndef EHLO_PROTO_PATH_H
#define EHLO_PROTO_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define PATH_LOCAL_MAX   64
#define PATH_DOMAIN_MAX  255
#define PATH_MAX_OCTETS  256

enum {
	PATH_ALLOW_NULL       = 1u << 0,
	PATH_ALLOW_POSTMASTER = 1u << 1,
	PATH_ALLOW_UTF8       = 1u << 2,
};

enum path_err {
	PATH_OK = 0,
	PATH_ERR_SYNTAX,         /* 501 5.1.7 (sender) / 501 5.1.3 (recipient) */
	PATH_ERR_LOCAL_TOO_LONG, /* 501 5.1.3 ... */
	PATH_ERR_DOMAIN_TOO_LONG,
	PATH_ERR_PATH_TOO_LONG,
	PATH_ERR_UTF8,           /* 553 5.6.7 (RFC 6531 §3.7.4.1) */
	PATH_ERR_NULL,           /* "<>" where not allowed */
};

struct smtp_path {
	bool  null;                          /* "<>" */
	bool  quoted;                        /* local part was a Quoted-string */
	bool  literal;                       /* domain is an address literal */
	bool  utf8;                          /* contains octets >= 0x80 */
	char  local[PATH_LOCAL_MAX * 2 + 1]; /* local part with quoting removed
	                                        (quoted-pairs resolved); NUL-terminated */
	char  domain[PATH_DOMAIN_MAX + 1];   /* as given ("[1.2.3.4]" kept whole) */
};

/*
 * Parse a path that starts at s[0] (which must be '<'; a missing '<' is
 * PATH_ERR_SYNTAX — we do not accept Postfix's "strict_rfc821_envelopes=no"
 * leniency). On success *end is the index just after '>', and the caller
 * parses ESMTP parameters from there (they must be separated by SP).
 */
enum path_err path_parse(const char *s, size_t n, unsigned flags,
                         struct smtp_path *out, size_t *end);

/*
 * Writes the canonical form "local@domain" (re-quoting the local part when it
 * is not a valid Dot-string), "" for the null path, into out (size outlen).
 * Returns the length, or -1 if it does not fit.
 */
int path_format(const struct smtp_path *p, char *out, size_t outlen);

/* A domain per RFC 5321 §4.1.2 Domain (sub-domain *("." sub-domain)), no trailing dot. */
bool smtp_domain_valid(const char *s, size_t n, bool allow_utf8);
/* An address literal per §4.1.3: "[1.2.3.4]", "[IPv6:...]" (general literals rejected). */
bool smtp_address_literal_valid(const char *s, size_t n);

#endif
