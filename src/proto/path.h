/*
 * Reverse- and forward-path parsing, RFC 5321 §4.1.2 (pure).
 *
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * Validate before normalising (OpenSMTPD CVE-2020-7247): the input is
 * checked in full against the grammar and the length limits of §4.5.3.1
 * before anything is copied out: local part 64 octets and domain 255 octets,
 * both as they appear on the wire (quotes, backslashes and the brackets of
 * an address literal included), and the path 256 octets from "<" to ">"
 * inclusive, source route included.
 * Domain labels are at most 63 octets (RFC 1035); a label with UTF-8 at most
 * 59 code points (longer cannot have an A-label of 63 octets).
 * Address literals: "[1.2.3.4]" and "[IPv6:...]" per §4.1.3 (where "::"
 * stands for at least two groups); General-address-literal is refused.
 * Source routes (A-d-l) are accepted and ignored (§4.1.2, §C).
 * "<>" is the null reverse-path (only with PATH_ALLOW_NULL).
 * "<postmaster>" without a domain is accepted with PATH_ALLOW_POSTMASTER
 * (§4.1.1.3, §4.5.1); it yields local "postmaster" and an empty domain.
 * With PATH_ALLOW_UTF8 (a transaction opened with SMTPUTF8, RFC 6531 §3.3)
 * UTF-8 is allowed in atoms, quoted strings and domain labels; it must be
 * well-formed UTF-8 (no overlongs, no surrogates), else PATH_ERR_SYNTAX.
 * Without it any octet >= 0x80 is PATH_ERR_UTF8.
 * Errors: the grammar first (SYNTAX / UTF8 / NULL), then the lengths in the
 * order local part, domain, path. *out and *end are written only on PATH_OK.
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
/*
 * IPv6-addr of §4.1.3 (what follows "IPv6:"), exactly s[0..n): 8 groups, or
 * "::" with at most 6 groups around it; with a final IPv4 address, 6 groups,
 * or "::" with at most 4. Stricter than RFC 4291 and inet_pton(3), which let
 * "::" stand for one group ("1:2:3:4:5:6:7::"). Shared with the EHLO check
 * (identity/hostname.c), so that an EHLO literal and a path's are judged alike.
 */
bool smtp_ipv6_addr_valid(const char *s, size_t n);
/*
 * True if s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). Pure ASCII is well-formed.
 */
bool utf8_valid(const char *s, size_t n);

#endif
